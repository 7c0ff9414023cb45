"""SETTLEMENT.md §9 through the GraphQL API: what is known when, and who may change what was paid.

Each rule is driven through ``settleClaim``, the ingestion mutations, ``reverseSettlement``,
``decideRecovery`` and ``closeSettlementYear``; every refusal is checked for its code, the field
it names, and that nothing was stored. The amounts are worked out by hand from §6 (the working is
in the comments). The last test is a property over random sequences of late news, settlements,
reversals and decisions.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from gateway.config import Settings
from gateway.storage import models
from gateway.storage.database import Database
from policies.benefits import PolicySet
from policies.settlement.engine import (
    INSURANCE_VISIT_TYPES,
    CategoryRecord,
    Ledger,
    Person,
    Reported,
    Visit,
    settle_visit,
)
from policies.vocabulary import Category, HospitalLevel, Payer, VisitType
from tests.conftest import GraphQLClient
from tests.factories import category_document, id_number, recorder

PANZHIHUA = "510402"  # 攀枝花东区: policy 510400-2023
JIANGSU = "320102"  # 南京玄武: policy 320000-2015
BORN = date(1970, 1, 1)
PAN_ID = id_number(PANZHIHUA, BORN, 11)
JS_ID = id_number(JIANGSU, BORN, 11)
ZERO = Decimal("0.00")
INSURANCE = ("basicInsurance", "criticalIllness", "inclusiveCommercial")
ASSISTANCE = ("assistance", "secondaryAssistance")
PAYERS = (*INSURANCE, *ASSISTANCE)
AMOUNTS = " ".join((*PAYERS, "outOfPocket"))

SETTLE = f"""mutation($i: SettleClaimInput!) {{ settleClaim(input: $i) {{
  claimNumber policy category {AMOUNTS} explanation {{ text }} }} }}"""
CLAIM = f"""query($n: String!) {{ claim(claimNumber: $n) {{ claimNumber reversed
  settlement {{ category {AMOUNTS} }}
  settlements {{ kind reason createdAt category {AMOUNTS} }} }} }}"""
RECOVERIES = """query($s: RecoveryStatus, $n: String) {
  recoveries(status: $s, claimNumber: $n, first: 100) { edges { node {
    id claimNumber year policy status amount assistance secondaryAssistance cause
    decidedBy decisionReason } } } }"""
DECIDE = """mutation($id: ID!, $d: RecoveryDecision!, $r: String) {
  decideRecovery(id: $id, decision: $d, reason: $r) {
    id claimNumber status amount assistance secondaryAssistance decidedBy decisionReason } }"""
CLOSE = """mutation($r: String!, $y: Int!) { closeSettlementYear(regionCode: $r, year: $y) {
  regionCode year policy department } }"""
REVERSE = """mutation($n: String!, $r: String!) { reverseSettlement(claimNumber: $n, reason: $r) {
  settlement { claimNumber basicInsurance assistance outOfPocket } } }"""
ENROLL = """mutation($i: RecordEnrollmentInput!) { recordEnrollment(input: $i) {
  year scheme inclusiveCommercial } }"""
LATE_NEWS = """query($r: String, $y: Int) { lateNews(regionCode: $r, year: $y) { edges { node {
  year regionCode operation department changes { claimNumber payer amount } } } } }"""
PERSON = """query($n: String!) { beneficiary(idNumber: $n) {
  identities { category validFrom validTo decidedOn }
  monitoringFlags { category validFrom validTo decidedOn } } }"""


# -- helpers ------------------------------------------------------------------------------------


async def register(gql: GraphQLClient, number: str, region: str) -> None:
    await gql.data(
        "mutation($i: RegisterBeneficiaryInput!) { registerBeneficiary(input: $i) { id } }",
        {"i": {"idNumber": number, "name": "治理", "regionCode": region}},
    )


def enrollment(number: str, year: int, **extra: Any) -> dict[str, Any]:
    return {
        "i": {
            "idNumber": number,
            "year": year,
            "contribution": "380.00",
            "enrolledOn": f"{year - 1}-12-01",
            **extra,
        }
    }


async def enroll(gql: GraphQLClient, number: str, year: int, **extra: Any) -> dict[str, Any]:
    return dict((await gql.data(ENROLL, enrollment(number, year, **extra)))["recordEnrollment"])


async def record(
    gql: GraphQLClient,
    number: str,
    category: str,
    valid_from: str,
    valid_to: str | None = None,
    decided_on: str | None = None,
    reference: str | None = None,
) -> dict[str, Any]:
    """recordIdentity / recordMonitoringFlag by the recognising department (the raw body)."""
    item: dict[str, Any] = {
        "idNumber": number,
        "category": category,
        "validFrom": valid_from,
        "validTo": valid_to,
        "reference": reference or f"{category}-{valid_from}",
    }
    if decided_on is not None:
        item["decidedOn"] = decided_on
    return await gql.post(
        category_document(category),
        {"i": item},
        department=recorder(category),
    )


async def end(
    gql: GraphQLClient, number: str, category: str, valid_to: str, decided_on: str | None = None
) -> dict[str, Any]:
    """endIdentity / endMonitoringFlag by the recognising department (the raw body)."""
    item: dict[str, Any] = {"idNumber": number, "category": category, "validTo": valid_to}
    if decided_on is not None:
        item["decidedOn"] = decided_on
    return await gql.post(
        category_document(category, "end"),
        {"i": item},
        department=recorder(category),
    )


def ok(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body["errors"]
    return dict(body["data"])


def refused(body: dict[str, Any]) -> dict[str, Any]:
    """The single error of a refused request, and no data (a refused mutation field is null)."""
    errors = body.get("errors") or []
    assert len(errors) == 1, body
    assert not any((body.get("data") or {}).values()), body
    return dict(errors[0])


def stay(
    number: str, claim: str, admitted: str, total: str, scope: str, **extra: Any
) -> dict[str, Any]:
    return {
        "claimNumber": claim,
        "idNumber": number,
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


async def claim_of(gql: GraphQLClient, number: str) -> dict[str, Any]:
    return dict((await gql.data(CLAIM, {"n": number}))["claim"])


def amounts(node: dict[str, Any], payers: Sequence[str] = PAYERS) -> dict[str, str]:
    return {p: node[p] for p in payers}


async def recoveries(
    gql: GraphQLClient, status: str | None = None, claim: str | None = None
) -> list[dict[str, Any]]:
    data = await gql.data(RECOVERIES, {"s": status, "n": claim})
    return [e["node"] for e in data["recoveries"]["edges"]]


async def snapshot(db: Database) -> dict[str, Any]:
    """Row counts of every table a §9 request could write, and the state of each recovery,
    category record and closing: equal before and after a refused request."""
    tables = {
        "claims": models.Claim,
        "settlements": models.Settlement,
        "lines": models.SettlementLine,
        "recoveries": models.Recovery,
        "identities": models.Identity,
        "flags": models.MonitoringFlag,
        "enrollments": models.Enrollment,
        "lateNews": models.LateNews,
        "closings": models.SettlementYearClosing,
        "audit": models.AuditRecord,
    }
    out: dict[str, Any] = {}
    async with db.sessions() as session:
        for name, model in tables.items():
            out[name] = int(await session.scalar(select(func.count()).select_from(model)) or 0)
        out["recoveryStates"] = (
            await session.execute(
                select(models.Recovery.id, models.Recovery.status, models.Recovery.amount).order_by(
                    models.Recovery.id
                )
            )
        ).all()
        out["identityStates"] = (
            await session.execute(
                select(
                    models.Identity.id, models.Identity.valid_to, models.Identity.decided_on
                ).order_by(models.Identity.id)
            )
        ).all()
        out["reversed"] = (
            await session.execute(
                select(models.Claim.id, models.Claim.reversed_at).order_by(models.Claim.id)
            )
        ).all()
    return out


async def count(db: Database, model: Any) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def today(settings: Settings) -> date:
    """Today as the app sees it (China time, §3)."""
    return settings.today()


# -- §9.1 insured or not is never guessed -------------------------------------------------------


async def test_a_claim_without_enrollment_or_insured_false_is_precondition_failed(
    gql: GraphQLClient, db: Database
) -> None:
    await register(gql, PAN_ID, PANZHIHUA)
    ok(await record(gql, PAN_ID, "MINIMUM_LIVING", "2021-06-01"))
    await enroll(gql, PAN_ID, 2024)  # another year's enrollment does not count for 2023
    before = await snapshot(db)
    error = refused(
        await gql.post(SETTLE, {"i": stay(PAN_ID, "C1", "2023-03-01", "30000.00", "26000.00")})
    )
    assert error["extensions"]["code"] == "PRECONDITION_FAILED", error
    assert PAN_ID in error["message"]
    assert "no enrollment recorded for 2023" in error["message"]
    assert "insured: false" in error["message"]
    assert (error["extensions"]["field"], error["extensions"]["year"]) == ("idNumber", 2023)
    assert await snapshot(db) == before
    # Saying insured: true does not stand in for the enrollment.
    claim = stay(PAN_ID, "C1", "2023-03-01", "30000.00", "26000.00", insured=True)
    error = refused(await gql.post(SETTLE, {"i": claim}))
    assert error["extensions"]["code"] == "PRECONDITION_FAILED", error
    assert await snapshot(db) == before


async def test_an_uninsured_jiangsu_key_category_gets_seventy_percent_of_the_scope(
    gql: GraphQLClient,
) -> None:
    await register(gql, JS_ID, JIANGSU)
    ok(await record(gql, JS_ID, "MINIMUM_LIVING", "2020-01-01"))
    # 苏政办发 二(三), uninsured section: base ps 10,000, D 0, 70% → 7,000; no insurance.
    got = await settle(gql, stay(JS_ID, "U1", "2023-04-01", "12000.00", "10000.00", insured=False))
    assert (got["policy"], got["category"]) == ("320000-2015", "MINIMUM_LIVING")
    assert amounts(got, (*PAYERS, "outOfPocket")) == {
        "basicInsurance": "0.00",
        "criticalIllness": "0.00",
        "inclusiveCommercial": "0.00",
        "assistance": "7000.00",
        "secondaryAssistance": "0.00",
        "outOfPocket": "5000.00",
    }


async def test_an_uninsured_panzhihua_person_gets_nothing_and_is_told_why(
    gql: GraphQLClient,
) -> None:
    await register(gql, PAN_ID, PANZHIHUA)
    ok(await record(gql, PAN_ID, "MINIMUM_LIVING", "2020-01-01"))
    got = await settle(gql, stay(PAN_ID, "U1", "2023-04-01", "12000.00", "10000.00", insured=False))
    assert got["policy"] == "510400-2023"
    assert {p: got[p] for p in PAYERS} == dict.fromkeys(PAYERS, "0.00")
    assert got["outOfPocket"] == "12000.00"
    assert "defines no assistance for uninsured persons" in got["explanation"]["text"]


async def test_insured_false_while_an_enrollment_exists_is_a_conflict(
    gql: GraphQLClient, db: Database
) -> None:
    await register(gql, PAN_ID, PANZHIHUA)
    await enroll(gql, PAN_ID, 2023)
    before = await snapshot(db)
    claim = stay(PAN_ID, "C1", "2023-03-01", "30000.00", "26000.00", insured=False)
    error = refused(await gql.post(SETTLE, {"i": claim}))
    assert error["extensions"]["code"] == "CONFLICT", error
    assert error["extensions"]["field"] == "insured"
    assert await snapshot(db) == before


async def test_an_enrollment_for_a_year_with_an_uninsured_claim_is_a_conflict(
    gql: GraphQLClient, db: Database
) -> None:
    await register(gql, JS_ID, JIANGSU)
    ok(await record(gql, JS_ID, "MINIMUM_LIVING", "2020-01-01"))
    await settle(gql, stay(JS_ID, "U1", "2023-04-01", "12000.00", "10000.00", insured=False))
    before = await snapshot(db)
    error = refused(await gql.post(ENROLL, enrollment(JS_ID, 2023)))
    assert error["extensions"]["code"] == "CONFLICT", error
    assert error["extensions"]["field"] == "year"
    assert "U1" in error["message"]
    assert await snapshot(db) == before
    # Corrected by reversal and resubmission (under a new claim number, §9.6).
    ok(await gql.post(REVERSE, {"n": "U1", "r": "参保补录"}))
    assert (await enroll(gql, JS_ID, 2023))["year"] == 2023
    insured = await settle(gql, stay(JS_ID, "U1b", "2023-04-01", "12000.00", "10000.00"))
    assert insured["basicInsurance"] != "0.00"


async def test_an_employee_scheme_year_needs_the_reported_basic_payment(
    gql: GraphQLClient, db: Database
) -> None:
    await register(gql, PAN_ID, PANZHIHUA)
    assert (await enroll(gql, PAN_ID, 2023, scheme="EMPLOYEE"))["scheme"] == "EMPLOYEE"
    claim = stay(PAN_ID, "E1", "2023-03-01", "110000.00", "100000.00")
    before = await snapshot(db)
    error = refused(await gql.post(SETTLE, {"i": claim}))
    assert error["extensions"]["code"] == "BAD_INPUT", error
    assert error["extensions"]["field"] == "reported.basicInsurance"
    assert await snapshot(db) == before
    # Basic as reported: 50,000. CI (攀枝花, no tilt) on base ps − basic = 50,000:
    # 60% × (50,000 − 20,000) = 18,000. No category, not in the commercial plan: nothing else.
    # Out of pocket 110,000 − 68,000 = 42,000.
    got = await settle(gql, {**claim, "reported": {"basicInsurance": "50000.00"}})
    assert amounts(got, (*PAYERS, "outOfPocket")) == {
        "basicInsurance": "50000.00",
        "criticalIllness": "18000.00",
        "inclusiveCommercial": "0.00",
        "assistance": "0.00",
        "secondaryAssistance": "0.00",
        "outOfPocket": "42000.00",
    }


# -- §5 reported payments through settleClaim ---------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        # CI without basic: not a prefix of the cascade.
        ({"reported": {"criticalIllness": "100.00"}}, "reported.criticalIllness"),
        # Basic + CI = 27,000 > ps 26,000.
        (
            {"reported": {"basicInsurance": "20000.00", "criticalIllness": "7000.00"}},
            "reported.criticalIllness",
        ),
        ({"reported": {"basicInsurance": "26000.01"}}, "reported.basicInsurance"),
        # The person is not enrolled in 攀枝花's inclusive commercial plan.
        (
            {
                "reported": {
                    "basicInsurance": "1000.00",
                    "criticalIllness": "0.00",
                    "inclusiveCommercial": "0.00",
                }
            },
            "reported.inclusiveCommercial",
        ),
        # CI does not cover general outpatient visits.
        (
            {
                "type": "OUTPATIENT_GENERAL",
                "reported": {"basicInsurance": "100.00", "criticalIllness": "0.00"},
            },
            "reported.criticalIllness",
        ),
    ],
)
async def test_bad_reported_payments_name_the_payer_and_store_nothing(
    gql: GraphQLClient, db: Database, change: dict[str, Any], field: str
) -> None:
    await register(gql, PAN_ID, PANZHIHUA)
    await enroll(gql, PAN_ID, 2023)
    before = await snapshot(db)
    claim = {**stay(PAN_ID, "R1", "2023-03-01", "30000.00", "26000.00"), **change}
    error = refused(await gql.post(SETTLE, {"i": claim}))
    assert error["extensions"]["code"] == "BAD_INPUT", error
    assert error["extensions"]["field"] == field
    assert await snapshot(db) == before


async def test_a_reported_payment_on_an_uninsured_claim_is_bad_input(
    gql: GraphQLClient, db: Database
) -> None:
    await register(gql, JS_ID, JIANGSU)
    before = await snapshot(db)
    claim = stay(
        JS_ID,
        "R1",
        "2023-03-01",
        "30000.00",
        "26000.00",
        insured=False,
        reported={"basicInsurance": "1000.00"},
    )
    error = refused(await gql.post(SETTLE, {"i": claim}))
    assert error["extensions"]["code"] == "BAD_INPUT", error
    assert error["extensions"]["field"] == "reported.basicInsurance"
    assert await snapshot(db) == before


# -- §9.2 nothing is settled or recognised ahead of time ----------------------------------------


async def test_a_discharge_after_today_is_bad_input(
    gql: GraphQLClient, db: Database, today: date
) -> None:
    await register(gql, PAN_ID, PANZHIHUA)
    await enroll(gql, PAN_ID, today.year)
    tomorrow = today + timedelta(days=1)
    claim = stay(PAN_ID, "F1", today.isoformat(), "1000.00", "900.00")
    before = await snapshot(db)
    error = refused(await gql.post(SETTLE, {"i": {**claim, "dischargeDate": tomorrow.isoformat()}}))
    assert error["extensions"]["code"] == "BAD_INPUT", error
    assert (error["extensions"]["field"], error["extensions"]["value"]) == (
        "dischargeDate",
        tomorrow.isoformat(),
    )
    assert await snapshot(db) == before
    # Discharged today: settled.
    assert (await settle(gql, claim))["claimNumber"] == "F1"


async def test_records_start_at_most_today_and_are_never_decided_ahead(
    gql: GraphQLClient, db: Database, today: date
) -> None:
    await register(gql, PAN_ID, PANZHIHUA)
    tomorrow = (today + timedelta(days=1)).isoformat()
    cases: list[tuple[tuple[Any, ...], str]] = [
        (("MINIMUM_LIVING", tomorrow), "validFrom"),
        (("MONITORED", tomorrow), "validFrom"),
        (("MINIMUM_LIVING", "2021-06-01", None, tomorrow), "decidedOn"),
        (("MINIMUM_LIVING", "2021-06-01", "2022-12-31", tomorrow), "decidedOn"),
    ]
    for args, field in cases:
        before = await snapshot(db)
        error = refused(await record(gql, PAN_ID, *args))
        assert error["extensions"]["code"] == "BAD_INPUT", error
        assert (error["extensions"]["field"], error["extensions"]["value"]) == (field, tomorrow)
        assert await snapshot(db) == before
    # A record may start today; decided today by default.
    ok(await record(gql, PAN_ID, "MINIMUM_LIVING", today.isoformat()))
    ok(await record(gql, PAN_ID, "MARGINAL_LOW_INCOME", "2021-06-01"))
    before = await snapshot(db)
    error = refused(
        await end(gql, PAN_ID, "MARGINAL_LOW_INCOME", "2022-12-31", decided_on=tomorrow)
    )
    assert error["extensions"]["code"] == "BAD_INPUT", error
    assert (error["extensions"]["field"], error["extensions"]["value"]) == ("decidedOn", tomorrow)
    assert await snapshot(db) == before
    # Without decidedOn the end is decided today (§9.2).
    ok(await end(gql, PAN_ID, "MARGINAL_LOW_INCOME", "2022-12-31"))
    identities = (await gql.data(PERSON, {"n": PAN_ID}))["beneficiary"]["identities"]
    assert {(i["category"], i["validTo"], i["decidedOn"]) for i in identities} == {
        ("MINIMUM_LIVING", None, today.isoformat()),
        ("MARGINAL_LOW_INCOME", "2022-12-31", today.isoformat()),
    }


async def test_a_jiangsu_end_recorded_late_counts_until_the_month_it_is_decided(
    gql: GraphQLClient, db: Database
) -> None:
    """§4.2 + §9.2: ended today without decidedOn, 低保 still counts for a 2023 stay (its end
    counts until the end of this month); replayed with decidedOn 2023-01-15 it counts until
    2023-01-31 only, and the assistance paid becomes a pending recovery."""
    second = id_number(JIANGSU, BORN, 12)
    for number in (JS_ID, second):
        await register(gql, number, JIANGSU)
        ok(await record(gql, number, "MINIMUM_LIVING", "2020-01-01"))
        claim = stay(number, f"J-{number[-4:]}", "2023-03-01", "12000.00", "10000.00")
        assert (await settle(gql, {**claim, "insured": False}))["assistance"] == "7000.00"
    settlements = await count(db, models.Settlement)
    ok(await end(gql, JS_ID, "MINIMUM_LIVING", "2022-12-31"))
    assert await recoveries(gql) == []
    ok(await end(gql, second, "MINIMUM_LIVING", "2022-12-31", decided_on="2023-01-15"))
    [pending] = await recoveries(gql, "PENDING")
    assert (pending["claimNumber"], pending["amount"]) == (f"J-{second[-4:]}", "7000.00")
    assert await count(db, models.Settlement) == settlements


# -- §9.3 insurance payments are final -----------------------------------------------------------


async def test_late_recognition_adjusts_assistance_only_and_never_reopens_insurance(
    gql: GraphQLClient, db: Database
) -> None:
    await register(gql, PAN_ID, PANZHIHUA)
    await enroll(gql, PAN_ID, 2023)
    # No category at settlement: basic 80% × (60,000 − 400) = 47,680; CI base 12,320 is below
    # the 20,000 deductible → 0; nothing else.
    claim = stay(PAN_ID, "C1", "2023-03-01", "65000.00", "60000.00", dischargeDate="2023-03-10")
    got = await settle(gql, claim)
    assert amounts(got) == {
        "basicInsurance": "47680.00",
        "criticalIllness": "0.00",
        "inclusiveCommercial": "0.00",
        "assistance": "0.00",
        "secondaryAssistance": "0.00",
    }
    # 低保 recognised from 2023-03-05, during the stay. Knowing it at settlement, the CI tilt
    # (D × 0.5 = 10,000, 65%) would have paid 1,508 — but insurance payments are final (§9.3).
    # Assistance (retroactive, 第十九条) is re-run on ps − basic − CI as paid: 70% × 12,320 =
    # 8,624; secondary base 12,320 − 8,624 = 3,696 is below the 2023 threshold 7,500 → 0.
    ok(await record(gql, PAN_ID, "MINIMUM_LIVING", "2023-03-05", decided_on="2023-03-05"))
    found = await claim_of(gql, "C1")
    assert [e["kind"] for e in found["settlements"]] == ["ORIGINAL", "ADJUSTMENT"]
    adjustment = found["settlements"][1]
    assert amounts(adjustment, (*PAYERS, "outOfPocket")) == {
        "basicInsurance": "0.00",
        "criticalIllness": "0.00",
        "inclusiveCommercial": "0.00",
        "assistance": "8624.00",
        "secondaryAssistance": "0.00",
        "outOfPocket": "-8624.00",
    }
    assert adjustment["category"] == "MINIMUM_LIVING"
    assert amounts(found["settlement"], (*PAYERS, "outOfPocket")) == {
        "basicInsurance": "47680.00",
        "criticalIllness": "0.00",
        "inclusiveCommercial": "0.00",
        "assistance": "8624.00",
        "secondaryAssistance": "0.00",
        "outOfPocket": "8696.00",
    }
    assert await recoveries(gql) == []


async def test_a_reported_basic_payment_survives_late_news(gql: GraphQLClient) -> None:
    await register(gql, PAN_ID, PANZHIHUA)
    await enroll(gql, PAN_ID, 2023, scheme="EMPLOYEE")
    claim = stay(
        PAN_ID,
        "E1",
        "2023-03-01",
        "110000.00",
        "100000.00",
        reported={"basicInsurance": "50000.00"},
    )
    await settle(gql, claim)
    # 低保 from July (retroactive for assistance): 70% × (100,000 − 50,000 − 18,000) = 22,400;
    # secondary: 32,000 − 22,400 = 9,600 above the 7,500 threshold × 50% = 1,050.
    ok(await record(gql, PAN_ID, "MINIMUM_LIVING", "2023-07-01", decided_on="2023-07-01"))
    found = await claim_of(gql, "E1")
    assert amounts(found["settlement"]) == {
        "basicInsurance": "50000.00",
        "criticalIllness": "18000.00",
        "inclusiveCommercial": "0.00",
        "assistance": "22400.00",
        "secondaryAssistance": "1050.00",
    }


# -- §9.4 decreases become pending recoveries ----------------------------------------------------

# 低保 since 2021 (tilts apply), a tertiary stay of ps 150,000:
#   basic 65% × (150,000 − 800) = 96,980;
#   CI on 53,020, tilted D 10,000 at 65% → 27,963;
#   assistance 70% × (150,000 − 96,980 − 27,963 = 25,057) = 17,539.90;
#   secondary (25,057 − 17,539.90 = 7,517.10) − 7,500 = 17.10 × 50% = 8.55.
BIG = ("150000.00", "160000.00")
BIG_PAID = {
    "basicInsurance": "96980.00",
    "criticalIllness": "27963.00",
    "inclusiveCommercial": "0.00",
    "assistance": "17539.90",
    "secondaryAssistance": "8.55",
}


async def _big_claim_then_backdated_end(gql: GraphQLClient, number: str = PAN_ID) -> str:
    """The stay above, then 低保 ended back-dated before it: a pending recovery of 17,548.45."""
    await register(gql, number, PANZHIHUA)
    await enroll(gql, number, 2023)
    ok(await record(gql, number, "MINIMUM_LIVING", "2021-06-01"))
    claim = f"B-{number[-4:]}"
    scope, total = BIG
    got = await settle(
        gql, stay(number, claim, "2023-03-01", total, scope, hospitalLevel="TERTIARY")
    )
    assert amounts(got) == BIG_PAID
    ok(await end(gql, number, "MINIMUM_LIVING", "2022-12-31", decided_on="2023-06-01"))
    return claim


async def test_a_backdated_end_moves_no_money_and_medical_insurance_recovers_it(
    gql: GraphQLClient, db: Database
) -> None:
    claim = await _big_claim_then_backdated_end(gql)
    found = await claim_of(gql, claim)
    assert amounts(found["settlement"]) == BIG_PAID
    assert [e["kind"] for e in found["settlements"]] == ["ORIGINAL"]
    [pending] = await recoveries(gql, "PENDING")
    assert {k: pending[k] for k in ("claimNumber", "year", "policy", "status", "cause")} == {
        "claimNumber": claim,
        "year": 2023,
        "policy": "510400-2023",
        "status": "PENDING",
        "cause": "re-run after endIdentity",
    }
    assert (pending["amount"], pending["assistance"], pending["secondaryAssistance"]) == (
        "17548.45",
        "17539.90",
        "8.55",
    )
    decided = (await gql.data(DECIDE, {"id": pending["id"], "d": "RECOVER"}))["decideRecovery"]
    assert (decided["status"], decided["decidedBy"]) == ("RECOVERED", "medical_insurance/mi-5104")
    found = await claim_of(gql, claim)
    assert [e["kind"] for e in found["settlements"]] == ["ORIGINAL", "RECOVERY"]
    assert amounts(found["settlements"][1], (*PAYERS, "outOfPocket")) == {
        "basicInsurance": "0.00",
        "criticalIllness": "0.00",
        "inclusiveCommercial": "0.00",
        "assistance": "-17539.90",
        "secondaryAssistance": "-8.55",
        "outOfPocket": "17548.45",
    }
    assert amounts(found["settlement"]) == {
        **BIG_PAID,
        "assistance": "0.00",
        "secondaryAssistance": "0.00",
    }
    assert await recoveries(gql, "PENDING") == []
    summary = await gql.data(
        "query($n: String) { beneficiary(idNumber: $n) { yearlySummary(year: 2023) { "
        "assistance secondaryAssistance } } }",
        {"n": PAN_ID},
    )
    assert summary["beneficiary"]["yearlySummary"] == {
        "assistance": "0.00",
        "secondaryAssistance": "0.00",
    }
    before = await snapshot(db)
    error = refused(await gql.post(DECIDE, {"id": pending["id"], "d": "RECOVER"}))
    assert error["extensions"]["code"] == "CONFLICT", error
    assert await snapshot(db) == before


async def test_a_waived_recovery_lets_the_payment_stand_and_is_never_asked_back(
    gql: GraphQLClient, db: Database
) -> None:
    claim = await _big_claim_then_backdated_end(gql)
    [pending] = await recoveries(gql, "PENDING")
    # Civil affairs may not decide; WAIVE needs a reason. Neither stores anything.
    before = await snapshot(db)
    error = refused(
        await gql.post(
            DECIDE, {"id": pending["id"], "d": "WAIVE", "r": "困难"}, department="civil_affairs"
        )
    )
    assert error["extensions"]["code"] == "FORBIDDEN", error
    assert await snapshot(db) == before
    error = refused(
        await gql.post(DECIDE, {"id": pending["id"], "d": "RECOVER"}, department="civil_affairs")
    )
    assert error["extensions"]["code"] == "FORBIDDEN", error
    assert await snapshot(db) == before
    for blank in (None, "   "):
        error = refused(await gql.post(DECIDE, {"id": pending["id"], "d": "WAIVE", "r": blank}))
        assert error["extensions"]["code"] == "BAD_INPUT", error
        assert error["extensions"]["field"] == "reason"
        assert await snapshot(db) == before

    waived = await gql.data(DECIDE, {"id": pending["id"], "d": "WAIVE", "r": "家庭困难,免于追回"})
    assert waived["decideRecovery"]["status"] == "WAIVED"
    assert waived["decideRecovery"]["decisionReason"] == "家庭困难,免于追回"
    found = await claim_of(gql, claim)
    assert amounts(found["settlement"]) == BIG_PAID
    assert [e["kind"] for e in found["settlements"]] == ["ORIGINAL"]
    before = await snapshot(db)
    for decision, reason in (("RECOVER", None), ("WAIVE", "again")):
        error = refused(await gql.post(DECIDE, {"id": pending["id"], "d": decision, "r": reason}))
        assert error["extensions"]["code"] == "CONFLICT", error
    assert await snapshot(db) == before

    # Re-recognised for 2023 (E = P again: nothing to pay, nothing pending), then ended again
    # back-dated: E = 0, P = 17,548.45, W = 17,548.45 → pending max(0, P − E − W) = 0.
    settlements = await count(db, models.Settlement)
    ok(await record(gql, PAN_ID, "MINIMUM_LIVING", "2023-01-01", decided_on="2023-01-01"))
    assert await recoveries(gql, "PENDING") == []
    ok(await end(gql, PAN_ID, "MINIMUM_LIVING", "2023-01-31", decided_on="2023-06-01"))
    assert await recoveries(gql, "PENDING") == []
    assert await count(db, models.Settlement) == settlements
    found = await claim_of(gql, claim)
    assert amounts(found["settlement"]) == BIG_PAID
    # §9.4: P − pending = max(E, min(P, E + W)) = max(0, min(17,548.45, 17,548.45)).
    paid = Decimal(BIG_PAID["assistance"]) + Decimal(BIG_PAID["secondaryAssistance"])
    assert paid - 0 == max(ZERO, min(paid, ZERO + paid))


async def test_news_that_raises_assistance_again_withdraws_the_pending_recovery(
    gql: GraphQLClient, db: Database
) -> None:
    claim = await _big_claim_then_backdated_end(gql)
    [pending] = await recoveries(gql, "PENDING")
    # 低保 recognised again for 2023: E = P, nothing to pay, nothing to recover.
    ok(await record(gql, PAN_ID, "MINIMUM_LIVING", "2023-01-01", decided_on="2023-01-01"))
    [withdrawn] = await recoveries(gql, claim=claim)
    assert (withdrawn["id"], withdrawn["status"]) == (pending["id"], "WITHDRAWN")
    assert withdrawn["cause"] == "re-run after recordIdentity"
    found = await claim_of(gql, claim)
    assert [e["kind"] for e in found["settlements"]] == ["ORIGINAL"]
    assert amounts(found["settlement"]) == BIG_PAID
    error = refused(await gql.post(DECIDE, {"id": pending["id"], "d": "RECOVER"}))
    assert error["extensions"]["code"] == "CONFLICT", error


async def test_late_news_for_a_commercial_enrollment_in_a_region_without_a_plan(
    gql: GraphQLClient,
) -> None:
    await register(gql, JS_ID, JIANGSU)
    body = await gql.post(ENROLL, enrollment(JS_ID, 2023, inclusiveCommercial=True))
    if body.get("errors"):
        # Refusing such an enrollment would be a fix too.
        assert refused(body)["extensions"]["code"] == "BAD_INPUT", body
        return
    # Jiangsu, insured, no category: basic 75% × (26,000 − 600) = 19,050; CI base 6,950 < 15,000.
    got = await settle(gql, stay(JS_ID, "P1", "2023-03-01", "30000.00", "26000.00"))
    assert (got["basicInsurance"], got["criticalIllness"]) == ("19050.00", "0.00")
    # 低保 recognised for the stay: 70% × (26,000 − 19,050) = 4,865.
    ok(await record(gql, JS_ID, "MINIMUM_LIVING", "2023-01-01", decided_on="2023-01-01"))
    found = await claim_of(gql, "P1")
    assert found["settlement"]["assistance"] == "4865.00"


async def test_a_partly_waived_claim_is_asked_back_only_the_rest(
    gql: GraphQLClient, db: Database
) -> None:
    await register(gql, PAN_ID, PANZHIHUA)
    await enroll(gql, PAN_ID, 2023)
    ok(await record(gql, PAN_ID, "MINIMUM_LIVING", "2021-06-01"))
    scope, total = BIG
    await settle(gql, stay(PAN_ID, "W1", "2023-03-01", total, scope, hospitalLevel="TERTIARY"))
    # 边缘 from 2023-02-01 pays less than 低保 (待遇就高): nothing changes.
    ok(await record(gql, PAN_ID, "MARGINAL_LOW_INCOME", "2023-02-01", decided_on="2023-02-01"))
    assert [e["kind"] for e in (await claim_of(gql, "W1"))["settlements"]] == ["ORIGINAL"]
    # 低保 ended before the stay: 边缘 remains, D 10% × PCDI 2022 42,000 = 4,200, 50%:
    # assistance 50% × (25,057 − 4,200) = 10,428.50; secondary (25,057 − 10,428.50 =
    # 14,628.50) − 7,500 = 7,128.50 × 50% = 3,564.25. E = 13,992.75, P = 17,548.45:
    # pending 3,555.70 = 7,111.40 of assistance − 3,555.70 of secondary.
    ok(await end(gql, PAN_ID, "MINIMUM_LIVING", "2022-12-31", decided_on="2023-06-01"))
    [pending] = await recoveries(gql, "PENDING")
    assert (pending["amount"], pending["assistance"], pending["secondaryAssistance"]) == (
        "3555.70",
        "7111.40",
        "-3555.70",
    )
    await gql.data(DECIDE, {"id": pending["id"], "d": "WAIVE", "r": "免于追回"})
    # 边缘 ended before the stay too: E = 0, W = 3,555.70 → pending P − E − W = 13,992.75,
    # taken off the payers in payment order: assistance 17,539.90 − 3,555.70 = 13,984.20,
    # secondary 8.55.
    ok(await end(gql, PAN_ID, "MARGINAL_LOW_INCOME", "2023-02-15", decided_on="2023-06-01"))
    [pending] = await recoveries(gql, "PENDING")
    assert (pending["amount"], pending["assistance"], pending["secondaryAssistance"]) == (
        "13992.75",
        "13984.20",
        "8.55",
    )
    found = await claim_of(gql, "W1")
    assert amounts(found["settlement"]) == BIG_PAID
    # §9.4: P − pending = 3,555.70 = max(E, min(P, E + W)) = max(0, min(17,548.45, 3,555.70)).
    await gql.data(DECIDE, {"id": pending["id"], "d": "RECOVER"})
    found = await claim_of(gql, "W1")
    assert [e["kind"] for e in found["settlements"]] == ["ORIGINAL", "RECOVERY"]
    assert (found["settlement"]["assistance"], found["settlement"]["secondaryAssistance"]) == (
        "3555.70",
        "0.00",
    )


# -- §9.5 closed years stay closed ---------------------------------------------------------------


async def test_a_closed_year_is_never_settled_reversed_or_rerun(
    gql: GraphQLClient, db: Database, today: date
) -> None:
    await register(gql, PAN_ID, PANZHIHUA)
    ok(await record(gql, PAN_ID, "MINIMUM_LIVING", "2021-06-01"))
    await enroll(gql, PAN_ID, 2024)
    await enroll(gql, PAN_ID, 2025)
    # 2024: basic 80% × (26,000 − 400) = 20,480; assistance 70% × 5,520 = 3,864.
    got = await settle(gql, stay(PAN_ID, "Y24", "2024-03-01", "30000.00", "26000.00"))
    assert got["assistance"] == "3864.00"
    ok(await end(gql, PAN_ID, "MINIMUM_LIVING", "2023-12-31", decided_on="2024-06-01"))
    [pending] = await recoveries(gql, "PENDING")
    assert (pending["claimNumber"], pending["year"], pending["amount"]) == ("Y24", 2024, "3864.00")
    # A 2025 stay settled while no category is held: no assistance.
    got = await settle(gql, stay(PAN_ID, "Y25", "2025-03-01", "30000.00", "26000.00"))
    assert got["assistance"] == "0.00"

    # Refused while a recovery of 2024 is pending.
    before = await snapshot(db)
    error = refused(await gql.post(CLOSE, {"r": "510400", "y": 2024}))
    assert error["extensions"]["code"] == "CONFLICT", error
    assert await snapshot(db) == before
    # Only medical insurance closes; a year not yet over cannot be closed.
    error = refused(await gql.post(CLOSE, {"r": "510400", "y": 2024}, department="civil_affairs"))
    assert error["extensions"]["code"] == "FORBIDDEN", error
    error = refused(await gql.post(CLOSE, {"r": "510400", "y": today.year}))
    assert error["extensions"]["code"] == "BAD_INPUT", error
    assert error["extensions"]["field"] == "year"
    assert await snapshot(db) == before

    await gql.data(DECIDE, {"id": pending["id"], "d": "RECOVER"})
    closed = (await gql.data(CLOSE, {"r": "510400", "y": 2024}))["closeSettlementYear"]
    assert closed == {
        "regionCode": "510400",
        "year": 2024,
        "policy": "510400-2023",
        "department": "medical_insurance",
    }

    before = await snapshot(db)
    error = refused(
        await gql.post(SETTLE, {"i": stay(PAN_ID, "Y24b", "2024-05-01", "3000.00", "2600.00")})
    )
    assert error["extensions"]["code"] == "CONFLICT", error
    assert "settlement year 2024 is closed" in error["message"]
    error = refused(await gql.post(REVERSE, {"n": "Y24", "r": "退费"}))
    assert error["extensions"]["code"] == "CONFLICT", error
    assert "settlement year 2024 is closed" in error["message"]
    assert await snapshot(db) == before

    # 低保 recognised again from 2024-01-01: 2024 is closed (listed, no money), 2025 is open
    # (adjusted: 3,864).
    y24_before = await claim_of(gql, "Y24")
    ok(await record(gql, PAN_ID, "MINIMUM_LIVING", "2024-01-01", decided_on="2024-01-01"))
    assert await claim_of(gql, "Y24") == y24_before
    y25 = await claim_of(gql, "Y25")
    assert [e["kind"] for e in y25["settlements"]] == ["ORIGINAL", "ADJUSTMENT"]
    assert y25["settlement"]["assistance"] == "3864.00"
    news = (await gql.data(LATE_NEWS, {"r": "510400", "y": 2024}))["lateNews"]["edges"]
    assert [n["node"] for n in news] == [
        {
            "year": 2024,
            "regionCode": "510400",
            "operation": "recordIdentity",
            "department": "civil_affairs",
            "changes": [{"claimNumber": "Y24", "payer": "assistance", "amount": "3864.00"}],
        }
    ]
    assert (await gql.data(LATE_NEWS, {"r": "510400", "y": 2025}))["lateNews"]["edges"] == []
    assert await recoveries(gql, "PENDING") == []


# -- §9.6 reversal -------------------------------------------------------------------------------


async def test_a_reversed_claim_is_reversed_once_and_never_resubmitted(
    gql: GraphQLClient, db: Database
) -> None:
    await register(gql, PAN_ID, PANZHIHUA)
    await enroll(gql, PAN_ID, 2023)
    claim = stay(PAN_ID, "C1", "2023-03-01", "30000.00", "26000.00")
    await settle(gql, claim)
    reversed_ = await gql.data(REVERSE, {"n": "C1", "r": "退费重结"})
    assert reversed_["reverseSettlement"]["settlement"] == {
        "claimNumber": "C1",
        "basicInsurance": "0.00",
        "assistance": "0.00",
        "outOfPocket": "0.00",
    }
    found = await claim_of(gql, "C1")
    assert found["reversed"] is True
    reversal = found["settlements"][-1]
    assert reversal["kind"] == "REVERSAL"
    before = await snapshot(db)
    error = refused(await gql.post(REVERSE, {"n": "C1", "r": "again"}))
    assert error["extensions"]["code"] == "CONFLICT", error
    match = re.search(r"reversed at (\S+) \((.*)\)", error["message"])
    assert match is not None, error["message"]
    when = datetime.fromisoformat(match.group(1))
    assert abs(when - datetime.fromisoformat(reversal["createdAt"])) < timedelta(minutes=5)
    assert match.group(2) == "退费重结"
    error = refused(await gql.post(SETTLE, {"i": claim}))
    assert error["extensions"]["code"] == "CONFLICT", error
    assert error["extensions"]["field"] == "claimNumber"
    assert "reversed" in error["message"]
    assert await snapshot(db) == before


async def test_a_reversal_pays_a_later_capped_claim_what_it_lost_to_the_cap(
    gql: GraphQLClient,
) -> None:
    await register(gql, JS_ID, JIANGSU)
    ok(await record(gql, JS_ID, "MINIMUM_LIVING", "2020-01-01"))
    # Uninsured 低保 in Jiangsu: 70% of ps, cap 100,000 on the main ledger.
    first = await settle(
        gql, stay(JS_ID, "K1", "2023-03-01", "100000.00", "100000.00", insured=False)
    )
    assert first["assistance"] == "70000.00"
    # 70% × 50,000 = 35,000, capped at the 30,000 left.
    second = await settle(
        gql, stay(JS_ID, "K2", "2023-04-01", "50000.00", "50000.00", insured=False)
    )
    assert second["assistance"] == "30000.00"
    await gql.data(REVERSE, {"n": "K1", "r": "退费"})
    k2 = await claim_of(gql, "K2")
    assert [e["kind"] for e in k2["settlements"]] == ["ORIGINAL", "ADJUSTMENT"]
    assert k2["settlements"][1]["assistance"] == "5000.00"
    assert "K1" in (k2["settlements"][1]["reason"] or "")
    assert (k2["settlement"]["assistance"], k2["settlement"]["outOfPocket"]) == (
        "35000.00",
        "15000.00",
    )
    k1 = await claim_of(gql, "K1")
    assert amounts(k1["settlement"]) == dict.fromkeys(PAYERS, "0.00")


async def test_a_reversal_withdraws_the_claims_pending_recovery(gql: GraphQLClient) -> None:
    claim = await _big_claim_then_backdated_end(gql)
    [pending] = await recoveries(gql, "PENDING")
    await gql.data(REVERSE, {"n": claim, "r": "退费"})
    [withdrawn] = await recoveries(gql, claim=claim)
    assert (withdrawn["id"], withdrawn["status"]) == (pending["id"], "WITHDRAWN")
    found = await claim_of(gql, claim)
    assert amounts(found["settlement"]) == dict.fromkeys(PAYERS, "0.00")
    assert [e["kind"] for e in found["settlements"]] == ["ORIGINAL", "REVERSAL"]


# -- property: §9.3 and §9.4 after every step ----------------------------------------------------

YEAR = 2023
PROPERTY_CATEGORIES = {
    PANZHIHUA: ["MINIMUM_LIVING", "EXTREME_POVERTY", "MONITORED", "MARGINAL_LOW_INCOME"],
    JIANGSU: ["MINIMUM_LIVING", "LOW_INCOME", "ORPHAN", "PRIORITY_ENTITLED"],
}
SEQUENCE = itertools.count(100)
PROPERTY_CLAIMS = f"""query($n: String!) {{ beneficiary(idNumber: $n) {{
  identities {{ category validFrom validTo decidedOn }}
  monitoringFlags {{ category validFrom validTo decidedOn }}
  claims(first: 50) {{ edges {{ node {{ claimNumber reversed
    settlement {{ {AMOUNTS} }} settlements {{ kind {AMOUNTS} }} }} }} }} }} }}"""


def _dates(low: date, high: date) -> st.SearchStrategy[date]:
    return st.dates(min_value=low, max_value=high)


@st.composite
def _visit(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    admitted = draw(_dates(date(YEAR, 2, 1), date(YEAR, 12, 15)))
    cents = st.integers(0, 2_000_000) | st.integers(2_000_000, 20_000_000)
    scope = Decimal(draw(cents)) / 100
    total = scope + Decimal(draw(st.integers(0, 500_000))) / 100
    return "settle", {
        "type": draw(st.sampled_from([t.value for t in VisitType])),
        "hospitalLevel": draw(st.sampled_from([h.value for h in HospitalLevel])),
        "admissionDate": admitted.isoformat(),
        "dischargeDate": (admitted + timedelta(days=draw(st.integers(0, 15)))).isoformat(),
        "totalCost": str(total),
        "policyScopeCost": str(scope),
        "referralCompliant": draw(st.sampled_from([True, True, True, False])),
    }


@st.composite
def _recognition(draw: st.DrawFn, categories: list[str]) -> tuple[str, dict[str, Any]]:
    start = draw(_dates(date(YEAR - 1, 6, 1), date(YEAR, 12, 31)))
    length = draw(st.none() | st.integers(0, 300))
    until = None if length is None else start + timedelta(days=length)
    decided = draw(st.none() | st.integers(0, 120))
    decided_on = None if decided is None else (until or start) + timedelta(days=decided)
    return "record", {
        "category": draw(st.sampled_from(categories)),
        "validFrom": start.isoformat(),
        "validTo": None if until is None else until.isoformat(),
        "decidedOn": None if decided_on is None else decided_on.isoformat(),
    }


@st.composite
def _held(draw: st.DrawFn, category: str) -> tuple[str, dict[str, Any]]:
    """An open record from before the year, so that stays settle with it."""
    return "record", {
        "category": category,
        "validFrom": draw(_dates(date(YEAR - 2, 1, 1), date(YEAR, 3, 31))).isoformat(),
        "validTo": None,
        "decidedOn": None,
    }


@st.composite
def _ending(draw: st.DrawFn, categories: list[str]) -> tuple[str, dict[str, Any]]:
    until = draw(_dates(date(YEAR - 1, 6, 1), date(YEAR, 12, 31)))
    decided = draw(st.none() | st.integers(0, 120))
    return "end", {
        "category": draw(st.sampled_from(categories)),
        "validTo": until.isoformat(),
        "decidedOn": None if decided is None else (until + timedelta(days=decided)).isoformat(),
    }


@st.composite
def _scenario(draw: st.DrawFn) -> dict[str, Any]:
    region = draw(st.sampled_from([PANZHIHUA, JIANGSU]))
    categories = PROPERTY_CATEGORIES[region]
    insured = draw(st.sampled_from([True, True, True, False]))
    held = draw(st.lists(st.sampled_from(categories), min_size=1, max_size=2, unique=True))
    decide = st.tuples(
        st.just("decide"),
        st.tuples(st.integers(0, 9), st.sampled_from(["RECOVER", "WAIVE", "WAIVE"])),
    )
    news = st.one_of(
        _recognition(categories),
        _recognition(held),
        *[_ending(held)] * 3,
        _ending(categories),
        st.tuples(st.just("reverse"), st.integers(0, 9)),
    )
    # Rounds of settlements, then late news, then decisions on what became pending.
    rounds = draw(
        st.lists(
            st.tuples(
                st.lists(_visit(), min_size=1, max_size=3),
                st.lists(news, min_size=1, max_size=2),
                st.lists(decide, max_size=2),
            ),
            min_size=2,
            max_size=4,
        )
    )
    return {
        "region": region,
        "insured": insured,
        "commercial": insured and region == PANZHIHUA and draw(st.booleans()),
        "initial": [draw(_held(c)) for c in held],
        "steps": [step for parts in rounds for part in parts for step in part],
    }


def _expected(
    policies: PolicySet,
    region: str,
    born: date,
    insured: bool,
    commercial: bool,
    records: Sequence[CategoryRecord],
    order: Sequence[tuple[str, dict[str, Any]]],
    paid: dict[str, dict[str, str]],
) -> dict[str, Decimal]:
    """E of §9.4 for every non-reversed claim: the engine over the year's claims in settlement
    order, each one's insurance payments reported as paid, full knowledge of the records."""
    person = Person(region, born, insured, commercial, tuple(records))
    ledger = Ledger.empty(YEAR)
    out: dict[str, Decimal] = {}
    for number, claim in order:
        if number not in paid:
            continue  # reversed
        kind = VisitType(claim["type"])
        covered = kind in INSURANCE_VISIT_TYPES
        amount = {p: Decimal(paid[number][p]) for p in INSURANCE}
        reported = (
            Reported(
                basic_insurance=amount["basicInsurance"],
                critical_illness=amount["criticalIllness"] if covered else None,
                inclusive_commercial=amount["inclusiveCommercial"]
                if covered and commercial
                else None,
            )
            if insured
            else None
        )
        visit = Visit(
            number,
            kind,
            HospitalLevel(claim["hospitalLevel"]),
            date.fromisoformat(claim["admissionDate"]),
            date.fromisoformat(claim["dischargeDate"]),
            Decimal(claim["totalCost"]),
            Decimal(claim["policyScopeCost"]),
            claim["referralCompliant"],
            reported=reported,
        )
        result, ledger = settle_visit(policies, person, visit, ledger)
        out[number] = (
            result.payments[Payer.ASSISTANCE] + result.payments[Payer.SECONDARY_ASSISTANCE]
        )
    return out


