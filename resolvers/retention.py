"""Outbox retention: old events are deleted once nothing needs them, and a reader whose cursor
stands before what was deleted is told so instead of silently missing changes.

:func:`prune` (run by a webhook dispatcher every ``MEDGW_OUTBOX_PRUNE_S``) deletes, in batches
of :data:`BATCH`, each in its own short transaction, the events that are

- older than ``MEDGW_OUTBOX_RETENTION_DAYS`` *and* before the first event that is not (in the
  readers' ``(txid, id)`` order, so what is deleted is a prefix of the feed bar the kept ones),
- final (below the visibility horizon) and already fanned out to the webhooks (at or before
  the webhook cursor: the fan-out still needs what comes after it),
- not wanted by a delivery still ``PENDING`` or ``DEAD`` (a dead letter can be redelivered by
  hand; its event stays until the letter is delivered or its webhook deleted).

The delivered and skipped deliveries of a deleted event go with it. The position of the last
deleted event is kept as the *watermark* (the ``pruned`` row of ``outbox_cursors``): a change
feed or subscription cursor before it may have lost events, and :func:`check` refuses it with
BAD_INPUT naming ``since`` (``reason: CURSOR_EXPIRED``); the reader starts again from
``since: null`` (the oldest event kept) after a full re-read. One process prunes at a time (the
watermark row is locked ``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, delete, exists, func, literal, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import BadInput
from gateway.storage.database import Database
from gateway.storage.outbox import OutboxCursor, OutboxEvent, WebhookDelivery
from resolvers import outbox, webhooks

PRUNED = "pruned"
"""The ``outbox_cursors`` row holding the watermark: the last position deleted."""
BATCH = 1000
CURSOR_EXPIRED = "CURSOR_EXPIRED"


async def watermark(session: AsyncSession) -> outbox.Position | None:
    """The last position pruned (None: nothing was ever pruned)."""
    row = await session.get(OutboxCursor, PRUNED)
    return None if row is None else outbox.Position(row.txid, row.event_id)


async def check(session: AsyncSession, position: outbox.Position, cursor: str) -> None:
    """BAD_INPUT naming ``since`` (``reason: CURSOR_EXPIRED``) when events after ``position``
    may have been pruned."""
    mark = await watermark(session)
    if mark is not None and position < mark:
        raise BadInput(
            f"since = {cursor}: the cursor has expired: changes after it were deleted (older "
            "than MEDGW_OUTBOX_RETENTION_DAYS); read everything again and then the feed from "
            "since: null",
            field="since",
            value=cursor,
            reason=CURSOR_EXPIRED,
        )


async def first_kept(session: AsyncSession, older_than: timedelta) -> outbox.Position | None:
    """The position of the first event not older than ``older_than`` (None: every event is):
    nothing from it on is deleted."""
    cutoff = func.now() - literal(older_than)
    row = (
        await session.execute(
            select(OutboxEvent.txid, OutboxEvent.id)
            .where(OutboxEvent.at >= cutoff)
            .order_by(OutboxEvent.txid, OutboxEvent.id)
            .limit(1)
        )
    ).one_or_none()
    return None if row is None else outbox.Position(row[0], row[1])


async def prune_batch(
    session: AsyncSession,
    older_than: timedelta,
    batch: int = BATCH,
    before: outbox.Position | None = None,
) -> int:
    """One batch of :func:`prune` in the caller's transaction: the events deleted (0: nothing
    left to delete, or another process is pruning). ``before``: :func:`first_kept`, when the
    caller found it already (else it is looked up)."""
    await session.execute(
        insert(OutboxCursor).values(consumer=PRUNED, txid=0, event_id=0).on_conflict_do_nothing()
    )
    mark = (
        await session.scalars(
            select(OutboxCursor)
            .where(OutboxCursor.consumer == PRUNED)
            .with_for_update(skip_locked=True)
        )
    ).one_or_none()
    if mark is None:  # another process prunes
        return 0
    cutoff = func.now() - literal(older_than)
    position = tuple_(OutboxEvent.txid, OutboxEvent.id)
    conditions = [OutboxEvent.at < cutoff, OutboxEvent.txid < outbox.HORIZON]
    keep = await first_kept(session, older_than) if before is None else before
    if keep is not None:
        conditions.append(position < tuple_(literal(keep.txid), literal(keep.event_id)))
    fanned = await session.get(OutboxCursor, webhooks.CONSUMER)
    if fanned is not None:
        conditions.append(position <= tuple_(literal(fanned.txid), literal(fanned.event_id)))
    needed = exists().where(
        WebhookDelivery.event_id == OutboxEvent.id,
        WebhookDelivery.status.in_(["PENDING", "DEAD"]),
    )
    doomed = (
        await session.execute(
            select(OutboxEvent.id, OutboxEvent.txid)
            .where(and_(*conditions), ~needed)
            .order_by(OutboxEvent.txid, OutboxEvent.id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not doomed:
        return 0
    ids = [event_id for event_id, _ in doomed]
    # a delivery redelivered by hand meanwhile is PENDING again: it and its event stay (both
    # statements re-check what they delete against what committed before them)
    await session.execute(
        delete(WebhookDelivery).where(
            WebhookDelivery.event_id.in_(ids), WebhookDelivery.status.in_(["DELIVERED", "SKIPPED"])
        )
    )
    deleted = await session.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(ids), ~needed))
    last = outbox.Position(doomed[-1][1], doomed[-1][0])
    if last > outbox.Position(mark.txid, mark.event_id):
        mark.txid, mark.event_id = last.txid, last.event_id
    return int(deleted.rowcount)  # type: ignore[attr-defined]


async def prune(db: Database, older_than: timedelta, batch: int = BATCH) -> int:
    """Delete what retention allows (see the module), batch after batch, each batch its own
    transaction (short locks, bounded WAL); how many events were deleted."""
    async with db.sessions() as session:  # once: the batches would scan their own dead rows
        before = await first_kept(session, older_than)
    total = 0
    while True:
        async with db.transaction() as session:
            done = await prune_batch(session, older_than, batch, before)
        total += done
        if done < batch:
            return total
