"""settleClaim, late recognition, reversal: exact, idempotent, never rewriting history."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.storage import models
from gateway.storage.database import Database
from policies.settlement.ledger import Ledger
from policies.vocabulary import Category, Payer
from tests.conftest import GraphQLClient
from tests.factories import category_document, category_field, recorder

ID = "510402197001010013"  # 攀枝花东区, born 1970-01-01
SETTLE = """mutation($i: SettleClaimInput!) { settleClaim(input: $i) {
  claimNumber policy category preferentialTreatment basicInsurance criticalIllness
  inclusiveCommercial assistance secondaryAssistance outOfPocket } }"""
CLAIM = """query($n: String) { beneficiary(idNumber: $n) { claims(first: 50) { edges { node {
  claimNumber reversed settlement { category basicInsurance assistance secondaryAssistance
  outOfPocket } settlements { kind reason category basicInsurance assistance
  secondaryAssistance outOfPocket } } } } } }"""
PAYERS = [
    "basicInsurance",
    "criticalIllness",
    "inclusiveCommercial",
    "assistance",
    "secondaryAssistance",
]


async def person(gql: GraphQLClient, *categories: tuple[str, str, str | None]) -> None:
    await gql.data(
        "mutation($i: RegisterBeneficiaryInput!) { registerBeneficiary(input: $i) { id } }",
        {"i": {"idNumber": ID, "name": "王五", "regionCode": "510402"}},
    )
    await gql.data(
        "mutation($i: RecordEnrollmentInput!) { recordEnrollment(input: $i) { year } }",
        {"i": {"idNumber": ID, "year": 2023, "contribution": "380.00", "enrolledOn": "2022-12-01"}},
    )
    for category, valid_from, valid_to in categories:
        await record(gql, category, valid_from, valid_to)


ADJUSTMENTS = "adjustments { claimNumber kind assistance outOfPocket reason }"


async def record(
    gql: GraphQLClient, category: str, valid_from: str, valid_to: str | None
) -> dict[str, Any]:
    """Record ``category`` by the department that recognises it; the mutation's payload."""
    flag = Category(category).is_monitoring_flag
    data = await gql.data(
        category_document(category, selection="" if flag else ADJUSTMENTS),
        {
            "i": {
                "idNumber": ID,
                "category": category,
                "validFrom": valid_from,
                "validTo": valid_to,
                "reference": f"{category}-{valid_from}",
            }
        },
        department=recorder(category),
    )
    return dict(data[category_field(category)])


def stay(number: str, admitted: str, total: str, scope: str, **extra: Any) -> dict[str, Any]:
    return {
        "claimNumber": number,
        "idNumber": ID,
        "type": "INPATIENT",
        "hospitalLevel": "SECONDARY",
        "admissionDate": admitted,
        "dischargeDate": admitted,
        "totalCost": total,
        "policyScopeCost": scope,
        **extra,
    }


async def settle(gql: GraphQLClient, claim: dict[str, Any]) -> dict[str, Any]:
    return dict((await gql.data(SETTLE, {"i": claim}))["settleClaim"])


async def claims(gql: GraphQLClient) -> list[dict[str, Any]]:
    data = await gql.data(CLAIM, {"n": ID})
    return [e["node"] for e in data["beneficiary"]["claims"]["edges"]]


async def rows(db: Database, model: Any) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_minimum_living_stay_pays_by_the_panzhihua_policy(gql: GraphQLClient) -> None:
    await person(gql, ("MINIMUM_LIVING", "2021-06-01", None))
    result = await settle(gql, stay("C1", "2023-03-01", "30000.00", "26000.00"))
    assert result == {
        "claimNumber": "C1",
        "policy": "510400-2023",
        "category": "MINIMUM_LIVING",
        "preferentialTreatment": True,
        "basicInsurance": "20480.00",
        "criticalIllness": "0.00",
        "inclusiveCommercial": "0.00",
        "assistance": "3864.00",
        "secondaryAssistance": "0.00",
        "outOfPocket": "5656.00",
    }


