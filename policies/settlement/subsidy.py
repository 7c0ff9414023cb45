"""Enrollment subsidy (资助参保, SETTLEMENT.md §7): who pays what of the individual contribution.

The category held on the enrollment date with the largest subsidy wins; the contribution is split
into what the assistance fund pays, what finance pays and what the individual pays (never below 0,
each part rounded half up). Enrolling does not depend on assistance rules: where no policy covers
the region in the coverage year, nothing is subsidised (the split names no policy and the
individual pays the whole contribution).

>>> from policies.benefits import load_policies
>>> split = enrollment_subsidy(load_policies(), "430102", 2018, date(2017, 12, 1),
...                            [CategoryRecord(Category.POVERTY_EXIT_SECURED, date(2016, 1, 1))],
...                            Decimal("180.00"))
>>> split.assistance_fund, split.finance, split.individual
(Decimal('90.00'), Decimal('90.00'), Decimal('0.00'))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from policies.benefits.model import Fund, Policy, PolicySet, SubsidyPart, Unit
from policies.errors import InvalidInput, NoPolicyInForce
from policies.money import ZERO, percent, round_money
from policies.settlement.categories import CategoryRecord, end_of_month
from policies.vocabulary import Category

__all__ = ["SubsidySplit", "enrollment_subsidy", "subsidy_policy"]


@dataclass(frozen=True)
class SubsidySplit:
    policy_id: str | None
    """The policy whose rules split the contribution, or None when none covers the region."""
    category: Category | None
    """The subsidised category that won, or None when the person holds none."""
    assistance_fund: Decimal
    finance: Decimal
    individual: Decimal
    reference: str
    """Where the amounts and funds come from (clauses, or "assumed")."""

    def to_dict(self) -> dict[str, object]:
        return {
            "policy": self.policy_id,
            "category": None if self.category is None else self.category.value,
            "assistanceFund": format(self.assistance_fund, "f"),
            "finance": format(self.finance, "f"),
            "individual": format(self.individual, "f"),
            "reference": self.reference,
        }


def subsidy_policy(policies: PolicySet, region_code: str, year: int, enrolled_on: date) -> Policy:
    """The policy in force on the enrollment date; failing that, the one that comes into force
    earliest during the coverage year; else NoPolicyInForce."""
    candidates = policies.for_region(region_code)
    for policy in candidates:
        if policy.in_force_on(enrolled_on):
            return policy
    first, last = date(year, 1, 1), date(year, 12, 31)
    during = [p for p in candidates if p.overlaps(first, last)]
    if not during:
        raise NoPolicyInForce(region_code, enrolled_on, "benefit policy (enrollment subsidy)")
    return min(during, key=lambda p: (max(p.effective_from, first), -len(p.region_prefix)))


def _held(
    policy: Policy, records: Sequence[CategoryRecord], on: date, rules_on: date
) -> list[Category]:
    """Categories whose validity contains ``on`` (Jiangsu: end dates run to month end), with the
    policy's rules as they stand on ``rules_on``."""
    rules = policy.categories.end_of_month_grace
    grace: tuple[Category, ...] = () if rules is None else rules.at(rules_on).value
    held: list[Category] = []
    for record in records:
        end = record.valid_to
        if end is not None and record.category in grace:
            end = end_of_month(end)
        if record.valid_from <= on and (end is None or on <= end):
            held.append(record.category)
    return held


def _split(
    parts: Sequence[SubsidyPart], on: date, contribution: Decimal
) -> tuple[dict[Fund, Decimal], list[str]]:
    """Each fund's part, in listed order, never more than what is left of the contribution."""
    paid = dict.fromkeys(Fund, ZERO)
    references: list[str] = []
    left = contribution
    for part in parts:
        amount = part.amount.at(on)
        fund = part.fund.at(on)
        raw = (
            amount.value * contribution
            if amount.unit is Unit.SHARE_OF_CONTRIBUTION
            else amount.value
        )
        share = min(round_money(raw), left)
        paid[fund.value] += share
        left -= share
        shown = (
            percent(amount.value)
            if amount.unit is Unit.SHARE_OF_CONTRIBUTION
            else f"{amount.value} yuan"
        )
        references.append(f"{shown} [{amount.reference}] from {fund.value} [{fund.reference}]")
    return paid, references


def enrollment_subsidy(
    policies: PolicySet,
    region_code: str,
    year: int,
    enrolled_on: date,
    categories: Sequence[CategoryRecord],
    contribution: Decimal,
) -> SubsidySplit:
    """Split the individual contribution for coverage ``year`` of a person enrolling on
    ``enrolled_on``: no subsidy (``policy_id`` None, the individual pays it all) when no policy
    covers the region in the year. InvalidInput for a negative or malformed contribution.

    >>> from policies.benefits import load_policies
    >>> enrollment_subsidy(load_policies(), "110101", 2024, date(2023, 12, 1), [],
    ...                    Decimal("380.00")).reference
    'no subsidy: no assistance policy covers region 110101 in 2024'
    """
    if not isinstance(contribution, Decimal) or not contribution.is_finite():
        raise InvalidInput("contribution", contribution, "must be a decimal amount")
    if contribution < 0:
        raise InvalidInput("contribution", contribution, "must not be negative")
    if contribution != round_money(contribution):
        raise InvalidInput("contribution", contribution, "must have at most 2 decimals")
    try:
        policy = subsidy_policy(policies, region_code, year, enrolled_on)
    except NoPolicyInForce:
        reason = f"no subsidy: no assistance policy covers region {region_code} in {year}"
        return SubsidySplit(None, None, ZERO, ZERO, contribution, reason)
    # Parameters as they stand on the enrollment date, or else when the policy starts to cover
    # the coverage year.
    on = (
        enrolled_on
        if policy.in_force_on(enrolled_on)
        else max(policy.effective_from, date(year, 1, 1))
    )
    held = _held(policy, categories, enrolled_on, on)
    # Ties go to the category that comes first in the policy's priority order.
    priority = policy.categories.priority.at(on).value
    ordered = sorted(
        set(held), key=lambda c: (priority.index(c) if c in priority else len(priority), c.value)
    )

    best: tuple[Category, dict[Fund, Decimal], list[str]] | None = None
    for category in ordered:
        parts = policy.enrollment_subsidy.get(category)
        if parts is None:
            continue
        paid, references = _split(parts, on, contribution)
        if best is None or sum(paid.values()) > sum(best[1].values()):
            best = (category, paid, references)

    if best is None:
        reason = (
            f"no subsidised category held on {enrolled_on.isoformat()}"
            if not held
            else f"no subsidy in {policy.id} for {', '.join(c.value for c in ordered)}"
        )
        return SubsidySplit(policy.id, None, ZERO, ZERO, contribution, reason)
    category, paid, references = best
    individual = contribution - sum(paid.values(), ZERO)
    return SubsidySplit(
        policy.id,
        category,
        paid[Fund.ASSISTANCE_FUND],
        paid[Fund.FINANCE],
        max(individual, ZERO),
        f"{category.value}: " + "; ".join(references),
    )
