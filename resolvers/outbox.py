"""Change events: written with their change (the one-line hooks call :func:`emit`), read back in
a stable order that never skips (the change feed, subscriptions, the webhook fan-out), and cut
down to what the reader may read.

**Order and the visibility horizon.** Event ids come from a sequence, and sequence order is not
commit order: transaction A takes id 10, B takes id 11 and commits first; a reader that saw 11
and moved its cursor past it would never see 10. So every event carries the id of its writing
transaction (``txid``, ``pg_current_xact_id()``), readers order by ``(txid, id)``, and they read
only events whose ``txid`` is below the *horizon* ``pg_snapshot_xmin(pg_current_snapshot())``:
the oldest transaction still running. Every transaction below it has finished (committed, and
visible to the reader's snapshot, or rolled back, and its rows gone), and every transaction that
starts later gets a larger id, so nothing can appear behind a cursor: the feed never skips and,
the cursor being a strict position, never repeats. The order is that of the transaction ids (a
transaction's events together, in the order it wrote them), the same for every reader; an event
waits at most as long as the oldest transaction then running (settlements take milliseconds).

>>> Position.decode(Position(812, 40).encode())
Position(txid=812, event_id=40)
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.storage import audit, models
from gateway.storage.outbox import EVENT_TYPES, OutboxEvent, emit, emit_many
from gateway.storage.outbox import listener as outbox_listener
from policies.errors import InvalidInput
from resolvers.context import Context
from resolvers.rows import RowRules

CLAIM_CHANGED, IDENTITY_CHANGED, ALERT_CHANGED, APPLICATION_CHANGED = EVENT_TYPES
HORIZON = text("(pg_snapshot_xmin(pg_current_snapshot())::text)::bigint")
"""The oldest transaction still running: every event below it is final."""
LAST = 2**63 - 1
TARGET = {
    CLAIM_CHANGED: "claim",
    ALERT_CHANGED: "alert",
    IDENTITY_CHANGED: "beneficiary",
    APPLICATION_CHANGED: "application",
}
"""The field of ``Change`` that carries each type's subject: a department that may not use it
gets no event of that type."""


@dataclass(frozen=True, order=True)
class Position:
    """Where a reader stands: after the event ``event_id`` of transaction ``txid``."""

    txid: int
    event_id: int

    def encode(self) -> str:
        return base64.urlsafe_b64encode(f"change:{self.txid}:{self.event_id}".encode()).decode()

    @classmethod
    def decode(cls, cursor: str | None, field: str = "since") -> Position:
        """The position of a cursor this API gave out (``None``: the beginning); BAD_INPUT
        naming ``field`` otherwise."""
        if cursor is None:
            return cls(0, 0)
        try:
            kind, txid, event_id = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
            if kind == "change":
                return cls(int(txid), int(event_id))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            pass
        raise InvalidInput(field, cursor, "not a cursor of the change feed")


# -- writing: the hooks ---------------------------------------------------------------------


async def claim_changed(session: AsyncSession, claim: models.Claim, **detail: Any) -> None:
    """A claim was settled, re-settled, reversed, recovered or acknowledged."""
    await emit(session, CLAIM_CHANGED, claim.beneficiary_id, claim.claim_number, detail)


async def identity_changed(
    session: AsyncSession, person: models.Beneficiary, operation: str
) -> None:
    """A person's identities or monitoring flags changed (recorded or ended)."""
    await emit(session, IDENTITY_CHANGED, person.id, str(person.id), {"operation": operation})


async def identities_changed(session: AsyncSession, person_ids: str, operation: str) -> None:
    """:func:`identity_changed` for every distinct person a SQL query of the transaction
    returns (a bulk import's changed persons), in one INSERT … SELECT, and one wake-up."""
    await emit_many(session, IDENTITY_CHANGED, person_ids, {"operation": operation})


async def alert_changed(session: AsyncSession, alert: models.HighCostAlert) -> None:
    """An alert was raised, moved in its lifecycle, or its figure changed."""
    await emit(
        session, ALERT_CHANGED, alert.beneficiary_id, str(alert.id), {"status": alert.status}
    )


async def application_changed(session: AsyncSession, row: models.AssistanceApplication) -> None:
    """An application was received or moved in its lifecycle."""
    await emit(
        session, APPLICATION_CHANGED, row.beneficiary_id, str(row.id), {"status": row.status}
    )


# -- reading --------------------------------------------------------------------------------


async def start(session: AsyncSession) -> Position:
    """The position of "now": before every event not yet final (a reader starting here gets
    every event committed from now on, and perhaps a few committed just before)."""
    horizon = int(await session.scalar(select(HORIZON)) or 0)
    return Position(horizon - 1, LAST)


