"""Version 2 of the pure settlement engine (SETTLEMENT.md §4–§6, §10).

Reported upstream payments, 待遇就高 item by item, retroactive assistance only, Jiangsu's grace from
the decision month, uninsured persons, 济宁's other 困难群众, 湖南's fee-for-service-only bonus,
攀枝花's monitoring income standard by year, and the loader's new refusals. Every expected amount
is worked out by hand from the spec and ``policies/benefits/*.yaml``; the arithmetic is in the
comment above it.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from policies.benefits import BENEFITS_DIR, PolicySet, load_policies
from policies.errors import InvalidInput, PolicyFileError
from policies.settlement.cases import parse_case, simulate
from policies.settlement.engine import (
    INSURANCE_VISIT_TYPES,
    CategoryRecord,
    Ledger,
    Person,
    Reported,
    Visit,
    VisitSettlement,
    settle_visit,
    settle_visits,
)
from policies.settlement.explanation import CountingRule, PayerLine
from policies.settlement.ledger import Stage, StageTotals
from policies.vocabulary import PAYERS, Category, HospitalLevel, Payer, VisitType
from tests.policies.shorthand import (
    CHRONIC,
    GENERAL,
    INPATIENT,
    POLICIES,
    PRIMARY,
    SECONDARY,
    TERTIARY,
)

BASIC = Payer.BASIC_INSURANCE
CI = Payer.CRITICAL_ILLNESS
COMMERCIAL = Payer.INCLUSIVE_COMMERCIAL
ASSISTANCE = Payer.ASSISTANCE
SECONDARY_ASSISTANCE = Payer.SECONDARY_ASSISTANCE

PANZHIHUA, JINING, JIANGSU, HUNAN = "510402", "370811", "320102", "430521"

EP = Category.EXTREME_POVERTY
ORPHAN = Category.ORPHAN
ML = Category.MINIMUM_LIVING
MLI = Category.MARGINAL_LOW_INCOME
II = Category.ILLNESS_IMPOVERISHED
MON = Category.MONITORED
LOW_INCOME = Category.LOW_INCOME
RP = Category.REGISTERED_POOR
PES = Category.POVERTY_EXIT_SECURED
LISD = Category.LOW_INCOME_SEVERELY_DISABLED


def rec(
    category: Category, start: date, end: date | None = None, decided: date | None = None
) -> CategoryRecord:
    return CategoryRecord(category, start, end, decided)


def person(
    region: str,
    *records: CategoryRecord,
    insured: bool = True,
    commercial: bool = False,
    born: date = date(1965, 1, 1),
) -> Person:
    return Person(region, born, insured, commercial, tuple(records))


def visit(
    visit_id: str,
    admitted: date,
    total: str,
    scope: str | None = None,
    level: HospitalLevel | None = SECONDARY,
    kind: VisitType = INPATIENT,
    *,
    discharged: date | None = None,
    referral: bool = True,
    in_province: bool = True,
    diagnosis: str | None = None,
    special: bool = False,
    reported: Reported | None = None,
) -> Visit:
    return Visit(
        visit_id,
        kind,
        level,
        admitted,
        discharged or admitted,
        Decimal(total),
        Decimal(scope if scope is not None else total),
        referral,
        in_province,
        diagnosis,
        special,
        reported,
    )


def reported(
    basic: str | None = None, ci: str | None = None, commercial: str | None = None
) -> Reported:
    def amount(text: str | None) -> Decimal | None:
        return None if text is None else Decimal(text)

    return Reported(amount(basic), amount(ci), amount(commercial))


def settle(who: Person, *visits: Visit, policies: PolicySet = POLICIES) -> list[VisitSettlement]:
    return settle_visits(policies, who, list(visits))


def amounts(settlement: VisitSettlement) -> list[str]:
    """basic, CI, commercial, assistance, secondary assistance, out-of-pocket."""
    return [str(settlement.payments[p]) for p in PAYERS] + [str(settlement.out_of_pocket)]


def line(settlement: VisitSettlement, payer: Payer) -> PayerLine:
    return settlement.explanation.line(payer)


def ledgers(who: Person, *visits: Visit) -> list[Ledger]:
    """The ledger after each visit (all visits of one year)."""
    ledger = Ledger.empty(visits[0].settlement_year)
    after: list[Ledger] = []
    for v in visits:
        _, ledger = settle_visit(POLICIES, who, v, ledger)
        after.append(ledger)
    return after


def totals(base: str, paid: str) -> StageTotals:
    return StageTotals(Decimal(base), Decimal(paid))


def edited(name: str, old: str, new: str) -> str:
    """The bundled file ``name`` with the first ``old`` after the header comment replaced."""
    text = (BENEFITS_DIR / name).read_text(encoding="utf-8")
    body_starts = text.index("\nid: ")
    header, body = text[:body_starts], text[body_starts:]
    assert old in body, f"{old!r} not in {name}"
    return header + body.replace(old, new, 1)


# == 1. Reported payments (§5) ================================================================


def test_reported_basic_is_taken_as_given_and_ci_is_computed_on_the_rest() -> None:
    who = person(PANZHIHUA)
    v1 = visit(
        "v1", date(2024, 5, 10), "50000.00", "45000.00", SECONDARY, reported=reported("20000.00")
    )
    [s] = settle(who, v1)
    # basic reported 20000 (computed would be 80% × (45000 − 400) = 35680);
    # CI base 45000 − 20000 = 25000, 60% above 20000 = 3000; no category: no assistance;
    # out of pocket 50000 − 20000 − 3000 = 27000.
    assert amounts(s) == ["20000.00", "3000.00", "0.00", "0.00", "0.00", "27000.00"]
    basic = line(s, BASIC)
    assert (basic.applied, basic.method, basic.paid, basic.base) == (
        True,
        "reported",
        Decimal("20000.00"),
        Decimal("45000.00"),
    )
    assert basic.notes == ()
    ci = line(s, CI)
    assert (ci.method, ci.base, ci.deductible) == ("annual", Decimal("25000.00"), Decimal("20000"))
    assert s.explanation.reported == (BASIC,)
    explained: dict[str, Any] = json.loads(json.dumps(s.explanation.model_dump(mode="json")))
    assert explained["reported"] == ["basicInsurance"]
    assert [entry["method"] for entry in explained["lines"]][:2] == ["reported", "annual"]


def test_the_stage_ledgers_accrue_the_reported_visits_base_and_payment() -> None:
    who = person(PANZHIHUA)
    v1 = visit(
        "v1", date(2024, 5, 10), "50000.00", "45000.00", SECONDARY, reported=reported("20000.00")
    )
    v2 = visit("v2", date(2024, 9, 1), "30000.00", level=TERTIARY)
    after_v1, _ = ledgers(who, v1, v2)
    # basic.inpatient: base ps 45000, paid 20000; CI: base 25000, paid 3000.
    assert after_v1.totals(Stage.BASIC_INPATIENT) == totals("45000.00", "20000.00")
    assert after_v1.totals(Stage.CRITICAL_ILLNESS) == totals("25000.00", "3000.00")
    _, s2 = settle(who, v1, v2)
    # v2 computed: basic 65% × (30000 − 800) = 18980; CI base 11020 on top of B0 = 25000 (already
    # above the 20000 deductible): 60% × 11020 = 6612; out of pocket 30000 − 18980 − 6612 = 4408.
    assert amounts(s2) == ["18980.00", "6612.00", "0.00", "0.00", "0.00", "4408.00"]
    assert line(s2, CI).year_to_date_base_before == Decimal("25000.00")
    assert line(s2, CI).cap_room_before == Decimal("397000.00")  # 400000 − 3000
    assert s2.explanation.reported == ()


def test_reported_basic_and_ci_for_a_minimum_living_person_then_a_computed_visit() -> None:
    who = person(PANZHIHUA, rec(ML, date(2022, 1, 1)))
    v1 = visit(
        "v1",
        date(2023, 6, 1),
        "110000.00",
        "100000.00",
        TERTIARY,
        discharged=date(2023, 6, 20),
        reported=reported("60000.00", "25000.00"),
    )
    v2 = visit("v2", date(2023, 8, 1), "50000.00", level=TERTIARY)
    s1, s2 = settle(who, v1, v2)
    # v1: basic 60000 and CI 25000 reported; assistance (ML: D 0, 70%) on 100000 − 85000 = 15000
    # = 10500; secondary base 15000 − 10500 = 4500 < 7500 threshold: 0;
    # out of pocket 110000 − 60000 − 25000 − 10500 = 14500.
    assert amounts(s1) == ["60000.00", "25000.00", "0.00", "10500.00", "0.00", "14500.00"]
    assert s1.explanation.reported == (BASIC, CI)
    assert [line(s1, p).method for p in (BASIC, CI, ASSISTANCE)] == [
        "reported",
        "reported",
        "annual",
    ]
    assert line(s1, CI).base == Decimal("40000.00")  # 100000 − 60000
    assert s1.category is ML
    # v2 computed: basic 65% × (50000 − 800) = 31980;
    # CI (tilted for ML: D 10000, 65%) base 18020 over B0 40000: 65% × 18020 = 11713;
    # assistance base 50000 − 31980 − 11713 = 6307 over B0 15000: 70% = 4414.90;
    # secondary base 6307 − 4414.90 = 1892.10 over B0 4500: 6392.10 < 7500: 0;
    # out of pocket 50000 − 31980 − 11713 − 4414.90 = 1892.10.
    assert amounts(s2) == ["31980.00", "11713.00", "0.00", "4414.90", "0.00", "1892.10"]
    assert line(s2, CI).year_to_date_base_before == Decimal("40000.00")
    assert line(s2, CI).cap_room_before == Decimal("375000.00")  # 400000 − 25000 reported
    assert line(s2, BASIC).cap_room_before == Decimal("140000.00")  # 200000 − 60000 reported
    assert line(s2, ASSISTANCE).year_to_date_base_before == Decimal("15000.00")
    assert line(s2, ASSISTANCE).cap_room_before == Decimal("59500.00")  # 70000 − 10500
    assert line(s2, SECONDARY_ASSISTANCE).year_to_date_base_before == Decimal("4500.00")


def test_all_three_insurance_payers_reported_for_a_person_in_the_commercial_plan() -> None:
    who = person(PANZHIHUA, rec(ML, date(2022, 1, 1)), commercial=True)
    v1 = visit(
        "v1",
        date(2023, 6, 1),
        "110000.00",
        "100000.00",
        TERTIARY,
        reported=reported("60000.00", "19500.00", "8000.00"),
    )
    [s] = settle(who, v1)
    # assistance (ML 70%) on 100000 − 60000 − 19500 − 8000 = 12500 = 8750;
    # secondary base 3750 < 7500: 0; out of pocket 110000 − 60000 − 19500 − 8000 − 8750 = 13750.
    assert amounts(s) == ["60000.00", "19500.00", "8000.00", "8750.00", "0.00", "13750.00"]
    assert s.explanation.reported == (BASIC, CI, COMMERCIAL)
    assert [line(s, p).method for p in (BASIC, CI, COMMERCIAL)] == ["reported"] * 3
    # commercial's base: ps − basic − CI = 100000 − 60000 − 19500 = 20500 (computed it would pay
    # 60% × (20500 − 20000) = 300).
    assert line(s, COMMERCIAL).base == Decimal("20500.00")
    [after] = ledgers(who, v1)
    assert after.totals(Stage.INCLUSIVE_COMMERCIAL) == totals("20500.00", "8000.00")
    assert after.totals(Stage.CRITICAL_ILLNESS) == totals("40000.00", "19500.00")
    assert after.totals(Stage.ASSISTANCE) == totals("12500.00", "8750.00")


def test_commercial_is_computed_on_what_the_reported_basic_and_ci_leave() -> None:
    who = person(PANZHIHUA, rec(ML, date(2022, 1, 1)), commercial=True)
    v1 = visit(
        "v1",
        date(2023, 6, 1),
        "110000.00",
        "100000.00",
        TERTIARY,
        reported=reported("60000.00", "10000.00"),
    )
    [s] = settle(who, v1)
    # commercial base 100000 − 60000 − 10000 = 30000: 60% × (30000 − 20000) = 6000;
    # assistance 70% × (30000 − 6000) = 16800; secondary base 7200 < 7500: 0;
    # out of pocket 110000 − 60000 − 10000 − 6000 − 16800 = 17200.
    assert amounts(s) == ["60000.00", "10000.00", "6000.00", "16800.00", "0.00", "17200.00"]
    assert line(s, COMMERCIAL).method == "annual"
    assert s.explanation.reported == (BASIC, CI)


def test_a_reported_basic_payment_counts_against_the_yearly_basic_cap() -> None:
    who = person(PANZHIHUA)
    v1 = visit(
        "v1", date(2023, 3, 1), "260000.00", "250000.00", TERTIARY, reported=reported("190000.00")
    )
    v2 = visit("v2", date(2023, 9, 1), "50000.00", level=TERTIARY)
    s1, s2 = settle(who, v1, v2)
    # v1: CI base 250000 − 190000 = 60000: 60% × 40000 = 24000; 260000 − 214000 = 46000.
    assert amounts(s1) == ["190000.00", "24000.00", "0.00", "0.00", "0.00", "46000.00"]
    # v2: basic 65% × 49200 = 31980, but only 200000 − 190000 = 10000 of the cap is left;
    # CI base 40000 over B0 60000: 60% × 40000 = 24000; 50000 − 10000 − 24000 = 16000.
    assert amounts(s2) == ["10000.00", "24000.00", "0.00", "0.00", "0.00", "16000.00"]
    basic = line(s2, BASIC)
    assert (basic.cap_room_before, basic.amount_before_cap) == (
        Decimal("10000.00"),
        Decimal("31980.00"),
    )


def test_a_reported_ci_payment_counts_against_the_yearly_ci_cap() -> None:
    who = person(PANZHIHUA)
    v1 = visit(
        "v1",
        date(2023, 3, 1),
        "600000.00",
        level=TERTIARY,
        reported=reported("100000.00", "395000.00"),
    )
    v2 = visit("v2", date(2023, 9, 1), "50000.00", level=TERTIARY)
    s1, s2 = settle(who, v1, v2)
    # v1: both reported; 600000 − 100000 − 395000 = 105000.
    assert amounts(s1) == ["100000.00", "395000.00", "0.00", "0.00", "0.00", "105000.00"]
    # v2: basic 65% × 49200 = 31980 (room 100000); CI base 18020 over B0 500000:
    # 70% × 18020 = 12614, but 400000 − 395000 = 5000 is left; 50000 − 31980 − 5000 = 13020.
    assert amounts(s2) == ["31980.00", "5000.00", "0.00", "0.00", "0.00", "13020.00"]
    assert line(s2, CI).cap_room_before == Decimal("5000.00")
    assert line(s2, CI).year_to_date_base_before == Decimal("500000.00")
    # reported above the CI room: accepted and noted on the CI line.
    v2r = dataclasses.replace(v2, reported=reported("31980.00", "6000.00"))
    _, r2 = settle(who, v1, v2r)
    assert r2.payments[CI] == Decimal("6000.00")
    [note] = line(r2, CI).notes
    assert ("6000.00" in note, "5000.00" in note, "accepted" in note) == (True, True, True)


def test_a_reported_inpatient_basic_payment_also_limits_chronic_visits() -> None:
    who = person(PANZHIHUA)
    v1 = visit("v1", date(2023, 3, 1), "250000.00", level=TERTIARY, reported=reported("199900.00"))
    v2 = visit("v2", date(2023, 5, 1), "1000.00", level=None, kind=CHRONIC)
    s1, s2 = settle(who, v1, v2)
    # v1: CI base 50100: 60% × 30100 = 18060; 250000 − 199900 − 18060 = 32040.
    assert amounts(s1) == ["199900.00", "18060.00", "0.00", "0.00", "0.00", "32040.00"]
    # v2 chronic: 65% × (1000 − 300) = 455, room 200000 − 199900 = 100;
    # CI base 900 over B0 50100: 60% × 900 = 540; 1000 − 100 − 540 = 360.
    assert amounts(s2) == ["100.00", "540.00", "0.00", "0.00", "0.00", "360.00"]
    assert line(s2, BASIC).cap_shared_with == ("basic.inpatient",)


def test_a_reported_chronic_visit_feeds_the_annual_chronic_deductible() -> None:
    who = person(PANZHIHUA)
    v1 = visit(
        "v1", date(2023, 3, 1), "200.00", level=None, kind=CHRONIC, reported=reported("50.00")
    )
    v2 = visit("v2", date(2023, 4, 1), "1000.00", level=None, kind=CHRONIC)
    _, s2 = settle(who, v1, v2)
    # The chronic stage accrued v1's base 200, so v2: 65% × (1200 − 300) = 585 (not 65% × 700).
    assert s2.payments[BASIC] == Decimal("585.00")
    assert line(s2, BASIC).year_to_date_base_before == Decimal("200.00")


def test_a_reported_amount_above_the_cap_is_accepted_and_noted() -> None:
    who = person(PANZHIHUA)
    v1 = visit(
        "v1", date(2023, 3, 1), "260000.00", "250000.00", TERTIARY, reported=reported("190000.00")
    )
    v2 = visit("v2", date(2023, 9, 1), "50000.00", level=TERTIARY, reported=reported("15000.00"))
    v3 = visit("v3", date(2023, 11, 1), "10000.00", level=TERTIARY)
    s1, s2, s3 = settle(who, v1, v2, v3)
    assert line(s1, BASIC).notes == ()  # 190000 is within the cap
    # v2: 15000 accepted although only 10000 of the cap is left;
    # CI base 35000 over B0 60000: 60% × 35000 = 21000; 50000 − 15000 − 21000 = 14000.
    assert amounts(s2) == ["15000.00", "21000.00", "0.00", "0.00", "0.00", "14000.00"]
    [note] = line(s2, BASIC).notes
    assert "15000.00" in note
    assert "10000.00" in note
    assert "200000.00" in note
    assert "accepted" in note
    assert line(s2, BASIC).cap_room_before == Decimal("10000.00")
    # v3: the cap is spent (205000 paid): basic 0; CI base 10000 over B0 95000:
    # 60% × 5000 + 70% × 5000 = 6500; 10000 − 6500 = 3500.
    assert amounts(s3) == ["0.00", "6500.00", "0.00", "0.00", "0.00", "3500.00"]
    assert line(s3, BASIC).cap_room_before == Decimal("0")


def test_reported_general_outpatient_basic_above_its_own_cap() -> None:
    who = person(PANZHIHUA, rec(ML, date(2022, 1, 1)))
    v1 = visit(
        "v1", date(2023, 3, 1), "600.00", level=None, kind=GENERAL, reported=reported("500.00")
    )
    v2 = visit("v2", date(2023, 4, 1), "200.00", level=None, kind=GENERAL)
    s1, s2 = settle(who, v1, v2)
    # v1: 500 reported (general cap 400: noted); general assistance (ML 70%, cap 800) on
    # 600 − 500 = 100 = 70; 600 − 500 − 70 = 30.
    assert amounts(s1) == ["500.00", "0.00", "0.00", "70.00", "0.00", "30.00"]
    assert line(s1, BASIC).stage == "basic.generalOutpatient"
    assert any("accepted" in note for note in line(s1, BASIC).notes)
    # v2: the general basic cap is spent (500 ≥ 400): 0; assistance 70% × 200 = 140; 200 − 140 = 60.
    assert amounts(s2) == ["0.00", "0.00", "0.00", "140.00", "0.00", "60.00"]


def test_reported_amount_equal_to_the_policy_scope_cost_is_accepted() -> None:
    who = person(PANZHIHUA, rec(ML, date(2022, 1, 1)))
    [s] = settle(
        who, visit("v1", date(2023, 3, 1), "30000.00", "26000.00", reported=reported("26000.00"))
    )
    # nothing is left in scope for CI or assistance; out of pocket = out of scope 4000.
    assert amounts(s) == ["26000.00", "0.00", "0.00", "0.00", "0.00", "4000.00"]


def base_case(**visit_changes: Any) -> dict[str, Any]:
    """A 攀枝花 minimum-living case with one inpatient stay (example P01), visit edited."""
    entry: dict[str, Any] = {
        "id": "v1",
        "type": "INPATIENT",
        "hospitalLevel": "SECONDARY",
        "admissionDate": "2023-03-01",
        "dischargeDate": "2023-03-10",
        "totalCost": "30000.00",
        "policyScopeCost": "26000.00",
    }
    entry.update(visit_changes)
    return {
        "person": {
            "regionCode": PANZHIHUA,
            "birthDate": "1970-01-01",
            "categories": [{"category": "MINIMUM_LIVING", "validFrom": "2021-06-01"}],
        },
        "visits": [entry],
    }


@pytest.mark.parametrize(
    ("changes", "field", "value"),
    [
        pytest.param(
            {"reported": {"criticalIllness": "1000.00"}},
            "visits[0].reported.criticalIllness",
            "1000.00",
            id="ci-without-basic",
        ),
        pytest.param(
            {"reported": {"basicInsurance": "1000.00", "inclusiveCommercial": "50.00"}},
            "visits[0].reported.inclusiveCommercial",
            "50.00",
            id="commercial-without-ci",
        ),
        pytest.param(
            {"reported": {"inclusiveCommercial": "50.00"}},
            "visits[0].reported.inclusiveCommercial",
            "50.00",
            id="commercial-alone",
        ),
        pytest.param(
            {
                "type": "OUTPATIENT_GENERAL",
                "hospitalLevel": None,
                "totalCost": "300.00",
                "policyScopeCost": "300.00",
                "reported": {"basicInsurance": "100.00", "criticalIllness": "10.00"},
            },
            "visits[0].reported.criticalIllness",
            "10.00",
            id="ci-on-general-outpatient",
        ),
        pytest.param(
            {"reported": {"basicInsurance": "26000.01"}},
            "visits[0].reported.basicInsurance",
            "26000.01",
            id="basic-above-scope",
        ),
        pytest.param(
            {"reported": {"basicInsurance": "20000.00", "criticalIllness": "6000.01"}},
            "visits[0].reported.criticalIllness",
            "6000.01",
            id="sum-above-scope",
        ),
        pytest.param(
            {"reported": {"basicInsurance": "100.00", "assistance": "5.00"}},
            "visits[0].reported.assistance",
            "5.00",
            id="unknown-key",
        ),
        pytest.param(
            {"reported": {"basicInsurance": "-1.00"}},
            "visits[0].reported.basicInsurance",
            "-1.00",
            id="negative",
        ),
        pytest.param(
            {"reported": {"basicInsurance": "100.00", "criticalIllness": "1.005"}},
            "visits[0].reported.criticalIllness",
            "1.005",
            id="three-decimals",
        ),
    ],
)
def test_bad_reported_amounts_are_refused_naming_field_and_value(
    changes: dict[str, Any], field: str, value: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_case(base_case(**changes))
    assert caught.value.field == field
    assert value in str(caught.value)
    with pytest.raises(InvalidInput) as again:
        simulate(base_case(**changes), POLICIES)
    assert again.value.field == field


def test_reported_amounts_on_an_uninsured_visit_are_refused() -> None:
    case = base_case(reported={"basicInsurance": "1000.00"})
    case["person"]["insured"] = False
    with pytest.raises(InvalidInput) as caught:
        simulate(case, POLICIES)
    assert caught.value.field == "visits[0].reported.basicInsurance"
    assert "1000.00" in str(caught.value)


def test_the_refusal_names_the_visit_that_carries_the_reported_amount() -> None:
    case = base_case()
    case["person"]["insured"] = False
    second = dict(case["visits"][0], id="v2", reported={"basicInsurance": "0.00"})
    case["visits"].append(second)
    with pytest.raises(InvalidInput) as caught:
        simulate(case, POLICIES)
    assert caught.value.field == "visits[1].reported.basicInsurance"
    assert "0.00" in str(caught.value)


def test_commercial_reported_for_a_person_not_enrolled_is_refused() -> None:
    case = base_case(
        reported={
            "basicInsurance": "18000.00",
            "criticalIllness": "0.00",
            "inclusiveCommercial": "300.00",
        }
    )
    with pytest.raises(InvalidInput) as caught:
        simulate(case, POLICIES)
    assert caught.value.field == "visits[0].reported.inclusiveCommercial"
    assert "300.00" in str(caught.value)
    # the same amounts are fine once the person is enrolled
    case["person"]["inclusiveCommercial"] = True
    [entry] = simulate(case, POLICIES)["visits"]
    assert entry["inclusiveCommercial"] == "300.00"


def test_commercial_reported_in_a_region_without_a_plan_is_refused() -> None:
    case = base_case(
        reported={
            "basicInsurance": "18000.00",
            "criticalIllness": "0.00",
            "inclusiveCommercial": "300.00",
        },
        admissionDate="2022-03-01",
        dischargeDate="2022-03-10",
    )
    case["person"]["regionCode"] = JINING
    case["person"]["inclusiveCommercial"] = True
    with pytest.raises(InvalidInput) as caught:
        simulate(case, POLICIES)
    assert caught.value.field == "visits[0].reported.inclusiveCommercial"
    assert "300.00" in str(caught.value)
    assert "370800-2021" in str(caught.value)


@pytest.mark.parametrize(
    ("amounts_reported", "kind", "field", "value"),
    [
        pytest.param(
            Reported(critical_illness=Decimal("10.00")),
            INPATIENT,
            "visits[0].reported.criticalIllness",
            "10.00",
            id="ci-without-basic",
        ),
        pytest.param(
            Reported(Decimal("10.00"), Decimal("1.00")),
            GENERAL,
            "visits[0].reported.criticalIllness",
            "1.00",
            id="ci-on-general-outpatient",
        ),
        pytest.param(
            Reported(Decimal("1.005")),
            INPATIENT,
            "visits[0].reported.basicInsurance",
            "1.005",
            id="three-decimals",
        ),
        pytest.param(
            Reported(Decimal("-0.01")),
            INPATIENT,
            "visits[0].reported.basicInsurance",
            "-0.01",
            id="negative",
        ),
        pytest.param(
            Reported(Decimal("250.00"), Decimal("50.01")),
            CHRONIC,
            "visits[0].reported.criticalIllness",
            "50.01",
            id="sum-above-scope",
        ),
    ],
)
def test_the_engine_itself_refuses_bad_reported_amounts(
    amounts_reported: Reported, kind: VisitType, field: str, value: str
) -> None:
    who = person(PANZHIHUA, rec(ML, date(2022, 1, 1)))
    level = SECONDARY if kind is INPATIENT else None
    bad = visit("v1", date(2023, 3, 1), "300.00", level=level, kind=kind, reported=amounts_reported)
    with pytest.raises(InvalidInput) as caught:
        settle(who, bad)
    assert caught.value.field == field
    assert value in str(caught.value)


def test_a_reported_case_runs_through_simulate_with_its_explanation() -> None:
    case = base_case(reported={"basicInsurance": "18000.00"})
    [entry] = simulate(case, POLICIES, explain=True)["visits"]
    # basic 18000 reported; CI (ML tilt: D 10000) base 8000: 0; assistance 70% × 8000 = 5600;
    # secondary base 2400: 0; out of pocket 30000 − 18000 − 5600 = 6400.
    assert [entry[p.value] for p in PAYERS] + [entry["outOfPocket"]] == [
        "18000.00",
        "0.00",
        "0.00",
        "5600.00",
        "0.00",
        "6400.00",
    ]
    assert entry["explanation"]["reported"] == ["basicInsurance"]
    assert entry["explanation"]["lines"][0]["method"] == "reported"
    assert "taken as given" in entry["explanation"]["text"]


# == 2. Categories held: 待遇就高 item by item (§4.5, §4.6) ======================================


def test_hunan_two_identities_keep_the_basic_and_ci_tilts() -> None:
    stay = visit("v1", date(2018, 4, 2), "66000.00", "60000.00", discharged=date(2018, 4, 16))
    both = person(HUNAN, rec(RP, date(2016, 3, 1)), rec(PES, date(2017, 1, 1)))
    [s] = settle(both, stay)
    # basic: 70% + 10 points (RP) × (60000 − 500) = 47600;
    # CI: D 15000 × 0.5 (RP) = 7500, base 12400: 50% × 4900 = 2450; 66000 − 50050 = 15950.
    assert amounts(s) == ["47600.00", "2450.00", "0.00", "0.00", "0.00", "15950.00"]
    # 湖南 has no assistance: the category is the first held in priority order (§4.6).
    assert s.category is PES
    assert s.preferential_treatment
    assert s.explanation.category.held_for_insurance == (PES, RP)
    [alone] = settle(person(HUNAN, rec(RP, date(2016, 3, 1))), stay)
    assert amounts(alone) == amounts(s)
    assert alone.category is RP
    # 兜底脱贫 alone has no tilt: basic 70% × 59500 = 41650; CI base 18350: 50% × 3350 = 1675;
    # 66000 − 43325 = 22675.
    [secured] = settle(person(HUNAN, rec(PES, date(2017, 1, 1))), stay)
    assert amounts(secured) == ["41650.00", "1675.00", "0.00", "0.00", "0.00", "22675.00"]


def test_a_second_identity_can_shrink_a_later_payers_base_but_never_the_total() -> None:
    # The cascade (§5: CI's base is ps − basic) means "never lower" holds per item (each payer on
    # the same base pays no less) and for the total, not for every payer of the cascade.
    stay = visit("v1", date(2018, 4, 2), "66000.00", "60000.00")
    [ml] = settle(person(HUNAN, rec(ML, date(2016, 1, 1))), stay)
    # ML: basic 70% × 59500 = 41650 (no basic tilt); CI D 7500 (tilted), base 18350:
    # 50% × 10850 = 5425; 66000 − 47075 = 18925.
    assert amounts(ml) == ["41650.00", "5425.00", "0.00", "0.00", "0.00", "18925.00"]
    [both] = settle(person(HUNAN, rec(ML, date(2016, 1, 1)), rec(RP, date(2016, 1, 1))), stay)
    # + RP: basic 80% × 59500 = 47600; CI base 12400: 50% × 4900 = 2450; 66000 − 50050 = 15950.
    assert amounts(both) == ["47600.00", "2450.00", "0.00", "0.00", "0.00", "15950.00"]
    assert both.out_of_pocket < ml.out_of_pocket
    assert both.category is ml.category is ML


def test_a_better_assistance_schedule_can_leave_less_for_secondary_assistance() -> None:
    stay = visit("v1", date(2023, 3, 1), "100000.00", level=TERTIARY, discharged=date(2023, 3, 20))
    [ill] = settle(person(PANZHIHUA, rec(II, date(2022, 1, 1))), stay)
    # II: basic 65% × 99200 = 64480; CI untilted: 60% × (35520 − 20000) = 9312;
    # assistance D 25% × PCDI 2022 42000 = 10500, 50% × (26208 − 10500) = 7854;
    # secondary 50% × (18354 − 7500) = 5427; 100000 − 64480 − 9312 − 7854 − 5427 = 12927.
    assert amounts(ill) == ["64480.00", "9312.00", "0.00", "7854.00", "5427.00", "12927.00"]
    [both] = settle(person(PANZHIHUA, rec(II, date(2022, 1, 1)), rec(ML, date(2022, 1, 1))), stay)
    # + ML: CI tilted (D 10000, 65%): 65% × 25520 = 16588; assistance ML 70% × 18932 = 13252.40;
    # secondary base 5679.60 < 7500: 0; 100000 − 64480 − 16588 − 13252.40 = 5679.60.
    assert amounts(both) == ["64480.00", "16588.00", "0.00", "13252.40", "0.00", "5679.60"]
    assert both.category is ML
    assert [(c.category, str(c.paid), c.chosen) for c in both.explanation.category.candidates] == [
        (ML, "13252.40", True),
        (II, "4216.00", False),  # 50% × (18932 − 10500)
    ]


def test_assistance_candidates_are_computed_on_the_same_ledger_and_the_largest_wins() -> None:
    # records listed in the opposite order to the policy's priority list
    who = person(PANZHIHUA, rec(MON, date(2022, 1, 1)), rec(ML, date(2021, 6, 1)))
    stay = visit("v1", date(2023, 3, 1), "30000.00", "26000.00", discharged=date(2023, 3, 10))
    [s] = settle(who, stay)
    # basic 80% × 25600 = 20480; CI base 5520 < 10000 (tilted): 0;
    # ML: 70% × 5520 = 3864; MON: D 5% × 42000 = 2100, 65% × 3420 = 2223; ML wins;
    # secondary base 1656 < 7500: 0; 30000 − 20480 − 3864 = 5656.
    assert amounts(s) == ["20480.00", "0.00", "0.00", "3864.00", "0.00", "5656.00"]
    assert s.category is ML
    candidates = s.explanation.category.candidates
    assert [(c.category, str(c.paid), c.chosen) for c in candidates] == [
        (ML, "3864.00", True),
        (MON, "2223.00", False),
    ]
    explained: dict[str, Any] = json.loads(json.dumps(s.explanation.model_dump(mode="json")))
    assert explained["category"]["candidates"] == [
        {"category": "MINIMUM_LIVING", "paid": "3864.00", "chosen": True},
        {"category": "MONITORED", "paid": "2223.00", "chosen": False},
    ]
    assert any("candidates" in note for note in line(s, ASSISTANCE).notes)
    assert "assistance candidates" in s.explanation.render_text()


def test_a_tie_goes_to_the_category_listed_first_in_the_priority_list() -> None:
    # 济宁 priority: EXTREME_POVERTY, MINIMUM_LIVING, ORPHAN, ...; records in the other order.
    who = person(JINING, rec(ORPHAN, date(2015, 1, 1)), rec(ML, date(2020, 1, 1)))
    stay = visit("v1", date(2022, 9, 1), "30000.00", "26000.00")
    [s] = settle(who, stay)
    # basic 75% × (26000 − 500) = 19125; CI base 6875 < 15000: 0;
    # ML and ORPHAN both D 0, 70%: 4812.50 each, a tie: ML (listed first);
    # secondary base 2062.50 < 5000: 0; 30000 − 19125 − 4812.50 = 6062.50.
    assert amounts(s) == ["19125.00", "0.00", "0.00", "4812.50", "0.00", "6062.50"]
    assert s.category is ML
    assert [(c.category, str(c.paid), c.chosen) for c in s.explanation.category.candidates] == [
        (ML, "4812.50", True),
        (ORPHAN, "4812.50", False),
    ]


def test_general_outpatient_candidates_tie_to_the_first_in_priority() -> None:
    who = person(PANZHIHUA, rec(ORPHAN, date(2015, 1, 1)), rec(EP, date(2020, 1, 1)))
    [s] = settle(who, visit("v1", date(2023, 3, 1), "300.00", level=None, kind=GENERAL))
    # basic 50% × 300 = 150 (cap 400); EP and ORPHAN both 100% of 300 − 150 = 150; tie: EP.
    assert amounts(s) == ["150.00", "0.00", "0.00", "150.00", "0.00", "0.00"]
    assert s.category is EP
    assert line(s, ASSISTANCE).stage == "assistance.generalOutpatient"
    assert [(c.category, c.chosen) for c in s.explanation.category.candidates] == [
        (EP, True),
        (ORPHAN, False),
    ]


def jining_with_orphan_ratio(tmp_path: Path, ratio: str) -> PolicySet:
    """济宁 with ORPHAN's assistance ratio changed (ORPHAN is listed after MINIMUM_LIVING)."""
    (tmp_path / "370800-2021.yaml").write_text(
        edited(
            "370800-2021.yaml",
            "ratio: {value: 0.70, since: 2021-01-01, assumed: true}",
            f"ratio: {{value: {ratio}, since: 2021-01-01, assumed: true}}",
        ),
        encoding="utf-8",
    )
    return load_policies(tmp_path)