async def test_second_settlement_of_same_claim_pays_nothing_more(
    gql: GraphQLClient, db: Database
) -> None:
    await person(gql, ("MINIMUM_LIVING", "2021-06-01", None))
    claim = stay("C1", "2023-03-01", "30000.00", "26000.00")
    first = await settle(gql, claim)
    again = await settle(gql, claim)
    assert again == first
    assert (await rows(db, models.Claim), await rows(db, models.Settlement)) == (1, 1)
    async with db.sessions() as session:
        ledger = (await session.scalars(select(models.Ledger))).one()
    assert (ledger.assistance, ledger.visits) == (Decimal("3864.00"), 1)


async def test_same_claim_number_with_other_content_is_a_conflict(
    gql: GraphQLClient, db: Database
) -> None:
    await person(gql)
    await settle(gql, stay("C1", "2023-03-01", "30000.00", "26000.00"))
    error = await gql.error(SETTLE, {"i": stay("C1", "2023-03-01", "30000.00", "25000.00")})
    assert error["extensions"]["code"] == "CONFLICT"
    assert "claimNumber = C1" in error["message"]
    assert await rows(db, models.Settlement) == 1


@pytest.mark.parametrize(
    ("change", "field", "value"),
    [
        ({"policyScopeCost": "31000.00"}, "policyScopeCost", "31000.00"),
        ({"totalCost": "-1.00", "policyScopeCost": "0.00"}, "totalCost", "-1.00"),
        ({"totalCost": "100.001"}, "totalCost", "100.001"),
        ({"dischargeDate": "2023-02-28"}, "dischargeDate", "2023-02-28"),
        ({"hospitalLevel": None}, "hospitalLevel", None),
        ({"claimNumber": "  "}, "claimNumber", "  "),
        ({"idNumber": "510402197001010014"}, "idNumber", "510402197001010014"),
        (
            {"admissionDate": "2023-01-15", "dischargeDate": "2023-01-16"},
            "admissionDate",
            "2023-01-15",
        ),
    ],
)
async def test_bad_claims_name_field_and_value_and_store_nothing(
    gql: GraphQLClient, db: Database, change: dict[str, Any], field: str, value: Any
) -> None:
    await person(gql)
    audit_before = await rows(db, models.AuditRecord)
    claim = {**stay("C1", "2023-03-01", "30000.00", "26000.00"), **change}
    error = await gql.error(SETTLE, {"i": claim})
    assert error["extensions"]["code"] == "BAD_INPUT", error
    if field == "admissionDate":
        # No policy of 攀枝花 is in force before 2023-02-01.
        assert "no benefit policy in force for region 510402 on 2023-01-15" in error["message"]
    else:
        assert error["extensions"]["field"] == field
        assert error["extensions"]["value"] == value
    assert (await rows(db, models.Claim), await rows(db, models.Settlement)) == (0, 0)
    assert await rows(db, models.AuditRecord) == audit_before


async def test_unknown_person_is_not_found_and_nothing_is_stored(
    gql: GraphQLClient, db: Database
) -> None:
    error = await gql.error(SETTLE, {"i": stay("C1", "2023-03-01", "30000.00", "26000.00")})
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert await rows(db, models.Claim) == 0


async def test_late_recognition_adds_adjustments_without_rewriting_history(
    gql: GraphQLClient, db: Database
) -> None:
    await person(gql)
    await settle(gql, stay("C1", "2023-03-01", "30000.00", "26000.00"))
    await settle(gql, stay("C2", "2023-05-01", "12000.00", "11000.00"))
    # 低保 recognised in July: retroactive to 1 January (攀枝花 第十九条).
    recorded = await record(gql, "MINIMUM_LIVING", "2023-07-01", None)
    # The payload lists the two adjustments the recognition stored, claim by claim.
    assert recorded == {
        "identity": {"category": "MINIMUM_LIVING"},
        "adjustments": [
            {
                "claimNumber": claim,
                "kind": "ADJUSTMENT",
                "assistance": amount,
                "outOfPocket": f"-{amount}",
                "reason": "re-run after recordIdentity",
            }
            for claim, amount in (("C1", "3864.00"), ("C2", "1764.00"))
        ],
    }
    # The same record again is stored already: nothing re-run, no adjustment.
    again = await record(gql, "MINIMUM_LIVING", "2023-07-01", None)
    assert again == {"identity": {"category": "MINIMUM_LIVING"}, "adjustments": []}
    found = await claims(gql)
    assert [c["settlement"]["assistance"] for c in found] == ["3864.00", "1764.00"]
    assert [c["settlement"]["category"] for c in found] == ["MINIMUM_LIVING"] * 2
    c1_events = found[0]["settlements"]
    assert [e["kind"] for e in c1_events] == ["ORIGINAL", "ADJUSTMENT"]
    assert c1_events[0]["assistance"] == "0.00"
    assert c1_events[0]["category"] is None
    assert c1_events[1]["assistance"] == "3864.00"
    assert c1_events[1]["outOfPocket"] == "-3864.00"
    assert c1_events[1]["reason"] == "re-run after recordIdentity"
    assert await rows(db, models.Settlement) == 4


