"""Benefit policy files: the bundled four load; a malformed file is refused naming file and key."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from policies.benefits import (
    BENEFITS_DIR,
    ParameterNotInForce,
    PolicySet,
    Unit,
    Value,
    load_policies,
)
from policies.benefits.model import Segment
from policies.errors import InvalidInput, NoPolicyInForce, PolicyFileError
from policies.vocabulary import Category, HospitalLevel, VisitType

PANZHIHUA = "510400-2023.yaml"
JINING = "370800-2021.yaml"


def bundled(name: str) -> str:
    return (BENEFITS_DIR / name).read_text(encoding="utf-8")


def edited(name: str, old: str, new: str) -> str:
    """The bundled file with the first ``old`` after the header comment replaced by ``new``."""
    text = bundled(name)
    body_starts = text.index("\nid: ")
    header, body = text[:body_starts], text[body_starts:]
    assert old in body, f"{old!r} not in {name}"
    return header + body.replace(old, new, 1)


def refused(tmp_path: Path, text: str, name: str = PANZHIHUA) -> PolicyFileError:
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(PolicyFileError) as caught:
        load_policies(tmp_path)
    return caught.value


@pytest.fixture(scope="module")
def policies() -> PolicySet:
    return load_policies()


# -- the bundled policies ----------------------------------------------------------------------


def test_the_four_bundled_policies_load(policies: PolicySet) -> None:
    assert sorted(p.id for p in policies) == [
        "320000-2015",
        "370800-2021",
        "430000-2017",
        "510400-2023",
    ]
    assert len(policies) == 4


def test_panzhihua_policy_carries_values_dates_and_clauses(policies: PolicySet) -> None:
    policy = policies.by_id("510400-2023")
    assert (policy.region_prefix, policy.effective_from, policy.effective_to) == (
        "5104",
        date(2023, 2, 1),
        date(2028, 1, 31),
    )
    assert policy.effective_reference == "攀枝花 第三十三条"
    tilt = policy.critical_illness.tilt
    assert tilt is not None
    factor = tilt.deductible_factor
    assert factor is not None
    assert factor.at(date(2023, 3, 1)).value == Decimal("0.5")
    assert factor.at(date(2023, 3, 1)).reference == "攀枝花 第八条"
    ratio = policy.basic.inpatient_ratio[HospitalLevel.TERTIARY].at(date(2023, 3, 1))
    assert (ratio.value, ratio.assumed, ratio.reference) == (Decimal("0.65"), True, "assumed")
    assistance = policy.assistance
    assert assistance is not None
    monitored = assistance.schedules[Category.MONITORED].deductible
    assert monitored is not None
    value = monitored.at(date(2023, 3, 1))
    assert (value.value, value.unit, value.clause) == (
        Decimal("0.05"),
        Unit.SHARE_OF_PCDI,
        "攀枝花 第十二条(一)",
    )


def test_a_single_ratio_becomes_one_open_segment(policies: PolicySet) -> None:
    assistance = policies.by_id("370800-2021").assistance
    assert assistance is not None
    segments = assistance.schedules[Category.MINIMUM_LIVING].segments.at(date(2021, 4, 1))
    assert segments.value == (Segment(None, Decimal("0.70")),)
    assert segments.reference == "济医保发〔2020〕28号 一"


def test_hunan_defines_no_assistance_but_special_diseases_and_subsidies(
    policies: PolicySet,
) -> None:
    hunan = policies.by_id("430000-2017")
    assert hunan.assistance is None
    assert hunan.secondary_assistance is None
    special = hunan.basic.special_diseases
    assert special is not None
    assert special.diagnoses.latest.value == ("C15", "C16", "C18", "C20", "N18.5")
    assert special.child_max_age is not None
    assert special.child_max_age.latest.value == 14
    assert special.child_max_age.latest.assumed
    assert len(hunan.enrollment_subsidy[Category.POVERTY_EXIT_SECURED]) == 2


def _values(node: object) -> Iterator[Value[object]]:
    if isinstance(node, Value):
        yield node
    elif dataclasses.is_dataclass(node) and not isinstance(node, type):
        for field in dataclasses.fields(node):
            yield from _values(getattr(node, field.name))
    elif isinstance(node, Mapping):
        for item in node.values():
            yield from _values(item)
    elif isinstance(node, tuple):
        for item in node:
            yield from _values(item)


def test_every_bundled_parameter_has_a_date_and_a_clause_or_is_marked_assumed(
    policies: PolicySet,
) -> None:
    for policy in policies:
        values = list(_values(policy))
        assert len(values) > 30
        for value in values:
            assert value.policy_id == policy.id
            assert policy.effective_from <= value.since
            assert value.assumed == (value.clause is None)
            assert value.reference == (value.clause or "assumed")


def test_every_bundled_file_explains_its_format_in_a_header() -> None:
    for path in sorted(BENEFITS_DIR.glob("*.yaml")):
        assert "File format" in path.read_text(encoding="utf-8"), path.name


def test_discovery_threshold_is_half_of_the_previous_years_pcdi(policies: PolicySet) -> None:
    panzhihua = policies.by_id("510400-2023")
    assert panzhihua.discovery_threshold(2023) == Decimal("21000.00")
    assert panzhihua.discovery_threshold(2025) == Decimal("23000.00")
    assert policies.by_id("320000-2015").discovery_threshold(2023) is None


# -- choosing the policy -----------------------------------------------------------------------


def test_policy_in_force_follows_region_prefix_and_date(policies: PolicySet) -> None:
    assert policies.in_force("510421", date(2023, 2, 1)).id == "510400-2023"
    assert policies.in_force("370811", date(2021, 1, 1)).id == "370800-2021"
    assert policies.in_force("320506", date(2017, 3, 1)).id == "320000-2015"
    assert policies.in_force("430521", date(2017, 8, 1)).id == "430000-2017"


def test_no_policy_in_force_names_region_and_date(policies: PolicySet) -> None:
    with pytest.raises(NoPolicyInForce) as caught:
        policies.in_force("510402", date(2023, 1, 31))
    assert caught.value.region_code == "510402"
    assert caught.value.on == date(2023, 1, 31)
    assert "510402" in str(caught.value)
    assert "2023-01-31" in str(caught.value)
    with pytest.raises(NoPolicyInForce):
        policies.in_force("510402", date(2028, 2, 1))
    with pytest.raises(NoPolicyInForce):
        policies.in_force("110101", date(2023, 3, 1))


def test_region_code_must_have_six_digits(policies: PolicySet) -> None:
    with pytest.raises(InvalidInput) as caught:
        policies.in_force("5104", date(2023, 3, 1))
    assert caught.value.field == "regionCode"


def test_most_specific_prefix_wins(tmp_path: Path) -> None:
    (tmp_path / PANZHIHUA).write_text(bundled(PANZHIHUA), encoding="utf-8")
    sichuan = bundled(PANZHIHUA)
    sichuan = sichuan.replace('id: "510400-2023"', 'id: "510000-2023"')
    sichuan = sichuan.replace('code: "510400", prefix: "5104"', 'code: "510000", prefix: "51"')
    (tmp_path / "510000-2023.yaml").write_text(sichuan, encoding="utf-8")
    policies = load_policies(tmp_path)
    assert policies.in_force("510402", date(2023, 3, 1)).id == "510400-2023"
    assert policies.in_force("511002", date(2023, 3, 1)).id == "510000-2023"


def test_successive_policies_of_a_region_are_chosen_by_date(tmp_path: Path) -> None:
    old = edited(
        JINING,
        "effective: {from: 2021-01-01, to: null",
        "effective: {from: 2021-01-01, to: 2022-12-31",
    )
    new = bundled(JINING).replace('id: "370800-2021"', 'id: "370800-2023"')
    new = new.replace("2021-01-01", "2023-01-01")
    (tmp_path / JINING).write_text(old, encoding="utf-8")
    (tmp_path / "370800-2023.yaml").write_text(new, encoding="utf-8")
    policies = load_policies(tmp_path)
    assert policies.in_force("370811", date(2022, 12, 31)).id == "370800-2021"
    assert policies.in_force("370811", date(2023, 1, 1)).id == "370800-2023"


def test_adding_a_region_is_adding_a_file(tmp_path: Path) -> None:
    text = bundled(JINING).replace('id: "370800-2021"', 'id: "370200-2021"')
    text = text.replace(
        'code: "370800", prefix: "3708", name: 济宁市',
        'code: "370200", prefix: "3702", name: 青岛市',
    )
    (tmp_path / "370200-2021.yaml").write_text(text, encoding="utf-8")
    assert load_policies(tmp_path).in_force("370202", date(2022, 5, 1)).id == "370200-2021"


# -- parameters not in force -------------------------------------------------------------------


def test_asking_for_pcdi_of_an_unlisted_year_raises_a_named_error(policies: PolicySet) -> None:
    panzhihua = policies.by_id("510400-2023")
    assert panzhihua.pcdi_for(2027).value == Decimal("52000")
    with pytest.raises(ParameterNotInForce) as caught:
        panzhihua.pcdi_for(2021)
    assert (caught.value.policy_id, caught.value.key, caught.value.when) == (
        "510400-2023",
        "pcdi.2021",
        2021,
    )
    with pytest.raises(ParameterNotInForce):
        policies.by_id("370800-2021").pcdi_for(2020)


def test_a_parameter_asked_before_its_start_raises_instead_of_returning_zero(
    policies: PolicySet,
) -> None:
    cap = policies.by_id("510400-2023").basic.yearly_cap
    with pytest.raises(ParameterNotInForce) as caught:
        cap.at(date(2023, 1, 31))
    assert caught.value.key == "basic.yearly_cap"


def test_a_parameter_history_gives_the_value_in_force_on_each_date(tmp_path: Path) -> None:
    text = edited(
        PANZHIHUA,
        "  yearly_cap: {value: 200000, since: 2023-02-01, assumed: true}",
        "  yearly_cap:\n"
        "    - {value: 200000, since: 2023-02-01, assumed: true}\n"
        '    - {value: 250000, since: 2025-01-01, clause: "攀枝花 第三十一条"}',
    )
    (tmp_path / PANZHIHUA).write_text(text, encoding="utf-8")
    cap = load_policies(tmp_path).by_id("510400-2023").basic.yearly_cap
    assert cap.at(date(2024, 12, 31)).value == Decimal("200000")
    assert cap.at(date(2025, 1, 1)).value == Decimal("250000")
    assert cap.at(date(2025, 1, 1)).reference == "攀枝花 第三十一条"


# -- refusals ----------------------------------------------------------------------------------


def test_unknown_top_level_key_is_refused(tmp_path: Path) -> None:
    error = refused(tmp_path, bundled(PANZHIHUA) + "\nbonus: 1\n")
    assert error.file == PANZHIHUA
    assert error.key.startswith("bonus (line ")
    assert "unknown key" in error.reason


def test_unknown_nested_key_is_refused(tmp_path: Path) -> None:
    text = edited(
        PANZHIHUA,
        "  chronic:\n",
        "  chronic:\n    copay: {value: 5, since: 2023-02-01, assumed: true}\n",
    )
    error = refused(tmp_path, text)
    assert error.key.startswith("basic.chronic.copay (line ")


def test_unknown_key_inside_a_parameter_is_refused(tmp_path: Path) -> None:
    text = edited(
        PANZHIHUA,
        "PRIMARY: {value: 0.90, since: 2023-02-01, assumed: true}",
        "PRIMARY: {value: 0.90, since: 2023-02-01, assumed: true, source: hearsay}",
    )
    assert refused(tmp_path, text).key.startswith("basic.inpatient.ratio.PRIMARY.source (line ")


def test_missing_required_key_is_refused(tmp_path: Path) -> None:
    text = edited(
        PANZHIHUA, "  yearly_cap: {value: 400000, since: 2023-02-01, assumed: true}\n", ""
    )
    error = refused(tmp_path, text)
    assert error.key.startswith("critical_illness.yearly_cap (line ")
    assert "missing" in error.reason


def test_parameter_without_effective_date_is_refused(tmp_path: Path) -> None:
    text = edited(
        PANZHIHUA,
        "ratio: {value: 0.65, since: 2023-02-01, assumed: true}",
        "ratio: {value: 0.65, assumed: true}",
    )
    assert refused(tmp_path, text).key.startswith("basic.chronic.ratio.since (line ")


def test_ratio_above_one_is_refused(tmp_path: Path) -> None:
    text = edited(PANZHIHUA, "SECONDARY: {value: 0.80,", "SECONDARY: {value: 1.20,")
    error = refused(tmp_path, text)
    assert error.key.startswith("basic.inpatient.ratio.SECONDARY.value (line ")
    assert "[0, 1]" in error.reason


def test_errors_name_the_line_of_the_key(tmp_path: Path) -> None:
    text = edited(PANZHIHUA, "SECONDARY: {value: 0.80,", "SECONDARY: {value: 1.20,")
    error = refused(tmp_path, text)
    wanted = next(i for i, line in enumerate(text.splitlines(), 1) if "{value: 1.20," in line)
    assert error.line == wanted
    assert f"(line {wanted})" in str(error)
    # An unknown key: its own line.
    text = edited(PANZHIHUA, "  yearly_cap: {value: 400000,", "  cap: {value: 400000,")
    error = refused(tmp_path, text)
    assert error.key.startswith("critical_illness.cap (line ")
    assert error.line == next(
        i for i, line in enumerate(text.splitlines(), 1) if line.startswith("  cap: {value")
    )


def test_negative_ratio_in_a_segment_is_refused(tmp_path: Path) -> None:
    text = edited(PANZHIHUA, "{up_to: null, ratio: 0.70}", "{up_to: null, ratio: -0.70}")
    assert refused(tmp_path, text).key.startswith("critical_illness.segments.value[1].ratio (line ")


def test_negative_cap_is_refused(tmp_path: Path) -> None:
    text = edited(PANZHIHUA, "yearly_cap: {value: 400000,", "yearly_cap: {value: -400000,")
    error = refused(tmp_path, text)
    assert error.key.startswith("critical_illness.yearly_cap.value (line ")
    assert "negative" in error.reason


def test_negative_deductible_is_refused(tmp_path: Path) -> None:
    text = edited(PANZHIHUA, "TERTIARY: {value: 800,", "TERTIARY: {value: -800,")
    assert refused(tmp_path, text).key.startswith(
        "basic.inpatient.deductible.TERTIARY.value (line "
    )


def test_pcdi_share_outside_zero_and_one_is_refused(tmp_path: Path) -> None:
    text = edited(PANZHIHUA, "{value: 0.25, unit: share_of_pcdi", "{value: 25, unit: share_of_pcdi")
    assert refused(tmp_path, text).key.startswith(
        "assistance.schedules.ILLNESS_IMPOVERISHED.deductible.value (line "
    )


def test_unknown_category_in_priority_is_refused(tmp_path: Path) -> None:
    text = edited(
        PANZHIHUA,
        "value: [EXTREME_POVERTY, ORPHAN, MINIMUM_LIVING, MONITORED,",
        "value: [EXTREME_POVERTY, WEALTHY, MINIMUM_LIVING, MONITORED,",
    )
    error = refused(tmp_path, text)
    assert error.key.startswith("categories.priority.value[1] (line ")
    assert "WEALTHY" in error.reason


def test_unknown_category_as_schedule_key_is_refused(tmp_path: Path) -> None:
    text = edited(
        PANZHIHUA,
        "    ORPHAN:\n      deductible: {value: 0,",
        "    NOBLE:\n      deductible: {value: 0,",
    )
    assert refused(tmp_path, text).key.startswith("assistance.schedules.NOBLE (line ")


def test_schedule_for_a_category_missing_from_priority_is_refused(tmp_path: Path) -> None:
    text = edited(
        PANZHIHUA,
        "    ORPHAN:\n      deductible: {value: 0,",
        "    LOW_INCOME:\n      deductible: {value: 0,",
    )
    error = refused(tmp_path, text)
    assert error.key.startswith("assistance.schedules.LOW_INCOME (line ")
    assert "priority" in error.reason


def test_unknown_visit_type_is_refused(tmp_path: Path) -> None:
    text = edited(
        PANZHIHUA,
        "visit_types: {value: [INPATIENT, OUTPATIENT_CHRONIC], since: 2023-02-01, clause: "
        '"攀枝花 第十一条"}',
        'visit_types: {value: [INPATIENT, DENTAL], since: 2023-02-01, clause: "攀枝花 第十一条"}',
    )
    error = refused(tmp_path, text)
    assert error.key.startswith("assistance.visit_types.value[1] (line ")
    assert "DENTAL" in error.reason


def test_unknown_hospital_level_is_refused(tmp_path: Path) -> None:
    text = edited(
        PANZHIHUA,
        "      TERTIARY: {value: 800,",
        "      QUATERNARY: {value: 900, since: 2023-02-01, assumed: true}\n"
        "      TERTIARY: {value: 800,",
    )
    assert refused(tmp_path, text).key.startswith("basic.inpatient.deductible.QUATERNARY (line ")


def test_parameter_without_clause_or_assumed_is_refused(tmp_path: Path) -> None:
    text = edited(
        PANZHIHUA,
        'ratio_bonus: {value: 0.05, since: 2023-02-01, clause: "攀枝花 第八条"}',
        "ratio_bonus: {value: 0.05, since: 2023-02-01}",
    )
    error = refused(tmp_path, text)
    assert error.key.startswith("critical_illness.tilt.ratio_bonus (line ")
    assert "clause" in error.reason


def test_parameter_with_assumed_false_and_no_clause_is_refused(tmp_path: Path) -> None:
    text = edited(
        PANZHIHUA,
        "2022: {value: 42000, since: 2023-02-01, assumed: true}",
        "2022: {value: 42000, since: 2023-02-01, assumed: false}",
    )
    assert refused(tmp_path, text).key.startswith("pcdi.2022 (line ")


def test_parameter_with_both_clause_and_assumed_is_refused(tmp_path: Path) -> None:
    text = edited(
        PANZHIHUA,
        'ratio_bonus: {value: 0.05, since: 2023-02-01, clause: "攀枝花 第八条"}',
        'ratio_bonus: {value: 0.05, since: 2023-02-01, clause: "攀枝花 第八条", assumed: true}',
    )
    assert "not both" in refused(tmp_path, text).reason


def test_overlapping_policies_for_the_same_prefix_are_refused(tmp_path: Path) -> None:
    (tmp_path / JINING).write_text(bundled(JINING), encoding="utf-8")
    later = (
        bundled(JINING)
        .replace('id: "370800-2021"', 'id: "370800-2024"')
        .replace("2021-01-01", "2024-01-01")
    )
    error = refused(tmp_path, later, "370800-2024.yaml")
    assert (error.file, error.key) == ("370800-2024.yaml", "effective")
    assert "370800-2021" in error.reason


def test_malformed_effective_date_is_refused(tmp_path: Path) -> None:
    text = edited(JINING, "effective: {from: 2021-01-01,", "effective: {from: 2021/01/01,")
    error = refused(tmp_path, text, JINING)
    assert error.key.startswith("effective.from (line ")


def test_impossible_date_is_refused_with_its_key(tmp_path: Path) -> None:
    text = edited(
        PANZHIHUA,
        "ratio: {value: 0.65, since: 2023-02-01, assumed: true}",
        "ratio: {value: 0.65, since: 2023-02-30, assumed: true}",
    )
    error = refused(tmp_path, text)
    assert error.key.startswith("basic.chronic.ratio.since (line ")
    assert "2023-02-30" in error.reason


def test_parameter_starting_outside_the_policy_interval_is_refused(tmp_path: Path) -> None:
    text = edited(
        PANZHIHUA,
        "ratio: {value: 0.65, since: 2023-02-01, assumed: true}",
        "ratio: {value: 0.65, since: 2022-02-01, assumed: true}",
    )
    assert refused(tmp_path, text).key.startswith("basic.chronic.ratio.since (line ")


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    text = edited(PANZHIHUA, "  2023: {value: 44000", "  2022: {value: 44000")
    error = refused(tmp_path, text)
    assert error.key.startswith("pcdi.2022 (line ")
    assert "twice" in error.reason


def test_a_key_given_twice_is_refused_at_the_line_of_its_second_occurrence(
    tmp_path: Path,
) -> None:
    text = edited(PANZHIHUA, "  2023: {value: 44000", "  2022: {value: 44000")
    wanted = next(i for i, line in enumerate(text.splitlines(), 1) if "2022: {value: 44000" in line)
    assert refused(tmp_path, text).line == wanted


def test_a_null_deductible_is_refused_not_read_as_no_deductible(tmp_path: Path) -> None:
    text = edited(
        PANZHIHUA,
        "deductible: {value: 300, since: 2023-02-01, assumed: true, note: annual}",
        "deductible: null",
    )
    error = refused(tmp_path, text)
    line = text.count("\n", 0, text.index("deductible: null")) + 1
    assert (error.key, error.line) == (f"basic.chronic.deductible (line {line})", line)
    assert "must be a parameter" in error.reason


def test_id_must_match_the_file_name(tmp_path: Path) -> None:
    error = refused(tmp_path, bundled(JINING), "370800-2022.yaml")
    assert error.key.startswith("id (line ")


def test_pcdi_share_without_a_pcdi_table_is_refused(tmp_path: Path) -> None:
    text = edited(
        JINING,
        'deductible: {value: 0, since: 2021-01-01, clause: "济医保发〔2020〕28号 一", '
        "note: 不设救助起付线}",
        "deductible: {value: 0.1, unit: share_of_pcdi, since: 2021-01-01, assumed: true}",
    )
    error = refused(tmp_path, text, JINING)
    assert error.key.startswith("assistance.schedules.EXTREME_POVERTY.deductible (line ")
    assert "pcdi" in error.reason


def test_segment_bounds_must_increase(tmp_path: Path) -> None:
    text = edited(
        PANZHIHUA,
        "value: [{up_to: 100000, ratio: 0.60}, {up_to: null, ratio: 0.70}]",
        "value: [{up_to: 100000, ratio: 0.60}, {up_to: 50000, ratio: 0.65}, "
        "{up_to: null, ratio: 0.70}]",
    )
    assert refused(tmp_path, text).key.startswith("critical_illness.segments.value[1].up_to (line ")


def test_the_last_segment_must_be_open(tmp_path: Path) -> None:
    text = edited(PANZHIHUA, "{up_to: null, ratio: 0.70}]", "{up_to: 900000, ratio: 0.70}]")
    assert refused(tmp_path, text).key.startswith("critical_illness.segments.value[1].up_to (line ")


def test_ratio_and_segments_together_are_refused(tmp_path: Path) -> None:
    text = edited(
        PANZHIHUA,
        "  ratio: {value: 0.60, since: 2023-02-01, assumed: true}\n",
        "  ratio: {value: 0.60, since: 2023-02-01, assumed: true}\n"
        "  segments: {value: [{up_to: null, ratio: 0.6}], since: 2023-02-01, assumed: true}\n",
    )
    assert refused(tmp_path, text).key.startswith("inclusive_commercial.segments (line ")


def test_unknown_unit_is_refused(tmp_path: Path) -> None:
    text = edited(
        PANZHIHUA, "{value: 0.05, unit: share_of_pcdi", "{value: 0.05, unit: share_of_gdp"
    )
    assert refused(tmp_path, text).key.startswith(
        "assistance.schedules.MONITORED.deductible.unit (line "
    )


def test_unknown_subsidy_fund_is_refused(tmp_path: Path) -> None:
    text = edited(PANZHIHUA, "fund: {value: assistanceFund,", "fund: {value: charity,")
    assert refused(tmp_path, text).key.startswith(
        "enrollment_subsidy.EXTREME_POVERTY[0].fund.value (line "
    )


def test_text_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    error = refused(tmp_path, "id: [unclosed\n")
    assert error.key.startswith("<file> (line ")


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    error = refused(tmp_path, "")
    assert error.file == PANZHIHUA
    assert "mapping" in error.reason


def test_visit_types_in_policy_and_engine_vocabulary_agree(policies: PolicySet) -> None:
    secondary = policies.by_id("370800-2021").secondary_assistance
    assert secondary is not None
    assert secondary.visit_types.latest.value == (VisitType.INPATIENT,)
    assert secondary.requires_compliant_referral.latest.value is False