def test_the_largest_rounded_payment_wins_whatever_the_priority(tmp_path: Path) -> None:
    policies = jining_with_orphan_ratio(tmp_path, "0.7001")
    who = person(JINING, rec(ML, date(2020, 1, 1)), rec(ORPHAN, date(2015, 1, 1)))
    # PRIMARY deductible 200 > ps 150: basic 0; CI 0; ML 70% × 150 = 105.00;
    # ORPHAN 70.01% × 150 = 105.015 → 105.02 (half up): ORPHAN pays more and wins although ML
    # comes first in the priority list; out of pocket 150 − 105.02 = 44.98.
    [s] = settle(who, visit("v1", date(2022, 3, 1), "150.00", level=PRIMARY), policies=policies)
    assert amounts(s) == ["0.00", "0.00", "0.00", "105.02", "0.00", "44.98"]
    assert s.category is ORPHAN
    assert [(c.category, str(c.paid), c.chosen) for c in s.explanation.category.candidates] == [
        (ML, "105.00", False),
        (ORPHAN, "105.02", True),
    ]
    # ps 40: ML 28.00; ORPHAN 70.01% × 40 = 28.004 → 28.00: a tie of the rounded payments goes
    # to ML, first in the priority list; out of pocket 40 − 28 = 12.
    [t] = settle(who, visit("v1", date(2022, 3, 1), "40.00", level=PRIMARY), policies=policies)
    assert amounts(t) == ["0.00", "0.00", "0.00", "28.00", "0.00", "12.00"]
    assert t.category is ML