RECOVERIES = """{ recoveries { edges { node {
  id claimNumber status amount assistance secondaryAssistance cause } } } }"""


async def pending_recoveries(gql: GraphQLClient) -> list[dict[str, Any]]:
    data = await gql.data(RECOVERIES)
    return [e["node"] for e in data["recoveries"]["edges"] if e["node"]["status"] == "PENDING"]


async def end_minimum_living_back_dated(gql: GraphQLClient) -> None:
    """Civil affairs ends the person's 低保 on 2022-12-31, decided 2023-06-01 (§9.4 late news)."""
    end = {"idNumber": ID, "category": "MINIMUM_LIVING", "validTo": "2022-12-31"}
    await gql.data(
        "mutation($i: EndCategoryInput!) { endIdentity(input: $i) { identity { validTo } } }",
        {"i": {**end, "decidedOn": "2023-06-01"}},
        department="civil_affairs",
    )


async def test_a_retroactive_end_moves_no_money_until_medical_insurance_recovers_it(
    gql: GraphQLClient,
) -> None:
    """SETTLEMENT.md §9.4: a decrease is never taken back automatically."""
    await person(gql, ("MINIMUM_LIVING", "2021-06-01", None))
    await settle(gql, stay("C1", "2023-03-01", "30000.00", "26000.00"))
    await end_minimum_living_back_dated(gql)
    [claim] = await claims(gql)
    assert claim["settlement"]["assistance"] == "3864.00"
    assert [e["assistance"] for e in claim["settlements"]] == ["3864.00"]
    [recovery] = await pending_recoveries(gql)
    assert (recovery["claimNumber"], recovery["amount"], recovery["assistance"]) == (
        "C1",
        "3864.00",
        "3864.00",
    )
    assert recovery["cause"] == "re-run after endIdentity"
    decided = await gql.data(
        f'mutation {{ decideRecovery(id: "{recovery["id"]}", decision: RECOVER) {{ status }} }}'
    )
    assert decided["decideRecovery"]["status"] == "RECOVERED"
    [claim] = await claims(gql)
    assert claim["settlement"]["assistance"] == "0.00"
    assert [e["kind"] for e in claim["settlements"]] == ["ORIGINAL", "RECOVERY"]
    assert [e["assistance"] for e in claim["settlements"]] == ["3864.00", "-3864.00"]
    assert await pending_recoveries(gql) == []


