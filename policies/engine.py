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
from policies.categories import CategoryRecord, choose_category
from policies.errors import InvalidInput
from policies.explanation import Explanation
from policies.ledger import Ledger
from policies.payers import (
    INSURANCE_VISIT_TYPES,
    Context,
    basic_insurance,
    critical_illness,
    inclusive_commercial,
    medical_assistance,
    secondary_assistance,
)
from policies.schedule import CENT, ZERO, money
from policies.vocabulary import PAYERS, Category, HospitalLevel, Payer, VisitType

__all__ = [
    "INSURANCE_VISIT_TYPES",
    "CategoryRecord",
    "Ledger",
    "Person",
    "Visit",
    "VisitSettlement",
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

    @property
    def settlement_year(self) -> int:
        """The calendar year of admission (§3)."""
        return self.admission_date.year


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
    for visit in visits:
        year = visit.settlement_year
        settlement, ledgers[year] = settle_visit(
            policies, person, visit, ledgers.get(year) or Ledger.empty(year)
        )
        settlements.append(settlement)
    return settlements


def settle_visit(
    policies: PolicySet, person: Person, visit: Visit, ledger: Ledger
) -> tuple[VisitSettlement, Ledger]:
    """Settle one visit against the person's ledger for the admission year; pure.

    Raises InvalidInput for a malformed person, visit or a ledger of another year, and
    NoPolicyInForce when no policy covers the region on the admission date.
    """
    validate_person(person)
    validate_visit(visit, birth_date=person.birth_date)
    if ledger.year != visit.settlement_year:
        raise InvalidInput(
            "ledger.year",
            ledger.year,
            f"must be {visit.settlement_year}, the admission year of visit {visit.id}",
        )
    policy = policies.in_force(person.region_code, visit.admission_date)
    choice = choose_category(policy, person.categories, visit.admission_date, visit.discharge_date)
    ctx = Context(policy, person, visit, ledger, choice.chosen)

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
    increments = {o.stage: (o.base, o.line.paid) for o in outcomes if o.stage is not None}
    next_ledger = ledger.record(increments, out_of_pocket)
    explanation = Explanation(
        visit_id=visit.id,
        policy_id=policy.id,
        policy_title=policy.title,
        settlement_year=visit.settlement_year,
        category=choice,
        preferential_treatment=tilt_applies(policy, choice.chosen, visit.admission_date),
        lines=tuple(outcome.line for outcome in outcomes),
        total_cost=visit.total_cost,
        policy_scope_cost=scope,
        out_of_pocket=out_of_pocket,
    )
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