def test_the_reported_category_when_no_assistance_schedule_applies() -> None:
    # 湖南: no assistance; first category held in priority order (RP before LISD).
    [hunan] = settle(
        person(HUNAN, rec(LISD, date(2016, 1, 1)), rec(RP, date(2016, 1, 1))),
        visit("v1", date(2019, 5, 1), "10000.00"),
    )
    assert hunan.category is RP
    assert "first category held" in hunan.explanation.category.reason
    assert hunan.explanation.category.candidates == ()
    # 攀枝花, referral not compliant: no assistance payer; MON is the first held (before MLI).
    [refused] = settle(
        person(PANZHIHUA, rec(MLI, date(2022, 1, 1)), rec(MON, date(2022, 1, 1))),
        visit("v1", date(2023, 3, 1), "30000.00", referral=False),
    )
    assert (refused.category, refused.payments[ASSISTANCE]) == (MON, Decimal("0.00"))
    # general outpatient: MON has no general schedule → MON reported as first held, assistance 0
    general = visit("v1", date(2023, 3, 1), "300.00", level=None, kind=GENERAL)
    [mon] = settle(person(PANZHIHUA, rec(MON, date(2022, 1, 1))), general)
    assert (mon.category, mon.payments[ASSISTANCE]) == (MON, Decimal("0.00"))
    # ... but with ML too, ML's general schedule is used: 70% × (300 − 150) = 105.
    [used] = settle(
        person(PANZHIHUA, rec(MON, date(2022, 1, 1)), rec(ML, date(2022, 1, 1))), general
    )
    assert (used.category, used.payments[ASSISTANCE]) == (ML, Decimal("105.00"))
    # no record counts → null
    [none] = settle(
        person(PANZHIHUA, rec(ML, date(2020, 1, 1), date(2022, 12, 31))),
        visit("v1", date(2023, 3, 1), "300.00", level=None, kind=GENERAL),
    )
    assert none.category is None
    assert none.to_dict()["category"] is None


