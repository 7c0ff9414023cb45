"""High-cost alerts (主动发现, 攀枝花 第十八条)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import strawberry

from gateway import models

if TYPE_CHECKING:
    from gateway.context import Context
    from schema.beneficiary import Beneficiary


@strawberry.enum
class AlertStatus(StrEnum):
    OPEN = "OPEN"
    RESOLVED = "RESOLVED"


@strawberry.type(
    description="An insured person whose yearly out-of-pocket passed the policy's threshold."
)
class HighCostAlert:
    id: strawberry.ID
    year: int
    out_of_pocket: Decimal
    threshold: Decimal
    status: AlertStatus
    resolution: str | None
    resolved_at: datetime | None
    beneficiary_id: strawberry.Private[uuid.UUID]

    @classmethod
    def from_model(cls, m: models.HighCostAlert) -> HighCostAlert:
        return cls(
            id=strawberry.ID(str(m.id)),
            year=m.year,
            out_of_pocket=m.out_of_pocket,
            threshold=m.threshold,
            status=AlertStatus(m.status),
            resolution=m.resolution,
            resolved_at=m.resolved_at,
            beneficiary_id=m.beneficiary_id,
        )

    @strawberry.field(description="The person the alert is about.")
    async def beneficiary(
        self, info: strawberry.Info[Context, None]
    ) -> Annotated[Beneficiary, strawberry.lazy("schema.beneficiary")] | None:
        from schema.beneficiary import person_of

        return await person_of(info, self.beneficiary_id)
