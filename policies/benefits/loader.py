"""Reading and validating benefit policy files into :class:`~policies.benefits.Policy`.

The format is described at the top of every ``benefits/*.yaml``; the pydantic models below are
that format (unknown keys refused, ratios in [0, 1], amounts not negative, dates YYYY-MM-DD,
codes from :mod:`policies.vocabulary`). Every problem raises :class:`PolicyFileError` naming the
file, the dotted key (``assistance.schedules.MONITORED.ratio.value``) and its line.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from decimal import Decimal
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    ValidationInfo,
    model_validator,
)

from policies.benefits.model import (
    BENEFITS_DIR,
    AssistanceRules,
    BasicRules,
    CategoryRules,
    CriticalIllnessRules,
    DepositWaiverRules,
    DiscoveryRules,
    Fund,
    Param,
    Policy,
    PolicySet,
    ScheduleRule,
    SecondaryRules,
    Segment,
    SpecialDiseases,
    SubsidyPart,
    Tilt,
    UninsuredLedger,
    UninsuredRules,
    Unit,
    Value,
)
from policies.errors import PolicyFileError
from policies.sourcefile import Loc, SourceFile, refuse
from policies.vocabulary import Category, HospitalLevel, VisitType

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T")
U = TypeVar("U")
M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")
D = TypeVar("D", bound="DataclassInstance")
_DATE = re.compile(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")

# -- constrained values ------------------------------------------------------------------------


def _number(node: object) -> Decimal:
    if isinstance(node, bool) or not isinstance(node, int | Decimal):
        raise ValueError(f"must be a number, got {node!r}")
    if not Decimal(node).is_finite():
        raise ValueError(f"must be a finite number, got {node!r}")
    return Decimal(node)


def _amount(node: object) -> Decimal:
    value = _number(node)
    if value < 0:
        raise ValueError(f"must not be negative, got {value}")
    return value


def _ratio(node: object) -> Decimal:
    value = _number(node)
    if not Decimal(0) <= value <= Decimal(1):
        raise ValueError(f"ratio must be within [0, 1], got {value}")
    return value


def _day(node: object) -> date:
    if not isinstance(node, str) or not _DATE.match(node):
        raise ValueError(f"must be a date YYYY-MM-DD, got {node!r}")
    try:
        return date.fromisoformat(node)
    except ValueError:
        raise ValueError(f"is not a valid date: {node!r}") from None


def _text(node: object) -> str:
    if not isinstance(node, str) or not node.strip():
        raise ValueError(f"must be a non-empty string, got {node!r}")
    return node


def _age(node: object) -> int:
    if isinstance(node, bool) or not isinstance(node, int) or node < 0:
        raise ValueError(f"must be a whole number of years ≥ 0, got {node!r}")
    return node


def _region_code(node: object) -> str:
    code = _text(node)
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        raise ValueError(f"must be a 6-digit region code, got {code!r}")
    return code


def _distinct(items: tuple[T, ...]) -> tuple[T, ...]:
    if len(set(items)) != len(items):
        raise ValueError("lists an entry twice")
    return items


Number = Annotated[Decimal, PlainValidator(_number)]
Amount = Annotated[Decimal, PlainValidator(_amount)]
"""Yuan, not negative; an exact decimal (the YAML reader never makes binary floats)."""
Ratio = Annotated[Decimal, PlainValidator(_ratio)]
"""A fraction in [0, 1] (0.65 = 65%)."""
Cap = Amount | None
"""A yearly cap; null = no cap."""
Day = Annotated[date, PlainValidator(_day)]
Text = Annotated[str, PlainValidator(_text)]
RegionCode = Annotated[str, PlainValidator(_region_code)]
Year = Annotated[int, Field(strict=True, ge=1900, le=2200)]
Code = Annotated[str, PlainValidator(lambda node: _text(node).strip().upper())]
Categories = Annotated[tuple[Category, ...], Field(min_length=1), AfterValidator(_distinct)]
VisitTypes = Annotated[tuple[VisitType, ...], Field(min_length=1), AfterValidator(_distinct)]
Codes = Annotated[tuple[Code, ...], Field(min_length=1), AfterValidator(_distinct)]


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- parameters --------------------------------------------------------------------------------


class _Sourced(_File):
    """Where a value comes from: a clause of the document, or ``assumed: true``."""

    clause: Text | None = None
    assumed: StrictBool = False
    note: Text | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if self.clause is not None and self.assumed:
            raise refuse("give either clause or assumed: true, not both")
        if self.clause is None and not self.assumed:
            raise refuse("needs a clause reference or assumed: true")
        return self


class Entry(_Sourced, Generic[T]):
    """One value of a parameter: ``{value, since, clause | assumed, note?}``."""

    value: T
    since: Day

    def unit_of(self) -> Unit | None:
        return None


class _Measured(Entry[Number]):
    """An amount whose ``unit`` says whether it is yuan (not negative) or a share (a ratio)."""

    unit: str

    def unit_of(self) -> Unit:
        return Unit(self.unit)

    @model_validator(mode="after")
    def _value_fits_unit(self) -> Self:
        try:
            (_amount if self.unit == Unit.YUAN else _ratio)(self.value)
        except ValueError as error:
            raise refuse(str(error), "value") from None
        return self


class DeductibleEntry(_Measured):
    unit: Literal["yuan", "share_of_pcdi", "share_of_monitoring_standard"] = "yuan"


class SubsidyAmountEntry(_Measured):
    unit: Literal["share_of_contribution", "yuan"] = "share_of_contribution"


def _versions(node: object) -> list[object]:
    versions = node if isinstance(node, list) else [node]
    if not versions or not all(isinstance(version, dict) for version in versions):
        raise ValueError(
            f"must be a parameter {{value, since, clause | assumed: true}} or a list of them, "
            f"got {node!r}"
        )
    return versions


def _in_order(versions: tuple[Entry[Any], ...]) -> tuple[Entry[Any], ...]:
    for i in range(1, len(versions)):
        if versions[i].since <= versions[i - 1].since:
            raise refuse("versions must be in increasing order of since", i, "since")
    return versions


E = TypeVar("E", bound=Entry[Any])
Versions = Annotated[tuple[E, ...], BeforeValidator(_versions), AfterValidator(_in_order)]
"""A parameter: one entry, or a list of entries oldest first."""


def _param(
    versions: Sequence[Entry[T]],
    policy_id: str,
    key: str,
    convert: Callable[[T], U] = lambda v: v,  # type: ignore[assignment,return-value]
) -> Param[U]:
    values = (
        Value(policy_id, key, convert(e.value), e.since, e.clause, e.unit_of(), e.note)
        for e in versions
    )
    return Param(policy_id, key, tuple(values))


def _build(target: type[D], model: BaseModel, policy_id: str, at: str, **given: object) -> D:
    """A ``target`` whose parameters are those of ``model`` with the same names (keyed
    ``at.<name in the file>``; None where ``model`` has none), and ``given`` for the rest."""
    fields = type(model).model_fields
    params: dict[str, object] = {}
    for name in (f.name for f in dataclasses.fields(target) if f.name not in given):
        versions = getattr(model, name, None)
        where = f"{at}.{fields[name].alias or name}" if name in fields else at
        params[name] = None if versions is None else _param(versions, policy_id, where)
    return target(**params, **given)


def _entries(node: object, loc: Loc = ()) -> Iterator[tuple[Loc, Entry[Any]]]:
    """Every parameter entry below ``node`` with its position in the file."""
    if isinstance(node, Entry):
        yield loc, node
    elif isinstance(node, BaseModel):
        for name, field in type(node).model_fields.items():
            yield from _entries(getattr(node, name), (*loc, field.alias or name))
    elif isinstance(node, dict):
        for key, item in node.items():
            yield from _entries(item, (*loc, key))
    elif isinstance(node, tuple):
        for index, item in enumerate(node):
            yield from _entries(item, (*loc, index))


# -- schedules ---------------------------------------------------------------------------------


class SegmentFile(_File):
    up_to: Cap
    ratio: Ratio


def _bands(segments: tuple[SegmentFile, ...]) -> tuple[SegmentFile, ...]:
    previous = Decimal(0)
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment.up_to is None and not last:
            raise refuse("only the last segment may be open (null)", i, "up_to")
        if segment.up_to is not None and last:
            raise refuse("the last segment must be open (up_to: null)", i, "up_to")
        if segment.up_to is not None and segment.up_to <= previous:
            raise refuse("segment bounds must increase", i, "up_to")
        previous = segment.up_to or previous
    return segments


Segments = Annotated[tuple[SegmentFile, ...], Field(min_length=1), AfterValidator(_bands)]


class Rates(_File):
    """A schedule without its own cap: ``deductible``, then ``ratio`` or ``segments``."""

    deductible: Versions[DeductibleEntry] | None = None
    ratio: Versions[Entry[Ratio]] | None = None
    segments: Versions[Entry[Segments]] | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_null_rates(cls, data: object) -> object:
        """``deductible: null`` is not "no deductible": leave the key out."""
        for name in ("deductible", "threshold", "ratio", "segments"):
            if isinstance(data, dict) and name in data and data[name] is None:
                raise refuse("must be a parameter {value, since, clause | assumed: true}", name)
        return data

    @model_validator(mode="after")
    def _ratio_or_segments(self) -> Self:
        if self.ratio is not None and self.segments is not None:
            raise refuse("give either ratio or segments, not both", "segments")
        if self.ratio is None and self.segments is None:
            raise refuse("missing required key (ratio or segments)", "ratio")
        return self

    def rule(self, policy_id: str, key: str) -> ScheduleRule:
        if self.segments is not None:
            bands = lambda segments: tuple(Segment(s.up_to, s.ratio) for s in segments)  # noqa: E731
            segments = _param(self.segments, policy_id, f"{key}.segments", bands)
        else:
            open_band = lambda ratio: (Segment(None, ratio),)  # noqa: E731
            segments = _param(self.ratio or (), policy_id, f"{key}.ratio", open_band)
        return _build(ScheduleRule, self, policy_id, key, key=key, segments=segments)


class Schedule(Rates):
    yearly_cap: Versions[Entry[Cap]]


class TiltFile(_File):
    categories: Versions[Entry[Categories]]
    deductible_factor: Versions[Entry[Ratio]] | None = None
    ratio_bonus: Versions[Entry[Ratio]] | None = None
    fee_for_service_only: Versions[Entry[StrictBool]] | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        if self.deductible_factor is None and self.ratio_bonus is None:
            raise refuse("a tilt needs deductible_factor or ratio_bonus", "ratio_bonus")
        if self.fee_for_service_only is not None and self.ratio_bonus is None:
            raise refuse("restricts ratio_bonus, which is absent", "fee_for_service_only")
        return self


class BasicTiltFile(TiltFile):
    @model_validator(mode="after")
    def _ratio_only(self) -> Self:
        if self.deductible_factor is not None:
            raise refuse("unknown key (basic tilts change the ratio only)", "deductible_factor")
        return self


class CriticalIllnessFile(Schedule):
    deductible: Versions[DeductibleEntry]
    tilt: TiltFile | None = None


# -- sections ----------------------------------------------------------------------------------


def _every_level(levels: dict[HospitalLevel, U]) -> dict[HospitalLevel, U]:
    for level in HospitalLevel:
        if level not in levels:
            raise refuse("missing required key", level)
    return levels


class SpecialDiseasesFile(_File):
    categories: Versions[Entry[Categories]]
    diagnoses: Versions[Entry[Codes]]
    child_diagnoses: Versions[Entry[Codes]] | None = None
    child_max_age: Versions[Entry[Annotated[int, PlainValidator(_age)]]] | None = None

    @model_validator(mode="after")
    def _child_rules_together(self) -> Self:
        if (self.child_diagnoses is None) != (self.child_max_age is None):
            missing = "child_max_age" if self.child_max_age is None else "child_diagnoses"
            raise refuse("child_diagnoses and child_max_age go together", missing)
        return self


class InpatientFile(_File):
    deductible: Annotated[
        dict[HospitalLevel, Versions[Entry[Amount]]], AfterValidator(_every_level)
    ]
    ratio: Annotated[dict[HospitalLevel, Versions[Entry[Ratio]]], AfterValidator(_every_level)]
    tilt: BasicTiltFile | None = None
    special_diseases: SpecialDiseasesFile | None = None


class BasicFile(_File):
    yearly_cap: Versions[Entry[Cap]]
    inpatient: InpatientFile
    chronic: Rates
    general_outpatient: Schedule


class CategoriesFile(_File):
    priority: Versions[Entry[Categories]]
    retroactive_within_year: Versions[Entry[StrictBool]] | None = None
    end_of_month_grace: Versions[Entry[Categories]] | None = None


ScheduleTable = Annotated[dict[Category, Schedule], Field(min_length=1)]


def _no_general_outpatient(versions: Sequence[Entry[tuple[VisitType, ...]]], reason: str) -> None:
    if any(VisitType.OUTPATIENT_GENERAL in v.value for v in versions):
        raise refuse(reason, "visit_types")


class AssistanceFile(_File):
    visit_types: Versions[Entry[VisitTypes]]
    requires_compliant_referral: Versions[Entry[StrictBool]]
    schedules: ScheduleTable
    general_outpatient: ScheduleTable | None = None

    @model_validator(mode="after")
    def _general_outpatient_apart(self) -> Self:
        reason = "general outpatient has its own section (general_outpatient)"
        _no_general_outpatient(self.visit_types, reason)
        return self


class SecondaryFile(Schedule):
    deductible: Versions[DeductibleEntry] = Field(alias="threshold")
    visit_types: Versions[Entry[VisitTypes]]
    requires_compliant_referral: Versions[Entry[StrictBool]]
    requires_in_province: Versions[Entry[StrictBool]]


class UninsuredFile(Schedule):
    categories: Versions[Entry[Categories]]
    visit_types: Versions[Entry[VisitTypes]]
    ledger: Versions[Entry[UninsuredLedger]]

    @model_validator(mode="after")
    def _no_general_outpatient(self) -> Self:
        reason = "general outpatient visits of uninsured persons get nothing"
        _no_general_outpatient(self.visit_types, reason)
        return self


class SubsidyPartFile(_File):
    amount: Versions[SubsidyAmountEntry]
    fund: Versions[Entry[Fund]]


class ThresholdEntry(_Measured):
    unit: Literal["yuan", "share_of_pcdi"] = "yuan"


class DiscoveryFile(_File):
    """主动发现 (攀枝花 第十八条, 鲁医保发 四(一)): whether the policy reports insured persons
    with a high yearly out-of-pocket, and above what. Every policy file says it: ``active:
    false`` with the clause (or ``assumed``) where the document has no such mechanism."""

    active: Versions[Entry[StrictBool]]
    threshold: Versions[ThresholdEntry] | None = None

    @model_validator(mode="after")
    def _threshold_when_active(self) -> Self:
        if any(version.value for version in self.active) and self.threshold is None:
            raise refuse(
                "missing required key (an active discovery needs a threshold)", "threshold"
            )
        return self


class DepositWaiverFile(_File):
    """先诊疗后付费: the categories whose holders are admitted without a deposit. Any category
    may be named (the national notice names some that a region's schedules do not)."""

    categories: Versions[Entry[Categories]]


class RegionFile(_File):
    code: RegionCode
    prefix: Text
    name: Text

    @model_validator(mode="after")
    def _prefix_of_code(self) -> Self:
        prefix = self.prefix
        if not (prefix.isascii() and prefix.isdigit() and 2 <= len(prefix) <= 6) or not (
            self.code.startswith(prefix)
        ):
            raise refuse(f"must be 2-6 leading digits of region.code, got {prefix!r}", "prefix")
        return self


class EffectiveFile(_Sourced):
    start: Day = Field(alias="from")
    end: Day | None = Field(None, alias="to")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end is not None and self.end < self.start:
            raise refuse(f"{self.end} is before effective.from {self.start}", "to")
        return self


YearTable = Annotated[dict[Year, Versions[Entry[Amount]]], Field(min_length=1)]


class PolicyFile(_File):
    """One benefit policy file (``<id>.yaml``), as written."""

    id: Text
    title: Text
    source: Text
    region: RegionFile
    effective: EffectiveFile
    pcdi: YearTable | None = None
    """上年度居民人均可支配收入 by calendar year: a settlement in year Y uses Y - 1."""
    monitoring_standard: YearTable | None = None
    """防止返贫监测收入标准 by settlement year."""
    categories: CategoriesFile
    basic: BasicFile
    critical_illness: CriticalIllnessFile
    inclusive_commercial: Schedule | None = None
    assistance: AssistanceFile | None = None
    secondary_assistance: SecondaryFile | None = None
    uninsured: UninsuredFile | None = None
    enrollment_subsidy: (
        dict[Category, Annotated[tuple[SubsidyPartFile, ...], Field(min_length=1)]] | None
    ) = None
    discovery: DiscoveryFile
    deposit_waiver: DepositWaiverFile | None = None

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Self:
        """The checks that need more than one section."""
        name = (info.context or {}).get("name")
        if name is not None and self.id != name:
            raise refuse(f"{self.id!r} must equal the file name {name!r}", "id")
        start, end = self.effective.start, self.effective.end
        entries = list(_entries(self))
        for loc, entry in entries:
            if entry.since < start or (end is not None and entry.since > end):
                raise refuse(
                    f"{entry.since} is outside the policy's effective interval", *loc, "since"
                )
        # PCDI of year Y serves settlements of Y + 1; the monitoring standard serves its own year.
        last = None if end is None else end.year
        _no_gap(self.pcdi, "pcdi", start.year - 1, None if last is None else last - 1)
        _no_gap(self.monitoring_standard, "monitoring_standard", start.year, last)
        self._only_listed_categories()
        uses_pcdi = [loc for loc, e in entries if e.unit_of() is Unit.SHARE_OF_PCDI]
        if uses_pcdi and self.pcdi is None:
            raise refuse("depends on PCDI but the policy has no pcdi table", *uses_pcdi[0])
        for loc, entry in entries:
            if (
                entry.unit_of() is Unit.SHARE_OF_MONITORING_STANDARD
                and not self.monitoring_standard
            ):
                raise refuse(
                    "depends on the monitoring income standard but the policy has no "
                    "monitoring_standard table",
                    *loc,
                )
        if self.uninsured is not None and self.assistance is None:
            raise refuse("needs an assistance section (its referral rule applies)", "uninsured")
        return self

    def _only_listed_categories(self) -> None:
        """Tilts, special diseases, schedules and the uninsured name only categories of
        ``categories.priority`` (any of its versions)."""
        listed = {c for version in self.categories.priority for c in version.value}

        def named(
            section: TiltFile | SpecialDiseasesFile | UninsuredFile | None, *at: str
        ) -> Iterator[tuple[Loc, Category]]:
            for i, version in enumerate(section.categories if section else ()):
                for j, category in enumerate(version.value):
                    yield (*at, "categories", i, "value", j), category

        inpatient, assistance = self.basic.inpatient, self.assistance
        tables = (
            {}
            if assistance is None
            else {
                "schedules": assistance.schedules,
                "general_outpatient": assistance.general_outpatient or {},
            }
        )
        found = chain(
            named(inpatient.tilt, "basic", "inpatient", "tilt"),
            named(inpatient.special_diseases, "basic", "inpatient", "special_diseases"),
            named(self.critical_illness.tilt, "critical_illness", "tilt"),
            ((("assistance", name, c), c) for name, table in tables.items() for c in table),
            named(self.uninsured, "uninsured"),
        )
        for loc, category in found:
            if category not in listed:
                raise refuse(f"{category} is not in categories.priority", *loc)


def _no_gap(table: YearTable | None, key: str, first: int, last: int | None) -> None:
    """A yearly table, when present, covers every year from ``first`` to ``last`` (the years the
    policy in force needs; an open-ended policy: up to its last key), so that no settlement
    meets a missing year."""
    if table is None:
        return
    until = max(table) if last is None else last
    missing = [year for year in range(first, until + 1) if year not in table]
    if missing:
        raise refuse(
            f"missing: the policy is in force in years that need {first}…{until}", key, missing[0]
        )


# -- the engine's model ------------------------------------------------------------------------


def _optional(make: Callable[[M], R], model: M | None) -> R | None:
    return None if model is None else make(model)


def _policy(f: PolicyFile, file: str) -> Policy:
    """The validated file as the engine's :class:`Policy`; every parameter keyed as in the file."""
    pid, basic, inpatient, ci = f.id, f.basic, f.basic.inpatient, f.critical_illness

    def yearly(table: YearTable | None, key: str) -> dict[int, Param[Decimal]]:
        return {year: _param(v, pid, f"{key}.{year}") for year, v in (table or {}).items()}

    def schedules(table: dict[Category, Schedule] | None, key: str) -> dict[Category, ScheduleRule]:
        return {c: s.rule(pid, f"{key}.{c}") for c, s in (table or {}).items()}

    def tilt(at: str) -> Callable[[TiltFile], Tilt]:
        return lambda t: _build(Tilt, t, pid, at)

    def with_schedule(target: type[D], at: str) -> Callable[[Schedule], D]:
        return lambda section: _build(target, section, pid, at, schedule=section.rule(pid, at))

    return Policy(
        id=pid,
        title=f.title,
        source=f.source,
        file=file,
        region_code=f.region.code,
        region_prefix=f.region.prefix,
        region_name=f.region.name,
        effective_from=f.effective.start,
        effective_to=f.effective.end,
        effective_reference=f.effective.clause or "assumed",
        pcdi=yearly(f.pcdi, "pcdi"),
        monitoring_standard=yearly(f.monitoring_standard, "monitoring_standard"),
        categories=_build(CategoryRules, f.categories, pid, "categories"),
        basic=_build(
            BasicRules,
            basic,
            pid,
            "basic",
            inpatient_deductible={
                level: _param(v, pid, f"basic.inpatient.deductible.{level}")
                for level, v in inpatient.deductible.items()
            },
            inpatient_ratio={
                level: _param(v, pid, f"basic.inpatient.ratio.{level}")
                for level, v in inpatient.ratio.items()
            },
            inpatient_tilt=_optional(tilt("basic.inpatient.tilt"), inpatient.tilt),
            special_diseases=_optional(
                lambda s: _build(SpecialDiseases, s, pid, "basic.inpatient.special_diseases"),
                inpatient.special_diseases,
            ),
            chronic=basic.chronic.rule(pid, "basic.chronic"),
            general_outpatient=basic.general_outpatient.rule(pid, "basic.general_outpatient"),
        ),
        critical_illness=CriticalIllnessRules(
            ci.rule(pid, "critical_illness"), _optional(tilt("critical_illness.tilt"), ci.tilt)
        ),
        inclusive_commercial=_optional(
            lambda s: s.rule(pid, "inclusive_commercial"), f.inclusive_commercial
        ),
        assistance=_optional(
            lambda a: _build(
                AssistanceRules,
                a,
                pid,
                "assistance",
                schedules=schedules(a.schedules, "assistance.schedules"),
                general_outpatient=schedules(a.general_outpatient, "assistance.general_outpatient"),
            ),
            f.assistance,
        ),
        secondary_assistance=_optional(
            with_schedule(SecondaryRules, "secondary_assistance"), f.secondary_assistance
        ),
        uninsured=_optional(with_schedule(UninsuredRules, "uninsured"), f.uninsured),
        enrollment_subsidy={
            c: tuple(
                _build(SubsidyPart, part, pid, f"enrollment_subsidy.{c}[{i}]")
                for i, part in enumerate(parts)
            )
            for c, parts in (f.enrollment_subsidy or {}).items()
        },
        discovery=_build(DiscoveryRules, f.discovery, pid, "discovery"),
        deposit_waiver=_optional(
            lambda d: _build(DepositWaiverRules, d, pid, "deposit_waiver"), f.deposit_waiver
        ),
    )


def read_policy_file(path: Path) -> Policy:
    """Read and validate one policy file; a :class:`PolicyFileError` names the key and its line."""
    return _policy(SourceFile.read(path).validate(PolicyFile, {"name": path.stem}), path.name)


def check_no_overlap(policies: Sequence[Policy]) -> None:
    """Refuse two policies with the same id, or with the same prefix and overlapping intervals."""
    for i, policy in enumerate(policies):
        for other in policies[:i]:
            if other.id == policy.id:
                raise PolicyFileError(
                    policy.file, "id", f"{policy.id} is also defined in {other.file}"
                )
            if other.region_prefix != policy.region_prefix:
                continue
            end = policy.effective_to if policy.effective_to is not None else date.max
            if other.overlaps(policy.effective_from, end):
                raise PolicyFileError(
                    policy.file,
                    "effective",
                    f"overlaps {other.id} ({other.file}) for region prefix {policy.region_prefix}",
                )


def load_policies(directory: Path | None = None) -> PolicySet:
    """Read and validate every ``*.yaml`` of ``directory`` (default: the bundled ``benefits/``).

    Raises :class:`~policies.errors.PolicyFileError` naming the file, the key and the line of
    the first problem found.
    """
    folder = BENEFITS_DIR if directory is None else directory
    policies = [read_policy_file(path) for path in sorted(folder.glob("*.yaml"))]
    check_no_overlap(policies)
    return PolicySet(tuple(policies))
