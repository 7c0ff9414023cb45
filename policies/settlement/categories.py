"""Who the person is on a visit (SETTLEMENT.md §4): the categories held, per group of stages.

A category record counts for a visit when its validity overlaps the stay (§4.1), after two
regional rules: Jiangsu's end-of-month grace counted from the decision month (§4.2) and
Panzhihua's retroactive assistance within the recognition year (§4.3), which widens what the
*assistance* stages see but never what the insurance stages see.

>>> from policies.benefits import load_policies
>>> policy = load_policies().by_id("320000-2015")
>>> records = (CategoryRecord(Category.LOW_INCOME, date(2016, 1, 1)),
...            CategoryRecord(Category.MINIMUM_LIVING, date(2015, 6, 1), date(2016, 5, 10)))
>>> held = categories_held(policy, records, date(2016, 5, 20), date(2016, 5, 28))
>>> [c.value for c in held.assistance], [[rule.value for rule in r.rules] for r in held.records]
(['MINIMUM_LIVING', 'LOW_INCOME'], [['overlap'], ['endOfMonthGrace']])
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from policies.benefits.model import Policy
from policies.settlement.explanation import CountingRule, RecordCheck
from policies.vocabulary import Category


@dataclass(frozen=True)
class CategoryRecord:
    """One recognised category of a person, valid from ``valid_from`` to ``valid_to`` (inclusive;
    None = still valid). ``decided_on`` is the date the end was decided (§4.2; None = on
    ``valid_to``)."""

    category: Category
    valid_from: date
    valid_to: date | None = None
    decided_on: date | None = None

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


@dataclass(frozen=True)
class Held:
    """The categories held on a visit, each tuple in the policy's priority order."""

    insurance: tuple[Category, ...]
    """What basic, critical-illness and commercial insurance see (no retroactivity, §4.3)."""
    assistance: tuple[Category, ...]
    """What assistance and secondary assistance see."""
    records: tuple[RecordCheck, ...]
    priority: tuple[Category, ...]
    priority_reference: str


@dataclass(frozen=True)
class Interval:
    """Where a record counts: from ``insurance_from``/``assistance_from`` to ``until``."""

    insurance_from: date
    assistance_from_rule: date
    until: date | None
    graced: bool

    def assistance_from(self, admission: date) -> date:
        """Retroactivity reaches back to 1 January only for visits admitted in that year."""
        if self.assistance_from_rule.year == admission.year:
            return self.assistance_from_rule
        return self.insurance_from


def effective_interval(policy: Policy, record: CategoryRecord, on: date) -> Interval:
    """The record's validity after §4.2 (grace to the end of the month of the later of the end
    and its decision) and §4.3 (assistance from 1 January of the recognition year).

    >>> from policies.benefits import load_policies
    >>> jiangsu = load_policies().by_id("320000-2015")
    >>> r = CategoryRecord(Category.MINIMUM_LIVING, date(2014, 1, 1), date(2016, 3, 10),
    ...                    decided_on=date(2016, 5, 20))
    >>> effective_interval(jiangsu, r, date(2016, 4, 1)).until
    datetime.date(2016, 5, 31)
    """
    rules = policy.categories
    retro = rules.retroactive_within_year.at(on) if rules.retroactive_within_year else None
    grace = rules.end_of_month_grace.at(on) if rules.end_of_month_grace else None
    end = record.valid_to
    graced = False
    if end is not None and grace is not None and record.category in grace.value:
        decided = record.decided_on if record.decided_on is not None else end
        end = end_of_month(max(end, decided))
        graced = end != record.valid_to
    assistance_from = record.valid_from
    if retro is not None and retro.value:
        assistance_from = date(record.valid_from.year, 1, 1)
    return Interval(record.valid_from, assistance_from, end, graced)


