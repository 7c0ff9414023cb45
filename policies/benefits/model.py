"""Benefit policies (SETTLEMENT.md §6): rules as data, read and validated from ``benefits/*.yaml``.

Every parameter is a :class:`Param`: a history of :class:`Value` (value, the date it takes effect,
and either the clause of the policy document that sets it or ``assumed``). Asking for a value
that is not in force raises :class:`ParameterNotInForce`; nothing silently becomes 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Generic, TypeVar

from policies.errors import InvalidInput, NoPolicyInForce
from policies.money import percent, round_money
from policies.vocabulary import Category, HospitalLevel, VisitType

T = TypeVar("T")


@dataclass(frozen=True)
class Segment:
    """One band of a schedule: ``ratio`` applies to the cumulative base up to ``up_to``.

    ``up_to`` is an absolute bound (not a width); ``None`` means no upper bound.
    """

    up_to: Decimal | None
    ratio: Decimal

    def describe(self, lower: Decimal) -> str:
        """The band as text, given the previous band's bound.

        >>> Segment(Decimal("100000"), Decimal("0.6")).describe(Decimal("0"))
        '0 < base ≤ 100000: 60%'
        """
        upper = "∞" if self.up_to is None else format(self.up_to, "f")
        if self.up_to is None:
            return f"base > {format(lower, 'f')}: {percent(self.ratio)}"
        return f"{format(lower, 'f')} < base ≤ {upper}: {percent(self.ratio)}"


def describe_segments(
    segments: Iterable[Segment], amount: Callable[[Decimal], str] = lambda up_to: format(up_to, "f")
) -> str:
    """Segments as a short phrase; ``amount`` shows a bound (default: as written).

    >>> describe_segments([Segment(Decimal("100000"), Decimal("0.65")),
    ...                    Segment(None, Decimal("0.75"))])
    '65% up to 100000, 75% above'
    """
    parts: list[str] = []
    for segment in segments:
        if segment.up_to is None:
            parts.append(f"{percent(segment.ratio)} above" if parts else percent(segment.ratio))
        else:
            parts.append(f"{percent(segment.ratio)} up to {amount(segment.up_to)}")
    return ", ".join(parts)


BENEFITS_DIR = Path(__file__).resolve().parent
"""The bundled policy files, one per regional policy (``<id>.yaml``)."""


class Unit(StrEnum):
    """What an amount parameter's value means."""

    YUAN = "yuan"
    SHARE_OF_PCDI = "share_of_pcdi"
    """A share of the previous year's per-capita disposable income (上年度居民人均可支配收入)."""
    SHARE_OF_CONTRIBUTION = "share_of_contribution"
    """A share of the individual enrollment contribution (资助参保)."""
    SHARE_OF_MONITORING_STANDARD = "share_of_monitoring_standard"
    """A share of the settlement year's 防止返贫监测收入标准 (set yearly by 乡村振兴)."""


class Fund(StrEnum):
    """Who pays an enrollment subsidy."""

    ASSISTANCE_FUND = "assistanceFund"
    FINANCE = "finance"


class ParameterNotInForce(LookupError):
    """A policy was asked for a parameter it does not define for that date or year.

    >>> str(ParameterNotInForce("510400-2023", "pcdi.2021", 2021))
    'policy 510400-2023 has no value for pcdi.2021 (2021)'
    """

    def __init__(self, policy_id: str, key: str, when: date | int) -> None:
        self.policy_id = policy_id
        self.key = key
        self.when = when
        shown = when.isoformat() if isinstance(when, date) else str(when)
        super().__init__(f"policy {policy_id} has no value for {key} ({shown})")


@dataclass(frozen=True)
class Value(Generic[T]):
    """One value of a parameter, with the date it takes effect and where it comes from."""

    policy_id: str
    key: str
    value: T
    since: date
    clause: str | None
    """The clause of the policy document; None when the value is assumed."""
    unit: Unit | None = None
    note: str | None = None

    @property
    def assumed(self) -> bool:
        return self.clause is None

    @property
    def reference(self) -> str:
        """The clause, or ``"assumed"`` for an illustrative default."""
        return self.clause if self.clause is not None else "assumed"


@dataclass(frozen=True)
class Param(Generic[T]):
    """A parameter: its values over time, oldest first (at least one)."""

    policy_id: str
    key: str
    versions: tuple[Value[T], ...]

    def at(self, on: date) -> Value[T]:
        """The value in force on ``on``; :class:`ParameterNotInForce` before the first one."""
        found: Value[T] | None = None
        for version in self.versions:
            if version.since <= on:
                found = version
        if found is None:
            raise ParameterNotInForce(self.policy_id, self.key, on)
        return found

    @property
    def latest(self) -> Value[T]:
        return self.versions[-1]


