"""Webhooks: registered per department (``registerWebhook``), fed from the outbox, delivered
signed as Standard Webhooks says, retried with exponential backoff, dead-lettered, redelivered
by hand.

Delivery, shared by every gateway process without sending twice:

1. **Fan-out** (:func:`fan_out`): the process that locks the ``webhooks`` row of
   ``outbox_cursors`` (``FOR UPDATE SKIP LOCKED``; the others skip) reads the final events
   after it (:mod:`resolvers.outbox`, never skipping one), inserts one pending delivery per
   event and webhook that wants its type (events after the webhook's registration), and moves
   the cursor, in one transaction. The cursor is created by the first registration, so an
   event committed while no dispatcher runs is fanned out when one starts.
2. **Delivery** (:func:`due`): a process takes due pending deliveries ``FOR UPDATE SKIP
   LOCKED`` and keeps them locked while it sends, so no other process sends them meanwhile; the
   outcome (delivered, or the next attempt after ``backoff · 2^(attempts-1)`` seconds, or dead
   after the last attempt) is stored in the same transaction. A process that dies mid-way loses
   its locks; the deliveries stay pending and another process sends them (at least once: the
   ``webhook-id`` header is the same at every attempt, for the receiver to drop a repeat).

Signature (Standard Webhooks): the secret is ``whsec_`` + base64 of 24 to 64 random bytes;
``webhook-signature`` is ``v1,`` + base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.
{body}")).

>>> key = "whsec_" + base64.b64encode(b"k" * 32).decode()
>>> sign(key, "msg_1", 1700000000, b'{"a":1}')
'v1,tDnYFrCIK4MQWDoOot4FXQ7/xKQ3Ta7J5hEfw60KmoA='
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import Conflict, NotFound
from gateway.storage import audit
from gateway.storage.outbox import (
    OutboxCursor,
    OutboxEvent,
    Webhook,
    WebhookDelivery,
    notify_webhooks_changed,
    webhook_registered,
)
from policies.errors import InvalidInput
from resolvers import egress, outbox
from resolvers.context import Context

CONSUMER = "webhooks"
SECRET_PREFIX = "whsec_"
# Arbitrary constant naming "webhook registrations" among advisory locks.
_REGISTER_LOCK = 0x77686B73


def key_of(secret: str, field: str = "secret") -> bytes:
    """The HMAC key of a ``whsec_…`` secret; BAD_INPUT naming ``field`` otherwise (its value
    shown as ``whsec_…``: an error never repeats a secret, even a bad one).

    >>> key_of("whsec_" + base64.b64encode(b"short").decode())
    Traceback (most recent call last):
    policies.errors.InvalidInput: secret = whsec_…: the key is 5 bytes; 24 to 64 random bytes needed
    """
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidInput(field, "whsec_…", "expected whsec_ and the base64 of 24 to 64 bytes")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(field, "whsec_…", "what follows whsec_ is not base64") from None
    if not 24 <= len(key) <= 64:
        reason = f"the key is {len(key)} bytes; 24 to 64 random bytes needed"
        raise InvalidInput(field, "whsec_…", reason)
    return key


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header of a message (Standard Webhooks, version v1)."""
    content = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key_of(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def check_events(ctx: Context, events: Sequence[str]) -> list[str]:
    """The event types asked for, each known, once, and readable by the caller's department;
    BAD_INPUT naming ``events`` and the offending type otherwise."""
    if not events:
        raise InvalidInput("events", [], "at least one event type")
    seen: set[str] = set()
    for event in events:
        if event not in outbox.TARGET:
            raise InvalidInput("events", event, f"not an event type ({', '.join(outbox.TARGET)})")
        if event in seen:
            raise InvalidInput("events", event, "named twice")
        seen.add(event)
        if not ctx.policy.can_use("Change", outbox.TARGET[event]):
            raise InvalidInput("events", event, f"{ctx.principal.department} may not read it")
    return sorted(seen)


# -- what departments do --------------------------------------------------------------------


async def register(ctx: Context, url: str, events: Sequence[str], secret: str) -> Webhook:
    """Register ``url`` for ``events`` on behalf of the caller (its department, organisation,
    regions and purpose are what deliveries read with). BAD_INPUT naming the field for a
    malformed URL or one the egress rules refuse (:mod:`resolvers.egress`: its host resolves to
    a loopback, private, link-local… address, or it is http to a public one), no event, an
    unknown or repeated one, or one the department may not read, or a secret not of the
    Standard Webhooks form; CONFLICT when the organisation already has
    ``MEDGW_WEBHOOKS_PER_ORG`` webhooks. Nothing is stored then."""
    egress.parse(url)
    key_of(secret)
    kinds = check_events(ctx, events)
    target = await egress.checked(url, egress.Rules.of(ctx.settings))
    principal = ctx.principal
    row = Webhook(
        department=principal.department,
        org=principal.org,
        subject=principal.subject,
        regions=list(principal.regions),
        purpose=principal.purpose,
        url=target,
        events=kinds,
        secret=secret,
    )
    limit = ctx.settings.webhooks_per_org
    async with ctx.db.transaction() as session:
        # one registration of an organisation at a time, so two at once cannot pass the limit
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:k, hashtext(:org))"),
            {"k": _REGISTER_LOCK, "org": f"{principal.department}/{principal.org}"},
        )
        held = await session.scalar(select(func.count()).select_from(Webhook).where(*_own(ctx)))  # type: ignore[arg-type]
        if (held or 0) >= limit:
            raise Conflict(
                f"{principal.org} already has {held} webhooks (MEDGW_WEBHOOKS_PER_ORG = {limit}); "
                "delete one first",
                field="url",
                value=url,
            )
        since = await outbox.start(session)
        row.since_txid, row.since_event = since.txid, since.event_id
        session.add(row)
        await session.execute(  # the fan-out starts here the first time
            insert(OutboxCursor)
            .values(consumer=CONSUMER, txid=since.txid, event_id=since.event_id)
            .on_conflict_do_nothing()
        )
        await session.flush()
        await notify_webhooks_changed(session)  # dispatchers that knew of none look again
        await audit.append(  # never the secret, nor the URL's query (it may carry a token)
            session,
            principal,
            action="WRITE",
            operation="registerWebhook",
            detail={"webhook": str(row.id), "events": row.events},
        )
    webhook_registered()
    return row


