"""Reading the audit trail (the auditor's queries): the log, and who saw one person's data."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import resident_id
from gateway.errors import GatewayError
from gateway.storage import checkpoints, models
from gateway.storage.checkpoints import Checkpoint
from resolvers.context import Context
from resolvers.pages import Key, Order, Page, fetch_page

BY_ID = Order((models.AuditRecord.id,))


async def page(
    ctx: Context,
    *,
    department: str | None,
    beneficiary_id: uuid.UUID | None,
    since: datetime | None,
    until: datetime | None,
    first: int,
    after: Key | None,
) -> Page[models.AuditRecord]:
    record = models.AuditRecord
    stmt = select(record).where(ctx.rows.audit_records())
    if department is not None:
        stmt = stmt.where(record.department == department)
    if beneficiary_id is not None:
        stmt = stmt.where(record.beneficiary_ids.contains([beneficiary_id]))
    if since is not None:
        stmt = stmt.where(record.at >= since)
    if until is not None:
        stmt = stmt.where(record.at < until)
    return await fetch_page(ctx.all, stmt, BY_ID, after, first)


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


async def signed_checkpoints(ctx: Context, last: int) -> list[tuple[Checkpoint, bool]]:
    """The newest ``last`` checkpoints of the audit chain, newest first, each with whether the
    gateway's key verifies its signature; none when there is no checkpoint file yet.

    Raises GatewayError (INTERNAL) naming the line when the file holds something else.
    """
    path = ctx.settings.audit_checkpoints
    try:
        found = await asyncio.to_thread(checkpoints.read, path)
    except FileNotFoundError:
        return []
    except checkpoints.CheckpointFileError as exc:
        raise GatewayError(str(exc)) from None
    key = ctx.settings.audit_key
    return [(c, c.valid(key)) for c in reversed(found[-last:])]
