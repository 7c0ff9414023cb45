"""Recoveries (追回, SETTLEMENT.md §9.4), closed settlement years and late news (§9.5)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

import strawberry

from gateway.storage import models
from schema.enums import described


class RecoveryStatus(StrEnum):
    PENDING = "PENDING"
    RECOVERED = "RECOVERED"
    WAIVED = "WAIVED"
    WITHDRAWN = "WITHDRAWN"


described(
    RecoveryStatus,
    "Where a recovery stands.",
    {
        RecoveryStatus.PENDING: "Awaiting medical insurance's decision (待决定).",
        RecoveryStatus.RECOVERED: "Recovered: a RECOVERY event and a receivable from the person "
        "(追回).",
        RecoveryStatus.WAIVED: "Waived with a reason: the payment stands and is never asked back "
        "(免于追回).",
        RecoveryStatus.WITHDRAWN: "Withdrawn: later news raised the claim's assistance again, or "
        "the claim was reversed.",
    },
)


class RecoveryDecision(StrEnum):
    RECOVER = "RECOVER"
    WAIVE = "WAIVE"


described(
    RecoveryDecision,
    "Medical insurance's decision on a pending recovery (SETTLEMENT.md §9.4).",
    {
        RecoveryDecision.RECOVER: "追回: store a RECOVERY event of negative lines and a "
        "receivable from the person.",
        RecoveryDecision.WAIVE: "免于追回: the payment stands (a reason is required); the amount "
        "is never asked back.",
    },
)


@strawberry.type(
    description="Assistance paid on a claim above what a re-run with later news gives "
    "(SETTLEMENT.md §9.4). Amounts in yuan; nothing is taken back until medical insurance "
    "decides (decideRecovery)."
)
class Recovery:
    id: strawberry.ID = strawberry.field(description="Opaque identifier (decideRecovery takes it).")
    claim_number: str = strawberry.field(description="The claim the assistance was paid on.")
    year: int = strawberry.field(description="Settlement year of the claim.")
    policy: str = strawberry.field(description="The policy of the claim, e.g. 510400-2023.")
    status: RecoveryStatus = strawberry.field(description="Where it stands.")
    amount: Decimal = strawberry.field(description="Total to recover, yuan (≥ 0).")
    assistance: Decimal = strawberry.field(
        description="Part of medical assistance (医疗救助), yuan; may be negative when the "
        "re-run moves money between the two assistance payers."
    )
    secondary_assistance: Decimal = strawberry.field(
        description="Part of secondary assistance (倾斜救助/再救助), yuan."
    )
    cause: str = strawberry.field(description="The late news that set the current amount.")
    created_at: datetime = strawberry.field(description="When late news first set it.")
    updated_at: datetime = strawberry.field(description="When it last changed.")
    decided_by: str | None = strawberry.field(description="department/org that decided.")
    decided_at: datetime | None = strawberry.field(description="When it was decided.")
    decision_reason: str | None = strawberry.field(
        description="The reason given with the decision (required to waive)."
    )
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
    year: int = strawberry.field(description="The settlement year closed.")
    policy: str = strawberry.field(description="The policy in force, e.g. 510400-2023.")
    department: str = strawberry.field(description="The department that closed it.")
    org: str = strawberry.field(description="The organisation (of the token) that closed it.")
    closed_at: datetime = strawberry.field(description="When it was closed.")

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
    claim_number: str = strawberry.field(description="The claim a re-run would have changed.")
    payer: str = strawberry.field(description="assistance (医疗救助) or secondaryAssistance.")
    amount: Decimal = strawberry.field(
        description="The change a re-run would have made, yuan (negative: less)."
    )


@strawberry.type(
    description="Late news (a recognition, an end, a reversal) that touched a closed year "
    "(§9.5): recorded with what a re-run would have changed; no money moved."
)
class LateNews:
    id: strawberry.ID = strawberry.field(description="Opaque identifier.")
    year: int = strawberry.field(description="The closed settlement year it touched.")
    region_code: str = strawberry.field(description="Region code of the closed year's policy.")
    operation: str = strawberry.field(
        description="The write that brought the news (recordIdentity, endIdentity, …)."
    )
    changes: list[LateNewsChange] = strawberry.field(
        description="What a re-run would have changed, by claim and payer (no money moved)."
    )
    department: str = strawberry.field(description="The department that wrote the news.")
    org: str = strawberry.field(description="The organisation (of the token) that wrote it.")
    recorded_at: datetime = strawberry.field(description="When it was recorded.")
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