def _own(ctx: Context) -> list[object]:
    return [Webhook.department == ctx.principal.department, Webhook.org == ctx.principal.org]


def parse_id(value: str, field: str = "id") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput(field, value, "not a webhook id") from None


async def mine(ctx: Context) -> list[Webhook]:
    """The webhooks of the caller's department and organisation, oldest first."""
    stmt = select(Webhook).where(*_own(ctx)).order_by(Webhook.created_at, Webhook.id)  # type: ignore[arg-type]
    return list(await ctx.all(stmt))


async def delete(ctx: Context, webhook_id: str) -> Webhook:
    """Delete one of the caller's webhooks (its deliveries go with it); NOT_FOUND otherwise."""
    key = parse_id(webhook_id)
    async with ctx.db.transaction() as session:
        row = (
            await session.scalars(select(Webhook).where(Webhook.id == key, *_own(ctx)))  # type: ignore[arg-type]
        ).one_or_none()
        if row is None:
            raise NotFound(f"id = {webhook_id}: no such webhook", field="id")
        await session.delete(row)
        await audit.append(
            session,
            ctx.principal,
            action="WRITE",
            operation="deleteWebhook",
            detail={"webhook": webhook_id},
        )
    return row


async def deliveries(
    ctx: Context, status: str | None, webhook_id: str | None, first: int
) -> list[WebhookDelivery]:
    """Deliveries of the caller's webhooks, newest first (``status: DEAD``: the dead letters)."""
    stmt = (
        select(WebhookDelivery)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(*_own(ctx))  # type: ignore[arg-type]
        .order_by(WebhookDelivery.id.desc())
        .limit(first)
    )
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    if webhook_id is not None:
        stmt = stmt.where(WebhookDelivery.webhook_id == parse_id(webhook_id, "webhookId"))
    return list(await ctx.all(stmt))


