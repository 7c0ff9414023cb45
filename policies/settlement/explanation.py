"""Why a visit was settled the way it was: the category chosen and every payer line.

Typed, frozen records built by the engine; ``to_dict()`` gives JSON-able output (amounts as
strings) for the API and ``render_text()`` the human-readable form of ``medgw simulate --explain``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from policies.benefits.model import Segment, describe_segments
from policies.money import exact, money, percent
from policies.settlement.schedule import Portion
from policies.vocabulary import Category, Payer


class CountingRule(StrEnum):
    """Why a category record counts for a visit (SETTLEMENT.md §4)."""

    OVERLAP = "overlap"
    """Its validity overlaps the stay [admission, discharge]."""
    END_OF_MONTH_GRACE = "endOfMonthGrace"
    """Only once its end date is extended to the end of its month (苏政办发 二(三))."""
    RETROACTIVE_WITHIN_YEAR = "retroactiveWithinYear"
    """Only once it counts from 1 January of its recognition year (攀枝花 第十九条)."""


@dataclass(frozen=True)
class RecordCheck:
    """One category record of the person, and whether it counts for this visit."""

    category: Category
    valid_from: date
    valid_to: date | None
    listed: bool
    """Whether the policy lists the category at all (unlisted ones are ignored)."""
    counted: bool
    """Whether it counts for the assistance stages or the insurance stages of the visit."""
    rules: tuple[CountingRule, ...]
    reason: str
    decided_on: date | None = None
    insurance_stages: bool = False
    """Whether it counts for basic, critical-illness and commercial insurance too (§4.3)."""

    def to_dict(self) -> dict[str, object]:
        return {
            "category": self.category.value,
            "validFrom": self.valid_from.isoformat(),
            "validTo": None if self.valid_to is None else self.valid_to.isoformat(),
            "decidedOn": None if self.decided_on is None else self.decided_on.isoformat(),
            "listedByPolicy": self.listed,
            "counted": self.counted,
            "countsForInsurance": self.insurance_stages,
            "rules": [rule.value for rule in self.rules],
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Candidate:
    """A category held whose assistance schedule was computed for the visit (待遇就高 item by item,
    §4.5): every candidate is computed on the same ledger and the largest payment wins."""

    category: Category
    paid: Decimal
    chosen: bool

    def to_dict(self) -> dict[str, object]:
        return {"category": self.category.value, "paid": money(self.paid), "chosen": self.chosen}


@dataclass(frozen=True)
class CategoryExplanation:
    """The visit's category (or none), the records that were checked and the priority order."""

    chosen: Category | None
    reason: str
    records: tuple[RecordCheck, ...]
    priority: tuple[Category, ...]
    priority_reference: str
    held_for_insurance: tuple[Category, ...] = ()
    held_for_assistance: tuple[Category, ...] = ()
    candidates: tuple[Candidate, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "chosen": None if self.chosen is None else self.chosen.value,
            "reason": self.reason,
            "priority": [c.value for c in self.priority],
            "priorityReference": self.priority_reference,
            "heldForInsurance": [c.value for c in self.held_for_insurance],
            "heldForAssistance": [c.value for c in self.held_for_assistance],
            "candidates": [c.to_dict() for c in self.candidates],
            "records": [r.to_dict() for r in self.records],
        }


@dataclass(frozen=True)
class ParameterUse:
    """A policy parameter used by a line: its dotted key, the value used and its reference."""

    name: str
    value: str
    reference: str
    """The clause of the policy document, or ``"assumed"``."""
    note: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "value": self.value,
            "reference": self.reference,
            "note": self.note,
        }


