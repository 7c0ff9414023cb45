"""The transactional outbox and the change feed: an event is written with its change and only
with it, and readers see every final event once, in one order, never skipping one that commits
late (resolvers/outbox.py)."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import date
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import func, select

from gateway.storage.database import Database
from gateway.storage.outbox import CHANNEL, OutboxEvent, emit
from resolvers import outbox
from tests.conftest import GraphQLClient
from tests.factories import id_number
from tests.resolvers.test_settlement_governance import (
    PANZHIHUA,
    enroll,
    record,
    register,
    settle,
    stay,
)

PERSON = id_number(PANZHIHUA, date(1971, 2, 3), 41)
INSURER = {"department": "insurer", "org": "picc-5104", "purpose": "claim_handling"}
OTHER_INSURER = {"department": "insurer", "org": "cpic-5104", "purpose": "claim_handling"}
CIVIL = {"department": "civil_affairs", "org": "mz-5104", "regions": ("5104",)}
FEED = """query($s: String, $t: [ChangeType!], $f: Int) { changes(since: $s, types: $t, first: $f) {
  cursor hasMore changes { cursor type claim { claimNumber totalCost }
  beneficiary { identities { category } } } } }"""


async def events(db: Database) -> list[OutboxEvent]:
    async with db.sessions() as session:
        rows = await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))
        return list(rows.all())


async def feed(gql: GraphQLClient, since: str | None = None, **token: Any) -> dict[str, Any]:
    variables = {"s": since, "t": None, "f": 50}
    return dict((await gql.data(FEED, variables, **token))["changes"])


async def insured(gql: GraphQLClient) -> None:
    await register(gql, PERSON, PANZHIHUA)
    await enroll(gql, PERSON, 2023)


async def test_a_settlement_writes_its_claim_changed_event_in_its_own_transaction(
    gql: GraphQLClient, db: Database
) -> None:
    await insured(gql)
    await settle(gql, stay(PERSON, "O-1", "2023-03-01", "10000.00", "9000.00", carrier="picc-5104"))
    [event] = await events(db)
    assert (event.type, event.subject, event.detail) == (
        "CLAIM_CHANGED",
        "O-1",
        {"kind": "ORIGINAL"},
    )
    async with db.sessions() as session:
        settled_in = await session.scalar(
            select(func.min(OutboxEvent.txid)).where(OutboxEvent.subject == "O-1")
        )
    assert settled_in == event.txid


async def test_a_failed_write_leaves_no_event_and_an_identity_writes_one(
    gql: GraphQLClient, db: Database
) -> None:
    await insured(gql)
    # a discharge in the future is refused: nothing stored, no event
    body = await gql.post(
        "mutation($i: SettleClaimInput!) { settleClaim(input: $i) { claimNumber } }",
        {"i": stay(PERSON, "O-2", "2099-03-01", "10000.00", "9000.00")},
    )
    assert body["errors"][0]["extensions"]["code"] == "BAD_INPUT"
    assert await events(db) == []
    assert "errors" not in await record(gql, PERSON, "MINIMUM_LIVING", "2023-06-01")
    assert [e.type for e in await events(db)] == ["IDENTITY_CHANGED"]


async def failing_change(db: Database) -> None:
    async with db.transaction() as session:
        await emit(session, "CLAIM_CHANGED", uuid.uuid4(), "R-1")
        raise RuntimeError("the change fails after its event was written")


async def test_a_rolled_back_transaction_leaves_no_event_and_wakes_no_one(
    db: Database, database_url: str
) -> None:
    listener = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    woken: list[str] = []
    await listener.add_listener(CHANNEL, lambda *args: woken.append(args[2]))
    try:
        with pytest.raises(RuntimeError):
            await failing_change(db)
        await asyncio.sleep(0.3)
        assert (await events(db), woken) == ([], [])
        async with db.transaction() as session:
            await emit(session, "CLAIM_CHANGED", uuid.uuid4(), "R-2")
        for _ in range(50):
            if woken:
                break
            await asyncio.sleep(0.05)
        assert [e.subject for e in await events(db)] == ["R-2"]
        assert woken == [CHANNEL]
    finally:
        await listener.close()


async def test_the_feed_shows_each_caller_what_it_may_read_and_continues_from_its_cursor(
    gql: GraphQLClient,
) -> None:
    await insured(gql)
    await settle(gql, stay(PERSON, "F-1", "2023-03-01", "10000.00", "9000.00", carrier="picc-5104"))
    first = await feed(gql)
    assert [(c["type"], c["claim"]["claimNumber"]) for c in first["changes"]] == [
        ("CLAIM_CHANGED", "F-1")
    ]
    insurer = await gql.data(
        "{ changes { changes { type claim { claimNumber totalCost } } } }", **INSURER
    )
    assert insurer["changes"]["changes"] == [
        {"type": "CLAIM_CHANGED", "claim": {"claimNumber": "F-1", "totalCost": "10000.00"}}
    ]
    other = await gql.data("{ changes { cursor changes { type } } }", **OTHER_INSURER)
    assert other["changes"]["changes"] == []  # not its claim: skipped, cursor moved on
    assert other["changes"]["cursor"] == first["cursor"]
    # civil affairs may not read claims: its feed has no CLAIM_CHANGED; it reads identities
    assert "errors" not in await record(gql, PERSON, "MINIMUM_LIVING", "2023-06-01")
    civil = await gql.data(
        "{ changes { changes { type beneficiary { identities { category } } } } }", **CIVIL
    )
    assert civil["changes"]["changes"] == [
        {
            "type": "IDENTITY_CHANGED",
            "beneficiary": {"identities": [{"category": "MINIMUM_LIVING"}]},
        }
    ]
    later = await feed(gql, first["cursor"])
    assert [c["type"] for c in later["changes"]] == ["CLAIM_CHANGED", "IDENTITY_CHANGED"]
    assert [c["claim"]["claimNumber"] for c in later["changes"][:1]] == ["F-1"]  # re-settled
    again = await feed(gql, later["cursor"])
    assert (again["changes"], again["cursor"]) == ([], later["cursor"])


async def test_a_cursor_that_is_not_ours_is_bad_input_naming_it(gql: GraphQLClient) -> None:
    error = await gql.error('{ changes(since: "bm9wZQ==") { cursor } }')
    assert error["extensions"]["code"] == "BAD_INPUT"
    assert (error["extensions"]["field"], error["extensions"]["value"]) == ("since", "bm9wZQ==")


async def test_an_event_committed_after_a_later_one_is_not_skipped(db: Database) -> None:
    """Sequence order is not commit order: A takes the first id, B the second and commits
    first. A reader must not pass B before A is final."""
    async with db.sessions() as reader:
        start = await outbox.start(reader)
    async with db.sessions() as a_session, db.sessions() as b_session:
        a, b = await a_session.begin(), await b_session.begin()
        await emit(a_session, "CLAIM_CHANGED", uuid.uuid4(), "A")
        await emit(b_session, "CLAIM_CHANGED", uuid.uuid4(), "B")
        await b.commit()
        async with db.sessions() as reader:
            assert await outbox.read_after(reader, start) == []  # A still running: wait
        await a.commit()
    async with db.sessions() as reader:
        assert [e.subject for e in await outbox.read_after(reader, start)] == ["A", "B"]


async def test_the_feed_under_concurrent_writes_never_skips_or_repeats(db: Database) -> None:
    written: list[str] = []
    done = asyncio.Event()
    rng = random.Random(12)

    async def writer(n: int) -> None:
        for i in range(15):
            async with db.transaction() as session:
                for j in range(rng.randint(1, 3)):
                    subject = f"W{n}-{i}-{j}"
                    await emit(session, "CLAIM_CHANGED", uuid.uuid4(), subject)
                    written.append(subject)
                await asyncio.sleep(rng.random() / 50)  # hold the transaction open a while

    seen: list[str] = []
    orders: list[tuple[int, int]] = []

    async def reader() -> None:
        async with db.sessions() as session:
            position = await outbox.start(session)
        while True:
            finished = done.is_set()
            async with db.sessions() as session:
                batch = await outbox.read_after(session, position, limit=7)
            if batch:
                position = outbox.position_of(batch[-1])
                seen.extend(e.subject for e in batch)
                orders.extend((e.txid, e.id) for e in batch)
            elif finished:
                return
            else:
                await asyncio.sleep(0.005)

    reading = asyncio.create_task(reader())
    await asyncio.gather(*(writer(n) for n in range(6)))
    done.set()
    await reading
    assert len(seen) == len(set(seen))  # never twice
    assert sorted(seen) == sorted(written)  # never skipped
    assert orders == sorted(orders)
    ids = [event_id for _, event_id in orders]
    assert ids != sorted(ids)  # the run did commit out of sequence order


async def test_the_feed_pages_by_first_and_filters_by_type(gql: GraphQLClient) -> None:
    await insured(gql)
    for number in ("G-1", "G-2", "G-3"):
        await settle(gql, stay(PERSON, number, "2023-03-01", "10000.00", "9000.00"))
    assert "errors" not in await record(gql, PERSON, "MINIMUM_LIVING", "2023-06-01")
    page = "query($s: String, $t: [ChangeType!]) { changes(since: $s, types: $t, first: 2) {"
    page += " cursor hasMore changes { type claim { claimNumber } } } }"
    seen: list[tuple[str, str | None]] = []
    since = None
    while True:
        found = (await gql.data(page, {"s": since, "t": None}))["changes"]
        seen += [(c["type"], (c["claim"] or {}).get("claimNumber")) for c in found["changes"]]
        since = found["cursor"]
        if not found["hasMore"]:
            break
    assert seen[:3] == [("CLAIM_CHANGED", n) for n in ("G-1", "G-2", "G-3")]
    assert ("IDENTITY_CHANGED", None) in seen
    only = (await gql.data(page, {"s": None, "t": ["IDENTITY_CHANGED"]}))["changes"]
    assert [c["type"] for c in only["changes"]] == ["IDENTITY_CHANGED"]
    assert only["hasMore"] is False
