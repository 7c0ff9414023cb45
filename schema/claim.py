"""Claims: the visits billed by hospitals (SETTLEMENT.md §8)."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import strawberry

from gateway import models
from schema.enums import HospitalLevel, VisitType

if TYPE_CHECKING:
    from gateway.context import Context
    from schema.beneficiary import Beneficiary
    from schema.settlement import Settlement, SettlementEvent


@strawberry.type(description="One visit (a stay or an outpatient visit) as billed.")
class Claim:
    claim_number: str
    year: int
    type: VisitType
    hospital_level: HospitalLevel | None
    hospital_code: str | None
    admission_date: date
    discharge_date: date
    total_cost: Decimal
    policy_scope_cost: Decimal = strawberry.field(description="政策范围内费用.")
    referral_compliant: bool
    in_province: bool
    diagnosis: str | None = strawberry.field(description="ICD-10 code.")
    special_treatment_hospital: bool
    carrier: str | None = strawberry.field(description="The insurer carrying the claim.")
    reversed: bool
    acknowledged: bool = strawberry.field(description="Acknowledged by its carrier.")
    claim_id: strawberry.Private[int]
    beneficiary_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="What the claim has been paid (null before settlement).")
    async def settlement(
        self, info: strawberry.Info[Context, None]
    ) -> Annotated[Settlement, strawberry.lazy("schema.settlement")] | None:
        from schema.settlement import Settlement

        events = await info.context.loaders.settlements.load(self.claim_id)
        if not events:
            return None
        lines = await info.context.loaders.lines.load_many([e.id for e in events])
        return Settlement.of(
            self.claim_number, events, {e.id: ls for e, ls in zip(events, lines, strict=True)}
        )

    @strawberry.field(description="The settlement events of the claim, oldest first.")
    async def settlements(
        self, info: strawberry.Info[Context, None]
    ) -> list[Annotated[SettlementEvent, strawberry.lazy("schema.settlement")]]:
        from schema.settlement import SettlementEvent

        events = await info.context.loaders.settlements.load(self.claim_id)
        lines = await info.context.loaders.lines.load_many([e.id for e in events])
        return [SettlementEvent.of(e, ls) for e, ls in zip(events, lines, strict=True)]

    @strawberry.field(description="The person of the claim.")
    async def beneficiary(
        self, info: strawberry.Info[Context, None]
    ) -> Annotated[Beneficiary, strawberry.lazy("schema.beneficiary")] | None:
        from schema.beneficiary import person_of

        return await person_of(info, self.beneficiary_id)

    @classmethod
    def from_model(cls, m: models.Claim) -> Claim:
        return cls(
            claim_number=m.claim_number,
            year=m.year,
            type=VisitType(m.type),
            hospital_level=HospitalLevel(m.hospital_level) if m.hospital_level else None,
            hospital_code=m.hospital_code,
            admission_date=m.admission_date,
            discharge_date=m.discharge_date,
            total_cost=m.total_cost,
            policy_scope_cost=m.policy_scope_cost,
            referral_compliant=m.referral_compliant,
            in_province=m.in_province,
            diagnosis=m.diagnosis,
            special_treatment_hospital=m.special_treatment_hospital,
            carrier=m.carrier,
            reversed=m.reversed_at is not None,
            acknowledged=m.acknowledged_at is not None,
            claim_id=m.id,
            beneficiary_id=m.beneficiary_id,
        )
