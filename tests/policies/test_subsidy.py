"""Enrollment subsidy (SETTLEMENT.md §7): each region's table, the largest subsidy, the split."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from policies.benefits import PolicySet, load_policies
from policies.errors import InvalidInput
from policies.settlement.categories import CategoryRecord
from policies.settlement.subsidy import SubsidySplit, enrollment_subsidy
from policies.vocabulary import Category

POLICIES: PolicySet = load_policies()


def subsidy(
    region: str,
    year: int,
    enrolled_on: date,
    contribution: str,
    *held: Category,
    since: date = date(2010, 1, 1),
) -> SubsidySplit:
    records = [CategoryRecord(category, since) for category in held]
    return enrollment_subsidy(POLICIES, region, year, enrolled_on, records, Decimal(contribution))


def split(result: SubsidySplit) -> tuple[str, str, str]:
    return str(result.assistance_fund), str(result.finance), str(result.individual)


@pytest.mark.parametrize(
    ("category", "expected"),
    [
        (Category.EXTREME_POVERTY, ("350.00", "0.00", "0.00")),
        (Category.ORPHAN, ("350.00", "0.00", "0.00")),
        (Category.MINIMUM_LIVING, ("262.50", "0.00", "87.50")),
        (Category.MONITORED, ("262.50", "0.00", "87.50")),
    ],
)
def test_panzhihua_pays_all_or_three_quarters_of_the_contribution(
    category: Category, expected: tuple[str, str, str]
) -> None:
    result = subsidy("510402", 2024, date(2023, 11, 1), "350.00", category)
    assert split(result) == expected
    assert (result.policy_id, result.category) == ("510400-2023", category)
    assert "攀枝花 第六条" in result.reference


def test_jining_pays_the_whole_contribution_of_key_objects() -> None:
    result = subsidy("370811", 2022, date(2021, 12, 1), "320.00", Category.MINIMUM_LIVING)
    assert split(result) == ("320.00", "0.00", "0.00")
    assert "济医保发〔2020〕28号 一" in result.reference


def test_jiangsu_pays_key_objects_fully_and_low_income_half() -> None:
    key = subsidy("320102", 2017, date(2016, 12, 1), "150.00", Category.DISTRESSED_WORKER)
    low = subsidy("320102", 2017, date(2016, 12, 1), "150.00", Category.LOW_INCOME)
    assert split(key) == ("150.00", "0.00", "0.00")
    assert split(low) == ("75.00", "0.00", "75.00")
    assert "assumed" in low.reference


def test_jiangsu_end_of_month_grace_applies_on_the_enrollment_date() -> None:
    ended = CategoryRecord(Category.MINIMUM_LIVING, date(2015, 6, 1), date(2016, 5, 10))
    kept = enrollment_subsidy(
        POLICIES, "320102", 2016, date(2016, 5, 20), [ended], Decimal("150.00")
    )
    assert kept.category is Category.MINIMUM_LIVING
    low = CategoryRecord(Category.LOW_INCOME, date(2015, 6, 1), date(2016, 5, 10))
    lost = enrollment_subsidy(POLICIES, "320102", 2016, date(2016, 5, 20), [low], Decimal("150.00"))
    assert lost.category is None
    assert split(lost) == ("0.00", "0.00", "150.00")


def test_hunan_splits_poverty_exit_secured_between_assistance_fund_and_finance() -> None:
    result = subsidy("430521", 2018, date(2017, 12, 1), "180.00", Category.POVERTY_EXIT_SECURED)
    assert split(result) == ("90.00", "90.00", "0.00")


def test_hunan_registered_poor_are_subsidised_by_finance() -> None:
    result = subsidy("430521", 2018, date(2017, 12, 1), "180.00", Category.REGISTERED_POOR)
    assert split(result) == ("0.00", "90.00", "90.00")


def test_hunan_extreme_poverty_is_paid_by_the_assistance_fund() -> None:
    result = subsidy("430521", 2018, date(2017, 12, 1), "180.00", Category.EXTREME_POVERTY)
    assert split(result) == ("180.00", "0.00", "0.00")


def test_hunan_minimum_living_gets_a_fixed_amount() -> None:
    result = subsidy("430521", 2018, date(2017, 12, 1), "180.00", Category.MINIMUM_LIVING)
    assert split(result) == ("120.00", "0.00", "60.00")
    assert "120 yuan [assumed]" in result.reference


def test_a_fixed_amount_never_makes_the_individual_part_negative() -> None:
    result = subsidy("430521", 2018, date(2017, 12, 1), "100.00", Category.MINIMUM_LIVING)
    assert split(result) == ("100.00", "0.00", "0.00")


def test_the_largest_subsidy_wins() -> None:
    held = (Category.MINIMUM_LIVING, Category.REGISTERED_POOR)
    small_contribution = subsidy("430521", 2018, date(2017, 12, 1), "180.00", *held)
    assert small_contribution.category is Category.MINIMUM_LIVING  # 120 > 90
    large_contribution = subsidy("430521", 2018, date(2017, 12, 1), "300.00", *held)
    assert large_contribution.category is Category.REGISTERED_POOR  # 150 > 120
    assert split(large_contribution) == ("0.00", "150.00", "150.00")


def test_a_tie_goes_to_the_policys_priority_order() -> None:
    result = subsidy(
        "510402", 2024, date(2023, 11, 1), "350.00", Category.ORPHAN, Category.EXTREME_POVERTY
    )
    assert result.category is Category.EXTREME_POVERTY


def test_shares_are_rounded_half_up() -> None:
    result = subsidy("510402", 2024, date(2023, 11, 1), "333.33", Category.MINIMUM_LIVING)
    assert split(result) == ("250.00", "0.00", "83.33")  # 75% × 333.33 = 249.9975


def test_a_category_recognised_after_the_enrollment_date_does_not_count() -> None:
    result = subsidy(
        "510402", 2024, date(2023, 11, 1), "350.00", Category.ORPHAN, since=date(2023, 11, 2)
    )
    assert result.category is None
    assert split(result) == ("0.00", "0.00", "350.00")


def test_a_held_category_without_a_subsidy_pays_nothing() -> None:
    result = subsidy("510402", 2024, date(2023, 11, 1), "350.00", Category.MARGINAL_LOW_INCOME)
    assert result.category is None
    assert "MARGINAL_LOW_INCOME" in result.reference


def test_enrolling_before_the_policy_starts_uses_the_policy_of_the_coverage_year() -> None:
    result = subsidy("510402", 2023, date(2022, 12, 15), "350.00", Category.ORPHAN)
    assert result.policy_id == "510400-2023"
    assert split(result) == ("350.00", "0.00", "0.00")


def test_jiangsu_rules_apply_to_an_enrollment_made_before_the_policy_started() -> None:
    ended = CategoryRecord(Category.MINIMUM_LIVING, date(2015, 6, 1), date(2015, 12, 10))
    result = enrollment_subsidy(
        POLICIES, "320102", 2016, date(2015, 12, 1), [ended], Decimal("120.00")
    )
    assert result.policy_id == "320000-2015"
    assert split(result) == ("120.00", "0.00", "0.00")


def test_no_policy_during_the_coverage_year_means_no_subsidy() -> None:
    # Enrollment does not depend on assistance rules (issue 10, point 9): an orphan of a region
    # or year no policy covers pays the whole contribution, and the split says why.
    before = subsidy("510402", 2022, date(2021, 12, 15), "350.00", Category.ORPHAN)
    elsewhere = subsidy("110101", 2023, date(2022, 12, 15), "350.00", Category.ORPHAN)
    assert (before.policy_id, before.category, split(before)) == (
        None,
        None,
        ("0.00", "0.00", "350.00"),
    )
    assert before.reference == "no subsidy: no assistance policy covers region 510402 in 2022"
    assert (elsewhere.policy_id, split(elsewhere)) == (None, ("0.00", "0.00", "350.00"))
    assert elsewhere.to_dict()["policy"] is None


def test_a_negative_contribution_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        subsidy("510402", 2024, date(2023, 11, 1), "-1.00", Category.ORPHAN)
    assert (caught.value.field, caught.value.value) == ("contribution", Decimal("-1.00"))


def test_a_zero_contribution_splits_into_zeros() -> None:
    result = subsidy("510402", 2024, date(2023, 11, 1), "0.00", Category.ORPHAN)
    assert split(result) == ("0.00", "0.00", "0.00")


def test_the_split_serialises_with_amount_strings() -> None:
    result = subsidy("430521", 2018, date(2017, 12, 1), "180.00", Category.POVERTY_EXIT_SECURED)
    data = result.to_dict()
    assert data["assistanceFund"] == "90.00"
    assert data["finance"] == "90.00"
    assert data["category"] == "POVERTY_EXIT_SECURED"
