"""Reading and validating one benefit policy file into a :class:`~policies.benefits.Policy`.

The format is described at the top of every ``benefits/*.yaml``. Every problem raises
:class:`PolicyFileError` naming the file and the dotted key, e.g.
``assistance.schedules.MONITORED.ratio.value``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path

from policies.benefits.model import (
    BENEFITS_DIR,
    AssistanceRules,
    BasicRules,
    CategoryRules,
    CriticalIllnessRules,
    DiscoveryRules,
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
from policies.benefits.reader import Converter, PolicyReader, join_key, line_of, load_yaml
from policies.errors import PolicyFileError
from policies.vocabulary import Category, HospitalLevel, VisitType


class _Reader(PolicyReader):
    """The policy reader plus the shapes shared by several sections."""

    def schedule(
        self, node: object, key: str, *, deductible: str = "deductible", cap: bool = True
    ) -> ScheduleRule:
        """A schedule: ``deductible`` (or ``threshold``), ``ratio`` or ``segments``, and
        ``yearly_cap`` unless ``cap`` is False (the cap is defined elsewhere)."""
        optional = [deductible, "ratio", "segments"]
        entry = self.mapping(node, key, ["yearly_cap"] if cap else [], optional)
        if "ratio" in entry and "segments" in entry:
            self.fail(join_key(key, "segments"), "give either ratio or segments, not both")
        if "segments" in entry:
            segments = self.param(
                entry["segments"], join_key(key, "segments"), {None: self.segments}
            )
        elif "ratio" in entry:
            ratio = self.ratio_param(entry["ratio"], join_key(key, "ratio"))
            segments = Param(
                ratio.policy_id,
                ratio.key,
                tuple(
                    Value(
                        v.policy_id,
                        v.key,
                        (Segment(None, v.value),),
                        v.since,
                        v.clause,
                        v.unit,
                        v.note,
                    )
                    for v in ratio.versions
                ),
            )
        else:
            self.fail(join_key(key, "ratio"), "missing required key (ratio or segments)")
        deductible_param = None
        if deductible in entry:
            deductible_param = self.param(
                entry[deductible],
                join_key(key, deductible),
                {
                    Unit.YUAN: self.amount,
                    Unit.SHARE_OF_PCDI: self.ratio,
                    Unit.SHARE_OF_MONITORING_STANDARD: self.ratio,
                },
            )
        yearly_cap = (
            self.cap_param(entry["yearly_cap"], join_key(key, "yearly_cap")) if cap else None
        )
        return ScheduleRule(key, deductible_param, segments, yearly_cap)

    def tilt(self, node: object, key: str, listed: tuple[Category, ...]) -> Tilt:
        entry = self.mapping(
            node, key, ["categories"], ["deductible_factor", "ratio_bonus", "fee_for_service_only"]
        )
        if "deductible_factor" not in entry and "ratio_bonus" not in entry:
            self.fail(join_key(key, "ratio_bonus"), "a tilt needs deductible_factor or ratio_bonus")
        categories = self.categories_param(entry["categories"], join_key(key, "categories"))
        self.check_listed(categories, listed)
        factor = entry.get("deductible_factor")
        bonus = entry.get("ratio_bonus")
        fee_only = entry.get("fee_for_service_only")
        if fee_only is not None and bonus is None:
            self.fail(
                join_key(key, "fee_for_service_only"), "restricts ratio_bonus, which is absent"
            )
        return Tilt(
            categories,
            None
            if factor is None
            else self.ratio_param(factor, join_key(key, "deductible_factor")),
            None if bonus is None else self.ratio_param(bonus, join_key(key, "ratio_bonus")),
            None
            if fee_only is None
            else self.flag_param(fee_only, join_key(key, "fee_for_service_only")),
        )

    def check_listed(
        self, param: Param[tuple[Category, ...]], listed: tuple[Category, ...]
    ) -> None:
        for version in param.versions:
            for i, category in enumerate(version.value):
                if category not in listed:
                    self.fail(
                        f"{param.key}.value[{i}]", f"{category} is not in categories.priority"
                    )

    def category_key(self, node: object, key: str, listed: tuple[Category, ...]) -> Category:
        category = self.category(node, key)
        if category not in listed:
            self.fail(key, f"{category} is not in categories.priority")
        return category

    def by_level(
        self, node: object, key: str, convert: Converter[Decimal]
    ) -> dict[HospitalLevel, Param[Decimal]]:
        levels = [level.value for level in HospitalLevel]
        entry = self.mapping(node, key, levels)
        return {
            HospitalLevel(level): self.param(entry[level], join_key(key, level), {None: convert})
            for level in levels
        }


def read_policy_file(path: Path) -> Policy:
    """Read and validate one policy file; a :class:`PolicyFileError` carries the line of the
    key it names."""
    try:
        return _read_policy_file(path)
    except PolicyFileError as error:
        if error.line is not None or error.key.startswith("<"):
            raise
        line = line_of(path.read_text(encoding="utf-8"), error.key)
        raise PolicyFileError(error.file, error.key, error.reason, line) from None


def _read_policy_file(path: Path) -> Policy:
    file = path.name
    reader = _Reader(file)
    data = load_yaml(path, reader)
    top = reader.mapping(
        data,
        "",
        ("id", "title", "source", "region", "effective", "categories", "basic", "critical_illness"),
        (
            "pcdi",
            "monitoring_standard",
            "inclusive_commercial",
            "assistance",
            "secondary_assistance",
            "uninsured",
            "enrollment_subsidy",
            "discovery",
        ),
    )
    policy_id = reader.text(top["id"], "id")
    if policy_id != path.stem:
        reader.fail("id", f"{policy_id!r} must equal the file name {path.stem!r}")
    reader.policy_id = policy_id

    region = reader.mapping(top["region"], "region", ("code", "prefix", "name"))
    code = reader.text(region["code"], "region.code")
    prefix = reader.text(region["prefix"], "region.prefix")
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        reader.fail("region.code", f"must be a 6-digit region code, got {code!r}")
    if not (prefix.isascii() and prefix.isdigit() and 2 <= len(prefix) <= 6):
        reader.fail("region.prefix", f"must be 2-6 leading digits of region.code, got {prefix!r}")
    if not code.startswith(prefix):
        reader.fail("region.prefix", f"must be 2-6 leading digits of region.code, got {prefix!r}")

    effective = reader.mapping(
        top["effective"], "effective", ("from",), ("to", "clause", "assumed", "note")
    )
    start = reader.day(effective["from"], "effective.from")
    end = None if effective.get("to") is None else reader.day(effective["to"], "effective.to")
    if end is not None and end < start:
        reader.fail("effective.to", f"{end} is before effective.from {start}")
    effective_clause = reader.source(effective, "effective")
    reader.start, reader.end = start, end

    # PCDI of year Y serves settlements of Y + 1; the monitoring standard serves its own year.
    pcdi = _yearly(
        reader, top.get("pcdi"), "pcdi", start.year - 1, None if end is None else end.year - 1
    )
    monitoring_standard = _yearly(
        reader,
        top.get("monitoring_standard"),
        "monitoring_standard",
        start.year,
        None if end is None else end.year,
    )

    categories = _categories(reader, top["categories"])
    listed = categories.priority.latest.value
    for version in categories.priority.versions[:-1]:
        listed = tuple(dict.fromkeys((*version.value, *listed)))
    basic = _basic(reader, top["basic"], listed)

    ci = reader.mapping(
        top["critical_illness"],
        "critical_illness",
        ("deductible", "yearly_cap"),
        ("ratio", "segments", "tilt"),
    )
    ci_schedule = reader.schedule({k: v for k, v in ci.items() if k != "tilt"}, "critical_illness")
    ci_tilt = (
        None if ci.get("tilt") is None else reader.tilt(ci["tilt"], "critical_illness.tilt", listed)
    )

    commercial = None
    if top.get("inclusive_commercial") is not None:
        commercial = reader.schedule(top["inclusive_commercial"], "inclusive_commercial")

    assistance = (
        None if top.get("assistance") is None else _assistance(reader, top["assistance"], listed)
    )
    secondary = None
    if top.get("secondary_assistance") is not None:
        secondary = _secondary(reader, top["secondary_assistance"])
    uninsured = None
    if top.get("uninsured") is not None:
        if assistance is None:
            reader.fail("uninsured", "needs an assistance section (its referral rule applies)")
        uninsured = _uninsured(reader, top["uninsured"], listed)

    subsidy = _subsidy(reader, top.get("enrollment_subsidy") or {})

    discovery = None
    if top.get("discovery") is not None:
        entry = reader.mapping(top["discovery"], "discovery", ("out_of_pocket_share_of_pcdi",))
        key = "discovery.out_of_pocket_share_of_pcdi"
        discovery = DiscoveryRules(reader.ratio_param(entry["out_of_pocket_share_of_pcdi"], key))
        reader.uses_pcdi.append(key)
    if reader.uses_pcdi and not pcdi:
        reader.fail(reader.uses_pcdi[0], "depends on PCDI but the policy has no pcdi table")
    if reader.uses_monitoring_standard and not monitoring_standard:
        reader.fail(
            reader.uses_monitoring_standard[0],
            "depends on the monitoring income standard but the policy has no "
            "monitoring_standard table",
        )

    return Policy(
        id=policy_id,
        title=reader.text(top["title"], "title"),
        source=reader.text(top["source"], "source"),
        file=file,
        region_code=code,
        region_prefix=prefix,
        region_name=reader.text(region["name"], "region.name"),
        effective_from=start,
        effective_to=end,
        effective_reference=effective_clause if effective_clause is not None else "assumed",
        pcdi=pcdi,
        monitoring_standard=monitoring_standard,
        categories=categories,
        basic=basic,
        critical_illness=CriticalIllnessRules(ci_schedule, ci_tilt),
        inclusive_commercial=commercial,
        assistance=assistance,
        secondary_assistance=secondary,
        uninsured=uninsured,
        enrollment_subsidy=subsidy,
        discovery=discovery,
    )


def _yearly(
    reader: _Reader, node: object, key: str, first: int, last: int | None
) -> dict[int, Param[Decimal]]:
    """A table of amounts keyed by calendar year, e.g. ``pcdi`` or ``monitoring_standard``.

    When present it must cover every year from ``first`` to ``last`` (the years the policy in
    force needs; an open-ended policy: up to its last key) without a gap, so that no settlement
    meets a missing year.
    """
    if node is None:
        return {}
    if not isinstance(node, dict) or not node:
        reader.fail(key, "must be a mapping of year to parameter")
    table: dict[int, Param[Decimal]] = {}
    for year, raw in node.items():
        if isinstance(year, bool) or not isinstance(year, int) or not 1900 <= year <= 2200:
            reader.fail(f"{key}.{year}", "keys must be calendar years")
        table[year] = reader.amount_param(raw, f"{key}.{year}")
    until = max(table) if last is None else last
    missing = [year for year in range(first, until + 1) if year not in table]
    if missing:
        reader.fail(
            f"{key}.{missing[0]}",
            f"missing: the policy is in force in years that need {first}…{until}",
        )
    return table


def _categories(reader: _Reader, node: object) -> CategoryRules:
    entry = reader.mapping(
        node, "categories", ("priority",), ("retroactive_within_year", "end_of_month_grace")
    )
    priority = reader.categories_param(entry["priority"], "categories.priority")
    retro = entry.get("retroactive_within_year")
    grace = entry.get("end_of_month_grace")
    return CategoryRules(
        priority,
        None if retro is None else reader.flag_param(retro, "categories.retroactive_within_year"),
        None if grace is None else reader.categories_param(grace, "categories.end_of_month_grace"),
    )


def _basic(reader: _Reader, node: object, listed: tuple[Category, ...]) -> BasicRules:
    entry = reader.mapping(
        node, "basic", ("yearly_cap", "inpatient", "chronic", "general_outpatient")
    )
    inpatient = reader.mapping(
        entry["inpatient"], "basic.inpatient", ("deductible", "ratio"), ("tilt", "special_diseases")
    )
    tilt = None
    if inpatient.get("tilt") is not None:
        tilt = reader.tilt(inpatient["tilt"], "basic.inpatient.tilt", listed)
        if tilt.deductible_factor is not None:
            reader.fail(
                "basic.inpatient.tilt.deductible_factor",
                "unknown key (basic tilts change the ratio only)",
            )
    special = None
    if inpatient.get("special_diseases") is not None:
        special = _special_diseases(reader, inpatient["special_diseases"], listed)
    return BasicRules(
        yearly_cap=reader.cap_param(entry["yearly_cap"], "basic.yearly_cap"),
        inpatient_deductible=reader.by_level(
            inpatient["deductible"], "basic.inpatient.deductible", reader.amount
        ),
        inpatient_ratio=reader.by_level(inpatient["ratio"], "basic.inpatient.ratio", reader.ratio),
        inpatient_tilt=tilt,
        special_diseases=special,
        chronic=reader.schedule(entry["chronic"], "basic.chronic", cap=False),
        general_outpatient=reader.schedule(entry["general_outpatient"], "basic.general_outpatient"),
    )


def _special_diseases(
    reader: _Reader, node: object, listed: tuple[Category, ...]
) -> SpecialDiseases:
    key = "basic.inpatient.special_diseases"
    entry = reader.mapping(
        node, key, ("categories", "diagnoses"), ("child_diagnoses", "child_max_age")
    )
    categories = reader.categories_param(entry["categories"], f"{key}.categories")
    reader.check_listed(categories, listed)
    child = entry.get("child_diagnoses")
    age = entry.get("child_max_age")
    if (child is None) != (age is None):
        missing = "child_max_age" if age is None else "child_diagnoses"
        reader.fail(f"{key}.{missing}", "child_diagnoses and child_max_age go together")
    return SpecialDiseases(
        categories,
        reader.param(entry["diagnoses"], f"{key}.diagnoses", {None: reader.codes}),
        None
        if child is None
        else reader.param(child, f"{key}.child_diagnoses", {None: reader.codes}),
        None if age is None else reader.param(age, f"{key}.child_max_age", {None: reader.age}),
    )


def _assistance(reader: _Reader, node: object, listed: tuple[Category, ...]) -> AssistanceRules:
    entry = reader.mapping(
        node,
        "assistance",
        ("visit_types", "requires_compliant_referral", "schedules"),
        ("general_outpatient",),
    )
    visit_types = reader.visit_types_param(entry["visit_types"], "assistance.visit_types")
    if any(VisitType.OUTPATIENT_GENERAL in v.value for v in visit_types.versions):
        reader.fail(
            "assistance.visit_types", "general outpatient has its own section (general_outpatient)"
        )

    def table(raw: object, key: str) -> dict[Category, ScheduleRule]:
        if not isinstance(raw, dict) or not raw:
            reader.fail(key, "must be a mapping of category to schedule")
        return {
            reader.category_key(cat, join_key(key, cat), listed): reader.schedule(
                rule, join_key(key, cat)
            )
            for cat, rule in raw.items()
        }

    general = entry.get("general_outpatient")
    return AssistanceRules(
        visit_types=visit_types,
        requires_compliant_referral=reader.flag_param(
            entry["requires_compliant_referral"], "assistance.requires_compliant_referral"
        ),
        schedules=table(entry["schedules"], "assistance.schedules"),
        general_outpatient={}
        if general is None
        else table(general, "assistance.general_outpatient"),
    )


def _secondary(reader: _Reader, node: object) -> SecondaryRules:
    key = "secondary_assistance"
    flags = ("visit_types", "requires_compliant_referral", "requires_in_province")
    entry = reader.mapping(node, key, (*flags, "threshold", "yearly_cap"), ("ratio", "segments"))
    schedule_part = {k: v for k, v in entry.items() if k not in flags}
    return SecondaryRules(
        visit_types=reader.visit_types_param(entry["visit_types"], f"{key}.visit_types"),
        requires_compliant_referral=reader.flag_param(
            entry["requires_compliant_referral"], f"{key}.requires_compliant_referral"
        ),
        requires_in_province=reader.flag_param(
            entry["requires_in_province"], f"{key}.requires_in_province"
        ),
        schedule=reader.schedule(schedule_part, key, deductible="threshold"),
    )


def _uninsured(reader: _Reader, node: object, listed: tuple[Category, ...]) -> UninsuredRules:
    key = "uninsured"
    entry = reader.mapping(
        node,
        key,
        ("categories", "visit_types", "ledger", "yearly_cap"),
        ("deductible", "ratio", "segments"),
    )
    categories = reader.categories_param(entry["categories"], f"{key}.categories")
    reader.check_listed(categories, listed)
    visit_types = reader.visit_types_param(entry["visit_types"], f"{key}.visit_types")
    if any(VisitType.OUTPATIENT_GENERAL in v.value for v in visit_types.versions):
        reader.fail(
            f"{key}.visit_types", "general outpatient visits of uninsured persons get nothing"
        )

    def ledger(raw: object, k: str) -> UninsuredLedger:
        allowed = [item.value for item in UninsuredLedger]
        if raw not in allowed:
            reader.fail(k, f"unknown ledger {raw!r} (one of {', '.join(allowed)})")
        return UninsuredLedger(str(raw))

    schedule_part = {
        k: v for k, v in entry.items() if k not in ("categories", "visit_types", "ledger")
    }
    return UninsuredRules(
        categories=categories,
        visit_types=visit_types,
        ledger=reader.param(entry["ledger"], f"{key}.ledger", {None: ledger}),
        schedule=reader.schedule(schedule_part, key),
    )


def _subsidy(reader: _Reader, node: object) -> dict[Category, tuple[SubsidyPart, ...]]:
    key = "enrollment_subsidy"
    if not isinstance(node, dict):
        reader.fail(key, "must be a mapping of category to a list of {amount, fund}")
    result: dict[Category, tuple[SubsidyPart, ...]] = {}
    for raw_category, raw_parts in node.items():
        k = join_key(key, raw_category)
        category = reader.category(raw_category, k)
        if not isinstance(raw_parts, list) or not raw_parts:
            reader.fail(k, "must be a non-empty list of {amount, fund}")
        parts: list[SubsidyPart] = []
        for i, raw in enumerate(raw_parts):
            part = reader.mapping(raw, f"{k}[{i}]", ("amount", "fund"))
            amount = reader.param(
                part["amount"],
                f"{k}[{i}].amount",
                {Unit.SHARE_OF_CONTRIBUTION: reader.ratio, Unit.YUAN: reader.amount},
            )
            fund = reader.param(part["fund"], f"{k}[{i}].fund", {None: reader.fund})
            parts.append(SubsidyPart(amount, fund))
        result[category] = tuple(parts)
    return result


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

    Raises :class:`~policies.errors.PolicyFileError` naming the file and the key of the first
    problem found.
    """
    folder = BENEFITS_DIR if directory is None else directory
    policies = [read_policy_file(path) for path in sorted(folder.glob("*.yaml"))]
    check_no_overlap(policies)
    return PolicySet(tuple(policies))