async def redeliver(ctx: Context, delivery_id: str) -> WebhookDelivery:
    """Send a delivery of the caller's webhooks again (a dead letter, or a delivered one): it is
    pending again with a fresh count of attempts, due now."""
    try:
        key = int(delivery_id)
    except ValueError:
        raise InvalidInput("id", delivery_id, "not a delivery id") from None
    async with ctx.db.transaction() as session:
        row = (
            await session.scalars(
                select(WebhookDelivery)
                .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                .where(WebhookDelivery.id == key, *_own(ctx))  # type: ignore[arg-type]
                .with_for_update(of=WebhookDelivery)
            )
        ).one_or_none()
        if row is None:
            raise NotFound(f"id = {delivery_id}: no such delivery", field="id")
        row.status, row.attempts, row.last_error = "PENDING", 0, None
        row.next_attempt_at = datetime.now(UTC)
        await session.flush()
        await audit.append(
            session,
            ctx.principal,
            action="WRITE",
            operation="redeliverWebhook",
            detail={"delivery": key},
        )
    return row


# -- what the dispatcher does ---------------------------------------------------------------


async def fan_out(session: AsyncSession, limit: int = 500) -> int:
    """One step of the fan-out (see the module); the events read, 0 when another process holds
    the cursor or nothing is final yet."""
    cursor = (
        await session.scalars(
            select(OutboxCursor)
            .where(OutboxCursor.consumer == CONSUMER)
            .with_for_update(skip_locked=True)
        )
    ).one_or_none()
    if cursor is None:  # another process fans out, or no webhook was ever registered
        return 0
    position = outbox.Position(cursor.txid, cursor.event_id)
    events = await outbox.read_after(session, position, limit=limit)
    if not events:
        return 0
    hooks = list((await session.scalars(select(Webhook))).all())
    rows = [
        {"webhook_id": hook.id, "event_id": event.id}
        for event in events
        for hook in hooks
        if event.type in hook.events
        and outbox.position_of(event) > outbox.Position(hook.since_txid, hook.since_event)
    ]
    if rows:
        await session.execute(insert(WebhookDelivery).values(rows).on_conflict_do_nothing())
    last = outbox.position_of(events[-1])
    cursor.txid, cursor.event_id = last.txid, last.event_id
    return len(events)


@dataclass
class Due:
    """A pending delivery, locked by the caller's transaction, with its webhook and event."""

    delivery: WebhookDelivery
    webhook: Webhook
    event: OutboxEvent


async def due(session: AsyncSession, limit: int = 20) -> list[Due]:
    """Pending deliveries whose attempt is due, locked (``SKIP LOCKED``: another process's are
    left to it), oldest first."""
    rows = await session.execute(
        select(WebhookDelivery, Webhook, OutboxEvent)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.status == "PENDING", WebhookDelivery.next_attempt_at <= func.now())
        .order_by(WebhookDelivery.id)
        .limit(limit)
        .with_for_update(of=WebhookDelivery, skip_locked=True)
    )
    return [Due(d, w, e) for d, w, e in rows.all()]


def record_attempt(
    delivery: WebhookDelivery, error: str | None, *, max_attempts: int, backoff_s: float
) -> None:
    """The outcome of one attempt: delivered (``error`` None), else retried after
    ``backoff_s · 2^(attempts-1)`` seconds, or DEAD once ``max_attempts`` are spent."""
    now = datetime.now(UTC)
    delivery.attempts += 1
    if error is None:  # last_error stays: why the attempts before failed
        delivery.status, delivery.delivered_at = "DELIVERED", now
        return
    delivery.last_error = error[:300]
    if delivery.attempts >= max_attempts:
        delivery.status = "DEAD"
    else:
        delivery.next_attempt_at = now + timedelta(seconds=backoff_s * 2 ** (delivery.attempts - 1))