async def _recovery_rows(db: Database, number: str) -> list[tuple[int, str, str, Decimal]]:
    async with db.sessions() as session:
        rows = await session.execute(
            select(
                models.Recovery.id,
                models.Claim.claim_number,
                models.Recovery.status,
                models.Recovery.amount,
            )
            .join(models.Claim, models.Claim.id == models.Recovery.claim_id)
            .join(models.Beneficiary, models.Beneficiary.id == models.Claim.beneficiary_id)
            .where(models.Beneficiary.id_number == number)
            .order_by(models.Recovery.id)
        )
        return [(int(r[0]), str(r[1]), str(r[2]), Decimal(r[3])) for r in rows.all()]


def _assistance(node: dict[str, Any]) -> Decimal:
    return Decimal(node["assistance"]) + Decimal(node["secondaryAssistance"])


async def _check(
    gql: GraphQLClient,
    db: Database,
    policies: PolicySet,
    scenario: dict[str, Any],
    number: str,
    order: list[tuple[str, dict[str, Any]]],
    history: dict[str, Decimal],
    recovered_now: dict[str, Decimal],
) -> None:
    """(a) insurance as paid at the original settlement; (b) the §9.4 invariant; (c) assistance
    only ever goes down by a RECOVERY event of a recovery medical insurance decided."""
    data = (await gql.data(PROPERTY_CLAIMS, {"n": number}))["beneficiary"]
    records = [
        CategoryRecord(
            Category(r["category"]),
            date.fromisoformat(r["validFrom"]),
            date.fromisoformat(r["validTo"]) if r["validTo"] else None,
            date.fromisoformat(r["decidedOn"]) if r["decidedOn"] else None,
        )
        for r in (*data["identities"], *data["monitoringFlags"])
    ]
    nodes = {e["node"]["claimNumber"]: e["node"] for e in data["claims"]["edges"]}
    assert sorted(nodes) == sorted(n for n, _ in order)
    rows = await _recovery_rows(db, number)
    paid = {n: node["settlement"] for n, node in nodes.items() if not node["reversed"]}
    expected = _expected(
        policies,
        scenario["region"],
        scenario["born"],
        scenario["insured"],
        scenario["commercial"],
        records,
        order,
        paid,
    )
    for claim, node in nodes.items():
        events = node["settlements"]
        assert events[0]["kind"] == "ORIGINAL"
        pending = [a for _, n, s, a in rows if n == claim and s == "PENDING"]
        waived = sum((a for _, n, s, a in rows if n == claim and s == "WAIVED"), ZERO)
        recovered = sum((a for _, n, s, a in rows if n == claim and s == "RECOVERED"), ZERO)
        assert len(pending) <= 1, (claim, rows)
        for label, seen in (
            ("a recovery pending", pending),
            ("a waived recovery", waived),
            ("a recovered recovery", recovered),
            ("an adjustment", any(e["kind"] == "ADJUSTMENT" for e in events)),
            ("a reversal", node["reversed"]),
        ):
            if seen:
                event(f"a claim with {label}")
        # (c) adjustments never take money back; recoveries only as decided.
        for one in events:
            if one["kind"] == "ADJUSTMENT":
                assert _assistance(one) >= 0, (claim, events)
        taken = -sum((_assistance(e) for e in events if e["kind"] == "RECOVERY"), ZERO)
        assert taken == recovered, (claim, events, rows)
        if node["reversed"]:
            assert amounts(node["settlement"]) == dict.fromkeys(PAYERS, "0.00")
            assert pending == []
            continue
        # (a) §9.3: insurance payments are final.
        assert amounts(node["settlement"], INSURANCE) == amounts(events[0], INSURANCE)
        # (b) §9.4: P − pending = max(E, min(P, E + W)).
        p = _assistance(node["settlement"])
        e = expected[claim]
        owed = pending[0] if pending else ZERO
        assert p - owed == max(e, min(p, e + waived)), (claim, p, owed, e, waived, records)
        # (c) P never falls except by a recovery decided in this step.
        if claim in history:
            assert p >= history[claim] - recovered_now.get(claim, ZERO), (claim, p, history)
        history[claim] = p


