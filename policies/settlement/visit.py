"""What the engine settles: a person, a visit (with reported upstream payments), and the
settlement of one visit; the validation of each (SETTLEMENT.md §5, §8).

Every bad input raises :class:`~policies.errors.InvalidInput` naming the field and the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from policies.benefits.model import Policy
from policies.errors import InvalidInput
from policies.money import CENT, ZERO, money
from policies.settlement.categories import CategoryRecord
from policies.settlement.explanation import Explanation
from policies.vocabulary import PAYERS, Category, HospitalLevel, Payer, VisitType

INSURANCE_VISIT_TYPES = frozenset({VisitType.INPATIENT, VisitType.OUTPATIENT_CHRONIC})
"""Critical illness and inclusive commercial insurance cover these visit types (§5)."""


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
        if payer not in REPORTABLE_PAYERS:
            return None
        amount: Decimal | None = getattr(self, payer.field_name)
        return amount

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
    if not (isinstance(code, str) and len(code) == 6 and code.isascii() and code.isdigit()):
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