def test_a_schedule_used_that_pays_nothing_still_names_its_category() -> None:
    who = person(PANZHIHUA, rec(MON, date(2022, 1, 1)))
    [s] = settle(who, visit("v1", date(2023, 3, 1), "5000.00"))
    # basic 80% × 4600 = 3680; assistance base 1320 < MON deductible 2100: 0.
    assert amounts(s) == ["3680.00", "0.00", "0.00", "0.00", "0.00", "1320.00"]
    assert s.category is MON
    assert line(s, ASSISTANCE).applied


# -- the property: one more identity never lowers any item ------------------------------------

# Region → settlement years whose February–December lie inside the policy's effective interval.
REGIONS = {
    PANZHIHUA: (2023, 2027),
    JINING: (2021, 2030),
    JIANGSU: (2016, 2030),
    HUNAN: (2018, 2030),
}
PRIORITY = {
    region: POLICIES.in_force(region, date(first, 6, 1)).categories.priority.latest.value
    for region, (first, _) in REGIONS.items()
}
DIAGNOSES = [None, "C16.2", "C91.0", "N185", "Q21.1", "J18.9"]
MONOTONE_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


MOSTLY_TRUE = st.sampled_from([True, True, True, False])


def cents(max_yuan: int) -> st.SearchStrategy[Decimal]:
    return st.integers(0, max_yuan * 100).map(lambda c: Decimal(c) / 100)


@st.composite
def category_record(draw: st.DrawFn, category: Category, year: int) -> CategoryRecord:
    """Half the records cover the whole settlement year; the others start and end anywhere
    around it (with a Jiangsu decision date up to four months after the end)."""
    if draw(st.booleans()):
        start = date(year - 2, 1, 1) + timedelta(days=draw(st.integers(0, 365)))
        return CategoryRecord(category, start)
    start = date(year - 2, 1, 1) + timedelta(days=draw(st.integers(0, 3 * 365)))
    length = draw(st.none() | st.integers(0, 500))
    end = None if length is None else start + timedelta(days=length)
    late = draw(st.none() | st.integers(0, 120))
    decided = None if end is None or late is None else end + timedelta(days=late)
    return CategoryRecord(category, start, end, decided)