async def _step(
    gql: GraphQLClient,
    db: Database,
    number: str,
    n: int,
    op: str,
    arg: Any,
    order: list[tuple[str, dict[str, Any]]],
    insured: bool,
) -> dict[str, Decimal]:
    """Run one operation; returns what a RECOVER decision took back, by claim."""
    if op == "settle":
        claim_number = f"G{n}-{len(order)}"
        claim = {"claimNumber": claim_number, "idNumber": number, **arg}
        if not insured:
            claim["insured"] = False
        await gql.data(SETTLE, {"i": claim})
        order.append((claim_number, arg))
    elif op == "record":
        body = await record(
            gql,
            number,
            arg["category"],
            arg["validFrom"],
            arg["validTo"],
            arg["decidedOn"],
            reference=f"N{n}-{arg['validFrom']}",
        )
        if body.get("errors"):
            # Overlapping an existing record of the category.
            assert refused(body)["extensions"]["code"] == "CONFLICT", body
    elif op == "end":
        body = await end(gql, number, arg["category"], arg["validTo"], arg["decidedOn"])
        if body.get("errors"):
            # No open record, or an end before its start.
            code = refused(body)["extensions"]["code"]
            assert code in ("NOT_FOUND", "BAD_INPUT"), body
    elif op == "reverse" and order:
        claim_number = order[arg % len(order)][0]
        body = await gql.post(REVERSE, {"n": claim_number, "r": "退费"})
        if body.get("errors"):
            assert refused(body)["extensions"]["code"] == "CONFLICT", body
            assert "reversed at" in body["errors"][0]["message"]
    elif op == "decide":
        index, decision = arg
        pending = [r for r in await _recovery_rows(db, number) if r[2] == "PENDING"]
        if pending:
            recovery_id, claim_number, _, amount = pending[index % len(pending)]
            reason = "免于追回" if decision == "WAIVE" else None
            await gql.data(DECIDE, {"id": str(recovery_id), "d": decision, "r": reason})
            event(f"a {decision} decision")
            if decision == "RECOVER":
                return {claim_number: amount}
    return {}


