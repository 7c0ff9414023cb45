"""Who the person is on a visit (SETTLEMENT.md §4): which category records count, and which wins.

>>> from policies.benefits import load_policies
>>> policy = load_policies().by_id("320000-2015")
>>> records = (CategoryRecord(Category.LOW_INCOME, date(2016, 1, 1)),
...            CategoryRecord(Category.MINIMUM_LIVING, date(2015, 6, 1), date(2016, 5, 10)))
>>> choice = choose_category(policy, records, date(2016, 5, 20), date(2016, 5, 28))
>>> choice.chosen.value, [[rule.value for rule in r.rules] for r in choice.records]
('MINIMUM_LIVING', [['overlap'], ['endOfMonthGrace']])
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from policies.benefits import Policy
from policies.explanation import CategoryExplanation, CountingRule, RecordCheck
from policies.vocabulary import Category


@dataclass(frozen=True)
class CategoryRecord:
    """One recognised category of a person, valid from ``valid_from`` to ``valid_to`` (inclusive;
    None = still valid)."""

    category: Category
    valid_from: date
    valid_to: date | None = None

    def validity(self) -> str:
        until = "open" if self.valid_to is None else self.valid_to.isoformat()
        return f"{self.valid_from.isoformat()} … {until}"


def end_of_month(day: date) -> date:
    """The last day of the day's month.

    >>> end_of_month(date(2016, 2, 10))
    datetime.date(2016, 2, 29)
    """
    return date(day.year, day.month, calendar.monthrange(day.year, day.month)[1])


def _overlaps(start: date, end: date | None, first: date, last: date) -> bool:
    return start <= last and (end is None or end >= first)


def choose_category(
    policy: Policy, records: Sequence[CategoryRecord], admission: date, discharge: date
) -> CategoryExplanation:
    """The visit's category: among the records that count for the stay [admission, discharge],
    the first in the policy's priority list (待遇就高); None when no record counts."""
    rules = policy.categories
    priority_value = rules.priority.at(admission)
    priority = priority_value.value
    retro = rules.retroactive_within_year.at(admission) if rules.retroactive_within_year else None
    grace = rules.end_of_month_grace.at(admission) if rules.end_of_month_grace else None
    stay = f"the stay {admission.isoformat()} … {discharge.isoformat()}"

    checks: list[RecordCheck] = []
    for record in records:
        if record.category not in priority:
            checks.append(
                RecordCheck(
                    record.category,
                    record.valid_from,
                    record.valid_to,
                    listed=False,
                    counted=False,
                    rules=(),
                    reason=f"not a category of policy {policy.id}: ignored",
                )
            )
            continue
        start, end = record.valid_from, record.valid_to
        graced_end = end
        if grace is not None and grace.value and record.category in grace.value and end is not None:
            graced_end = end_of_month(end)
        retro_start = start
        if retro is not None and retro.value and start.year == admission.year:
            retro_start = date(admission.year, 1, 1)

        rules_used: tuple[CountingRule, ...] = ()
        if _overlaps(start, end, admission, discharge):
            rules_used = (CountingRule.OVERLAP,)
            reason = f"valid {record.validity()}, overlaps {stay}"
        elif graced_end != end and _overlaps(start, graced_end, admission, discharge):
            rules_used = (CountingRule.END_OF_MONTH_GRACE,)
            assert grace is not None
            assert end is not None
            assert graced_end is not None
            reason = (
                f"ended {end.isoformat()}, kept to the end of that month "
                f"{graced_end.isoformat()} (次月起不再享受, {grace.reference}), overlaps {stay}"
            )
        elif retro_start != start and _overlaps(retro_start, end, admission, discharge):
            rules_used = (CountingRule.RETROACTIVE_WITHIN_YEAR,)
            assert retro is not None
            reason = (
                f"recognised {start.isoformat()}, counts from {retro_start.isoformat()} for visits "
                f"admitted in {admission.year} (追溯救助, {retro.reference})"
            )
        elif _overlaps(retro_start, graced_end, admission, discharge):
            rules_used = (CountingRule.RETROACTIVE_WITHIN_YEAR, CountingRule.END_OF_MONTH_GRACE)
            reason = f"valid {record.validity()}, counts for {stay} by retroactivity and grace"
        else:
            reason = f"valid {record.validity()}, does not overlap {stay}"
            if retro is not None and retro.value and start > discharge:
                reason += (
                    f" (retroactivity only reaches back to 1 January {start.year}, "
                    f"{retro.reference})"
                )
        checks.append(
            RecordCheck(
                record.category,
                record.valid_from,
                record.valid_to,
                listed=True,
                counted=bool(rules_used),
                rules=rules_used,
                reason=reason,
            )
        )

    counted = {check.category for check in checks if check.counted}
    chosen = next((category for category in priority if category in counted), None)
    order = " > ".join(category.value for category in priority)
    if chosen is None:
        why = "no category record" if not records else "no category record counts for this visit"
        reason = f"{why}: treated as an ordinary person (basic, critical illness, commercial only)"
    elif len(counted) == 1:
        reason = f"{chosen.value} is the only category that counts for this visit"
    else:
        held = ", ".join(c.value for c in priority if c in counted)
        reason = (
            f"{held} count; {chosen.value} comes first in the priority order {order} "
            f"(待遇就高, {priority_value.reference})"
        )
    return CategoryExplanation(chosen, reason, tuple(checks), priority, priority_value.reference)