@st.composite
def year_visits(draw: st.DrawFn, year: int) -> list[Visit]:
    result: list[Visit] = []
    for i in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from([INPATIENT, INPATIENT, CHRONIC, GENERAL]))
        admitted = date(year, 2, 1) + timedelta(days=draw(st.integers(0, 320)))
        big = draw(st.sampled_from([500, 5_000, 30_000, 100_000, 400_000]))
        total = draw(cents(big))
        scope = min(draw(cents(big)), total)
        result.append(
            visit(
                f"v{i}",
                admitted,
                str(total),
                str(scope),
                draw(st.sampled_from(list(HospitalLevel))) if kind is INPATIENT else None,
                kind,
                discharged=admitted
                + timedelta(days=draw(st.integers(0, 40)) if kind is INPATIENT else 0),
                referral=draw(MOSTLY_TRUE),
                in_province=draw(MOSTLY_TRUE),
                diagnosis=draw(st.sampled_from(DIAGNOSES)),
                special=draw(st.booleans()),
            )
        )
    return result


@st.composite
def one_more_identity(draw: st.DrawFn) -> tuple[Person, Person, list[Visit]]:
    """A person holding records of a random subset S of the policy's priority list, the same
    person with one more record (of a category c), and visits of one settlement year."""
    region = draw(st.sampled_from(sorted(REGIONS)))
    first, last = REGIONS[region]
    year = draw(st.integers(first, last))
    priority = PRIORITY[region]
    held = draw(st.lists(st.sampled_from(priority), unique=True, max_size=2))
    records = tuple(draw(category_record(c, year)) for c in held)
    others = [c for c in priority if c not in held]
    extra = draw(category_record(draw(st.sampled_from(others or priority)), year))
    born = date(year - 90, 1, 1) + timedelta(days=draw(st.integers(0, 88 * 365)))
    insured = draw(MOSTLY_TRUE)
    commercial = draw(st.booleans())
    fewer = Person(region, born, insured, commercial, records)
    more = dataclasses.replace(fewer, categories=(*records, extra))
    return fewer, more, draw(year_visits(year))


def insurance_reported(who: Person, v: Visit, s: VisitSettlement, upto: Payer) -> Reported | None:
    """``s``'s insurance payments before ``upto``, as a valid §5 prefix for ``v``."""
    if not who.insured:
        return None
    paid = s.payments
    policy = POLICIES.in_force(who.region_code, v.admission_date)
    basic = paid[BASIC]
    if upto is CI or v.type not in INSURANCE_VISIT_TYPES:
        return Reported(basic)
    if who.inclusive_commercial and policy.inclusive_commercial is not None:
        return Reported(basic, paid[CI], paid[COMMERCIAL])
    return Reported(basic, paid[CI])


@MONOTONE_SETTINGS
@given(one_more_identity())
def test_holding_one_more_identity_never_lowers_any_item_on_the_same_ledger(
    case: tuple[Person, Person, list[Visit]],
) -> None:
    """§4.5 item by item, for every visit of the year on the ledger the visit found:

    * basic insurance never pays less;
    * critical illness, on the same basic payment, never pays less;
    * assistance, on the same insurance payments, never pays less, and assistance plus
      secondary assistance never less;
    * the visit's out-of-pocket never rises.

    Not every payer of the cascade: more basic shrinks CI's base (ps − basic), more assistance
    shrinks secondary assistance's, and across a year a better schedule spends a yearly cap
    earlier (see the three explicit tests above).
    """
    fewer, more, visits = case
    ledger = Ledger.empty(visits[0].settlement_year)
    for v in visits:
        s, after = settle_visit(POLICIES, fewer, v, ledger)
        t, _ = settle_visit(POLICIES, more, v, ledger)
        assert t.payments[BASIC] >= s.payments[BASIC]
        assert t.out_of_pocket <= s.out_of_pocket
        if fewer.insured and v.type in INSURANCE_VISIT_TYPES:
            on_basic = dataclasses.replace(v, reported=insurance_reported(fewer, v, s, CI))
            u, _ = settle_visit(POLICIES, more, on_basic, ledger)
            assert u.payments[CI] >= s.payments[CI]
        on_insurance = dataclasses.replace(v, reported=insurance_reported(fewer, v, s, ASSISTANCE))
        w, _ = settle_visit(POLICIES, more, on_insurance, ledger)
        assert [w.payments[p] for p in (BASIC, CI, COMMERCIAL)] == [
            s.payments[p] for p in (BASIC, CI, COMMERCIAL)
        ]
        assert w.payments[ASSISTANCE] >= s.payments[ASSISTANCE]
        assert (
            w.payments[ASSISTANCE] + w.payments[SECONDARY_ASSISTANCE]
            >= s.payments[ASSISTANCE] + s.payments[SECONDARY_ASSISTANCE]
        )
        ledger = after


@MONOTONE_SETTINGS
@given(one_more_identity(), st.sampled_from(list(Category)))
def test_a_record_of_a_category_the_policy_does_not_list_changes_nothing(
    case: tuple[Person, Person, list[Visit]], category: Category
) -> None:
    fewer, _, visits = case
    assume(category not in PRIORITY[fewer.region_code])
    extra = CategoryRecord(category, date(2000, 1, 1))
    more = dataclasses.replace(fewer, categories=(*fewer.categories, extra))
    for s, t in zip(
        settle_visits(POLICIES, fewer, visits), settle_visits(POLICIES, more, visits), strict=True
    ):
        assert (t.payments, t.out_of_pocket, t.category) == (
            s.payments,
            s.out_of_pocket,
            s.category,
        )


def test_across_a_year_an_identity_that_reaches_the_cap_earlier_leaves_a_later_visit_less() -> None:
    # The guarantee is per visit on the ledger it finds: across the year the better schedule
    # spends the yearly cap earlier. 济宁, MON (D 1000, 50%) vs MON + ML (D 0, 70%), cap 10000.
    v1 = visit("v1", date(2022, 3, 1), "54500.00")
    v2 = visit("v2", date(2022, 6, 1), "6500.00")
    mon = person(JINING, rec(MON, date(2021, 5, 1)))
    both = person(JINING, rec(MON, date(2021, 5, 1)), rec(ML, date(2021, 5, 1)))
    m1, m2 = settle(mon, v1, v2)
    b1, b2 = settle(both, v1, v2)
    # v1: basic 75% × 54000 = 40500; CI base 14000 < 15000: 0.
    #   MON: 50% × 13000 = 6500; secondary 70% × (7500 − 5000) = 1750; 54500 − 48750 = 5750.
    #   ML:  70% × 14000 = 9800; secondary base 4200 < 5000: 0; 54500 − 50300 = 4200.
    assert amounts(m1) == ["40500.00", "0.00", "0.00", "6500.00", "1750.00", "5750.00"]
    assert amounts(b1) == ["40500.00", "0.00", "0.00", "9800.00", "0.00", "4200.00"]
    # v2: basic 75% × 6000 = 4500; CI base 2000 over B0 14000: 60% × 1000 = 600;
    #   MON: 50% × 1400 = 700; secondary 70% × 700 (B0 7500 above 5000) = 490;
    #        6500 − 4500 − 600 − 700 − 490 = 210.
    #   ML: 70% × 1400 = 980 but only 200 of the cap is left (MON: 700 > 200 too; tie → ML);
    #        secondary: B0 4200 + 1200 = 5400: 70% × 400 = 280; 6500 − 4500 − 600 − 200 − 280 = 920.
    assert amounts(m2) == ["4500.00", "600.00", "0.00", "700.00", "490.00", "210.00"]
    assert amounts(b2) == ["4500.00", "600.00", "0.00", "200.00", "280.00", "920.00"]
    # ... while the year's out-of-pocket still falls: 4200 + 920 = 5120 < 5750 + 210 = 5960.
    assert b1.out_of_pocket + b2.out_of_pocket < m1.out_of_pocket + m2.out_of_pocket


def test_an_identity_gained_or_lost_during_the_stay_counts_in_every_policy() -> None:
    # 济宁: ML from 2022-09-05, stay 09-01 … 09-10: basic 75% × 25500 = 19125; CI 0;
    # assistance 70% × 6875 = 4812.50; 30000 − 19125 − 4812.50 = 6062.50.
    [jining] = settle(
        person(JINING, rec(ML, date(2022, 9, 5))),
        visit("v1", date(2022, 9, 1), "30000.00", "26000.00", discharged=date(2022, 9, 10)),
    )
    assert amounts(jining) == ["19125.00", "0.00", "0.00", "4812.50", "0.00", "6062.50"]
    # 湖南: RP from 2019-06-05, stay 06-01 … 06-10: 80% × (20000 − 500) = 15600 (70% without).
    [hunan] = settle(
        person(HUNAN, rec(RP, date(2019, 6, 5))),
        visit("v1", date(2019, 6, 1), "20000.00", discharged=date(2019, 6, 10)),
    )
    assert amounts(hunan) == ["15600.00", "0.00", "0.00", "0.00", "0.00", "4400.00"]
    # 攀枝花: ML lost on 2023-03-05 during a stay 03-01 … 03-20: the insurance stages see it too
    # (CI tilted: 65% × (35520 − 10000) = 16588; assistance 70% × 18932 = 13252.40).
    [panzhihua] = settle(
        person(PANZHIHUA, rec(ML, date(2020, 1, 1), date(2023, 3, 5))),
        visit("v1", date(2023, 3, 1), "100000.00", level=TERTIARY, discharged=date(2023, 3, 20)),
    )
    assert amounts(panzhihua) == ["64480.00", "16588.00", "0.00", "13252.40", "0.00", "5679.60"]
    assert panzhihua.explanation.category.records[0].rules == (CountingRule.OVERLAP,)


def test_panzhihua_general_outpatient_assistance_needs_a_compliant_referral() -> None:
    who = person(PANZHIHUA, rec(ML, date(2022, 1, 1)))
    [s] = settle(
        who, visit("v1", date(2023, 3, 1), "300.00", level=None, kind=GENERAL, referral=False)
    )
    # basic 50% × 300 = 150; no general outpatient assistance; 300 − 150 = 150.
    assert amounts(s) == ["150.00", "0.00", "0.00", "0.00", "0.00", "150.00"]
    assert "referral" in line(s, ASSISTANCE).reason


# == 3. Retroactive assistance only (§4.3, 攀枝花) ================================================