async def test_reversal_cancels_a_claim_and_resettles_the_later_ones(
    gql: GraphQLClient, db: Database
) -> None:
    # 监测对象: the 2,100 deductible is consumed by the first stay (P03); cancelling the first
    # stay makes the second one carry the deductible itself.
    await person(gql, ("MONITORED", "2022-09-01", None))
    first = stay("C1", "2023-03-01", "5000.00", "4500.00", hospitalLevel="PRIMARY")
    second = stay("C2", "2023-04-01", "20000.00", "18000.00")
    await settle(gql, first)
    assert (await settle(gql, second))["assistance"] == "1534.00"
    reversed_ = await gql.data(
        """mutation { reverseSettlement(claimNumber: "C1", reason: "退费") {
          settlement { claimNumber basicInsurance assistance outOfPocket }
          adjustments { claimNumber kind assistance }
          recoveries { claimNumber status amount assistance cause } } }"""
    )
    # The payload says what the reversal set off: no adjustment (C2's assistance would fall),
    # one pending recovery of C2's 351.00 (worked out below).
    assert reversed_["reverseSettlement"] == {
        "settlement": {
            "claimNumber": "C1",
            "basicInsurance": "0.00",
            "assistance": "0.00",
            "outOfPocket": "0.00",
        },
        "adjustments": [],
        "recoveries": [
            {
                "claimNumber": "C2",
                "status": "PENDING",
                "amount": "351.00",
                "assistance": "351.00",
                "cause": "reversal of C1",
            }
        ],
    }
    c1, c2 = await claims(gql)
    assert c1["reversed"] is True
    assert [e["kind"] for e in c1["settlements"]] == ["ORIGINAL", "REVERSAL"]
    # Alone, the second stay's base 3,920 pays 65% above 2,100: 1,183.00. The 351.00 paid above
    # that is not taken back automatically: it is a pending recovery (§9.4, §9.6).
    assert c2["settlement"]["assistance"] == "1534.00"
    assert [e["assistance"] for e in c2["settlements"]] == ["1534.00"]
    [recovery] = await pending_recoveries(gql)
    assert (recovery["claimNumber"], recovery["amount"]) == ("C2", "351.00")
    # Reversing again is a conflict that says when and why.
    error = await gql.error(
        'mutation { reverseSettlement(claimNumber: "C1", reason: "x") '
        "{ settlement { assistance } } }"
    )
    assert error["extensions"]["code"] == "CONFLICT"
    assert "reversed at" in error["message"]
    assert "退费" in error["message"]
    assert await rows(db, models.Settlement) == 3
    async with db.sessions() as session:
        ledger = (await session.scalars(select(models.Ledger))).one()
    assert (ledger.assistance, ledger.visits) == (Decimal("1534.00"), 1)
    assert Ledger.from_dict(ledger.state).paid_by_payer[Payer.ASSISTANCE] == Decimal("1183.00")


async def test_reversal_of_an_unknown_claim_is_not_found(gql: GraphQLClient) -> None:
    error = await gql.error(
        'mutation { reverseSettlement(claimNumber: "nope", reason: "x") '
        "{ settlement { assistance } } }"
    )
    assert error["extensions"]["code"] == "NOT_FOUND"


async def test_a_claim_waits_for_its_enrollment_and_an_uninsured_one_must_say_so(
    gql: GraphQLClient, db: Database
) -> None:
    """SETTLEMENT.md §9.1: insured or not is never guessed."""
    await gql.data(
        "mutation($i: RegisterBeneficiaryInput!) { registerBeneficiary(input: $i) { id } }",
        {"i": {"idNumber": ID, "name": "王五", "regionCode": "510402"}},
    )
    await record(gql, "EXTREME_POVERTY", "2020-01-01", None)
    error = await gql.error(SETTLE, {"i": stay("C1", "2023-03-01", "10000.00", "9000.00")})
    assert error["extensions"]["code"] == "PRECONDITION_FAILED"
    assert ID in error["message"]
    assert "2023" in error["message"]
    assert await rows(db, models.Claim) == 0
    await gql.data(
        "mutation($i: RecordEnrollmentInput!) { recordEnrollment(input: $i) { year } }",
        {"i": {"idNumber": ID, "year": 2023, "contribution": "380.00", "enrolledOn": "2022-12-01"}},
    )
    insured = await settle(gql, stay("C1", "2023-03-01", "10000.00", "9000.00"))
    assert (insured["basicInsurance"], insured["assistance"]) == ("6880.00", "2120.00")


async def test_enrollment_returns_the_subsidy_split(gql: GraphQLClient) -> None:
    await gql.data(
        "mutation($i: RegisterBeneficiaryInput!) { registerBeneficiary(input: $i) { id } }",
        {"i": {"idNumber": ID, "name": "王五", "regionCode": "510402"}},
    )
    await record(gql, "MONITORED", "2022-01-01", None)
    data = await gql.data(
        """mutation($i: RecordEnrollmentInput!) { recordEnrollment(input: $i) {
          year contribution subsidy { policy category assistanceFund finance individual } } }""",
        {"i": {"idNumber": ID, "year": 2024, "contribution": "380.00", "enrolledOn": "2023-12-01"}},
    )
    assert data["recordEnrollment"]["subsidy"] == {
        "policy": "510400-2023",
        "category": "MONITORED",
        "assistanceFund": "285.00",
        "finance": "0.00",
        "individual": "95.00",
    }


