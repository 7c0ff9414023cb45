"""What a hospital asks at admission: 先诊疗后付费 / deposit waiver, yes or no."""

from __future__ import annotations

import uuid
from datetime import date

import strawberry

from resolvers.admission import Waiver


@strawberry.type(
    description="Whether a person is admitted to hospital without a deposit (先诊疗后付费, "
    "住院押金减免: 民发〔2017〕12号 (五), 攀枝花 第十六条) on a date: yes or no, never the "
    "category that entitles. Which categories entitle is each regional policy's "
    "`deposit_waiver` (with its clause, or marked assumed where the document is silent)."
)
class DepositWaiver:
    entitled: bool = strawberry.field(
        description="true: admit without a deposit; false: not entitled, or no such person in "
        "the caller's regions (one answer for both)."
    )
    on: date = strawberry.field(description="The day asked about (China time).")
    beneficiary_id: strawberry.Private[uuid.UUID | None]

    @classmethod
    def of(cls, waiver: Waiver) -> DepositWaiver:
        return cls(entitled=waiver.entitled, on=waiver.on, beneficiary_id=waiver.beneficiary_id)