def counts(
    policy: Policy, record: CategoryRecord, admission: date, discharge: date
) -> tuple[bool, bool]:
    """Whether the record counts for (insurance stages, assistance stages) of the stay."""
    if record.category not in policy.categories.priority.at(admission).value:
        return False, False
    span = effective_interval(policy, record, admission)
    return (
        _overlaps(span.insurance_from, span.until, admission, discharge),
        _overlaps(span.assistance_from(admission), span.until, admission, discharge),
    )


def categories_held(
    policy: Policy, records: Sequence[CategoryRecord], admission: date, discharge: date
) -> Held:
    """The categories held for the stay [admission, discharge], for each group of stages, with
    the check of every record (for the explanation)."""
    rules = policy.categories
    priority_value = rules.priority.at(admission)
    priority = priority_value.value
    retro = rules.retroactive_within_year.at(admission) if rules.retroactive_within_year else None
    grace = rules.end_of_month_grace.at(admission) if rules.end_of_month_grace else None
    stay = f"the stay {admission.isoformat()} … {discharge.isoformat()}"

    checks: list[RecordCheck] = []
    insurance: set[Category] = set()
    assistance: set[Category] = set()
    for record in records:
        if record.category not in priority:
            checks.append(
                RecordCheck(
                    category=record.category,
                    valid_from=record.valid_from,
                    valid_to=record.valid_to,
                    listed=False,
                    counted=False,
                    rules=(),
                    reason=f"not a category of policy {policy.id}: ignored",
                    decided_on=record.decided_on,
                )
            )
            continue
        span = effective_interval(policy, record, admission)
        for_insurance, for_assistance = counts(policy, record, admission, discharge)
        plain = _overlaps(record.valid_from, record.valid_to, admission, discharge)
        used: list[CountingRule] = []
        reasons: list[str] = []
        if plain:
            used.append(CountingRule.OVERLAP)
            reasons.append(f"valid {record.validity()}, overlaps {stay}")
        if not plain and span.graced and (for_insurance or for_assistance):
            assert grace is not None
            assert record.valid_to is not None
            assert span.until is not None
            used.append(CountingRule.END_OF_MONTH_GRACE)
            decided = (
                ""
                if record.decided_on is None or record.decided_on <= record.valid_to
                else f", decided {record.decided_on.isoformat()}"
            )
            reasons.append(
                f"ended {record.valid_to.isoformat()}{decided}, kept to the end of that month "
                f"{span.until.isoformat()} (次月起不再享受, {grace.reference}), overlaps {stay}"
            )
        if for_assistance and not for_insurance:
            assert retro is not None
            used.append(CountingRule.RETROACTIVE_WITHIN_YEAR)
            reasons.append(
                f"recognised {record.valid_from.isoformat()}, counts for assistance from "
                f"{span.assistance_from(admission).isoformat()} for visits admitted in "
                f"{admission.year} (追溯救助, {retro.reference}); insurance stages see it only "
                f"from {record.valid_from.isoformat()}"
            )
        if not (for_insurance or for_assistance):
            reason = f"valid {record.validity()}, does not overlap {stay}"
            if retro is not None and retro.value and record.valid_from > discharge:
                reason += (
                    f" (retroactivity only reaches back to 1 January {record.valid_from.year}, "
                    f"{retro.reference})"
                )
            reasons.append(reason)
        if for_insurance:
            insurance.add(record.category)
        if for_assistance:
            assistance.add(record.category)
        checks.append(
            RecordCheck(
                category=record.category,
                valid_from=record.valid_from,
                valid_to=record.valid_to,
                listed=True,
                counted=for_insurance or for_assistance,
                rules=tuple(used),
                reason="; ".join(reasons),
                decided_on=record.decided_on,
                insurance_stages=for_insurance,
            )
        )
    return Held(
        insurance=tuple(c for c in priority if c in insurance),
        assistance=tuple(c for c in priority if c in assistance),
        records=tuple(checks),
        priority=priority,
        priority_reference=priority_value.reference,
    )
