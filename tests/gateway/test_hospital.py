"""The ``hospital`` department (定点医疗机构, issue 13 point 5): its token's org is its hospital
code. At admission it learns yes or no for 先诊疗后付费 and never a category; at discharge it
settles claims of its own code only; it reads only its own claims and their persons' name and
ID number.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text

from gateway.storage.database import Database
from tests.conftest import GraphQLClient
from tests.factories import recorder

ENTITLED = "510402197001010013"  # 低保 in 攀枝花: 先诊疗后付费 (攀枝花 第十六条)
MONITORED = "51040219850202002X"  # only a monitoring flag, which 攀枝花 does not list
UNKNOWN = "510402199001010012"  # a valid ID number nobody registered
HOSPITAL = {"department": "hospital", "org": "H-510402-01", "purpose": "treatment"}
MI = {"department": "medical_insurance", "purpose": "seeding"}
CATEGORY_WORDS = ("MINIMUM_LIVING", "MONITORED", "低保", "category", "identities", "Flag")

REGISTER = "mutation($i: RegisterBeneficiaryInput!) { registerBeneficiary(input: $i) { id } }"
ENROLL = "mutation($i: RecordEnrollmentInput!) { recordEnrollment(input: $i) { year } }"
IDENTITY = "mutation($i: RecordCategoryInput!) { recordIdentity(input: $i) { __typename } }"
FLAG = "mutation($i: RecordCategoryInput!) { recordMonitoringFlag(input: $i) { __typename } }"
SETTLE = "mutation($i: SettleClaimInput!) { settleClaim(input: $i) { claimNumber outOfPocket } }"
WAIVER = "query($n: String!, $on: Date) { depositWaiver(idNumber: $n, on: $on) { entitled on } }"


def claim(number: str, person: str, hospital: str | None) -> dict[str, Any]:
    return {
        "i": {
            "claimNumber": number,
            "idNumber": person,
            "type": "INPATIENT",
            "hospitalLevel": "SECONDARY",
            "hospitalCode": hospital,
            "admissionDate": "2023-03-01",
            "dischargeDate": "2023-03-05",
            "totalCost": "20000.00",
            "policyScopeCost": "18000.00",
        }
    }


async def seed(gql: GraphQLClient) -> None:
    """Two enrolled persons of 攀枝花: ENTITLED holds 低保 since 2021, MONITORED a flag."""
    for number, name, category, mutation in (
        (ENTITLED, "张三丰", "MINIMUM_LIVING", IDENTITY),
        (MONITORED, "李四娘", "MONITORED", FLAG),
    ):
        await gql.data(
            REGISTER, {"i": {"idNumber": number, "name": name, "regionCode": "510402"}}, **MI
        )
        enrollment = {"idNumber": number, "year": 2023, "contribution": "380.00"}
        await gql.data(ENROLL, {"i": {**enrollment, "enrolledOn": "2022-12-01"}}, **MI)
        by = recorder(category)
        record = {"idNumber": number, "category": category, "validFrom": "2021-06-01"}
        await gql.data(mutation, {"i": {**record, "reference": "R-1"}}, department=by, org=by)


async def counts(db: Database) -> dict[str, int]:
    async with db.engine.connect() as conn:
        return {
            table: int(await conn.scalar(text(f"SELECT count(*) FROM {table}")) or 0)
            for table in ("claims", "settlements", "settlement_lines", "ledgers", "audit_log")
        }


async def test_the_hospital_learns_yes_or_no_and_never_the_category(
    gql: GraphQLClient, db: Database
) -> None:
    await seed(gql)
    answers = {}
    for number in (ENTITLED, MONITORED, UNKNOWN):
        body = await gql.post(WAIVER, {"n": number, "on": "2023-03-01"}, **HOSPITAL)
        answers[number] = body
        whole = json.dumps(body, ensure_ascii=False)
        assert not any(word in whole for word in CATEGORY_WORDS), whole
    assert answers[ENTITLED] == {"data": {"depositWaiver": {"entitled": True, "on": "2023-03-01"}}}
    # Not entitled and not known are one answer.
    assert answers[MONITORED] == answers[UNKNOWN]
    assert answers[UNKNOWN] == {"data": {"depositWaiver": {"entitled": False, "on": "2023-03-01"}}}
    # Before the 低保 began: no.
    before = await gql.data(WAIVER, {"n": ENTITLED, "on": "2021-05-31"}, **HOSPITAL)
    assert before["depositWaiver"]["entitled"] is False


async def test_a_bad_id_number_names_only_the_value_sent(gql: GraphQLClient) -> None:
    await seed(gql)
    error = await gql.error(WAIVER, {"n": "510402197001010014"}, **HOSPITAL)
    assert error["extensions"] == {
        "code": "BAD_INPUT",
        "field": "idNumber",
        "value": "510402197001010014",
    }
    assert not any(word in json.dumps(error, ensure_ascii=False) for word in CATEGORY_WORDS)


async def test_the_admission_check_is_an_audited_personal_read_that_needs_the_purpose(
    gql: GraphQLClient, db: Database
) -> None:
    await seed(gql)
    async with db.engine.connect() as conn:
        before = int(await conn.scalar(text("SELECT max(id) FROM audit_log")) or 0)
        person = await conn.scalar(
            text("SELECT id FROM beneficiaries WHERE id_number = :n"), {"n": ENTITLED}
        )
    await gql.data(WAIVER, {"n": ENTITLED}, **HOSPITAL)
    await gql.data(WAIVER, {"n": UNKNOWN}, **HOSPITAL)
    refused = await gql.error(WAIVER, {"n": ENTITLED}, department="hospital", org="H-510402-01")
    assert refused["extensions"]["code"] == "FORBIDDEN"
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT department, org, purpose, beneficiary_ids, field_paths FROM audit_log "
                    "WHERE id > :b ORDER BY id"
                ),
                {"b": before},
            )
        ).all()
    assert [(r.department, r.org, r.purpose) for r in rows] == [
        ("hospital", "H-510402-01", "treatment")
    ] * 2
    assert rows[0].beneficiary_ids == [person]
    assert rows[1].beneficiary_ids == []  # nobody found, the lookup recorded all the same
    for row in rows:
        assert "depositWaiver(idNumber)" in row.field_paths


async def test_the_hospital_settles_only_claims_of_its_own_code_and_nothing_else_is_stored(
    gql: GraphQLClient, db: Database
) -> None:
    await seed(gql)
    before = await counts(db)
    for code in ("H-510402-02", None):
        error = await gql.error(SETTLE, claim("C-H-1", ENTITLED, code), **HOSPITAL)
        assert error["extensions"] == {"code": "FORBIDDEN", "field": "hospitalCode", "value": code}
        assert await counts(db) == before
    # Its own code, for a patient who has no claim of it yet: settled.
    settled = await gql.data(SETTLE, claim("C-H-1", ENTITLED, "H-510402-01"), **HOSPITAL)
    assert settled["settleClaim"]["claimNumber"] == "C-H-1"
    assert (await counts(db))["claims"] == before["claims"] + 1


async def test_the_hospital_reads_only_its_own_claims_and_their_persons_name_and_id_number(
    gql: GraphQLClient,
) -> None:
    await seed(gql)
    await gql.data(SETTLE, claim("C-OWN", ENTITLED, "H-510402-01"), **HOSPITAL)
    await gql.data(SETTLE, claim("C-THEIRS", MONITORED, "H-510402-02"), **MI)
    query = """{ claims(first: 10) { edges { node { claimNumber hospitalCode
      beneficiary { name idNumber } settlement { assistance outOfPocket } } } }
      theirs: claim(claimNumber: "C-THEIRS") { claimNumber } }"""
    data = await gql.data(query, **HOSPITAL)
    [own] = [edge["node"] for edge in data["claims"]["edges"]]
    assert own["claimNumber"] == "C-OWN"
    assert own["hospitalCode"] == "H-510402-01"
    assert own["beneficiary"] == {"name": "张三丰", "idNumber": ENTITLED}
    assert data["theirs"] is None
    for forbidden in (
        '{ claim(claimNumber: "C-OWN") { beneficiary { identities { category } } } }',
        '{ claim(claimNumber: "C-OWN") { beneficiary { monitoringFlags { category } } } }',
        '{ claim(claimNumber: "C-OWN") { settlement { category } } }',
        '{ claim(claimNumber: "C-OWN") { settlement { explanation { text } } } }',
        '{ claim(claimNumber: "C-OWN") { settlements { reason } } }',
        '{ claim(claimNumber: "C-OWN") { preferentialTreatment } }',
        '{ claim(claimNumber: "C-OWN") { beneficiary { birthDate } } }',
        f'{{ beneficiary(idNumber: "{ENTITLED}") {{ name }} }}',
        "{ beneficiaries { edges { node { name } } } }",
    ):
        error = await gql.error(forbidden, **HOSPITAL)
        assert error["extensions"]["code"] == "FORBIDDEN", forbidden