async def read_after(
    session: AsyncSession, after: Position, *, types: Iterable[str] | None = None, limit: int = 100
) -> list[OutboxEvent]:
    """Up to ``limit`` final events after ``after`` in ``(txid, id)`` order, of ``types``."""
    stmt = (
        select(OutboxEvent)
        .where(
            tuple_(OutboxEvent.txid, OutboxEvent.id) > tuple_(after.txid, after.event_id),
            OutboxEvent.txid < HORIZON,
        )
        .order_by(OutboxEvent.txid, OutboxEvent.id)
        .limit(limit)
    )
    if types is not None:
        stmt = stmt.where(OutboxEvent.type.in_(list(types)))
    return list((await session.scalars(stmt)).all())


def position_of(event: OutboxEvent) -> Position:
    return Position(event.txid, event.id)


@dataclass(frozen=True)
class Visible:
    """An event the reader may read, with its subject loaded under the reader's row rules."""

    event: OutboxEvent
    subject: Any


async def visible(
    session: AsyncSession, rows: RowRules, events: Sequence[OutboxEvent]
) -> list[Visible]:
    """The events whose subject is in the reader's rows (an insurer: the claims it carries; a
    region: its persons), in the given order, each with its subject as it is now."""
    keys: dict[str, set[str]] = {t: set() for t in EVENT_TYPES}
    for event in events:
        keys[event.type].add(event.subject)
    found: dict[tuple[str, str], Any] = {}
    if keys[CLAIM_CHANGED]:
        claims = await session.scalars(
            select(models.Claim).where(
                models.Claim.claim_number.in_(keys[CLAIM_CHANGED]), *rows.claims_with_persons()
            )
        )
        found.update(((CLAIM_CHANGED, c.claim_number), c) for c in claims)
    if keys[ALERT_CHANGED]:
        alerts = await session.scalars(
            select(models.HighCostAlert).where(
                models.HighCostAlert.id.in_([int(k) for k in keys[ALERT_CHANGED]]),
                rows.person_of(models.HighCostAlert.beneficiary_id),
            )
        )
        found.update(((ALERT_CHANGED, str(a.id)), a) for a in alerts)
    if keys[APPLICATION_CHANGED]:
        app = models.AssistanceApplication
        applications = await session.scalars(
            select(app).where(
                app.id.in_([int(k) for k in keys[APPLICATION_CHANGED]]),
                rows.person_of(app.beneficiary_id),
                # as the applications query: those the department received or was routed
                or_(
                    app.received_department == rows.principal.department,
                    app.routed_to == rows.principal.department,
                ),
            )
        )
        found.update(((APPLICATION_CHANGED, str(a.id)), a) for a in applications)
    if keys[IDENTITY_CHANGED]:
        persons = await session.scalars(
            select(models.Beneficiary).where(
                models.Beneficiary.id.in_([uuid.UUID(k) for k in keys[IDENTITY_CHANGED]]),
                *rows.persons(),
            )
        )
        found.update(((IDENTITY_CHANGED, str(p.id)), p) for p in persons)
    return [Visible(e, found[(e.type, e.subject)]) for e in events if (e.type, e.subject) in found]


async def follow(
    ctx: Context,
    types: Sequence[str],
    *,
    since: Position | None,
    paths: Sequence[str],
    operation: str,
    query: str | None,
    poll_s: float,
    batch: int = 100,
) -> AsyncIterator[Visible]:
    """The events of ``types`` the caller may read, from ``since`` (None: from now on), as they
    become final, for as long as the caller listens.

    Woken by the commit of any transaction that wrote events (LISTEN/NOTIFY), else every
    ``poll_s`` seconds. Before a batch leaves, one READ audit record names its persons and the
    personal ``paths`` the subscription selects (one record per batch, not per event, so a
    burst costs one append of the audit chain)."""
    wake = outbox_listener(ctx.db.engine)
    async with ctx.db.sessions() as session:
        position = since if since is not None else await start(session)
    while True:
        await ctx.close()  # the subjects' fields of the last batch have been read
        ctx.forget_loaded()  # and nothing cached is stale
        async with ctx.db.sessions() as session:
            events = await read_after(session, position, types=types, limit=batch)
            shown = await visible(session, ctx.rows, events) if events else []
        if not events:
            await wake.wait(poll_s)
            continue
        position = position_of(events[-1])
        if shown and paths:
            async with ctx.db.transaction() as session:
                await audit.append(
                    session,
                    ctx.principal,
                    action="READ",
                    operation=operation,
                    query=query,
                    beneficiary_ids={v.event.beneficiary_id for v in shown},
                    field_paths=paths,
                )
        for item in shown:
            yield item
