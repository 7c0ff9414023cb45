"""Webhooks end to end: registered through the API, delivered by the dispatcher of a real app
(lifespan) to a real local HTTP receiver, signed as Standard Webhooks says, retried, dead-
lettered, redelivered, shared between dispatchers without a double send (gateway/events.py,
resolvers/webhooks.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import create_app
from gateway.config import Settings
from gateway.events import WebhookDispatcher
from gateway.storage import models
from gateway.storage.database import Database
from gateway.storage.outbox import WebhookDelivery, listener, webhooks_changed
from policies.benefits import PolicySet
from tests.conftest import GraphQLClient, StatementCounter
from tests.factories import id_number
from tests.gateway.conftest import LOCAL_RECEIVERS
from tests.gateway.webhook_receiver import SECRET, Receiver, verify
from tests.resolvers.test_settlement_governance import PANZHIHUA, enroll, register, settle, stay

PERSON = id_number(PANZHIHUA, date(1972, 3, 4), 51)
PICC = {"department": "insurer", "org": "picc-5104", "purpose": "claim_handling"}
REGISTER = """mutation($i: RegisterWebhookInput!) { registerWebhook(input: $i) { id events } }"""
DELIVERIES = """query($s: DeliveryStatus) { webhookDeliveries(status: $s) { id status attempts
  lastError deliveredAt } }"""


@asynccontextmanager
async def dispatching(
    settings: Settings, db: Database, policies: PolicySet, **overrides: Any
) -> AsyncIterator[None]:
    """An app of its own with the webhook dispatcher on (its lifespan runs it)."""
    quick = {
        "webhooks": True,
        "outbox_poll_s": 0.2,
        "webhook_backoff_s": 0.2,
        **LOCAL_RECEIVERS,
        **overrides,
    }
    app = create_app(settings.model_copy(update=quick), db=db, policies=policies)
    async with app.router.lifespan_context(app):
        yield


async def register_hook(
    gql: GraphQLClient, url: str, events: list[str], **token: Any
) -> dict[str, Any]:
    variables = {"i": {"url": url, "events": events, "secret": SECRET}}
    return dict((await gql.data(REGISTER, variables, **token))["registerWebhook"])


async def insured(gql: GraphQLClient) -> None:
    await register(gql, PERSON, PANZHIHUA)
    await enroll(gql, PERSON, 2023)


async def claim(gql: GraphQLClient, number: str, carrier: str = "picc-5104") -> None:
    await settle(gql, stay(PERSON, number, "2023-03-01", "10000.00", "9000.00", carrier=carrier))


async def statuses(db: Database) -> list[tuple[str, int]]:
    async with db.sessions() as session:
        rows = await session.execute(
            select(WebhookDelivery.status, WebhookDelivery.attempts).order_by(WebhookDelivery.id)
        )
        return [(s, a) for s, a in rows.all()]


async def until(condition: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def claim_numbers(receiver: Receiver) -> list[str]:
    return [body["data"]["claim"]["claimNumber"] for body in receiver.bodies()]


async def test_a_receiver_down_for_a_while_gets_every_event_once_signed(
    gql: GraphQLClient,
    local: GraphQLClient,
    db: Database,
    settings: Settings,
    policies: PolicySet,
    receiver: Receiver,
) -> None:
    await insured(gql)
    hook = await register_hook(local, receiver.url, ["CLAIM_CHANGED"])
    assert hook["events"] == ["CLAIM_CHANGED"]
    receiver.down = True
    async with dispatching(settings, db, policies):
        for number in ("W-1", "W-2", "W-3"):
            await claim(gql, number)

        async def retried() -> bool:
            found = await statuses(db)
            return len(found) == 3 and all(a >= 2 for _, a in found)

        await until(retried)
        assert receiver.accepted == []
        receiver.down = False
        await receiver.wait_for(3)
        await asyncio.sleep(0.5)  # nothing more arrives
    assert sorted(claim_numbers(receiver)) == ["W-1", "W-2", "W-3"]
    assert len(set(receiver.ids())) == 3
    for headers, body in receiver.accepted:
        assert verify(SECRET, headers, body)
        assert not verify(SECRET, headers, body + b" ")
        assert headers["content-type"] == "application/json"
    assert {b["type"] for b in receiver.bodies()} == {"CLAIM_CHANGED"}
    assert [s for s, _ in await statuses(db)] == ["DELIVERED"] * 3
    rows = (await gql.data(DELIVERIES, {"s": "DELIVERED"}))["webhookDeliveries"]
    assert {r["lastError"] for r in rows} == {"HTTP 503"}  # kept: why earlier attempts failed


async def test_an_insurer_gets_only_its_claims_masked_as_it_reads_them_and_audited(
    gql: GraphQLClient,
    local: GraphQLClient,
    db: Database,
    settings: Settings,
    policies: PolicySet,
    receiver: Receiver,
) -> None:
    await insured(gql)
    await register_hook(local, receiver.url, ["CLAIM_CHANGED"], **PICC)
    async with dispatching(settings, db, policies):
        await claim(gql, "P-OTHER", carrier="cpic-5104")
        await claim(gql, "P-OWN")
        await receiver.wait_for(1)

        async def settled() -> bool:
            return sorted(s for s, _ in await statuses(db)) == ["DELIVERED", "SKIPPED"]

        await until(settled)
    [body] = receiver.bodies()
    data = body["data"]
    assert data["claim"]["claimNumber"] == "P-OWN"
    assert data["claim"]["beneficiary"]["name"] == "治*"  # 治理, masked as in its queries
    assert data["claim"]["beneficiary"]["idNumber"] == PERSON[:4] + "*" * 10 + PERSON[-4:]
    assert "assistance" not in data["claim"]["settlement"]  # never the insurer's to read
    assert "outOfPocket" not in data["claim"]["settlement"]
    async with db.sessions() as session:
        records = (
            await session.scalars(
                select(models.AuditRecord).where(
                    models.AuditRecord.operation == "query WebhookDelivery"
                )
            )
        ).all()
    [record] = records
    assert (record.department, record.org) == ("insurer", "picc-5104")
    assert "changes.changes.claim.beneficiary.name" in record.field_paths


async def test_dead_letters_are_listed_and_redelivered_by_hand(
    gql: GraphQLClient,
    local: GraphQLClient,
    db: Database,
    settings: Settings,
    policies: PolicySet,
    receiver: Receiver,
) -> None:
    await insured(gql)
    await register_hook(local, receiver.url, ["CLAIM_CHANGED"])
    receiver.down = True
    async with dispatching(settings, db, policies, webhook_max_attempts=2):
        await claim(gql, "D-1")

        async def dead() -> bool:
            return await statuses(db) == [("DEAD", 2)]

        await until(dead)
        [letter] = (await gql.data(DELIVERIES, {"s": "DEAD"}))["webhookDeliveries"]
        assert (letter["attempts"], letter["lastError"]) == (2, "HTTP 503")
        assert receiver.refused == 2
        receiver.down = False
        again = await gql.data(
            "mutation($id: ID!) { redeliverWebhook(id: $id) { status attempts } }",
            {"id": letter["id"]},
        )
        assert again["redeliverWebhook"] == {"status": "PENDING", "attempts": 0}
        await receiver.wait_for(1)
    assert claim_numbers(receiver) == ["D-1"]
    # another department's organisation cannot redeliver it
    error = await gql.error(
        "mutation($id: ID!) { redeliverWebhook(id: $id) { status } }",
        {"id": letter["id"]},
        org="mi-3708",
    )
    assert error["extensions"]["code"] == "NOT_FOUND"


async def test_two_dispatchers_deliver_each_event_once(
    gql: GraphQLClient,
    local: GraphQLClient,
    db: Database,
    settings: Settings,
    policies: PolicySet,
    receiver: Receiver,
) -> None:
    await insured(gql)
    await register_hook(local, receiver.url, ["CLAIM_CHANGED"])
    async with dispatching(settings, db, policies), dispatching(settings, db, policies):
        for i in range(12):
            await claim(gql, f"T-{i}")
        await receiver.wait_for(12)
        await asyncio.sleep(1.0)
    assert sorted(claim_numbers(receiver)) == sorted(f"T-{i}" for i in range(12))
    assert len(receiver.ids()) == len(set(receiver.ids())) == 12


async def test_a_dispatcher_killed_between_commit_and_delivery_loses_nothing(
    gql: GraphQLClient,
    local: GraphQLClient,
    db: Database,
    settings: Settings,
    policies: PolicySet,
    receiver: Receiver,
) -> None:
    await insured(gql)
    await register_hook(local, receiver.url, ["CLAIM_CHANGED"])
    await claim(gql, "K-1")  # committed while no dispatcher runs
    receiver.hanging = True
    async with dispatching(settings, db, policies, webhook_timeout_s=60):

        async def taken() -> bool:
            return await statuses(db) == [("PENDING", 0)]

        await until(taken)
        await asyncio.sleep(0.5)  # the dispatcher is now inside the send: killed there
    assert receiver.accepted == []
    assert await statuses(db) == [("PENDING", 0)]
    receiver.hanging = False
    async with dispatching(settings, db, policies):
        await receiver.wait_for(1)
    assert claim_numbers(receiver) == ["K-1"]


async def test_registering_refuses_a_bad_url_secret_or_event_naming_it(
    gql: GraphQLClient, db: Database
) -> None:
    bad = [
        ({"url": "ftp://x/y", "events": ["CLAIM_CHANGED"], "secret": SECRET}, "url"),
        ({"url": "http://x/y", "events": ["CLAIM_CHANGED"], "secret": "plain"}, "secret"),
        ({"url": "http://x/y", "events": [], "secret": SECRET}, "events"),
    ]
    for value, field in bad:
        error = await gql.error(REGISTER, {"i": value})
        assert (error["extensions"]["code"], error["extensions"]["field"]) == ("BAD_INPUT", field)
    error = await gql.error(
        REGISTER,
        {"i": {"url": "http://x/y", "events": ["ALERT_CHANGED"], "secret": SECRET}},
        **PICC,
    )
    assert (error["extensions"]["field"], error["extensions"]["value"]) == (
        "events",
        "ALERT_CHANGED",
    )
    async with db.sessions() as session:
        assert await session.scalar(text("SELECT count(*) FROM webhooks")) == 0
    listed = await gql.data("{ webhooks { id } }")
    assert listed["webhooks"] == []


async def test_no_sql_while_no_webhook_exists_and_a_webhook_registered_later_gets_its_events(
    gql: GraphQLClient,
    local: GraphQLClient,
    local_app: Any,
    db: Database,
    receiver: Receiver,
    count_statements: Callable[[], StatementCounter],
) -> None:
    """The dispatcher wakes at every commit that wrote events; with no webhook it sends no SQL
    (it looked once), and a webhook registered afterwards gets the events after it."""
    await insured(gql)
    dispatcher = WebhookDispatcher(local_app.state.gateway)
    try:
        assert await dispatcher.step() == 0  # looks up the webhooks: none
        await claim(gql, "N-1")
        statements = count_statements()
        for _ in range(3):
            assert await dispatcher.step() == 0
        assert statements.statements == []
        await register_hook(local, receiver.url, ["CLAIM_CHANGED"])
        await claim(gql, "N-2")

        async def delivered() -> bool:
            await dispatcher.step()
            return len(receiver.accepted) >= 1

        await until(delivered)
        assert claim_numbers(receiver) == ["N-2"]  # N-1 came before the registration
        assert [s for s, _ in await statuses(db)] == ["DELIVERED"]
    finally:
        await dispatcher.close()


async def test_a_registration_in_another_process_is_heard_by_a_dispatcher_that_knew_none(
    gql: GraphQLClient, local_app: Any, db: Database, admin: AsyncEngine
) -> None:
    """Another process's registration notifies at its commit: the dispatcher looks again
    (the notification's count, not the recheck interval)."""
    dispatcher = WebhookDispatcher(local_app.state.gateway)
    wake = listener(db.engine)
    try:
        assert not await dispatcher.webhooks_exist()
        await wake.wait(0.01)  # connected and listening
        before = webhooks_changed()
        async with admin.begin() as conn:  # as registerWebhook does, from elsewhere
            await conn.execute(
                text(
                    "INSERT INTO webhooks (id, department, org, subject, regions, url, events, "
                    "secret, since_txid, since_event) VALUES (gen_random_uuid(), 'insurer', "
                    "'picc-5104', 't', '{5104}', 'https://x.example/', '{CLAIM_CHANGED}', "
                    "'whsec_x', 0, 0)"
                )
            )
            await conn.execute(text("SELECT pg_notify('medgw_outbox', 'webhooks')"))

        async def heard() -> bool:
            await asyncio.sleep(0.02)
            return webhooks_changed() != before

        await until(heard)
        assert await dispatcher.webhooks_exist()
    finally:
        await dispatcher.close()


async def test_a_wait_cancelled_as_a_notification_wakes_it_is_cancelled(db: Database) -> None:
    """A dispatcher (or subscription) being stopped just as a commit's notification wakes it
    stops: the cancellation is not lost in the wake-up (the app's shutdown waits for it)."""
    wake = listener(db.engine)
    await wake.wait(0.01)  # connected
    for settle_first in range(3):  # the wake-up a few loop steps before the cancellation
        waiting = asyncio.create_task(wake.wait(30))
        await asyncio.sleep(0.05)  # parked
        wake._wake(None, 0, "medgw_outbox", "")
        for _ in range(settle_first):
            await asyncio.sleep(0)
        if waiting.done():
            continue  # it returned before anyone asked it to stop: nothing lost
        waiting.cancel()
        try:
            await waiting
        except asyncio.CancelledError:
            continue
        raise AssertionError(f"the wait returned: its cancellation was lost ({settle_first})")
