"""Why a visit was settled the way it was: the category chosen and every payer line.

One frozen pydantic model, built by the engine, kept as JSON with each settlement event
(:meth:`Explanation.stored`: camelCase keys, amounts as strings) and read back with
``Explanation.model_validate``; the GraphQL types of ``schema.settlement`` read its attributes.
``text`` is the human-readable form of ``medgw simulate --explain``, rendered from the other
fields when asked for (``model_dump`` shows it); it is not stored, but the text an explanation
was stored with (every one stored before 2026-12) is the one it reads back with.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, computed_field
from pydantic.alias_generators import to_camel

from policies.benefits.model import Segment, describe_segments
from policies.money import exact, money, percent
from policies.vocabulary import Category, Payer

Money = Annotated[Decimal, PlainSerializer(money, when_used="json")]
"""A payment or total, stored rounded half up to the fen (``"10444.80"``)."""
Exact = Annotated[Decimal, PlainSerializer(exact, when_used="json")]
"""An unrounded figure, stored with every digit it has (``"130.0065"``, ``"142480.00"``)."""
Ratio = Annotated[Decimal, PlainSerializer(lambda ratio: format(ratio, "f"), when_used="json")]
"""A ratio of a schedule, stored as a plain decimal (``"0.65"``)."""

_STORED_AS = {
    "visit_id": "visit",
    "policy_id": "policy",
    "listed": "listedByPolicy",
    "insurance_stages": "countsForInsurance",
    "lower": "from",
    "upper": "to",
}
"""The stored keys that are not the camelCase of the attribute."""


class _Stored(BaseModel):
    """A part of an explanation: frozen, no unknown keys; stored under camelCase keys in the order
    of the fields (``medgw simulate --explain`` prints them so), read from those keys or the
    attribute names, and built from any object with the attributes too."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=lambda name: _STORED_AS.get(name) or to_camel(name),
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        from_attributes=True,
    )


class CountingRule(StrEnum):
    """Why a category record counts for a visit (SETTLEMENT.md §4)."""

    OVERLAP = "overlap"
    """Its validity overlaps the stay [admission, discharge]."""
    END_OF_MONTH_GRACE = "endOfMonthGrace"
    """Only once its end date is extended to the end of its month (苏政办发 二(三))."""
    RETROACTIVE_WITHIN_YEAR = "retroactiveWithinYear"
    """Only once it counts from 1 January of its recognition year (攀枝花 第十九条)."""


class RecordCheck(_Stored):
    """One category record of the person, and whether it counts for this visit."""

    category: Category
    valid_from: date
    valid_to: date | None
    decided_on: date | None = None
    listed: bool
    """Whether the policy lists the category at all (unlisted ones are ignored)."""
    counted: bool
    """Whether it counts for the assistance stages or the insurance stages of the visit."""
    insurance_stages: bool = Field(default_factory=lambda data: data["counted"])
    """Whether it counts for basic, critical-illness and commercial insurance too (§4.3).
    Explanations stored before v2 had one category for every stage: there it is ``counted``."""
    rules: tuple[CountingRule, ...]
    reason: str


class Candidate(_Stored):
    """A category held whose assistance schedule was computed for the visit (待遇就高 item by item,
    §4.5): every candidate is computed on the same ledger and the largest payment wins."""

    category: Category
    paid: Money
    chosen: bool


