"""Outbox retention (resolvers/retention.py): old events go once nothing needs them, batch by
batch; the fan-out's cursor, pending and dead deliveries and recent events keep theirs; a
change-feed cursor from before what was deleted is refused as expired, never silently moved."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, text, update

from gateway.config import Settings
from gateway.storage.database import Database
from gateway.storage.outbox import OutboxEvent, WebhookDelivery
from policies.benefits import PolicySet
from resolvers import outbox, retention, webhooks
from tests.conftest import GraphQLClient
from tests.gateway.test_subscriptions import session_of
from tests.gateway.test_webhooks import claim, dispatching, insured, register_hook, until
from tests.gateway.webhook_receiver import Receiver

MONTH = timedelta(days=30)
FEED = """query($s: String) { changes(since: $s, first: 50) { cursor
  changes { cursor claim { claimNumber } } } }"""


async def subjects(db: Database) -> list[str]:
    async with db.sessions() as session:
        rows = await session.scalars(select(OutboxEvent.subject).order_by(OutboxEvent.id))
        return list(rows.all())


async def age(db: Database, *claim_numbers: str, days: int = 40) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.subject.in_(claim_numbers))
            .values(at=OutboxEvent.at - timedelta(days=days))
        )


async def changes(gql: GraphQLClient, since: str | None) -> dict[str, Any]:
    return dict((await gql.data(FEED, {"s": since}))["changes"])


async def test_old_events_are_pruned_and_a_cursor_from_before_them_has_expired(
    gql: GraphQLClient, db: Database
) -> None:
    await insured(gql)
    for number in ("A-1", "A-2", "A-3"):
        await claim(gql, number)
    first, second, _ = (await changes(gql, None))["changes"]
    await age(db, "A-1", "A-2")
    assert await retention.prune(db, MONTH) == 2
    assert await subjects(db) == ["A-3"]
    error = await gql.error(FEED, {"s": first["cursor"]})
    assert error["extensions"] == {
        "code": "BAD_INPUT",
        "field": "since",
        "value": first["cursor"],
        "reason": "CURSOR_EXPIRED",
    }
    assert "expired" in error["message"]
    # a cursor at the last change deleted lost nothing; null starts at the oldest kept
    later = await changes(gql, second["cursor"])
    assert [c["claim"]["claimNumber"] for c in later["changes"]] == ["A-3"]
    assert [c["claim"]["claimNumber"] for c in (await changes(gql, None))["changes"]] == ["A-3"]
    assert await retention.prune(db, MONTH) == 0  # nothing more is old


async def test_pruning_keeps_what_the_fan_out_or_a_delivery_still_needs(
    gql: GraphQLClient, local: GraphQLClient, db: Database
) -> None:
    await insured(gql)
    await register_hook(local, "http://127.0.0.1:9/hook", ["CLAIM_CHANGED"])
    numbers = [f"B-{i}" for i in range(1, 6)]
    for number in numbers:
        await claim(gql, number)
    async with db.transaction() as session:
        assert await webhooks.fan_out(session, limit=4) == 4  # B-5 not fanned out yet
        delivered = await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))
        for row, status in zip(delivered, ["DELIVERED", "SKIPPED", "PENDING", "DEAD"], strict=True):
            row.status = status
    await age(db, *numbers)
    await claim(gql, "B-6")  # recent
    assert await retention.prune(db, MONTH, batch=1) == 2  # B-1, B-2, one batch at a time
    assert await subjects(db) == ["B-3", "B-4", "B-5", "B-6"]
    async with db.sessions() as session:
        left = await session.scalars(select(WebhookDelivery.status).order_by(WebhookDelivery.id))
        assert list(left) == ["PENDING", "DEAD"]
        b2 = await session.scalar(select(OutboxEvent).where(OutboxEvent.subject == "B-2"))
        assert b2 is None
        mark = await retention.watermark(session)
    assert mark is not None
    # the dead letter is redelivered, the rest fanned out and delivered: B-4 and B-5 may go
    async with db.transaction() as session:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.status == "DEAD")
            .values(status="DELIVERED")
        )
        assert await webhooks.fan_out(session) == 2  # B-5, B-6
        await session.execute(
            text(
                "UPDATE webhook_deliveries SET status = 'DELIVERED' WHERE status = 'PENDING'"
                " AND event_id = (SELECT id FROM outbox_events WHERE subject = 'B-5')"
            )
        )
    assert await retention.prune(db, MONTH, batch=1) == 2
    assert await subjects(db) == ["B-3", "B-6"]
    async with db.sessions() as session:
        moved = await retention.watermark(session)
    assert moved is not None
    assert moved > mark


async def test_the_dispatcher_prunes_what_it_delivered(
    gql: GraphQLClient,
    local: GraphQLClient,
    db: Database,
    settings: Settings,
    policies: PolicySet,
    receiver: Receiver,
) -> None:
    await insured(gql)
    await register_hook(local, receiver.url, ["CLAIM_CHANGED"])
    moment = {"outbox_retention_days": 1 / 86_400, "outbox_prune_s": 0.2}  # one second
    async with dispatching(settings, db, policies, **moment):
        await claim(gql, "P-1")
        await receiver.wait_for(1)

        async def pruned() -> bool:
            return await subjects(db) == []

        await until(pruned)
    async with db.sessions() as session:
        assert list(await session.scalars(select(WebhookDelivery.id))) == []
        mark = await retention.watermark(session)
    assert mark is not None
    assert mark.event_id >= 1
    assert outbox.Position(0, 0) < mark


async def test_a_subscription_resumed_from_an_expired_cursor_is_told_so(
    http_server: str, gql: GraphQLClient, db: Database
) -> None:
    await insured(gql)
    for number in ("S-1", "S-2"):
        await claim(gql, number)
    first, _ = (await changes(gql, None))["changes"]
    await age(db, "S-1", "S-2")
    assert await retention.prune(db, MONTH) == 2
    async with session_of(http_server) as socket:
        await socket.subscribe(
            "subscription($s: String) { claimChanged(since: $s) { cursor } }",
            {"s": first["cursor"]},
        )
        message = await socket.receive()
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["reason"] == "CURSOR_EXPIRED"
    assert errors[0]["extensions"]["field"] == "since"