async def test_settlement_explains_every_payer_line(gql: GraphQLClient) -> None:
    await person(gql, ("EXTREME_POVERTY", "2020-01-01", None))
    await settle(gql, stay("C1", "2023-05-02", "250000.00", "220000.00", hospitalLevel="TERTIARY"))
    data = await gql.data(
        """query($n: String) { beneficiary(idNumber: $n) { claims { edges { node {
          settlement { explanation { text category { category reason }
            payers { payer applied amount deductible base baseBefore cap roomBefore
              segments { upTo ratio } references { parameter value clause assumed } } } }
        } } } } }""",
        {"n": ID},
    )
    node = data["beneficiary"]["claims"]["edges"][0]["node"]
    explanation = node["settlement"]["explanation"]
    assert explanation["category"]["category"] == "EXTREME_POVERTY"
    ci = next(p for p in explanation["payers"] if p["payer"] == "criticalIllness")
    assert ci["amount"] == "43888.00"
    assert Decimal(ci["deductible"]) == Decimal("10000")
    assert [Decimal(s["ratio"]) for s in ci["segments"]] == [Decimal("0.65"), Decimal("0.75")]
    assert any(r["clause"] and "第八条" in r["clause"] for r in ci["references"])
    assert "criticalIllness: 43888.00" in explanation["text"]


async def test_simulation_settles_a_case_and_stores_nothing(
    gql: GraphQLClient, db: Database
) -> None:
    data = await gql.data(
        """mutation { simulateSettlement(input: {
          person: {regionCode: "510402", birthDate: "1970-01-01",
                   categories: [{category: MINIMUM_LIVING, validFrom: "2021-06-01"}]},
          visits: [{id: "v1", type: INPATIENT, hospitalLevel: SECONDARY,
                    admissionDate: "2023-03-01", dischargeDate: "2023-03-10",
                    totalCost: "30000.00", policyScopeCost: "26000.00"}]}) {
          visits { id policy category basicInsurance assistance outOfPocket
                   explanation { category { category } } } } }"""
    )
    assert data["simulateSettlement"]["visits"] == [
        {
            "id": "v1",
            "policy": "510400-2023",
            "category": "MINIMUM_LIVING",
            "basicInsurance": "20480.00",
            "assistance": "3864.00",
            "outOfPocket": "5656.00",
            "explanation": {"category": {"category": "MINIMUM_LIVING"}},
        }
    ]
    assert await rows(db, models.Claim) == 0


async def test_simulation_bad_input_names_the_field(gql: GraphQLClient) -> None:
    error = await gql.error(
        """mutation { simulateSettlement(input: {
          person: {regionCode: "510402", birthDate: "1970-01-01"},
          visits: [{id: "v1", type: INPATIENT, hospitalLevel: SECONDARY,
                    admissionDate: "2023-03-01", totalCost: "100.00",
                    policyScopeCost: "200.00"}]}) { visits { id } } }"""
    )
    assert error["extensions"]["code"] == "BAD_INPUT"
    assert error["extensions"]["field"] == "visits[0].policyScopeCost"


async def test_high_out_of_pocket_opens_an_alert(gql: GraphQLClient, db: Database) -> None:
    # 攀枝花: insured persons whose yearly out-of-pocket passes 50% of PCDI 2022 (21,000).
    await person(gql)
    await settle(gql, stay("C1", "2023-03-01", "60000.00", "30000.00"))
    async with db.sessions() as session:
        alerts = (await session.scalars(select(models.HighCostAlert))).all()
    assert [(a.year, a.threshold, a.status) for a in alerts] == [
        (2023, Decimal("21000.00"), "OPEN")
    ]
    assert alerts[0].out_of_pocket > Decimal("21000")