def test_retroactive_recognition_reaches_assistance_but_not_insurance() -> None:
    who = person(PANZHIHUA, rec(ML, date(2023, 9, 1)))
    stay = visit("v1", date(2023, 3, 1), "100000.00", level=TERTIARY, discharged=date(2023, 3, 20))
    [s] = settle(who, stay)
    # basic 65% × (100000 − 800) = 64480 (no tilt either way);
    # CI untilted: D 20000, 60% × (35520 − 20000) = 9312;
    # assistance ML 70% × (35520 − 9312 = 26208) = 18345.60;
    # secondary (threshold 7500 in 2023) 50% × (7862.40 − 7500) = 181.20;
    # 100000 − 64480 − 9312 − 18345.60 − 181.20 = 7681.20.
    assert amounts(s) == ["64480.00", "9312.00", "0.00", "18345.60", "181.20", "7681.20"]
    assert s.category is ML
    assert line(s, CI).deductible == Decimal("20000")
    assert line(s, CI).notes == ()
    assert not s.preferential_treatment
    category = s.explanation.category
    assert (category.held_for_insurance, category.held_for_assistance) == ((), (ML,))
    [record] = category.records
    assert record.counted
    assert not record.insurance_stages
    assert record.rules == (CountingRule.RETROACTIVE_WITHIN_YEAR,)
    assert "追溯" in record.reason
    assert "2023-01-01" in record.reason
    # the same person recognised before the stay gets the CI tilt too (D 10000, 65%):
    # CI 65% × 25520 = 16588; assistance 70% × 18932 = 13252.40; secondary base 5679.60: 0.
    [tilted] = settle(person(PANZHIHUA, rec(ML, date(2023, 1, 1))), stay)
    assert amounts(tilted) == ["64480.00", "16588.00", "0.00", "13252.40", "0.00", "5679.60"]
    assert tilted.explanation.category.records[0].insurance_stages


def test_retroactivity_applies_to_each_record_on_its_own() -> None:
    # An earlier ML record ended in February; a new one starts in September: a May stay gets
    # assistance (the September record reaches back to 1 January) but no insurance tilt.
    who = person(PANZHIHUA, rec(ML, date(2021, 1, 1), date(2023, 2, 15)), rec(ML, date(2023, 9, 1)))
    [s] = settle(who, visit("v1", date(2023, 5, 10), "100000.00", level=TERTIARY))
    assert amounts(s) == ["64480.00", "9312.00", "0.00", "18345.60", "181.20", "7681.20"]
    first, second = s.explanation.category.records
    assert not first.counted
    assert second.rules == (CountingRule.RETROACTIVE_WITHIN_YEAR,)


def test_retroactivity_does_not_cross_into_the_previous_year() -> None:
    who = person(PANZHIHUA, rec(ML, date(2024, 2, 1)))
    december = visit("v1", date(2023, 12, 20), "30000.00", "26000.00")
    january = visit("v2", date(2024, 1, 10), "30000.00", "26000.00")
    s1, s2 = settle(who, december, january)
    # 2023: ordinary: basic 80% × 25600 = 20480; CI base 5520: 0; 30000 − 20480 = 9520.
    assert amounts(s1) == ["20480.00", "0.00", "0.00", "0.00", "0.00", "9520.00"]
    assert s1.category is None
    # 2024: ML from 1 January 2024 for assistance: 70% × 5520 = 3864; 9520 − 3864 = 5656.
    assert amounts(s2) == ["20480.00", "0.00", "0.00", "3864.00", "0.00", "5656.00"]
    assert s2.category is ML


# == 4. Jiangsu's end-of-month grace from the decision month (§4.2) ============================

LOST_LATE = rec(ML, date(2014, 1, 1), date(2016, 3, 10), decided=date(2016, 5, 20))
# SECONDARY, ps 18000: basic 75% × (18000 − 600) = 13050; CI base 4950 < 15000: 0.
# With a key category: assistance 70% × 4950 = 3465, out of pocket 20000 − 13050 − 3465 = 3485.
ASSISTED = ["13050.00", "0.00", "0.00", "3465.00", "0.00", "3485.00"]
NOT_ASSISTED = ["13050.00", "0.00", "0.00", "0.00", "0.00", "6950.00"]


def jiangsu_stay(admitted: date, discharged: date | None = None) -> Visit:
    return visit("v1", admitted, "20000.00", "18000.00", discharged=discharged)


@pytest.mark.parametrize(
    ("admitted", "discharged", "expected"),
    [
        pytest.param(date(2016, 5, 25), date(2016, 5, 28), ASSISTED, id="may"),
        pytest.param(date(2016, 5, 30), date(2016, 6, 3), ASSISTED, id="may-into-june"),
        pytest.param(date(2016, 6, 1), date(2016, 6, 5), NOT_ASSISTED, id="june"),
    ],
)
def test_a_loss_decided_late_counts_to_the_end_of_the_decision_month(
    admitted: date, discharged: date, expected: list[str]
) -> None:
    [s] = settle(person(JIANGSU, LOST_LATE), jiangsu_stay(admitted, discharged))
    assert amounts(s) == expected
    if expected == ASSISTED:
        assert s.category is ML
        [record] = s.explanation.category.records
        assert record.rules == (CountingRule.END_OF_MONTH_GRACE,)
        assert "2016-05-31" in record.reason
        assert "decided 2016-05-20" in record.reason


@pytest.mark.parametrize(
    ("decided", "admitted", "expected"),
    [
        pytest.param(None, date(2016, 3, 25), ASSISTED, id="no-decision-march"),
        pytest.param(None, date(2016, 4, 1), NOT_ASSISTED, id="no-decision-april"),
        pytest.param(date(2016, 2, 20), date(2016, 3, 31), ASSISTED, id="decided-early-march"),
        pytest.param(date(2016, 2, 20), date(2016, 4, 2), NOT_ASSISTED, id="decided-early-april"),
    ],
)
def test_without_a_later_decision_the_grace_ends_with_the_month_of_valid_to(
    decided: date | None, admitted: date, expected: list[str]
) -> None:
    record = rec(ML, date(2014, 1, 1), date(2016, 3, 10), decided=decided)
    [s] = settle(person(JIANGSU, record), jiangsu_stay(admitted))
    assert amounts(s) == expected


@pytest.mark.parametrize(
    "category",
    [
        Category.MINIMUM_LIVING,
        Category.EXTREME_POVERTY,
        Category.DOWNSIZED_1960S_WORKER,
        Category.PRIORITY_ENTITLED,
        Category.ORPHAN,
        Category.DISTRESSED_WORKER,
    ],
)
def test_every_grace_category_keeps_its_key_schedule_to_the_decision_month(
    category: Category,
) -> None:
    record = rec(category, date(2014, 1, 1), date(2016, 3, 10), decided=date(2016, 5, 20))
    [s] = settle(person(JIANGSU, record), jiangsu_stay(date(2016, 5, 25)))
    assert amounts(s) == ASSISTED
    assert s.category is category


@pytest.mark.parametrize(
    "category", [Category.LOW_INCOME, Category.TEMPORARY_ASSISTANCE_SERIOUS_ILLNESS]
)
def test_a_category_outside_the_grace_list_ends_on_its_valid_to(category: Category) -> None:
    record = rec(category, date(2014, 1, 1), date(2016, 3, 10), decided=date(2016, 5, 20))
    [after] = settle(person(JIANGSU, record), jiangsu_stay(date(2016, 3, 20)))
    assert amounts(after) == NOT_ASSISTED
    assert after.category is None
    [before] = settle(person(JIANGSU, record), jiangsu_stay(date(2016, 3, 5), date(2016, 3, 8)))
    if category is Category.LOW_INCOME:
        # LOW_INCOME: D 1000, 55% up to 20000: 55% × (4950 − 1000) = 2172.50;
        # 20000 − 13050 − 2172.50 = 4777.50.
        assert amounts(before) == ["13050.00", "0.00", "0.00", "2172.50", "0.00", "4777.50"]
    else:
        assert amounts(before) == ASSISTED


def test_a_case_file_decided_on_reaches_the_engine() -> None:
    case = {
        "person": {
            "regionCode": JIANGSU,
            "birthDate": "1966-02-02",
            "categories": [
                {
                    "category": "MINIMUM_LIVING",
                    "validFrom": "2014-01-01",
                    "validTo": "2016-03-10",
                    "decidedOn": "2016-05-20",
                }
            ],
        },
        "visits": [
            {
                "id": f"v{month}",
                "type": "INPATIENT",
                "hospitalLevel": "SECONDARY",
                "admissionDate": f"2016-0{month}-25",
                "totalCost": "20000.00",
                "policyScopeCost": "18000.00",
            }
            for month in (4, 5, 6)
        ],
    }
    entries = simulate(case, POLICIES)["visits"]
    # April and May within the grace (to 2016-05-31): 3465 each on the shared ledger
    # (70% × 4950, no deductible, cap 100000); June: nothing.
    assert [(e["category"], e["assistance"]) for e in entries] == [
        ("MINIMUM_LIVING", "3465.00"),
        ("MINIMUM_LIVING", "3465.00"),
        (None, "0.00"),
    ]


# == 5. Uninsured persons (§5) =================================================================


def test_jiangsu_key_category_uninsured_gets_seventy_percent_of_the_policy_scope_cost() -> None:
    who = person(JIANGSU, rec(ML, date(2010, 1, 1)), insured=False)
    [s] = settle(who, visit("v1", date(2016, 4, 1), "22000.00", "20000.00"))
    # no insurance; assistance 70% × 20000 = 14000; 22000 − 14000 = 8000.
    assert amounts(s) == ["0.00", "0.00", "0.00", "14000.00", "0.00", "8000.00"]
    assert s.category is ML
    assert line(s, ASSISTANCE).stage == "assistance"
    assert line(s, ASSISTANCE).base == Decimal("20000.00")
    assert not line(s, BASIC).applied
    # P16: ORPHAN, ps 9000: 70% = 6300.
    [p16] = settle(
        person(JIANGSU, rec(ORPHAN, date(2010, 1, 1)), insured=False, born=date(2008, 1, 1)),
        visit("v1", date(2016, 3, 1), "10000.00", "9000.00", discharged=date(2016, 3, 10)),
    )
    assert amounts(p16) == ["0.00", "0.00", "0.00", "6300.00", "0.00", "3700.00"]