# Mutation-checked on a scratch copy of the product (never in this repository):
# - recoveries as automatic clawbacks (rerun_year storing an ADJUSTMENT, negative, whenever E < P):
#   this property FAILS, at check (c). Check (b) alone cannot see it: P = E with nothing pending
#   satisfies P − pending = max(E, min(P, E + W)) trivially (verified: (b) alone passed 150
#   examples against that mutant), hence (c).
# - a waived amount asked back (pending = P − E instead of P − E − W): FAILS at check (b).
@settings(
    # Bounded for the suite; GOVERNANCE_EXAMPLES=300 for a deeper search.
    max_examples=int(os.environ.get("GOVERNANCE_EXAMPLES", "20")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=_scenario())
async def test_insurance_stays_final_and_assistance_obeys_the_recovery_invariant(
    gql: GraphQLClient, db: Database, policies: PolicySet, scenario: dict[str, Any]
) -> None:
    n = next(SEQUENCE)
    # A new person for every example (the database is emptied once per test, not per example).
    scenario = {**scenario, "born": BORN + timedelta(days=n // 1000)}
    number = id_number(scenario["region"], scenario["born"], n % 1000)
    await register(gql, number, scenario["region"])
    if scenario["insured"]:
        await enroll(gql, number, YEAR, inclusiveCommercial=scenario["commercial"])
    order: list[tuple[str, dict[str, Any]]] = []
    history: dict[str, Decimal] = {}
    for op, arg in scenario["initial"]:
        await _step(gql, db, number, n, op, arg, order, scenario["insured"])
    for op, arg in scenario["steps"]:
        recovered = await _step(gql, db, number, n, op, arg, order, scenario["insured"])
        await _check(gql, db, policies, scenario, number, order, history, recovered)
