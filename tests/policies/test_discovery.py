"""Discovery rules (主动发现 / 主动识别) in every policy file: loaded with their clause, checked by
the loader model."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from policies.benefits import BENEFITS_DIR, PolicySet, load_policies
from policies.errors import PolicyFileError
from tests.policies.test_benefits import PANZHIHUA, bundled, edited, refused

HUNAN = "430000-2017.yaml"


@pytest.fixture(scope="module")
def policies() -> PolicySet:
    return load_policies()


def test_every_policy_file_says_whether_it_discovers_and_cites_why(policies: PolicySet) -> None:
    rules = {p.id: p.discovery for p in policies}
    assert {pid: r.active.latest.value for pid, r in rules.items()} == {
        "510400-2023": True,
        "370800-2021": True,
        "320000-2015": False,
        "430000-2017": False,
    }
    assert {pid: r.active.latest.reference for pid, r in rules.items()} == {
        "510400-2023": "攀枝花 第十八条",
        "370800-2021": "鲁医保发〔2020〕79号 四(一)",
        "320000-2015": "苏政办发 五(三)",
        "430000-2017": "湘人社发〔2017〕51号 一",
    }
    for path in sorted(BENEFITS_DIR.glob("*.yaml")):
        assert "\ndiscovery:\n" in bundled(path.name), path.name


def test_panzhihua_threshold_is_half_of_pcdi_and_jining_an_assumed_amount(
    policies: PolicySet,
) -> None:
    panzhihua, jining = policies.by_id("510400-2023"), policies.by_id("370800-2021")
    assert panzhihua.discovery_threshold(2024) == Decimal("22000.00")  # 44,000 × 50%
    assert jining.discovery_threshold(2024) == Decimal("15000.00")
    threshold = jining.discovery.threshold
    assert threshold is not None
    assert threshold.at(date(2024, 1, 1)).assumed
    assert jining.discovery.active.at(date(2024, 1, 1)).clause == "鲁医保发〔2020〕79号 四(一)"
    assert policies.by_id("430000-2017").discovery_threshold(2024) is None


def test_assisted_categories_are_those_with_an_assistance_schedule(policies: PolicySet) -> None:
    assert {c.value for c in policies.by_id("510400-2023").assisted_categories} == {
        "EXTREME_POVERTY", "ORPHAN", "MINIMUM_LIVING", "MONITORED", "MARGINAL_LOW_INCOME",
        "ILLNESS_IMPOVERISHED",
    }  # fmt: skip
    assert policies.by_id("430000-2017").assisted_categories == frozenset()


def test_a_policy_file_without_a_discovery_section_is_refused(tmp_path: Path) -> None:
    text = bundled(HUNAN)
    cut = text[: text.index("\n# 主动发现: none.")] + "\n"
    error = refused(tmp_path, cut, HUNAN)
    assert error.key.startswith("discovery")
    assert "missing" in error.reason


def test_active_discovery_without_a_threshold_is_refused(tmp_path: Path) -> None:
    line = (
        "  threshold: {value: 0.50, unit: share_of_pcdi, since: 2023-02-01, "
        'clause: "攀枝花 第十八条"}'
    )
    text = edited(PANZHIHUA, line + "\n", "")
    error = refused(tmp_path, text)
    assert error.key.startswith("discovery.threshold")
    assert "active discovery needs a threshold" in error.reason


def test_a_discovery_rule_without_clause_or_assumed_is_refused(tmp_path: Path) -> None:
    text = edited(
        HUNAN,
        'active: {value: false, since: 2017-08-01, clause: "湘人社发〔2017〕51号 一", note: '
        '"no active discovery in the document"}',
        "active: {value: false, since: 2017-08-01}",
    )
    error = refused(tmp_path, text, HUNAN)
    assert error.key.startswith("discovery.active")
    assert "clause" in error.reason


def test_a_share_of_pcdi_threshold_needs_a_pcdi_table(tmp_path: Path) -> None:
    text = edited(
        "370800-2021.yaml",
        "threshold: {value: 15000, unit: yuan,",
        "threshold: {value: 0.5, unit: share_of_pcdi,",
    )
    error = refused(tmp_path, text, "370800-2021.yaml")
    assert "pcdi" in error.reason
    with pytest.raises(PolicyFileError):
        load_policies(tmp_path)
