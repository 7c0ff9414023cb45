"""Applications for assistance (依申请救助, 攀枝花 第十九、二十二条; 鲁医保发 四(一))."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

import strawberry

from gateway.storage import models
from schema.beneficiary import (
    AlertStatus,
    Beneficiary,
    Identity,
    MonitoringFlag,
    linked_record,
    person_of,
)
from schema.enums import Category

if TYPE_CHECKING:
    from resolvers.context import Context


@strawberry.input(description="An application for assistance as received at a window (受理).")
class SubmitApplicationInput:
    id_number: str = strawberry.field(
        description="The applicant's resident ID number (身份证号), in the token's regions."
    )
    category: Category = strawberry.field(
        description="The category applied for; decides the department it is routed to (分办转办)."
    )
    statement: str = strawberry.field(
        description="What the person asks and why, as written at the window (≤ 500 characters)."
    )


@strawberry.type(
    description="A person's application for assistance (依申请救助): received at one department's "
    "window (受理), routed to the department that recognises the category (分办转办), decided "
    "there with a reason and fed back (结果反馈) to the receiving window. Visible to the "
    "departments it involves."
)
class Application:
    id: strawberry.ID = strawberry.field(
        description="Opaque identifier (acknowledgeApplication, recogniseApplication and "
        "rejectApplication take it)."
    )
    category: Category = strawberry.field(description="The category applied for.")
    statement: str = strawberry.field(description="What the person asked, as written.")
    received_by: str = strawberry.field(description="department/org of the receiving window.")
    routed_to: str = strawberry.field(
        description="The department that recognises the category and decides the application."
    )
    status: AlertStatus = strawberry.field(
        description="Where it stands (same lifecycle as alerts)."
    )
    acknowledged_by: str | None = strawberry.field(
        description="department/org that took it up; null before."
    )
    acknowledged_at: datetime | None = strawberry.field(description="When it was taken up.")
    resolution: str | None = strawberry.field(
        description="The decision's reason (结果反馈): why rejected, or the recognition."
    )
    resolved_by: str | None = strawberry.field(
        description="department/org that decided it, or gateway when the recognition was "
        "recorded (and linked) automatically."
    )
    resolved_at: datetime | None = strawberry.field(description="When it was decided.")
    received_at: datetime = strawberry.field(description="When it was received (受理).")
    beneficiary_id: strawberry.Private[uuid.UUID]
    identity_id: strawberry.Private[int | None]
    flag_id: strawberry.Private[int | None]

    @classmethod
    def from_model(cls, m: models.AssistanceApplication) -> Application:
        return cls(
            id=strawberry.ID(str(m.id)),
            category=Category(m.category),
            statement=m.statement,
            received_by=m.received_by,
            routed_to=m.routed_to,
            status=AlertStatus(m.status),
            acknowledged_by=m.acknowledged_by,
            acknowledged_at=m.acknowledged_at,
            resolution=m.resolution,
            resolved_by=m.resolved_by,
            resolved_at=m.resolved_at,
            received_at=m.created_at,
            beneficiary_id=m.beneficiary_id,
            identity_id=m.identity_id,
            flag_id=m.flag_id,
        )

    @strawberry.field(description="The applicant.")
    async def beneficiary(self, info: strawberry.Info[Context, None]) -> Beneficiary | None:
        return await person_of(info, self.beneficiary_id)

    @strawberry.field(description="The identity record the application produced (RECOGNISED).")
    async def identity(self, info: strawberry.Info[Context, None]) -> Identity | None:
        return await linked_record(info, models.Identity, self.identity_id, Identity)

    @strawberry.field(description="The monitoring-flag record the application produced.")
    async def monitoring_flag(self, info: strawberry.Info[Context, None]) -> MonitoringFlag | None:
        return await linked_record(info, models.MonitoringFlag, self.flag_id, MonitoringFlag)