def test_jiangsu_uninsured_assistance_shares_the_main_ledger_and_its_cap() -> None:
    who = person(JIANGSU, rec(ML, date(2010, 1, 1)), insured=False)
    v1 = visit("v1", date(2016, 3, 1), "150000.00", "140000.00", TERTIARY)
    v2 = visit("v2", date(2016, 6, 1), "3000.00", level=None, kind=CHRONIC)
    v3 = visit("v3", date(2016, 9, 1), "10000.00")
    s1, s2, s3 = settle(who, v1, v2, v3)
    # v1: 70% × 140000 = 98000; 150000 − 98000 = 52000.
    # v2 (chronic): 70% × 3000 = 2100, cap 100000 leaves 2000; 3000 − 2000 = 1000.
    # v3: the cap is spent: 0.
    assert amounts(s1) == ["0.00", "0.00", "0.00", "98000.00", "0.00", "52000.00"]
    assert amounts(s2) == ["0.00", "0.00", "0.00", "2000.00", "0.00", "1000.00"]
    assert amounts(s3) == ["0.00", "0.00", "0.00", "0.00", "0.00", "10000.00"]
    after = ledgers(who, v1, v2, v3)[-1]
    assert after.totals(Stage.ASSISTANCE) == totals("153000.00", "100000.00")
    assert after.totals(Stage.ASSISTANCE_UNINSURED) == totals("0.00", "0.00")


def test_jiangsu_low_income_uninsured_gets_nothing() -> None:
    who = person(JIANGSU, rec(LOW_INCOME, date(2010, 1, 1)), insured=False)
    [s] = settle(who, visit("v1", date(2016, 4, 1), "22000.00", "20000.00"))
    assert amounts(s) == ["0.00", "0.00", "0.00", "0.00", "0.00", "22000.00"]
    assert not line(s, ASSISTANCE).applied
    assert "not insured" in line(s, ASSISTANCE).reason
    assert s.category is LOW_INCOME
    # with a key category as well, the key category is assisted: 70% × 20000 = 14000.
    both = person(JIANGSU, rec(LOW_INCOME, date(2010, 1, 1)), rec(ML, date(2010, 1, 1)))
    [t] = settle(
        dataclasses.replace(both, insured=False),
        visit("v1", date(2016, 4, 1), "22000.00", "20000.00"),
    )
    assert (t.payments[ASSISTANCE], t.category) == (Decimal("14000.00"), ML)


def test_uninsured_general_outpatient_and_non_compliant_referral_get_nothing() -> None:
    who = person(JIANGSU, rec(ML, date(2010, 1, 1)), insured=False)
    [general] = settle(who, visit("v1", date(2016, 4, 1), "300.00", level=None, kind=GENERAL))
    assert amounts(general) == ["0.00", "0.00", "0.00", "0.00", "0.00", "300.00"]
    [refused] = settle(who, visit("v1", date(2016, 4, 1), "22000.00", "20000.00", referral=False))
    assert amounts(refused) == ["0.00", "0.00", "0.00", "0.00", "0.00", "22000.00"]
    assert "referral" in line(refused, ASSISTANCE).reason


@pytest.mark.parametrize(
    ("region", "admitted", "policy_id"),
    [(PANZHIHUA, date(2023, 3, 1), "510400-2023"), (JINING, date(2022, 3, 1), "370800-2021")],
)
def test_policies_without_an_uninsured_section_pay_nothing_and_say_so(
    region: str, admitted: date, policy_id: str
) -> None:
    who = person(region, rec(ML, date(2020, 1, 1)), insured=False)
    [s] = settle(who, visit("v1", admitted, "100000.00", level=TERTIARY))
    assert amounts(s) == ["0.00", "0.00", "0.00", "0.00", "0.00", "100000.00"]
    assert s.category is ML
    for payer in (ASSISTANCE, SECONDARY_ASSISTANCE):
        assert not line(s, payer).applied
        assert "defines no assistance for uninsured" in line(s, payer).reason
        assert policy_id in line(s, payer).reason
    text = s.explanation.render_text()
    assert "defines no assistance for uninsured" in text


# == 6. 济宁 (§6) =================================================================================


@pytest.mark.parametrize("category", [MON, MLI, II])
def test_jining_other_needy_get_deductible_1000_fifty_percent_and_reassistance(
    category: Category,
) -> None:
    who = person(JINING, rec(category, date(2021, 5, 1)))
    [s] = settle(who, visit("v1", date(2022, 9, 1), "45000.00", "40000.00"))
    # P21: basic 75% × (40000 − 500) = 29625; CI base 10375 < 15000: 0;
    # assistance 50% × (10375 − 1000) = 4687.50; 再救助 70% × (5687.50 − 5000) = 481.25;
    # 45000 − 29625 − 4687.50 − 481.25 = 10206.25.
    assert amounts(s) == ["29625.00", "0.00", "0.00", "4687.50", "481.25", "10206.25"]
    assert s.category is category
    assert line(s, ASSISTANCE).deductible == Decimal("1000")
    assert line(s, SECONDARY_ASSISTANCE).deductible == Decimal("5000")


def test_jining_monitored_with_critical_illness_and_reassistance() -> None:
    who = person(JINING, rec(MON, date(2021, 5, 1)))
    [s] = settle(who, visit("v1", date(2023, 5, 1), "65000.00", "60000.00", TERTIARY))
    # basic 60% × (60000 − 1000) = 35400; CI 60% × (24600 − 15000) = 5760;
    # assistance 50% × (18840 − 1000) = 8920; 再救助 70% × (9920 − 5000) = 3444;
    # 65000 − 35400 − 5760 − 8920 − 3444 = 11476.
    assert amounts(s) == ["35400.00", "5760.00", "0.00", "8920.00", "3444.00", "11476.00"]


def test_jining_other_needy_hit_the_assistance_cap_then_reassistance() -> None:
    who = person(JINING, rec(II, date(2021, 5, 1)))
    [s] = settle(who, visit("v1", date(2023, 5, 1), "150000.00", level=TERTIARY))
    # basic 60% × 149000 = 89400; CI 60% × (60600 − 15000) = 27360;
    # assistance 50% × (33240 − 1000) = 16120 → cap 10000;
    # 再救助 70% × (23240 − 5000) = 12768; 150000 − 89400 − 27360 − 10000 − 12768 = 10472.
    assert amounts(s) == ["89400.00", "27360.00", "0.00", "10000.00", "12768.00", "10472.00"]


def test_jining_every_cap_at_once() -> None:
    who = person(JINING, rec(MON, date(2021, 5, 1)))
    [s] = settle(who, visit("v1", date(2023, 5, 1), "400000.00", level=TERTIARY))
    # basic 60% × 399000 = 239400 → cap 200000;
    # CI base 200000: 60% × 85000 + 70% × 100000 = 121000;
    # assistance 50% × (79000 − 1000) = 39000 → cap 10000;
    # 再救助 70% × (69000 − 5000) = 44800 → cap 20000;
    # 400000 − 200000 − 121000 − 10000 − 20000 = 49000.
    assert amounts(s) == ["200000.00", "121000.00", "0.00", "10000.00", "20000.00", "49000.00"]


def test_jining_other_needy_deductible_is_cumulative_over_the_year() -> None:
    who = person(JINING, rec(MON, date(2021, 5, 1)))
    v1 = visit("v1", date(2022, 3, 1), "2500.00")
    v2 = visit("v2", date(2022, 7, 1), "4500.00")
    s1, s2 = settle(who, v1, v2)
    # v1: basic 75% × 2000 = 1500; assistance base 1000 = D 1000: 0; 2500 − 1500 = 1000.
    # v2: basic 75% × 4000 = 3000; assistance base 1500 over B0 1000: 50% × 1500 = 750;
    #     再救助 base 750 over B0 1000: 1750 < 5000: 0; 4500 − 3000 − 750 = 750.
    assert amounts(s1) == ["1500.00", "0.00", "0.00", "0.00", "0.00", "1000.00"]
    assert amounts(s2) == ["3000.00", "0.00", "0.00", "750.00", "0.00", "750.00"]


def test_jining_orphan_is_a_key_object() -> None:
    who = person(JINING, rec(ORPHAN, date(2015, 1, 1)), born=date(2010, 1, 1))
    [s] = settle(who, visit("v1", date(2022, 9, 1), "30000.00", "26000.00"))
    # basic 75% × 25500 = 19125; CI 0; assistance D 0, 70% × 6875 = 4812.50;
    # 再救助 base 2062.50 < 5000: 0; 30000 − 19125 − 4812.50 = 6062.50.
    assert amounts(s) == ["19125.00", "0.00", "0.00", "4812.50", "0.00", "6062.50"]
    assert s.category is ORPHAN
    assert line(s, ASSISTANCE).deductible == Decimal("0")


def test_jining_chronic_visits_get_neither_assistance_nor_reassistance() -> None:
    who = person(JINING, rec(MON, date(2021, 5, 1)))
    [s] = settle(who, visit("v1", date(2022, 3, 1), "20000.00", level=None, kind=CHRONIC))
    # basic chronic 60% × 20000 = 12000; CI 60% × (8000 − 15000 → 0) = 0; nothing else.
    assert amounts(s) == ["12000.00", "0.00", "0.00", "0.00", "0.00", "8000.00"]
    assert s.category is MON


# == 7. 湖南: +10 points for fee-for-service stays only (§6, §10) ===============================

HUNAN_RP = rec(RP, date(2016, 1, 1))


def test_hunan_special_disease_stay_gets_no_tilt_bonus() -> None:
    stay = visit(
        "v1",
        date(2017, 9, 1),
        "90000.00",
        "80000.00",
        TERTIARY,
        discharged=date(2017, 10, 10),
        diagnosis="C16.2",
        special=True,
    )
    [s] = settle(person(HUNAN, HUNAN_RP, born=date(1961, 2, 2)), stay)
    # P14: no deductible, no bonus: 55% × 80000 = 44000; CI D 7500 (tilted), base 36000:
    # 50% × 28500 = 14250; 90000 − 58250 = 31750.
    assert amounts(s) == ["44000.00", "14250.00", "0.00", "0.00", "0.00", "31750.00"]
    basic = line(s, BASIC)
    assert basic.deductible == Decimal("0")
    assert any("fee-for-service" in note for note in basic.notes)


def test_hunan_same_diagnosis_at_a_non_designated_hospital_gets_the_bonus_and_deductible() -> None:
    stay = visit("v1", date(2017, 9, 1), "90000.00", "80000.00", TERTIARY, diagnosis="C16.2")
    [s] = settle(person(HUNAN, HUNAN_RP), stay)
    # deductible 1000 and 55% + 10 points: 65% × 79000 = 51350;
    # CI base 28650: 50% × (28650 − 7500) = 10575; 90000 − 51350 − 10575 = 28075.
    assert amounts(s) == ["51350.00", "10575.00", "0.00", "0.00", "0.00", "28075.00"]
    notes = " ".join(line(s, BASIC).notes)
    assert "not at a designated hospital" in notes
    assert "tilt for REGISTERED_POOR" in notes


