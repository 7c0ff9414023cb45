"""Mutation payloads (Relay's ``…Payload``): a write's record and what it set off.

A recognition, an end or a reversal is late news for the person's other claims (SETTLEMENT.md
§9.4, §9.6): the same transaction re-runs assistance for the open years it reaches, storing
ADJUSTMENT events and creating, changing or withdrawing pending recoveries. The payload says what
was stored, so the caller does not have to look it up; each field is readable by whoever may read
the type it carries (the department's access policy), like anywhere else in the schema.
"""

from __future__ import annotations

from typing import Self

import strawberry

from resolvers.settlement import ClaimState, Consequences
from schema.beneficiary import Identity, MonitoringFlag
from schema.recovery import Recovery
from schema.settlement import Settlement, SettlementEvent

ADJUSTMENTS = (
    "ADJUSTMENT events the re-run stored on the person's other claims (more assistance after "
    "late news, 追溯救助, SETTLEMENT.md §9.4), in the order written; empty when no amount changed "
    "or the record was already stored."
)


def _adjustments(consequences: Consequences) -> list[SettlementEvent]:
    return [
        SettlementEvent.of(number, event, lines)
        for number, event, lines in consequences.adjustments
    ]


@strawberry.type
class IdentityChange:
    """The fields of the identity payloads (not in the schema itself: nothing returns it)."""

    identity: Identity = strawberry.field(description="The identity as stored.")
    consequences: strawberry.Private[Consequences]

    @strawberry.field(description=ADJUSTMENTS)
    def adjustments(self) -> list[SettlementEvent]:
        """Built when asked for (a late recognition may adjust a hundred claims)."""
        return _adjustments(self.consequences)

    @classmethod
    def of(cls, record: Identity, consequences: Consequences) -> Self:
        return cls(identity=record, consequences=consequences)


@strawberry.type(description="The result of recordIdentity: the identity (身份) and its effect.")
class RecordIdentityPayload(IdentityChange):
    pass


@strawberry.type(
    description="The result of endIdentity: the identity as stored, with validTo, and its effect."
)
class EndIdentityPayload(IdentityChange):
    pass


@strawberry.type(description="The result of recordMonitoringFlag: the flag (监测标识) as stored.")
class RecordMonitoringFlagPayload:
    monitoring_flag: MonitoringFlag = strawberry.field(description="The flag as stored.")


@strawberry.type(description="The result of endMonitoringFlag: the ended flag as stored.")
class EndMonitoringFlagPayload:
    monitoring_flag: MonitoringFlag = strawberry.field(
        description="The flag as stored, with validTo."
    )


@strawberry.type(
    description="The result of reverseSettlement (冲销, SETTLEMENT.md §9.6): the cancelled "
    "claim's settlement (every amount 0.00) and the re-run of the rest of its year."
)
class ReverseSettlementPayload:
    settlement: Settlement = strawberry.field(
        description="What the reversed claim has been paid now: the original, its adjustments "
        "and the REVERSAL event together (0.00 for every payer)."
    )
    adjustments: list[SettlementEvent] = strawberry.field(description=ADJUSTMENTS)
    recoveries: list[Recovery] = strawberry.field(
        description="Recoveries (追回) the re-run created, changed or withdrawn (status says "
        "which), including the reversed claim's own pending one, withdrawn."
    )

    @classmethod
    def of(cls, state: ClaimState, consequences: Consequences) -> ReverseSettlementPayload:
        return cls(
            settlement=Settlement.of(state.claim.claim_number, state.events, state.lines),
            adjustments=_adjustments(consequences),
            recoveries=[Recovery.from_model(r, n) for r, n in consequences.recoveries],
        )
