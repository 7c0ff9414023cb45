"""Reading the audit trail (the auditor's queries): the log, and who saw one person's data."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import models, resident_id
from gateway.context import Context


async def page(
    ctx: Context,
    *,
    department: str | None,
    beneficiary_id: uuid.UUID | None,
    since: datetime | None,
    until: datetime | None,
    first: int,
    after: int | None,
) -> Sequence[models.AuditRecord]:
    record = models.AuditRecord
    conditions: list[object] = []
    if department is not None:
        conditions.append(record.department == department)
    if beneficiary_id is not None:
        conditions.append(record.beneficiary_ids.contains([beneficiary_id]))
    if since is not None:
        conditions.append(record.at >= since)
    if until is not None:
        conditions.append(record.at < until)
    if after is not None:
        conditions.append(record.id > after)
    stmt = select(record).where(*conditions).order_by(record.id).limit(first + 1)  # type: ignore[arg-type]

    async def run(session: AsyncSession) -> Sequence[models.AuditRecord]:
        return (await session.scalars(stmt)).all()

    return await ctx.read(run)


async def access_report(
    ctx: Context, id_number: str
) -> tuple[models.Beneficiary, Sequence[models.AuditRecord]] | None:
    """Who read or changed this person's data, when, what and why; None if not visible."""
    number = resident_id.parse(id_number).number

    async def run(
        session: AsyncSession,
    ) -> tuple[models.Beneficiary, Sequence[models.AuditRecord]] | None:
        person = (
            await session.scalars(
                select(models.Beneficiary).where(
                    models.Beneficiary.id_number == number, *ctx.rows.persons()
                )
            )
        ).one_or_none()
        if person is None:
            return None
        records = (
            await session.scalars(
                select(models.AuditRecord)
                .where(models.AuditRecord.beneficiary_ids.contains([person.id]))
                .order_by(models.AuditRecord.id)
            )
        ).all()
        return person, records

    return await ctx.read(run)
