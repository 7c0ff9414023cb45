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
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictInt,
    ValidationError,
    field_validator,
)
from pydantic.alias_generators import to_camel

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


Amount = Annotated[
    Decimal, Field(ge=0, allow_inf_nan=False), PlainSerializer(money, return_type=str)
]
"""A non-negative amount of yuan, stored as a two-decimal string."""


class StageTotals(BaseModel):
    """Year-to-date base (the sum of the stage's base over the visits it applied to) and paid."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base: Amount = ZERO
    paid: Amount = ZERO

    def __init__(self, base: Decimal = ZERO, paid: Decimal = ZERO) -> None:
        super().__init__(base=base, paid=paid)


NOTHING_YET = StageTotals()
"""A stage's totals before any visit (frozen: one shared by every ledger)."""


def _zeros() -> dict[Stage, StageTotals]:
    return dict.fromkeys(Stage, NOTHING_YET)


class Ledger(BaseModel):
    """Running totals of one person for one settlement year (the admission year).

    Its JSON form (:meth:`to_dict`) is the gateway's JSONB column: ``year``, ``stages``
    (every stage, ``{base, paid}`` as decimal strings) and ``outOfPocket``.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )

    year: StrictInt
    stages: dict[Stage, StageTotals] = Field(default_factory=_zeros)
    out_of_pocket: Amount = ZERO
    """Sum of the visits' out-of-pocket (for 主动发现, 攀枝花 第十八条)."""

    @field_validator("stages", mode="after")
    @classmethod
    def _every_stage(cls, stages: dict[Stage, StageTotals]) -> dict[Stage, StageTotals]:
        return {**_zeros(), **stages}

    @classmethod
    def empty(cls, year: int) -> Ledger:
        return cls(year=year)

    def totals(self, stage: Stage) -> StageTotals:
        return self.stages.get(stage, NOTHING_YET)

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
        stages = dict(self.stages)
        for stage, (base, paid) in increments.items():
            before = self.totals(stage)
            stages[stage] = StageTotals(base=before.base + base, paid=before.paid + paid)
        return Ledger(
            year=self.year, stages=stages, out_of_pocket=self.out_of_pocket + out_of_pocket
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (amounts as strings), for the gateway's JSONB column."""
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def from_dict(cls, data: object) -> Ledger:
        """Inverse of :meth:`to_dict`; InvalidInput names ``ledger.<path>`` and the value of the
        first problem (unknown keys or stages, malformed or negative amounts)."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            first = error.errors()[0]
            path = ".".join(str(part) for part in first["loc"] if part != "[key]")
            where = "ledger" if not path else f"ledger.{path}"
            raise InvalidInput(where, first.get("input"), first["msg"]) from None