@dataclass(frozen=True)
class PayerLine:
    """One payer's part of the visit: applied or not and why, and the figures behind the amount.

    ``method`` is ``"perStay"`` (basic inpatient) or ``"annual"`` (cumulative over the year:
    pay = min(amount(B0 + b) − amount(B0), cap − P0)).
    """

    payer: Payer
    applied: bool
    reason: str
    paid: Decimal
    stage: str | None = None
    method: str | None = None
    base: Decimal | None = None
    year_to_date_base_before: Decimal | None = None
    deductible: Decimal | None = None
    segments: tuple[Segment, ...] = ()
    portions: tuple[Portion, ...] = ()
    cap: Decimal | None = None
    cap_shared_with: tuple[str, ...] = ()
    cap_room_before: Decimal | None = None
    amount_before_cap: Decimal | None = None
    amount_before_rounding: Decimal = Decimal("0")
    parameters: tuple[ParameterUse, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        def opt(amount: Decimal | None) -> str | None:
            return None if amount is None else exact(amount)

        return {
            "payer": self.payer.value,
            "applied": self.applied,
            "reason": self.reason,
            "stage": self.stage,
            "method": self.method,
            "base": opt(self.base),
            "yearToDateBaseBefore": opt(self.year_to_date_base_before),
            "deductible": opt(self.deductible),
            "segments": [
                {"upTo": opt(s.up_to), "ratio": format(s.ratio, "f")} for s in self.segments
            ],
            "portions": [
                {
                    "from": exact(p.lower),
                    "to": exact(p.upper),
                    "ratio": format(p.ratio, "f"),
                    "amount": exact(p.amount),
                }
                for p in self.portions
            ],
            "cap": opt(self.cap),
            "capSharedWith": list(self.cap_shared_with),
            "capRoomBefore": opt(self.cap_room_before),
            "amountBeforeCap": opt(self.amount_before_cap),
            "amountBeforeRounding": exact(self.amount_before_rounding),
            "paid": money(self.paid),
            "parameters": [p.to_dict() for p in self.parameters],
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Explanation:
    """Everything that decided one visit's settlement."""

    visit_id: str
    policy_id: str
    policy_title: str
    settlement_year: int
    category: CategoryExplanation
    preferential_treatment: bool
    lines: tuple[PayerLine, ...]
    """One per payer, in payment order."""
    total_cost: Decimal
    policy_scope_cost: Decimal
    out_of_pocket: Decimal
    reported: tuple[Payer, ...] = ()
    """Insurance payers whose amounts were reported upstream and taken as given (§5)."""

    def line(self, payer: Payer) -> PayerLine:
        return next(line for line in self.lines if line.payer is payer)

    def to_dict(self) -> dict[str, object]:
        return {
            "visit": self.visit_id,
            "policy": self.policy_id,
            "policyTitle": self.policy_title,
            "settlementYear": self.settlement_year,
            "category": self.category.to_dict(),
            "preferentialTreatment": self.preferential_treatment,
            "totalCost": money(self.total_cost),
            "policyScopeCost": money(self.policy_scope_cost),
            "outOfScope": money(self.total_cost - self.policy_scope_cost),
            "reported": [payer.value for payer in self.reported],
            "lines": [line.to_dict() for line in self.lines],
            "outOfPocket": money(self.out_of_pocket),
            "text": self.render_text(),
        }

    def render_text(self) -> str:
        """A multi-line, human-readable account (``medgw simulate --explain``)."""
        out = [
            f"Visit {self.visit_id}: policy {self.policy_id} ({self.policy_title}), "
            f"settlement year {self.settlement_year}",
            f"  total cost {money(self.total_cost)}, policy scope {money(self.policy_scope_cost)}, "
            f"out of scope {money(self.total_cost - self.policy_scope_cost)} (paid by no payer)",
        ]
        chosen = self.category.chosen.value if self.category.chosen else "none"
        out.append(f"Category: {chosen}. {self.category.reason}")
        if self.category.candidates:
            shown = ", ".join(
                f"{c.category.value} {money(c.paid)}{' (chosen)' if c.chosen else ''}"
                for c in self.category.candidates
            )
            out.append(f"  assistance candidates: {shown}")
        for record in self.category.records:
            until = record.valid_to.isoformat() if record.valid_to else "open"
            mark = "counts" if record.counted else "does not count"
            out.append(
                f"  - {record.category.value} {record.valid_from.isoformat()} … {until}: "
                f"{mark}; {record.reason}"
            )
        if self.preferential_treatment:
            out.append("  preferential treatment (倾斜支付) applies to a category held")
        if self.reported:
            shown = ", ".join(payer.value for payer in self.reported)
            out.append(f"  reported by the core system and taken as given: {shown}")
        for line in self.lines:
            out.extend(_render_line(line))
        out.append(f"Out of pocket: {money(self.out_of_pocket)}")
        return "\n".join(out)


def _render_line(line: PayerLine) -> list[str]:
    head = f"{line.payer.value}: {money(line.paid)}"
    if not line.applied:
        return [f"{head} — not applied: {line.reason}"]
    out = [f"{head} — {line.reason}"]
    if line.base is not None:
        text = f"    base of this visit {money(line.base)}"
        if line.year_to_date_base_before is not None:
            text += f", year-to-date base before {money(line.year_to_date_base_before)}"
        out.append(text)
    if line.method == "reported":
        out.extend(f"    note: {note}" for note in line.notes)
        return out
    if line.deductible is not None:
        out.append(f"    deductible {exact(line.deductible)}; {describe_segments(line.segments)}")
    for p in line.portions:
        out.append(
            f"    ({exact(p.lower)}, {exact(p.upper)}] × {percent(p.ratio)} = {exact(p.amount)}"
        )
    if line.cap is None:
        out.append("    no yearly cap")
    else:
        shared = f" (shared with {', '.join(line.cap_shared_with)})" if line.cap_shared_with else ""
        room = (
            "" if line.cap_room_before is None else f", room before {money(line.cap_room_before)}"
        )
        out.append(f"    yearly cap {money(line.cap)}{shared}{room}")
    out.append(
        f"    amount before rounding {exact(line.amount_before_rounding)} → paid {money(line.paid)}"
    )
    out.extend(f"    note: {note}" for note in line.notes)
    for used in line.parameters:
        note = f" ({used.note})" if used.note else ""
        out.append(f"    · {used.name} = {used.value} [{used.reference}]{note}")
    return out