@dataclass(frozen=True)
class ScheduleRule:
    """A schedule as written in the policy: deductible, segments (a single ratio is one open
    segment) and yearly cap. ``deductible`` None = no deductible; ``yearly_cap`` None = the cap is
    defined elsewhere (basic chronic shares the basic yearly cap)."""

    key: str
    deductible: Param[Decimal] | None
    segments: Param[tuple[Segment, ...]]
    yearly_cap: Param[Decimal | None] | None


@dataclass(frozen=True)
class Tilt:
    """倾斜支付 for listed categories: deductible × factor and/or ratios + bonus points."""

    categories: Param[tuple[Category, ...]]
    deductible_factor: Param[Decimal] | None
    ratio_bonus: Param[Decimal] | None
    fee_for_service_only: Param[bool] | None = None
    """The bonus is for fee-for-service stays only, not special-disease (按病种) stays
    (湘人社发 二 "（指按项目付费）")."""


@dataclass(frozen=True)
class SpecialDiseases:
    """大病专项救治 (Hunan): no inpatient deductible for listed diagnoses at a designated
    hospital."""

    categories: Param[tuple[Category, ...]]
    diagnoses: Param[tuple[str, ...]]
    """ICD-10 prefixes, for every age."""
    child_diagnoses: Param[tuple[str, ...]] | None
    """ICD-10 prefixes for children aged ≤ ``child_max_age`` on admission."""
    child_max_age: Param[int] | None


@dataclass(frozen=True)
class CategoryRules:
    priority: Param[tuple[Category, ...]]
    retroactive_within_year: Param[bool] | None
    end_of_month_grace: Param[tuple[Category, ...]] | None


@dataclass(frozen=True)
class BasicRules:
    yearly_cap: Param[Decimal | None]
    """Shared by inpatient stays and chronic outpatient visits."""
    inpatient_deductible: Mapping[HospitalLevel, Param[Decimal]]
    inpatient_ratio: Mapping[HospitalLevel, Param[Decimal]]
    inpatient_tilt: Tilt | None
    special_diseases: SpecialDiseases | None
    chronic: ScheduleRule
    general_outpatient: ScheduleRule


@dataclass(frozen=True)
class CriticalIllnessRules:
    schedule: ScheduleRule
    tilt: Tilt | None


@dataclass(frozen=True)
class AssistanceRules:
    visit_types: Param[tuple[VisitType, ...]]
    requires_compliant_referral: Param[bool]
    schedules: Mapping[Category, ScheduleRule]
    """Main ledger (inpatient and chronic outpatient), one schedule per category."""
    general_outpatient: Mapping[Category, ScheduleRule]


@dataclass(frozen=True)
class SecondaryRules:
    visit_types: Param[tuple[VisitType, ...]]
    requires_compliant_referral: Param[bool]
    requires_in_province: Param[bool]
    schedule: ScheduleRule
    """Its deductible is the threshold (攀枝花 第十三条 / 鲁医保发〔2020〕79号 二(三))."""


class UninsuredLedger(StrEnum):
    """Which running total the assistance of uninsured persons accrues on."""

    MAIN = "assistance"
    """The main assistance ledger, shared with insured visits of the year."""
    OWN = "assistance.uninsured"


@dataclass(frozen=True)
class UninsuredRules:
    """Assistance for persons not enrolled in basic insurance (苏政办发 二(三)): only where a
    policy defines it; base = the whole policy-scope cost."""

    categories: Param[tuple[Category, ...]]
    visit_types: Param[tuple[VisitType, ...]]
    ledger: Param[UninsuredLedger]
    schedule: ScheduleRule


@dataclass(frozen=True)
class SubsidyPart:
    """Part of an enrollment subsidy: an amount (share of the contribution or yuan) and its fund."""

    amount: Param[Decimal]
    fund: Param[Fund]


@dataclass(frozen=True)
class DiscoveryRules:
    """主动发现: whether insured persons whose yearly out-of-pocket exceeds ``threshold`` (yuan, or
    a share of the previous year's PCDI) are reported to the recognising departments."""

    active: Param[bool]
    threshold: Param[Decimal] | None


@dataclass(frozen=True)
class DepositWaiverRules:
    """先诊疗后付费 / 住院押金减免 (民发〔2017〕12号 (五), 攀枝花 第十六条): holders of these
    categories are admitted to hospital without a deposit."""

    categories: Param[tuple[Category, ...]]

    def entitles(self, held: Iterable[Category], on: date) -> bool:
        """Whether any category ``held`` on ``on`` entitles (:class:`ParameterNotInForce` before
        the parameter's first ``since``).

        >>> from policies.benefits import load_policies
        >>> rules = load_policies().by_id("510400-2023").deposit_waiver
        >>> rules.entitles([Category.MINIMUM_LIVING], date(2024, 5, 1))
        True
        >>> rules.entitles([Category.MONITORED], date(2024, 5, 1))
        False
        """
        entitling = set(self.categories.at(on).value)
        return any(category in entitling for category in held)


