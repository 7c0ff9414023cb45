"""The transactional outbox: one row per change that others may want to know about, written in
the transaction of the change, and the state of its consumers (webhooks and their deliveries).

:func:`emit` inserts the row and calls ``pg_notify`` in the same transaction: PostgreSQL
delivers the notification only at commit and drops it at rollback, so a rolled-back change
neither leaves a row nor wakes anyone. The table is the truth; the notification only wakes the
dispatchers early (they also poll), so a lost notification (a listener that was down) delays,
never loses, an event.

Every row carries ``txid``, the id of the writing transaction (``pg_current_xact_id()``): the
readers order by ``(txid, id)`` and read only below the visibility horizon (see
:mod:`resolvers.outbox`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from datetime import datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gateway.storage.models import Base

log = logging.getLogger("medgw.outbox")

CHANNEL = "medgw_outbox"
"""The LISTEN/NOTIFY channel. The payload is empty: a wake-up, not the data; PostgreSQL folds
identical notifications of one transaction into one, so a re-run of many claims wakes once."""

WEBHOOKS_CHANGED = "webhooks"
"""The payload of the notification a webhook registration sends at its commit: a dispatcher
that knows of no webhook (and so sends no SQL at all) looks again (:func:`webhooks_changed`)."""

EVENT_TYPES = ["CLAIM_CHANGED", "IDENTITY_CHANGED", "ALERT_CHANGED", "APPLICATION_CHANGED"]
DELIVERY_STATES = ["PENDING", "DELIVERED", "DEAD", "SKIPPED"]


def _one_of(column: str, values: list[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class OutboxEvent(Base):
    """Something changed: a claim's settlement or acknowledgement, a person's identities or
    flags, an alert, an application. The subject is named by its key, never by its data: what a
    reader gets is read at delivery under the reader's rules."""

    __tablename__ = "outbox_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    txid: Mapped[int] = mapped_column(
        BigInteger, server_default=text("(pg_current_xact_id()::text)::bigint")
    )
    """The writing transaction (``xid8`` as a number): the readers' order and horizon."""
    type: Mapped[str] = mapped_column(String(24))
    beneficiary_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    subject: Mapped[str] = mapped_column(String(64))
    """The claim number, alert id, application id, or the person's id (identities)."""
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    """What happened in words of the schema (``{"kind": "ADJUSTMENT"}``); no personal value."""
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )

    __table_args__ = (
        CheckConstraint(_one_of("type", EVENT_TYPES), name="type"),
        Index("ix_outbox_events_txid_id", "txid", "id"),
        Index("ix_outbox_events_at", "at"),  # retention (resolvers/retention.py)
    )


class OutboxCursor(Base):
    """How far a shared consumer (the webhook fan-out) has read, as ``(txid, id)``; the row is
    locked ``FOR UPDATE SKIP LOCKED`` by the one process that advances it."""

    __tablename__ = "outbox_cursors"

    consumer: Mapped[str] = mapped_column(String(40), primary_key=True)
    txid: Mapped[int] = mapped_column(BigInteger, default=0)
    event_id: Mapped[int] = mapped_column(BigInteger, default=0)


class Webhook(Base):
    """A departmental system's endpoint (registerWebhook): the events it wants, the secret its
    deliveries are signed with (Standard Webhooks), and the token claims it reads with."""

    __tablename__ = "webhooks"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    department: Mapped[str] = mapped_column(String(40))
    org: Mapped[str] = mapped_column(String(120))
    subject: Mapped[str] = mapped_column(String(120))
    regions: Mapped[list[str]] = mapped_column(ARRAY(String(6)))
    purpose: Mapped[str | None] = mapped_column(String(80))
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(ARRAY(String(24)))
    secret: Mapped[str] = mapped_column(Text)
    since_txid: Mapped[int] = mapped_column(BigInteger)
    since_event: Mapped[int] = mapped_column(BigInteger)
    """Where the outbox stood at registration: only later events are delivered to it."""
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )

    __table_args__ = (Index("ix_webhooks_department_org", "department", "org"),)