class CategoryExplanation(_Stored):
    """The visit's category (or none), the records that were checked and the priority order."""

    chosen: Category | None
    reason: str
    priority: tuple[Category, ...]
    priority_reference: str
    held_for_insurance: tuple[Category, ...] = ()
    held_for_assistance: tuple[Category, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    records: tuple[RecordCheck, ...]


class ParameterUse(_Stored):
    """A policy parameter used by a line: its dotted key, the value used and its reference."""

    name: str
    value: str
    reference: str
    """The clause of the policy document, or ``"assumed"``."""
    note: str | None = None

    @property
    def assumed(self) -> bool:
        """Whether the value is an illustrative default, not from a document."""
        return self.reference == "assumed"

    @property
    def clause(self) -> str | None:
        """The clause of the policy document; None when assumed."""
        return None if self.assumed else self.reference


class Band(_Stored):
    """A segment of the schedule used: ``ratio`` up to the cumulative base ``up_to`` (yuan; None:
    no bound). Built from a ``policies.benefits.model.Segment``."""

    up_to: Exact | None
    ratio: Ratio


class Part(_Stored):
    """The part of one segment that the visit's base falls into, (lower, upper] yuan, and what it
    is worth unrounded. Built from a ``policies.settlement.schedule.Portion``."""

    lower: Exact
    upper: Exact
    ratio: Ratio
    amount: Exact


class PayerLine(_Stored):
    """One payer's part of the visit: applied or not and why, and the figures behind the amount.

    ``method`` is ``"perStay"`` (basic inpatient), ``"annual"`` (cumulative over the year:
    pay = min(amount(B0 + b) − amount(B0), cap − P0)) or ``"reported"`` (taken as given, §5).
    """

    payer: Payer
    applied: bool
    reason: str
    stage: str | None = None
    method: str | None = None
    base: Exact | None = None
    year_to_date_base_before: Exact | None = None
    deductible: Exact | None = None
    segments: tuple[Band, ...] = ()
    portions: tuple[Part, ...] = ()
    cap: Exact | None = None
    cap_shared_with: tuple[str, ...] = ()
    cap_room_before: Exact | None = None
    amount_before_cap: Exact | None = None
    amount_before_rounding: Exact = Decimal("0")
    paid: Money
    parameters: tuple[ParameterUse, ...] = ()
    notes: tuple[str, ...] = ()


class Explanation(_Stored):
    """Everything that decided one visit's settlement.

    Stored JSON from before settlement v2 (no ``decidedOn``, ``countsForInsurance``, held
    categories, candidates or ``reported``) reads with the defaults. ``text`` is rendered from
    the rest unless the stored JSON holds one (those stored before 2026-12 but the first ones).
    """

    visit_id: str
    policy_id: str
    policy_title: str
    settlement_year: int
    category: CategoryExplanation
    preferential_treatment: bool
    total_cost: Money
    policy_scope_cost: Money
    out_of_scope: Money = Field(
        default_factory=lambda data: data["total_cost"] - data["policy_scope_cost"]
    )
    """Paid by no payer: total cost − policy scope cost."""
    reported: tuple[Payer, ...] = ()
    """Insurance payers whose amounts were reported upstream and taken as given (§5)."""
    lines: tuple[PayerLine, ...]
    """One per payer, in payment order."""
    out_of_pocket: Money
    stored_text: str | None = Field(default=None, alias="text", exclude=True, repr=False)
    """The account stored with the explanation, if it was (explanations stored before 2026-12
    hold the text rendered when they were settled); None: rendered when asked for."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def text(self) -> str:
        """The human-readable account: the one stored with it, else :meth:`render_text`."""
        return self.render_text() if self.stored_text is None else self.stored_text

    def stored(self) -> dict[str, Any]:
        """What a settlement event keeps (its ``explanation`` JSONB): every field under its
        camelCase key, amounts as strings, without ``text`` (rendered when read: an
        explanation's text is a third of its JSON and of the engine's time)."""
        return self.model_dump(mode="json", exclude=_NOT_STORED)

    def stored_json(self) -> str:
        """:meth:`stored` as JSON text (for a ``CAST(… AS jsonb)`` parameter)."""
        return self.model_dump_json(exclude=_NOT_STORED)

    def line(self, payer: Payer) -> PayerLine:
        return next(line for line in self.lines if line.payer is payer)

    def render_text(self) -> str:
        """A multi-line, human-readable account (``medgw simulate --explain``)."""
        out = [
            f"Visit {self.visit_id}: policy {self.policy_id} ({self.policy_title}), "
            f"settlement year {self.settlement_year}",
            f"  total cost {money(self.total_cost)}, policy scope {money(self.policy_scope_cost)}, "
            f"out of scope {money(self.out_of_scope)} (paid by no payer)",
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


_NOT_STORED = {"text"}


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
        bands = (Segment(up_to=band.up_to, ratio=band.ratio) for band in line.segments)
        # Bounds as stored (exact), so that the text read back from a stored explanation is the
        # one its engine built.
        out.append(f"    deductible {exact(line.deductible)}; {describe_segments(bands, exact)}")
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