@dataclass(frozen=True)
class Policy:
    """One regional benefit policy, as loaded from its YAML file."""

    id: str
    title: str
    source: str
    file: str
    region_code: str
    region_prefix: str
    region_name: str
    effective_from: date
    effective_to: date | None
    effective_reference: str
    pcdi: Mapping[int, Param[Decimal]]
    monitoring_standard: Mapping[int, Param[Decimal]]
    """防止返贫监测收入标准 by settlement year."""
    categories: CategoryRules
    basic: BasicRules
    critical_illness: CriticalIllnessRules
    inclusive_commercial: ScheduleRule | None
    assistance: AssistanceRules | None
    secondary_assistance: SecondaryRules | None
    uninsured: UninsuredRules | None
    enrollment_subsidy: Mapping[Category, tuple[SubsidyPart, ...]]
    discovery: DiscoveryRules
    deposit_waiver: DepositWaiverRules | None = None
    """先诊疗后付费: who is admitted without a deposit (None: the policy names nobody)."""

    def covers(self, region_code: str) -> bool:
        """Whether the region code starts with the policy's prefix.

        >>> from policies.benefits import load_policies
        >>> load_policies().by_id("320000-2015").covers("320102")
        True
        """
        return region_code.startswith(self.region_prefix)

    def in_force_on(self, on: date) -> bool:
        return self.effective_from <= on and (self.effective_to is None or on <= self.effective_to)

    def overlaps(self, start: date, end: date) -> bool:
        """Whether the effective interval meets [start, end]."""
        return self.effective_from <= end and (
            self.effective_to is None or start <= self.effective_to
        )

    def pcdi_for(self, year: int) -> Value[Decimal]:
        """PCDI *of* ``year`` (a settlement in year Y uses ``pcdi_for(Y - 1)``)."""
        param = self.pcdi.get(year)
        if param is None:
            raise ParameterNotInForce(self.id, f"pcdi.{year}", year)
        return param.latest

    def monitoring_standard_for(self, year: int) -> Value[Decimal]:
        """防止返贫监测收入标准 of settlement year ``year``."""
        param = self.monitoring_standard.get(year)
        if param is None:
            raise ParameterNotInForce(self.id, f"monitoring_standard.{year}", year)
        return param.latest

    def discovery_threshold(self, year: int) -> Decimal | None:
        """The yearly out-of-pocket (yuan) above which an insured person of settlement year
        ``year`` is reported (攀枝花 第十八条: PCDI of ``year - 1`` × 50% = 21,000.00 for 2023);
        None when the policy has no active discovery in that year."""
        on = self._date_in(year)
        rules = self.discovery
        if not rules.active.at(on).value or rules.threshold is None:
            return None
        threshold = rules.threshold.at(on)
        if threshold.unit is Unit.SHARE_OF_PCDI:
            return round_money(self.pcdi_for(year - 1).value * threshold.value)
        return round_money(threshold.value)

    @property
    def assisted_categories(self) -> frozenset[Category]:
        """The categories this policy assists (a schedule of its own in the main or
        general-outpatient assistance): their holders are not "discovered", they are known."""
        if self.assistance is None:
            return frozenset()
        return frozenset(self.assistance.schedules) | frozenset(self.assistance.general_outpatient)

    def _date_in(self, year: int) -> date:
        """A date of ``year`` on which the policy is in force (for yearly questions)."""
        on = max(date(year, 1, 1), self.effective_from)
        return on if self.in_force_on(on) else self.effective_from


@dataclass(frozen=True)
class PolicySet:
    """All loaded policies; answers which one is in force for a region on a date."""

    policies: tuple[Policy, ...]

    def __iter__(self) -> Iterator[Policy]:
        return iter(self.policies)

    def __len__(self) -> int:
        return len(self.policies)

    def by_id(self, policy_id: str) -> Policy:
        for policy in self.policies:
            if policy.id == policy_id:
                return policy
        raise KeyError(policy_id)

    def for_region(self, region_code: str) -> tuple[Policy, ...]:
        """Every policy whose prefix covers the region, most specific first, then by start."""
        _check_region_code(region_code)
        found = [p for p in self.policies if p.covers(region_code)]
        return tuple(sorted(found, key=lambda p: (-len(p.region_prefix), p.effective_from)))

    def in_force(self, region_code: str, on: date) -> Policy:
        """The most specific policy in force for the region on the date.

        >>> from policies.benefits import load_policies
        >>> load_policies().in_force("370811", date(2021, 4, 1)).id
        '370800-2021'
        """
        for policy in self.for_region(region_code):
            if policy.in_force_on(on):
                return policy
        raise NoPolicyInForce(region_code, on)


def _check_region_code(region_code: str) -> None:
    if not (
        isinstance(region_code, str)
        and len(region_code) == 6
        and region_code.isascii()
        and region_code.isdigit()
    ):
        raise InvalidInput("regionCode", region_code, "must be a 6-digit region code")
