"""The per person-year running state of settlement: every stage's year-to-date base and payments.

The gateway keeps one ledger per person and settlement year (a JSONB column, locked while a claim
is settled); the engine reads it and returns the next one. Amounts are Decimal and serialise as
strings.

>>> ledger = Ledger.empty(2023).record({Stage.ASSISTANCE: (Decimal("540.00"), Decimal("0.00"))},
...                                    out_of_pocket=Decimal("1040.00"))
>>> ledger.to_dict()["stages"]["assistance"]
{'base': '540.00', 'paid': '0.00'}
>>> Ledger.from_dict(ledger.to_dict()) == ledger
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from policies.errors import InvalidInput
from policies.money import ZERO, money
from policies.vocabulary import PAYERS, Payer


class Stage(StrEnum):
    """Every running total of the year. Each belongs to one payer."""

    BASIC_INPATIENT = "basic.inpatient"
    BASIC_CHRONIC = "basic.chronic"
    BASIC_GENERAL = "basic.generalOutpatient"
    CRITICAL_ILLNESS = "criticalIllness"
    INCLUSIVE_COMMERCIAL = "inclusiveCommercial"
    ASSISTANCE = "assistance"
    """Main ledger: inpatient + chronic outpatient, shared by all categories of the year."""
    ASSISTANCE_GENERAL = "assistance.generalOutpatient"
    ASSISTANCE_UNINSURED = "assistance.uninsured"
    """Uninsured persons' assistance, where a policy gives it a ledger of its own (§5)."""
    SECONDARY_ASSISTANCE = "secondaryAssistance"

    @property
    def payer(self) -> Payer:
        return STAGE_PAYER[self]


STAGE_PAYER: Mapping[Stage, Payer] = {
    Stage.BASIC_INPATIENT: Payer.BASIC_INSURANCE,
    Stage.BASIC_CHRONIC: Payer.BASIC_INSURANCE,
    Stage.BASIC_GENERAL: Payer.BASIC_INSURANCE,
    Stage.CRITICAL_ILLNESS: Payer.CRITICAL_ILLNESS,
    Stage.INCLUSIVE_COMMERCIAL: Payer.INCLUSIVE_COMMERCIAL,
    Stage.ASSISTANCE: Payer.ASSISTANCE,
    Stage.ASSISTANCE_GENERAL: Payer.ASSISTANCE,
    Stage.ASSISTANCE_UNINSURED: Payer.ASSISTANCE,
    Stage.SECONDARY_ASSISTANCE: Payer.SECONDARY_ASSISTANCE,
}

BASIC_SHARED_CAP_STAGES: tuple[Stage, ...] = (Stage.BASIC_INPATIENT, Stage.BASIC_CHRONIC)
"""Basic inpatient and chronic outpatient share one yearly cap."""


@dataclass(frozen=True)
class StageTotals:
    """Year-to-date base (the sum of the stage's base over the visits it applied to) and paid."""

    base: Decimal = ZERO
    paid: Decimal = ZERO


def _zeros() -> dict[Stage, StageTotals]:
    return {stage: StageTotals() for stage in Stage}


@dataclass(frozen=True)
class Ledger:
    """Running totals of one person for one settlement year (the admission year)."""

    year: int
    stages: Mapping[Stage, StageTotals] = field(default_factory=_zeros)
    out_of_pocket: Decimal = ZERO
    """Sum of the visits' out-of-pocket (for 主动发现, 攀枝花 第十八条)."""

    @classmethod
    def empty(cls, year: int) -> Ledger:
        return cls(year)

    def totals(self, stage: Stage) -> StageTotals:
        return self.stages.get(stage, StageTotals())

    def paid(self, *stages: Stage) -> Decimal:
        return sum((self.totals(s).paid for s in stages), ZERO)

    @property
    def paid_by_payer(self) -> dict[Payer, Decimal]:
        """Total paid this year by each of the five payers (all present).

        >>> Ledger.empty(2023).paid_by_payer[Payer.ASSISTANCE]
        Decimal('0.00')
        """
        totals = dict.fromkeys(PAYERS, ZERO)
        for stage in Stage:
            totals[stage.payer] += self.totals(stage).paid
        return totals

    def record(
        self, increments: Mapping[Stage, tuple[Decimal, Decimal]], out_of_pocket: Decimal = ZERO
    ) -> Ledger:
        """A new ledger with (base, paid) added to the given stages."""
        stages = dict(_zeros())
        stages.update(self.stages)
        for stage, (base, paid) in increments.items():
            before = stages[stage]
            stages[stage] = StageTotals(before.base + base, before.paid + paid)
        return Ledger(self.year, stages, self.out_of_pocket + out_of_pocket)

    def to_dict(self) -> dict[str, object]:
        """JSON-able form (amounts as strings), for the gateway's JSONB column."""
        return {
            "year": self.year,
            "stages": {
                stage.value: {"base": money(t.base), "paid": money(t.paid)}
                for stage in Stage
                for t in [self.totals(stage)]
            },
            "outOfPocket": money(self.out_of_pocket),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Ledger:
        """Inverse of :meth:`to_dict`; refuses unknown stages and malformed amounts."""
        if not isinstance(data, Mapping):
            raise InvalidInput("ledger", data, "must be a mapping")
        unknown = set(data) - {"year", "stages", "outOfPocket"}
        if unknown:
            key = sorted(map(str, unknown))[0]
            raise InvalidInput(f"ledger.{key}", data[key], "unknown key")
        year = data.get("year")
        if isinstance(year, bool) or not isinstance(year, int):
            raise InvalidInput("ledger.year", year, "must be a year")
        raw_stages = data.get("stages", {})
        if not isinstance(raw_stages, Mapping):
            raise InvalidInput("ledger.stages", raw_stages, "must be a mapping")
        stages = _zeros()
        for name, raw in raw_stages.items():
            try:
                stage = Stage(name)
            except ValueError:
                raise InvalidInput(f"ledger.stages.{name}", raw, "unknown stage") from None
            if not isinstance(raw, Mapping) or set(raw) != {"base", "paid"}:
                raise InvalidInput(f"ledger.stages.{name}", raw, "must be {base, paid}")
            stages[stage] = StageTotals(
                _amount(raw["base"], f"ledger.stages.{name}.base"),
                _amount(raw["paid"], f"ledger.stages.{name}.paid"),
            )
        out_of_pocket = _amount(data.get("outOfPocket", "0.00"), "ledger.outOfPocket")
        return cls(year, stages, out_of_pocket)


def _amount(raw: object, field_name: str) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise InvalidInput(field_name, raw, "must be a decimal string")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise InvalidInput(field_name, raw, "must be a decimal string") from None
    if not value.is_finite() or value < 0:
        raise InvalidInput(field_name, raw, "must be a non-negative amount")
    return value
