"""Properties that hold for any person and any visits of a year, in all four bundled regions."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, timedelta
from decimal import Decimal
from random import Random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies.benefits import PolicySet, load_policies
from policies.settlement.engine import (
    CategoryRecord,
    Ledger,
    Person,
    Visit,
    VisitSettlement,
    settle_visit,
    settle_visits,
)
from policies.settlement.ledger import STAGE_PAYER, Stage
from policies.vocabulary import PAYERS, Category, HospitalLevel, VisitType

POLICIES: PolicySet = load_policies()

# Region code → the settlement years its bundled policy covers fully.
REGIONS = {
    "510402": (2023, 2027),  # 攀枝花 from 2023-02-01 (dates below start in February)
    "370811": (2021, 2030),
    "320102": (2016, 2030),
    "430521": (2018, 2030),
}
DIAGNOSES = [None, "C16.2", "C91.0", "N18.5", "Q21.1", "J18.9"]
PROPERTY_SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def cents(max_yuan: int) -> st.SearchStrategy[Decimal]:
    return st.integers(0, max_yuan * 100).map(lambda c: Decimal(c) / 100)


@st.composite
def records(draw: st.DrawFn, year: int) -> tuple[CategoryRecord, ...]:
    result: list[CategoryRecord] = []
    for _ in range(draw(st.integers(0, 3))):
        start = date(year - 2, 1, 1) + timedelta(days=draw(st.integers(0, 3 * 365)))
        length = draw(st.none() | st.integers(0, 500))
        end = None if length is None else start + timedelta(days=length)
        result.append(CategoryRecord(draw(st.sampled_from(list(Category))), start, end))
    return tuple(result)


@st.composite
def visits(draw: st.DrawFn, year: int) -> list[Visit]:
    result: list[Visit] = []
    for i in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(list(VisitType)))
        level = draw(st.sampled_from(list(HospitalLevel)))
        admitted = date(year, 2, 1) + timedelta(days=draw(st.integers(0, 320)))
        length = draw(st.integers(0, 40)) if kind is VisitType.INPATIENT else 0
        big = draw(st.sampled_from([2_000, 50_000, 600_000]))
        total = draw(cents(big))
        scope = min(draw(cents(big)), total)
        result.append(
            Visit(
                id=f"v{i}",
                type=kind,
                hospital_level=level
                if kind is VisitType.INPATIENT
                else draw(st.none() | st.just(level)),
                admission_date=admitted,
                discharge_date=admitted + timedelta(days=length),
                total_cost=total,
                policy_scope_cost=scope,
                referral_compliant=draw(st.booleans()),
                in_province=draw(st.booleans()),
                diagnosis=draw(st.sampled_from(DIAGNOSES)),
                special_treatment_hospital=draw(st.booleans()),
            )
        )
    return result


@st.composite
def cases(draw: st.DrawFn) -> tuple[Person, list[Visit]]:
    region = draw(st.sampled_from(sorted(REGIONS)))
    first, last = REGIONS[region]
    year = draw(st.integers(first, last))
    born = date(1930, 1, 1) + timedelta(days=draw(st.integers(0, (year - 1931) * 365)))
    person = Person(
        region_code=region,
        birth_date=born,
        insured=draw(st.booleans()),
        inclusive_commercial=draw(st.booleans()),
        categories=draw(records(year)),
    )
    return person, draw(visits(year))


def fold(person: Person, visits: list[Visit]) -> list[tuple[VisitSettlement, Ledger, Ledger]]:
    """(settlement, ledger before, ledger after) of each visit, one ledger per year."""
    ledgers: dict[int, Ledger] = {}
    steps: list[tuple[VisitSettlement, Ledger, Ledger]] = []
    for visit in visits:
        before = ledgers.get(visit.settlement_year, Ledger.empty(visit.settlement_year))
        settlement, after = settle_visit(POLICIES, person, visit, before)
        ledgers[visit.settlement_year] = after
        steps.append((settlement, before, after))
    return steps


@PROPERTY_SETTINGS
@given(cases())
def test_payments_are_never_negative_and_never_exceed_the_policy_scope_cost(
    case: tuple[Person, list[Visit]],
) -> None:
    person, visits = case
    for visit, settlement in zip(visits, settle_visits(POLICIES, person, visits), strict=True):
        assert set(settlement.payments) == set(PAYERS)
        assert all(amount >= 0 for amount in settlement.payments.values())
        assert all(
            amount == amount.quantize(Decimal("0.01")) for amount in settlement.payments.values()
        )
        paid = sum(settlement.payments.values(), Decimal(0))
        assert paid <= visit.policy_scope_cost
        assert settlement.out_of_pocket == visit.total_cost - paid
        assert settlement.out_of_pocket >= visit.total_cost - visit.policy_scope_cost


@PROPERTY_SETTINGS
@given(cases())
def test_no_yearly_cap_is_ever_exceeded(case: tuple[Person, list[Visit]]) -> None:
    person, visits = case
    for settlement, _, after in fold(person, visits):
        for line in settlement.explanation.lines:
            if not line.applied or line.cap is None:
                assert line.cap is None or line.paid == 0
                continue
            assert line.stage is not None
            assert line.cap_room_before is not None
            assert line.paid <= line.cap_room_before
            stages = (Stage(line.stage), *(Stage(s) for s in line.cap_shared_with))
            assert after.paid(*stages) <= line.cap


@PROPERTY_SETTINGS
@given(cases())
def test_the_ledger_adds_up_what_was_paid(case: tuple[Person, list[Visit]]) -> None:
    person, visits = case
    for settlement, before, after in fold(person, visits):
        for payer in PAYERS:
            added = after.paid_by_payer[payer] - before.paid_by_payer[payer]
            assert added == settlement.payments[payer]
        for stage in Stage:
            assert after.totals(stage).base >= before.totals(stage).base
        assert set(STAGE_PAYER) == set(Stage)


@st.composite
def two_year_cases(draw: st.DrawFn) -> tuple[Person, list[Visit]]:
    """A person with visits in two different settlement years of one policy."""
    region = draw(st.sampled_from([r for r, (first, last) in REGIONS.items() if last > first]))
    first, last = REGIONS[region]
    year = draw(st.integers(first, last - 1))
    person = Person(
        region_code=region,
        birth_date=date(1950, 5, 5),
        insured=draw(st.booleans()),
        inclusive_commercial=draw(st.booleans()),
        categories=draw(records(year)),
    )
    later = [dataclasses.replace(v, id=f"{v.id}-next") for v in draw(visits(year + 1))]
    return person, [*draw(visits(year)), *later]


@PROPERTY_SETTINGS
@given(two_year_cases(), st.randoms(use_true_random=False))
def test_each_year_is_settled_on_its_own_ledger(
    case: tuple[Person, list[Visit]], random: Random
) -> None:
    """Interleaving the visits of different years differently (each year's own order kept)
    changes nothing: one year's payments never move another's."""
    person, visits = case
    by_year: dict[int, list[Visit]] = {}
    for visit in visits:
        by_year.setdefault(visit.settlement_year, []).append(visit)
    queues = {year: list(reversed(year_visits)) for year, year_visits in by_year.items()}
    shuffled: list[Visit] = []
    while queues:
        year = random.choice(sorted(queues))
        shuffled.append(queues[year].pop())
        if not queues[year]:
            del queues[year]
    original = {s.visit_id: s for s in settle_visits(POLICIES, person, visits)}
    interleaved = {s.visit_id: s for s in settle_visits(POLICIES, person, shuffled)}
    assert interleaved == original
    assert len(by_year) == 2


@PROPERTY_SETTINGS
@given(cases())
def test_ledger_and_explanation_survive_json(case: tuple[Person, list[Visit]]) -> None:
    person, visits = case
    for settlement, _, after in fold(person, visits):
        assert Ledger.from_dict(json.loads(json.dumps(after.to_dict()))) == after
        explained = json.loads(json.dumps(settlement.explanation.model_dump(mode="json")))
        assert [line["paid"] for line in explained["lines"]] == [
            settlement.to_dict()[payer.value] for payer in PAYERS
        ]
