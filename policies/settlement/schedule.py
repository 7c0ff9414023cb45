"""Money and schedule arithmetic (SETTLEMENT.md §2 and §5): segments, deductibles, annual stages.

A *schedule* is a deductible, segments with absolute bounds on the year's cumulative base, and a
yearly cap. Every payer of the engine is one of these applied either per stay (basic inpatient) or
as an *annual stage*: what the year's cumulative base is worth after this visit, minus what it was
worth before, within the room the yearly cap leaves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from policies.benefits.model import Segment
from policies.money import ONE, round_money


@dataclass(frozen=True)
class Portion:
    """The part of one segment that a visit's base falls into, and what it is worth (unrounded)."""

    lower: Decimal
    upper: Decimal
    ratio: Decimal
    amount: Decimal


@dataclass(frozen=True)
class StageResult:
    """What an annual stage pays for one visit, with the figures that explain it."""

    increment: Decimal
    """amount(B0 + b) − amount(B0): what the schedule gives before the cap."""
    cap_room: Decimal | None
    """cap − P0 before the visit (never below 0); None when the schedule has no cap."""
    unrounded: Decimal
    """min(increment, cap_room), never below 0."""
    paid: Decimal
    """``unrounded`` rounded half up to 0.01."""
    portions: tuple[Portion, ...]


@dataclass(frozen=True)
class Schedule:
    """Deductible, segments and yearly cap, all resolved to amounts for one visit.

    >>> ci = Schedule(Decimal("20000"), (Segment(Decimal("100000"), Decimal("0.6")),
    ...                                 Segment(None, Decimal("0.7"))), Decimal("400000"))
    >>> ci.amount(Decimal("13120")), ci.amount(Decimal("23440"))
    (Decimal('0'), Decimal('2064.0'))
    >>> ci.stage(before=Decimal("13120"), base=Decimal("10320"), paid_before=Decimal("0")).paid
    Decimal('2064.00')
    """

    deductible: Decimal
    segments: tuple[Segment, ...]
    cap: Decimal | None

    def bands(self) -> Iterable[tuple[Decimal, Decimal | None, Decimal]]:
        """(lower, upper, ratio) of every segment, lower bounds starting at 0."""
        lower = Decimal("0")
        for segment in self.segments:
            yield lower, segment.up_to, segment.ratio
            if segment.up_to is None:
                return
            lower = segment.up_to

    def portions(self, start: Decimal, end: Decimal) -> tuple[Portion, ...]:
        """How the cumulative base interval (start, end] splits over the segments above the
        deductible.

        >>> s = Schedule(Decimal("1000"), (Segment(Decimal("20000"), Decimal("0.55")),
        ...                                Segment(None, Decimal("0.65"))), None)
        >>> [(str(p.lower), str(p.upper), str(p.amount))
        ...  for p in s.portions(Decimal("4950"), Decimal("32820"))]
        [('4950', '20000', '8277.50'), ('20000', '32820', '8333.00')]
        """
        result: list[Portion] = []
        for lower, upper, ratio in self.bands():
            low = max(lower, self.deductible, start)
            high = end if upper is None else min(end, upper)
            if high > low:
                result.append(Portion(low, high, ratio, ratio * (high - low)))
        return tuple(result)

    def amount(self, base: Decimal) -> Decimal:
        """What a cumulative base of ``base`` is worth: Σ rᵢ × |(max(D, upToᵢ₋₁), min(B, upToᵢ)]|.

        >>> basic = Schedule(Decimal("400"), (Segment(None, Decimal("0.8")),), None)
        >>> basic.amount(Decimal("26000"))
        Decimal('20480.0')
        """
        return sum((p.amount for p in self.portions(Decimal("0"), base)), Decimal("0"))

    def stage(self, before: Decimal, base: Decimal, paid_before: Decimal) -> StageResult:
        """Pay for a visit of base ``base`` when the year already has cumulative base ``before``
        and payments ``paid_before``: round(min(amount(B0 + b) − amount(B0), cap − P0)), ≥ 0.

        A per-stay schedule is the same with ``before`` = 0.
        """
        portions = self.portions(before, before + base)
        increment = sum((p.amount for p in portions), Decimal("0"))
        room = None if self.cap is None else max(self.cap - paid_before, Decimal("0"))
        unrounded = increment if room is None else min(increment, room)
        unrounded = max(unrounded, Decimal("0"))
        return StageResult(increment, room, unrounded, round_money(unrounded), portions)

    def tilted(self, deductible_factor: Decimal | None, ratio_bonus: Decimal | None) -> Schedule:
        """The schedule after a tilt (倾斜支付): deductible × factor, every ratio + bonus (≤ 100%).

        >>> s = Schedule(Decimal("20000"), (Segment(Decimal("100000"), Decimal("0.60")),
        ...                                 Segment(None, Decimal("0.70"))), None)
        >>> t = s.tilted(Decimal("0.5"), Decimal("0.05"))
        >>> t.deductible, [x.ratio for x in t.segments]
        (Decimal('10000.0'), [Decimal('0.65'), Decimal('0.75')])
        """
        deductible = (
            self.deductible if deductible_factor is None else self.deductible * deductible_factor
        )
        segments = self.segments
        if ratio_bonus is not None:
            segments = tuple(Segment(s.up_to, min(ONE, s.ratio + ratio_bonus)) for s in segments)
        return Schedule(deductible, segments, self.cap)
