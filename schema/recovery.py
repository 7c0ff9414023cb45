"""Recoveries (追回, SETTLEMENT.md §9.4), closed settlement years and late news (§9.5)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

import strawberry

from gateway.storage import models


@strawberry.enum(description="Where a recovery stands.")
class RecoveryStatus(StrEnum):
    PENDING = "PENDING"
    """Awaiting medical insurance's decision (待决定)."""
    RECOVERED = "RECOVERED"
    """Recovered: a RECOVERY event and a receivable from the person (追回)."""
    WAIVED = "WAIVED"
    """Waived with a reason: the payment stands and is never asked back (免于追回)."""
    WITHDRAWN = "WITHDRAWN"
    """Withdrawn: later news raised the claim's assistance again, or the claim was reversed."""


@strawberry.enum(description="Medical insurance's decision on a pending recovery.")
class RecoveryDecision(StrEnum):
    RECOVER = "RECOVER"
    WAIVE = "WAIVE"


@strawberry.type(
    description="Assistance paid on a claim above what a re-run with later news gives "
    "(SETTLEMENT.md §9.4). Amounts in yuan; nothing is taken back until medical insurance "
    "decides (decideRecovery)."
)
class Recovery:
    id: strawberry.ID
    claim_number: str
    year: int = strawberry.field(description="Settlement year of the claim.")
    policy: str
    status: RecoveryStatus
    amount: Decimal = strawberry.field(description="Total to recover, yuan (≥ 0).")
    assistance: Decimal = strawberry.field(
        description="Part of medical assistance (医疗救助), yuan; may be negative when the "
        "re-run moves money between the two assistance payers."
    )
    secondary_assistance: Decimal = strawberry.field(
        description="Part of secondary assistance (倾斜救助/再救助), yuan."
    )
    cause: str = strawberry.field(description="The late news that set the current amount.")
    created_at: datetime
    updated_at: datetime
    decided_by: str | None = strawberry.field(description="department/org that decided.")
    decided_at: datetime | None
    decision_reason: str | None
    beneficiary_id: strawberry.Private[uuid.UUID]

    @classmethod
    def from_model(cls, m: models.Recovery, claim_number: str) -> Recovery:
        return cls(
            id=strawberry.ID(str(m.id)),
            claim_number=claim_number,
            year=m.year,
            policy=m.policy,
            status=RecoveryStatus(m.status),
            amount=m.amount,
            assistance=m.assistance,
            secondary_assistance=m.secondary_assistance,
            cause=m.cause,
            created_at=m.created_at,
            updated_at=m.updated_at,
            decided_by=m.decided_by,
            decided_at=m.decided_at,
            decision_reason=m.decision_reason,
            beneficiary_id=m.beneficiary_id,
        )


@strawberry.type(
    description="A settlement year closed for a policy's region (§9.5): its claims are never "
    "re-run, settled or reversed any more."
)
class SettlementYearClosing:
    region_code: str = strawberry.field(description="Region code of the policy, e.g. 510400.")
    year: int
    policy: str
    department: str
    org: str
    closed_at: datetime

    @classmethod
    def from_model(cls, m: models.SettlementYearClosing) -> SettlementYearClosing:
        return cls(
            region_code=m.region_code,
            year=m.year,
            policy=m.policy,
            department=m.department,
            org=m.org,
            closed_at=m.closed_at,
        )


@strawberry.type(description="What a re-run would have changed on one claim and payer, yuan.")
class LateNewsChange:
    claim_number: str
    payer: str
    amount: Decimal


@strawberry.type(
    description="Late news (a recognition, an end, a reversal) that touched a closed year "
    "(§9.5): recorded with what a re-run would have changed; no money moved."
)
class LateNews:
    id: strawberry.ID
    year: int
    region_code: str
    operation: str
    changes: list[LateNewsChange]
    department: str
    org: str
    recorded_at: datetime
    beneficiary_id: strawberry.Private[uuid.UUID]

    @classmethod
    def from_model(cls, m: models.LateNews) -> LateNews:
        return cls(
            id=strawberry.ID(str(m.id)),
            year=m.year,
            region_code=m.region_code,
            operation=m.operation,
            changes=[
                LateNewsChange(
                    claim_number=c["claimNumber"], payer=c["payer"], amount=Decimal(c["amount"])
                )
                for c in m.changes
            ],
            department=m.department,
            org=m.org,
            recorded_at=m.recorded_at,
            beneficiary_id=m.beneficiary_id,
        )