class WebhookDelivery(Base):
    """One event for one webhook: pending (with its next attempt), delivered, dead (attempts
    exhausted: the dead-letter list) or skipped (not the webhook's to read)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    webhook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("outbox_events.id"))
    status: Mapped[str] = mapped_column(String(10), default="PENDING")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    last_error: Mapped[str | None] = mapped_column(String(300))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id"),
        CheckConstraint(_one_of("status", DELIVERY_STATES), name="status"),
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_event_id", "event_id"),  # deleting events checks here
    )


async def emit(
    session: AsyncSession,
    type_: str,
    beneficiary_id: uuid.UUID,
    subject: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Write one event in the caller's transaction and wake the dispatchers at its commit."""
    await session.flush()  # what the caller added before it, in the order it was written
    written = (
        insert(OutboxEvent)
        .values(type=type_, beneficiary_id=beneficiary_id, subject=subject, detail=detail or {})
        .returning(OutboxEvent.id)
        .cte("written")
    )
    # One round trip: the row and the wake-up (one per row written, here one).
    await session.execute(select(func.pg_notify(CHANNEL, "")).select_from(written))


async def emit_many(
    session: AsyncSession, type_: str, person_ids: str, detail: dict[str, Any]
) -> None:
    """:func:`emit` for each distinct person id a SQL query returns (subject: the person's
    id), set-based; wakes the dispatchers at commit only when it wrote some."""
    written = await session.execute(
        text(
            "INSERT INTO outbox_events (type, beneficiary_id, subject, detail) "
            "SELECT :type, t.id, t.id::text, CAST(:detail AS jsonb) "
            f"FROM (SELECT DISTINCT * FROM ({person_ids}) q) AS t(id) ORDER BY t.id"
        ),
        {"type": type_, "detail": json.dumps(detail)},
    )
    if getattr(written, "rowcount", 0):
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


_REGISTERED = [0]
"""Webhook registrations committed by this process (see :func:`webhooks_changed`)."""


def webhook_registered() -> None:
    """Note a webhook registration committed by this process (its dispatchers look again at
    once, without waiting for the notification)."""
    _REGISTERED[0] += 1


def webhooks_changed() -> int:
    """A number that grows whenever a webhook may have been registered: by this process
    (:func:`webhook_registered`) or by another (its ``WEBHOOKS_CHANGED`` notification, as
    every :class:`Listener` of this process heard it)."""
    return _REGISTERED[0] + sum(found.registrations for found in _LISTENERS.values())


async def notify_webhooks_changed(session: AsyncSession) -> None:
    """Tell every dispatcher, at the commit of ``session``'s transaction, that a webhook was
    registered."""
    await session.execute(select(func.pg_notify(CHANNEL, WEBHOOKS_CHANGED)))


class Listener:
    """``LISTEN medgw_outbox`` on a connection of its own (outside the pool): wakes every
    waiter of this process when a transaction that wrote events commits. One per database and
    event loop (:func:`listener`); a waiter also wakes after its timeout, so a notification
    missed while the connection was down delays an event, never loses it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._connection: Any = None
        self.registrations = 0
        """``WEBHOOKS_CHANGED`` notifications heard."""
        self._waiters: set[asyncio.Event] = set()
        self._lock = asyncio.Lock()

    def _wake(self, _connection: object, _pid: object, _channel: object, payload: object) -> None:
        if payload == WEBHOOKS_CHANGED:
            self.registrations += 1
        for waiter in self._waiters:
            waiter.set()

    async def _ensure(self) -> None:
        async with self._lock:
            if self._connection is not None and not self._connection.is_closed():
                return
            try:
                self._connection = await asyncpg.connect(self.url)
                await self._connection.add_listener(CHANNEL, self._wake)
            except (OSError, asyncpg.PostgresError) as exc:  # polling still works
                log.warning("outbox listener not connected: %r", exc)
                self._connection = None

    async def wait(self, seconds: float) -> None:
        """Until the next commit that wrote events, or ``seconds``. A cancellation is never
        lost, even when it comes with the wake-up (Python 3.11's ``asyncio.wait_for`` returns
        the result then, and a dispatcher being stopped would run on)."""
        await self._ensure()
        waiter = asyncio.Event()
        self._waiters.add(waiter)
        try:
            async with asyncio.timeout(seconds):
                await waiter.wait()
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(waiter)

    async def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
            self._connection = None


_LISTENERS: dict[tuple[int, int], Listener] = {}


def listener(engine: AsyncEngine) -> Listener:
    """The listener of ``engine``'s database in the running event loop."""
    key = (id(engine), id(asyncio.get_running_loop()))
    found = _LISTENERS.get(key)
    if found is None:
        url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        found = _LISTENERS[key] = Listener(url)
    return found


async def close_listeners(engine: AsyncEngine) -> None:
    """Close the listeners of ``engine`` (the app's shutdown)."""
    for key in [k for k in _LISTENERS if k[0] == id(engine)]:
        await _LISTENERS.pop(key).close()
