"""The pure one-stop settlement engine (SETTLEMENT.md §3–§5).

One visit and the person's ledger for the settlement year go in; the five payers' payments, an
explanation and the next ledger come out. No database, no GraphQL, no I/O: the gateway's
``settleClaim``, ``simulateSettlement`` and ``medgw simulate`` all call :func:`settle_visit` or
:func:`settle_visits`.

Payers pay in order (保险在先、救助在后), each on what the previous ones left:
basic → critical illness (ps − basic) → inclusive commercial (ps − basic − CI) → assistance
(ps − basic − CI − commercial; general outpatient: ps − basic) → secondary assistance (the rest).

>>> from policies.benefits import load_policies
>>> from policies.vocabulary import PAYERS, HospitalLevel, VisitType
>>> person = Person("510402", date(1970, 1, 1),
...                 categories=(CategoryRecord(Category.MINIMUM_LIVING, date(2021, 6, 1)),))
>>> visit = Visit("v1", VisitType.INPATIENT, HospitalLevel.SECONDARY, date(2023, 3, 1),
...               date(2023, 3, 10), Decimal("30000.00"), Decimal("26000.00"))
>>> settlement, ledger = settle_visit(load_policies(), person, visit, Ledger.empty(2023))
>>> [str(settlement.payments[p]) for p in PAYERS], str(settlement.out_of_pocket)
(['20480.00', '0.00', '0.00', '3864.00', '0.00'], '5656.00')
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from policies.benefits.model import Policy, PolicySet
from policies.errors import InvalidInput
from policies.money import ZERO, money
from policies.settlement.categories import CategoryRecord, Held, categories_held
from policies.settlement.explanation import Candidate, CategoryExplanation, Explanation
from policies.settlement.ledger import Ledger, Stage
from policies.settlement.payers import (
    Context,
    basic_insurance,
    critical_illness,
    inclusive_commercial,
    medical_assistance,
    secondary_assistance,
    tilted_categories,
)
from policies.settlement.visit import (
    INSURANCE_VISIT_TYPES,
    REPORTABLE_PAYERS,
    Person,
    Reported,
    Visit,
    VisitSettlement,
    validate_person,
    validate_reported_for,
    validate_visit,
)
from policies.vocabulary import Category

__all__ = [
    "INSURANCE_VISIT_TYPES",
    "REPORTABLE_PAYERS",
    "CategoryRecord",
    "Ledger",
    "Person",
    "Reported",
    "Visit",
    "VisitSettlement",
    "preferential_on",
    "settle_visit",
    "settle_visits",
    "tilt_applies",
    "validate_person",
    "validate_visit",
]


# -- settlement --------------------------------------------------------------------------------


def tilt_applies(policy: Policy, category: Category | None, on: date | None = None) -> bool:
    """Whether the category gets preferential basic or critical-illness treatment (倾斜支付).

    >>> from policies.benefits import load_policies
    >>> p = load_policies().by_id("510400-2023")
    >>> tilt_applies(p, Category.ORPHAN), tilt_applies(p, Category.MONITORED), tilt_applies(p, None)
    (True, False, False)
    """
    if category is None:
        return False
    for tilt in (policy.basic.inpatient_tilt, policy.critical_illness.tilt):
        if tilt is not None:
            listed = tilt.categories.latest if on is None else tilt.categories.at(on)
            if category in listed.value:
                return True
    return False


def preferential_on(policy: Policy, records: Sequence[CategoryRecord], day: date) -> bool:
    """Whether any category held on ``day`` for the insurance stages is tilted (§4.5)."""
    held = categories_held(policy, records, day, day)
    return any(tilt_applies(policy, category, day) for category in held.insurance)


def settle_visits(
    policies: PolicySet, person: Person, visits: Sequence[Visit]
) -> list[VisitSettlement]:
    """Settle visits in the given order, one ledger per calendar year starting empty."""
    seen: set[str] = set()
    for i, visit in enumerate(visits):
        if visit.id in seen:
            raise InvalidInput(f"visits[{i}].id", visit.id, "duplicate visit id")
        seen.add(visit.id)
    ledgers: dict[int, Ledger] = {}
    settlements: list[VisitSettlement] = []
    for i, visit in enumerate(visits):
        year = visit.settlement_year
        settlement, ledgers[year] = settle_visit(
            policies, person, visit, ledgers.get(year) or Ledger.empty(year), field=f"visits[{i}]"
        )
        settlements.append(settlement)
    return settlements


def settle_visit(
    policies: PolicySet, person: Person, visit: Visit, ledger: Ledger, field: str = "visit"
) -> tuple[VisitSettlement, Ledger]:
    """Settle one visit against the person's ledger for the admission year; pure.

    Raises InvalidInput for a malformed person, visit or a ledger of another year, and
    NoPolicyInForce when no policy covers the region on the admission date.
    """
    validate_person(person)
    validate_visit(visit, field, birth_date=person.birth_date)
    if ledger.year != visit.settlement_year:
        raise InvalidInput(
            "ledger.year",
            ledger.year,
            f"must be {visit.settlement_year}, the admission year of visit {visit.id}",
        )
    policy = policies.in_force(person.region_code, visit.admission_date)
    validate_reported_for(policy, person, visit, field)
    held = categories_held(policy, person.categories, visit.admission_date, visit.discharge_date)
    ctx = Context(policy, person, visit, ledger, held)

    scope = visit.policy_scope_cost
    basic = basic_insurance(ctx)
    ci = critical_illness(ctx, scope - basic.line.paid)
    commercial = inclusive_commercial(ctx, scope - basic.line.paid - ci.line.paid)
    insured_part = basic.line.paid + ci.line.paid + commercial.line.paid
    assistance = medical_assistance(ctx, scope - insured_part, scope - basic.line.paid)
    secondary = secondary_assistance(ctx, scope - insured_part - assistance.line.paid)

    outcomes = (basic, ci, commercial, assistance, secondary)
    payments = {outcome.line.payer: outcome.line.paid for outcome in outcomes}
    out_of_pocket = visit.total_cost - sum(payments.values(), ZERO)
    increments: dict[Stage, tuple[Decimal, Decimal]] = {}
    for o in outcomes:
        if o.stage is not None:
            base, paid = increments.get(o.stage, (ZERO, ZERO))
            increments[o.stage] = (base + o.base, paid + o.line.paid)
    next_ledger = ledger.record(increments, out_of_pocket)
    category = _category_explanation(held, assistance.category, assistance.candidates)
    tilted = tilted_categories(ctx, policy.basic.inpatient_tilt) or tilted_categories(
        ctx, policy.critical_illness.tilt
    )
    explanation = Explanation(
        visit_id=visit.id,
        policy_id=policy.id,
        policy_title=policy.title,
        settlement_year=visit.settlement_year,
        category=category,
        preferential_treatment=bool(tilted),
        lines=tuple(outcome.line for outcome in outcomes),
        total_cost=visit.total_cost,
        policy_scope_cost=scope,
        out_of_pocket=out_of_pocket,
        reported=visit.reported.payers if visit.reported else (),
    )
    choice = category
    settlement = VisitSettlement(
        visit.id,
        policy.id,
        visit.settlement_year,
        choice.chosen,
        payments,
        out_of_pocket,
        explanation,
    )
    return settlement, next_ledger


def _category_explanation(
    held: Held, used: Category | None, candidates: tuple[Candidate, ...]
) -> CategoryExplanation:
    """The reported category (§4.6): the one whose assistance schedule was used; else the first
    category held for the assistance stages; None when none is held."""
    order = " > ".join(category.value for category in held.priority)
    if used is not None:
        chosen: Category | None = used
        if len(candidates) > 1:
            shown = ", ".join(f"{c.category.value} {money(c.paid)}" for c in candidates)
            reason = (
                f"categories held for assistance: {', '.join(held.assistance)}; each schedule "
                f"computed on the same ledger ({shown}): {used.value} pays most (待遇就高 item by "
                f"item; ties go to the first in {order}, {held.priority_reference})"
            )
        else:
            reason = f"{used.value}: its assistance schedule was used"
    elif held.assistance:
        chosen = held.assistance[0]
        reason = (
            f"no assistance schedule applied; {chosen.value} is the first category held in the "
            f"priority order {order}"
        )
    else:
        chosen = None
        why = "no category record" if not held.records else "no category record counts"
        reason = f"{why}: treated as an ordinary person (basic, critical illness, commercial only)"
    if held.insurance and chosen is not None:
        reason += (
            f"; insurance tilts and waivers look at every category held "
            f"({', '.join(held.insurance)})"
        )
    return CategoryExplanation(
        chosen=chosen,
        reason=reason,
        records=held.records,
        priority=held.priority,
        priority_reference=held.priority_reference,
        held_for_insurance=held.insurance,
        held_for_assistance=held.assistance,
        candidates=candidates,
    )
