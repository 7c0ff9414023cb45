"""The pure one-stop settlement engine (SETTLEMENT.md §3–§5).

One visit and the person's ledger for the settlement year go in; the five payers' payments, an
explanation and the next ledger come out. No database, no GraphQL, no I/O: the gateway's
``settleClaim``, ``simulateSettlement`` and ``medgw simulate`` all call :func:`settle_visit` or
:func:`settle_visits`.

Payers pay in order (保险在先、救助在后), each on what the previous ones left:
basic → critical illness (ps − basic) → inclusive commercial (ps − basic − CI) → assistance
(ps − basic − CI − commercial; general outpatient: ps − basic) → secondary assistance (the rest).

>>> from policies.benefits import load_policies
>>> person = Person("510402", date(1970, 1, 1),
...                 categories=(CategoryRecord(Category.MINIMUM_LIVING, date(2021, 6, 1)),))
>>> visit = Visit("v1", VisitType.INPATIENT, HospitalLevel.SECONDARY, date(2023, 3, 1),
...               date(2023, 3, 10), Decimal("30000.00"), Decimal("26000.00"))
>>> settlement, ledger = settle_visit(load_policies(), person, visit, Ledger.empty(2023))
>>> [str(settlement.payments[p]) for p in PAYERS], str(settlement.out_of_pocket)
(['20480.00', '0.00', '0.00', '3864.00', '0.00'], '5656.00')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from policies.benefits import Policy, PolicySet
from policies.categories import CategoryRecord, Held, categories_held
from policies.errors import InvalidInput
from policies.explanation import Candidate, CategoryExplanation, Explanation
from policies.ledger import Ledger, Stage
from policies.payers import (
    INSURANCE_VISIT_TYPES,
    Context,
    basic_insurance,
    critical_illness,
    inclusive_commercial,
    medical_assistance,
    secondary_assistance,
    tilted_categories,
)
from policies.schedule import CENT, ZERO, money
from policies.vocabulary import PAYERS, Category, HospitalLevel, Payer, VisitType

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


@dataclass(frozen=True)
class Person:
    region_code: str
    birth_date: date
    insured: bool = True
    inclusive_commercial: bool = False
    categories: tuple[CategoryRecord, ...] = ()

    def age_on(self, day: date) -> int:
        """Age in full years on ``day``.

        >>> Person("430521", date(2007, 6, 15)).age_on(date(2021, 6, 14))
        13
        """
        birthday_passed = (day.month, day.day) >= (self.birth_date.month, self.birth_date.day)
        return day.year - self.birth_date.year - (0 if birthday_passed else 1)


REPORTABLE_PAYERS: tuple[Payer, ...] = (
    Payer.BASIC_INSURANCE,
    Payer.CRITICAL_ILLNESS,
    Payer.INCLUSIVE_COMMERCIAL,
)
"""Insurance payers whose amount the core system or the insurer may report (§5), in order."""


@dataclass(frozen=True)
class Reported:
    """Insurance payments determined upstream (来自核心系统的结算结果, §5): a prefix of
    basic → critical illness → inclusive commercial; None = computed by the engine."""

    basic_insurance: Decimal | None = None
    critical_illness: Decimal | None = None
    inclusive_commercial: Decimal | None = None

    def amount(self, payer: Payer) -> Decimal | None:
        return {
            Payer.BASIC_INSURANCE: self.basic_insurance,
            Payer.CRITICAL_ILLNESS: self.critical_illness,
            Payer.INCLUSIVE_COMMERCIAL: self.inclusive_commercial,
        }.get(payer)

    @property
    def payers(self) -> tuple[Payer, ...]:
        return tuple(p for p in REPORTABLE_PAYERS if self.amount(p) is not None)

    def to_dict(self) -> dict[str, str]:
        return {p.value: money(a) for p in self.payers for a in [self.amount(p)] if a is not None}


@dataclass(frozen=True)
class Visit:
    id: str
    type: VisitType
    hospital_level: HospitalLevel | None
    admission_date: date
    discharge_date: date
    total_cost: Decimal
    policy_scope_cost: Decimal
    referral_compliant: bool = True
    in_province: bool = True
    diagnosis: str | None = None
    special_treatment_hospital: bool = False
    reported: Reported | None = None

    @property
    def settlement_year(self) -> int:
        """The calendar year of admission (§3)."""
        return self.admission_date.year

    def reported_amount(self, payer: Payer) -> Decimal | None:
        return None if self.reported is None else self.reported.amount(payer)


@dataclass(frozen=True)
class VisitSettlement:
    visit_id: str
    policy_id: str
    settlement_year: int
    category: Category | None
    payments: Mapping[Payer, Decimal]
    """All five payers, in payment order."""
    out_of_pocket: Decimal
    explanation: Explanation

    @property
    def preferential_treatment(self) -> bool:
        return self.explanation.preferential_treatment

    def to_dict(self) -> dict[str, str | None]:
        """The §8 output entry: amounts as two-decimal strings, category null when none."""
        entry: dict[str, str | None] = {
            "id": self.visit_id,
            "policy": self.policy_id,
            "category": None if self.category is None else self.category.value,
        }
        entry.update({payer.value: money(self.payments[payer]) for payer in PAYERS})
        entry["outOfPocket"] = money(self.out_of_pocket)
        return entry


# -- validation --------------------------------------------------------------------------------


def _check_amount(value: object, field: str) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise InvalidInput(field, value, "must be a decimal amount")
    if value < 0:
        raise InvalidInput(field, value, "must not be negative")
    if value != value.quantize(CENT):
        raise InvalidInput(field, value, "must have at most 2 decimals")
    return value


def validate_person(person: Person, field: str = "person") -> None:
    """Refuse a malformed person (InvalidInput names ``field.<key>`` and the value)."""
    code = person.region_code
    if not (isinstance(code, str) and len(code) == 6 and code.isdigit()):
        raise InvalidInput(f"{field}.regionCode", code, "must be a 6-digit region code")
    for i, record in enumerate(person.categories):
        if record.valid_to is not None and record.valid_to < record.valid_from:
            raise InvalidInput(
                f"{field}.categories[{i}].validTo",
                record.valid_to.isoformat(),
                f"must not be before validFrom {record.valid_from.isoformat()}",
            )


def validate_visit(visit: Visit, field: str = "visit", birth_date: date | None = None) -> None:
    """Refuse a malformed visit (InvalidInput names ``field.<key>`` and the value)."""
    if not isinstance(visit.id, str) or not visit.id:
        raise InvalidInput(f"{field}.id", visit.id, "must be a non-empty string")
    total = _check_amount(visit.total_cost, f"{field}.totalCost")
    scope = _check_amount(visit.policy_scope_cost, f"{field}.policyScopeCost")
    if scope > total:
        raise InvalidInput(f"{field}.policyScopeCost", scope, f"must not exceed totalCost {total}")
    if visit.discharge_date < visit.admission_date:
        raise InvalidInput(
            f"{field}.dischargeDate",
            visit.discharge_date.isoformat(),
            f"must not be before admissionDate {visit.admission_date.isoformat()}",
        )
    if visit.type is VisitType.INPATIENT and visit.hospital_level is None:
        raise InvalidInput(f"{field}.hospitalLevel", None, "is required for INPATIENT visits")
    if birth_date is not None and visit.admission_date < birth_date:
        raise InvalidInput(
            f"{field}.admissionDate",
            visit.admission_date.isoformat(),
            f"is before the person's birthDate {birth_date.isoformat()}",
        )
    if visit.reported is not None:
        _validate_reported(visit, visit.reported, f"{field}.reported")


def _validate_reported(visit: Visit, reported: Reported, field: str) -> None:
    """§5: amounts ≥ 0 with two decimals, a prefix of the insurance payers, CI and commercial
    only on visits they cover, together never above the policy-scope cost."""
    total = ZERO
    gap: Payer | None = None
    for payer in REPORTABLE_PAYERS:
        amount = reported.amount(payer)
        if amount is None:
            gap = gap or payer
            continue
        at = f"{field}.{payer.value}"
        _check_amount(amount, at)
        if gap is not None:
            raise InvalidInput(
                at,
                money(amount),
                f"reported payers must be a prefix of {', '.join(REPORTABLE_PAYERS)}: "
                f"{gap.value} is not reported",
            )
        if payer is not Payer.BASIC_INSURANCE and visit.type not in INSURANCE_VISIT_TYPES:
            raise InvalidInput(
                at, money(amount), f"{payer.value} does not cover {visit.type.value} visits"
            )
        total += amount
        if total > visit.policy_scope_cost:
            raise InvalidInput(
                at,
                money(amount),
                f"reported payments ({money(total)}) exceed policyScopeCost "
                f"{money(visit.policy_scope_cost)}",
            )


def validate_reported_for(policy: Policy, person: Person, visit: Visit, field: str) -> None:
    """The reported amounts against who the person is and what the region has (§5)."""
    if visit.reported is None or not visit.reported.payers:
        return
    first = visit.reported.payers[0]
    if not person.insured:
        raise InvalidInput(
            f"{field}.reported.{first.value}",
            money(visit.reported.amount(first) or ZERO),
            "an uninsured visit has no insurance payment to report",
        )
    commercial = visit.reported.inclusive_commercial
    if commercial is not None:
        at = f"{field}.reported.inclusiveCommercial"
        if policy.inclusive_commercial is None:
            raise InvalidInput(
                at, money(commercial), f"policy {policy.id} has no inclusive commercial plan"
            )
        if not person.inclusive_commercial:
            raise InvalidInput(
                at, money(commercial), "the person is not enrolled in the inclusive commercial plan"
            )


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
        chosen,
        reason,
        held.records,
        held.priority,
        held.priority_reference,
        held_for_insurance=held.insurance,
        held_for_assistance=held.assistance,
        candidates=candidates,
    )