@pytest.mark.parametrize("diagnosis", ["N185", "N18.5", "n18.5", " N18.5 ", "N18.50"])
def test_hunan_diagnosis_codes_match_without_dots_and_case(diagnosis: str) -> None:
    stay = visit("v1", date(2019, 6, 1), "20000.00", diagnosis=diagnosis, special=True)
    [s] = settle(person(HUNAN, HUNAN_RP), stay)
    # special disease: 70% × 20000 = 14000, no bonus; CI base 6000 < 7500: 0.
    assert amounts(s) == ["14000.00", "0.00", "0.00", "0.00", "0.00", "6000.00"]


def test_hunan_a_diagnosis_not_listed_is_a_fee_for_service_stay() -> None:
    stay = visit("v1", date(2019, 6, 1), "20000.00", diagnosis="N18.4", special=True)
    [s] = settle(person(HUNAN, HUNAN_RP), stay)
    # deductible 500, 70% + 10 points: 80% × 19500 = 15600; 20000 − 15600 = 4400.
    assert amounts(s) == ["15600.00", "0.00", "0.00", "0.00", "0.00", "4400.00"]


@pytest.mark.parametrize("category", [RP, EP])
def test_hunan_the_waiver_is_mandatory_even_when_deductible_plus_bonus_would_pay_more(
    category: Category,
) -> None:
    stay = visit("v1", date(2019, 6, 1), "20000.00", level=PRIMARY, diagnosis="C18", special=True)
    [s] = settle(person(HUNAN, rec(category, date(2016, 1, 1))), stay)
    # special disease: 85% × 20000 = 17000 (deductible 200 + bonus would be 95% × 19800 = 18810);
    # CI base 3000: 0; 20000 − 17000 = 3000.
    assert amounts(s) == ["17000.00", "0.00", "0.00", "0.00", "0.00", "3000.00"]


# == 8. 攀枝花 monitoring income standard by year (§6) ==========================================


@pytest.mark.parametrize(
    ("admitted", "secondary", "out_of_pocket"),
    [
        # threshold 7500: 50% × (9354.60 − 7500) = 927.30; OOP 9354.60 − 927.30 = 8427.30
        pytest.param(date(2023, 6, 1), "927.30", "8427.30", id="2023"),
        # threshold 8400: 50% × (9354.60 − 8400) = 477.30; OOP 9354.60 − 477.30 = 8877.30
        pytest.param(date(2026, 6, 1), "477.30", "8877.30", id="2026"),
    ],
)
def test_panzhihua_secondary_threshold_is_the_standard_of_the_settlement_year(
    admitted: date, secondary: str, out_of_pocket: str
) -> None:
    who = person(PANZHIHUA, rec(ML, date(2020, 1, 1)))
    [s] = settle(who, visit("v1", admitted, "200000.00", level=TERTIARY))
    # basic 65% × 199200 = 129480; CI (tilted: D 10000, 65%) 65% × (70520 − 10000) = 39338;
    # assistance 70% × (70520 − 39338 = 31182) = 21827.40; secondary base 9354.60.
    assert amounts(s) == ["129480.00", "39338.00", "0.00", "21827.40", secondary, out_of_pocket]


@pytest.mark.parametrize(
    ("admitted", "threshold"),
    [
        (date(2023, 2, 1), "7500"),
        (date(2024, 6, 1), "7800"),
        (date(2025, 6, 1), "8100"),
        (date(2026, 6, 1), "8400"),
        (date(2027, 12, 31), "8700"),
        (date(2028, 1, 10), "9000"),
    ],
)
def test_panzhihua_secondary_threshold_for_every_year_in_force(
    admitted: date, threshold: str
) -> None:
    who = person(PANZHIHUA, rec(II, date(2020, 1, 1)))
    [s] = settle(who, visit("v1", admitted, "100000.00", level=TERTIARY))
    secondary = line(s, SECONDARY_ASSISTANCE)
    assert secondary.applied
    assert secondary.deductible == Decimal(threshold)


@pytest.mark.parametrize(
    ("admitted", "deductible"),
    [(date(2023, 6, 1), "2100.00"), (date(2026, 6, 1), "2400.00")],
)
def test_panzhihua_monitored_deductible_follows_the_previous_years_pcdi(
    admitted: date, deductible: str
) -> None:
    # 5% of PCDI 2022 = 42000 → 2100; 5% of PCDI 2025 = 48000 → 2400.
    who = person(PANZHIHUA, rec(MON, date(2020, 1, 1)))
    [s] = settle(who, visit("v1", admitted, "30000.00", "26000.00"))
    assert line(s, ASSISTANCE).deductible == Decimal(deductible)


# == 9. The loader's v2 refusals ================================================================


def refused(tmp_path: Path, name: str, old: str, new: str) -> PolicyFileError:
    (tmp_path / name).write_text(edited(name, old, new), encoding="utf-8")
    with pytest.raises(PolicyFileError) as caught:
        load_policies(tmp_path)
    assert caught.value.file == name
    return caught.value


@pytest.mark.parametrize(
    ("old", "key"),
    [
        ("  2025: {value: 8100, since: 2023-02-01, assumed: true}\n", "monitoring_standard.2025"),
        ("  2028: {value: 9000, since: 2023-02-01, assumed: true}\n", "monitoring_standard.2028"),
        ("  2024: {value: 46000, since: 2023-02-01, assumed: true}\n", "pcdi.2024"),
        ("  2027: {value: 52000, since: 2023-02-01, assumed: true}\n", "pcdi.2027"),
    ],
)
def test_a_gap_in_a_yearly_table_is_refused_naming_the_missing_year(
    tmp_path: Path, old: str, key: str
) -> None:
    error = refused(tmp_path, "510400-2023.yaml", old, "")
    assert error.key.startswith(f"{key} (line ")
    assert "missing" in error.reason


def test_a_monitoring_standard_share_without_the_table_is_refused(tmp_path: Path) -> None:
    table = "".join(
        f"  {year}: {{value: {value}, since: 2023-02-01, assumed: true}}\n"
        for year, value in zip(range(2023, 2029), range(7500, 9001, 300), strict=True)
    )
    error = refused(tmp_path, "510400-2023.yaml", "monitoring_standard:\n" + table, "")
    assert error.key.startswith("secondary_assistance.threshold (line ")
    assert "monitoring" in error.reason


def test_an_unknown_uninsured_ledger_is_refused(tmp_path: Path) -> None:
    error = refused(
        tmp_path,
        "320000-2015.yaml",
        "ledger: {value: assistance,",
        "ledger: {value: shared,",
    )
    assert error.key.startswith("uninsured.ledger.value (line ")
    assert "shared" in error.reason


def test_the_uninsured_ledger_may_be_its_own(tmp_path: Path) -> None:
    (tmp_path / "320000-2015.yaml").write_text(
        edited(
            "320000-2015.yaml",
            "ledger: {value: assistance,",
            "ledger: {value: assistance.uninsured,",
        ),
        encoding="utf-8",
    )
    policies = load_policies(tmp_path)
    who = person(JIANGSU, rec(ML, date(2010, 1, 1)), insured=False)
    [s] = settle(who, visit("v1", date(2016, 4, 1), "22000.00", "20000.00"), policies=policies)
    assert s.payments[ASSISTANCE] == Decimal("14000.00")
    assert line(s, ASSISTANCE).stage == "assistance.uninsured"


BONUS_LINE = (
    '      ratio_bonus: {value: 0.10, since: 2017-08-01, clause: "湘人社发〔2017〕51号 二"}\n'
)
CI_FACTOR_LINE = (
    '    deductible_factor: {value: 0.5, since: 2017-08-01, clause: "湘人社发〔2017〕51号 二"}\n'
)
FEE_ONLY = (
    'fee_for_service_only: {value: true, since: 2017-08-01, clause: "湘人社发〔2017〕51号 二"}\n'
)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        pytest.param(
            BONUS_LINE,
            '      deductible_factor: {value: 0.9, since: 2017-08-01, clause: "x"}\n',
            "basic.inpatient.tilt.fee_for_service_only",
            id="basic-tilt-with-a-factor-instead",
        ),
        pytest.param(
            BONUS_LINE, "", "basic.inpatient.tilt.ratio_bonus", id="basic-tilt-with-nothing-else"
        ),
        pytest.param(
            CI_FACTOR_LINE,
            CI_FACTOR_LINE + "    " + FEE_ONLY,
            "critical_illness.tilt.fee_for_service_only",
            id="ci-tilt-without-bonus",
        ),
    ],
)
def test_fee_for_service_only_without_a_ratio_bonus_is_refused(
    tmp_path: Path, old: str, new: str, key: str
) -> None:
    error = refused(tmp_path, "430000-2017.yaml", old, new)
    assert error.key.startswith(f"{key} (line ")
    assert "ratio_bonus" in error.reason


def test_uninsured_listing_a_category_outside_the_priority_list_is_refused(
    tmp_path: Path,
) -> None:
    error = refused(
        tmp_path,
        "320000-2015.yaml",
        "value: [MINIMUM_LIVING, EXTREME_POVERTY, TEMPORARY_ASSISTANCE_SERIOUS_ILLNESS, "
        "DOWNSIZED_1960S_WORKER, PRIORITY_ENTITLED, ORPHAN, DISTRESSED_WORKER]",
        "value: [MINIMUM_LIVING, EXTREME_POVERTY, TEMPORARY_ASSISTANCE_SERIOUS_ILLNESS, "
        "DOWNSIZED_1960S_WORKER, PRIORITY_ENTITLED, ORPHAN, DISTRESSED_WORKER, MONITORED]",
    )
    assert error.key.startswith("uninsured.categories.value[7] (line ")
    assert "MONITORED" in error.reason
    assert "priority" in error.reason


def test_uninsured_general_outpatient_in_a_policy_file_is_refused(tmp_path: Path) -> None:
    error = refused(
        tmp_path,
        "320000-2015.yaml",
        "visit_types: {value: [INPATIENT, OUTPATIENT_CHRONIC], since: 2015-12-21, assumed: true}",
        "visit_types: {value: [INPATIENT, OUTPATIENT_GENERAL], since: 2015-12-21, assumed: true}",
    )
    assert error.key.startswith("uninsured.visit_types (line ")
