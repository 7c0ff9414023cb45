"""A read's record committed on its own in one statement (migration 0021's ``audit_append``).

A point read appends its READ record outside any transaction: the database takes the first
free shard's lock, reads its head, takes an id, hashes and inserts, all in one statement that is
a transaction of its own. These tests hold it to the chain's rules: the hash is the one
``verify`` recomputes (whatever the text), writers that meet on one shard still form one chain,
and nothing but that statement is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import event, text

from gateway.auth import Principal
from gateway.storage import audit, models
from gateway.storage.database import Database
from tests.conftest import GraphQLClient
from tests.factories import add_people
from tests.gateway.test_audit import records
from tests.gateway.test_audit_shards import links, open_writers, write

READER = Principal("reader", "civil_affairs", "东区民政局", ("5104",), '核对 "引号" \\ 🏥')
ODD_TEXT = '{ beneficiary(idNumber: "5104") { name } } # 姓名 "引号" \\ \t 🏥 \u2028 é'


@contextlib.contextmanager
def sent_on(db: Database) -> Iterator[list[str]]:
    """Every statement the engine's connections send on asyncpg (transaction control too)."""
    sent: list[str] = []
    pool = db.engine.sync_engine.pool

    def logged(record: Any) -> None:
        sent.append(record.query)

    def checkout(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(logged)

    def checkin(dbapi_connection: Any, *_: Any) -> None:
        if dbapi_connection is not None:
            dbapi_connection.driver_connection.remove_query_logger(logged)

    event.listen(pool, "checkout", checkout)
    event.listen(pool, "checkin", checkin)
    try:
        yield sent
    finally:
        event.remove(pool, "checkout", checkout)
        event.remove(pool, "checkin", checkin)


async def read_record(db: Database, **detail: Any) -> audit.Entry:
    """A READ record committed on a session with no transaction open (as a point read's)."""
    async with db.sessions() as session:
        return await audit.append(
            session,
            READER,
            action="READ",
            operation="query 姓名",
            query=ODD_TEXT,
            beneficiary_ids=[],
            field_paths=["beneficiary.name", "beneficiary(idNumber)"],
            detail=detail or None,
            committed=True,
        )


async def test_a_record_committed_alone_is_one_statement_and_verifies(db: Database) -> None:
    first = await read_record(db, note='备注 "x" \\ 🏥', n=[1, 2.5, None])
    with sent_on(db) as sent:  # the pool's connection, its types known after the first
        second = await read_record(db)
        await asyncio.sleep(0)  # the logger is called soon after its statement
    assert [q.split("(")[0].strip() for q in sent] == [
        "SELECT id, shard, prev_hash, hash FROM audit_append"
    ], "no BEGIN, lock, INSERT or COMMIT of their own"
    stored = await records(db)
    assert [(r.id, r.shard, r.prev_hash, r.hash) for r in stored] == [
        (first.id, 0, audit.GENESIS, first.hash),
        (second.id, 0, first.hash, second.hash),
    ]
    assert (stored[0].query_text, stored[0].purpose) == (ODD_TEXT, READER.purpose)
    assert stored[0].detail == {"note": '备注 "x" \\ 🏥', "n": [1, 2.5, None]}
    assert stored[0].hash == audit.record_digest(audit.GENESIS, stored[0]), "the chain's hash"
    result = await links(db)
    assert result.ok, result
    assert result.checked == 2


async def test_the_record_is_committed_when_the_append_returns(db: Database) -> None:
    """Outside a transaction the statement is a transaction of its own: another connection
    sees the record at once, and the appending connection is left with no transaction open."""
    async with db.sessions() as session:
        record = await audit.append(
            session, READER, action="READ", operation="query P", query="{ x }", committed=True
        )
        driver = (await (await session.connection()).get_raw_connection()).driver_connection
        assert not driver.is_in_transaction()
        async with db.sessions() as other:
            assert await other.scalar(text("SELECT count(*) FROM audit_log")) == 1
    assert record.id == (await records(db))[0].id


async def test_appends_meeting_on_one_shard_form_one_chain(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty concurrent appends with one shard: each waits for the lock, then links after the
    record committed before it; no two records share a predecessor."""
    monkeypatch.setattr(audit, "_SHARDS", 1)
    written = await asyncio.gather(*(read_record(db, n=n) for n in range(20)))
    stored = await records(db)
    assert len(stored) == 20
    assert [r.prev_hash for r in stored] == [audit.GENESIS] + [r.hash for r in stored[:-1]]
    assert sorted(r.id for r in written) == [r.id for r in stored]
    assert (await links(db)).ok


async def test_a_held_shard_is_waited_for_and_linked_after(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "_SHARDS", 1)
    async with open_writers(db, 1) as (holder,):
        earlier = await write(holder, "holds the only shard")
        waiting = asyncio.create_task(read_record(db))
        await asyncio.sleep(0.3)
        assert not waiting.done(), "the append waits for the shard's lock"
    later = await asyncio.wait_for(waiting, timeout=10)
    assert (later.shard, later.prev_hash) == (0, earlier.hash)
    assert (await links(db)).ok


async def test_with_every_other_shard_held_it_takes_the_free_one(db: Database) -> None:
    async with open_writers(db, 2) as (zero, one):
        await write(zero, "shard 0")
        await write(one, "shard 1")
        record = await asyncio.wait_for(read_record(db), timeout=10)
    assert record.shard == 2
    assert (await links(db)).ok


async def test_the_function_takes_every_column_but_those_it_computes(db: Database) -> None:
    """``audit.APPENDED`` and the function's own parameters are the log's columns less the id,
    shard and hashes: a column added to the table and not to the function fails here."""
    columns = [c.name for c in models.AuditRecord.__table__.columns]
    computed = {"id", "shard", "prev_hash", "hash"}
    assert sorted(audit.APPENDED) == sorted(c for c in columns if c not in computed)
    async with db.sessions() as session:
        names = await session.scalar(
            text("SELECT proargnames FROM pg_proc WHERE proname = 'audit_append'")
        )
    assert names[4:16] == list(audit.APPENDED)
    assert names[:4] == ["first", "shards", "chain", "body"]


async def test_a_point_read_sends_its_read_and_one_append(
    gql: GraphQLClient, db: Database, count_statements: Callable[[], Any]
) -> None:
    """Over the gateway: a prepared point read is its compiled statement and the record's one
    statement, no transaction control."""
    [person] = await add_people(db, 1)
    query = "query P($n: String!) { beneficiary(idNumber: $n) { name identities { category } } }"
    await gql.data(query, {"n": person.id_number})  # prepares it
    with sent_on(db) as sent:
        data = await gql.data(query, {"n": person.id_number})
        await asyncio.sleep(0)
    assert data["beneficiary"]["name"] == person.name
    assert len(sent) == 2, sent
    assert "audit_append" in sent[1]
    assert not any(q.lstrip().upper().startswith(("BEGIN", "COMMIT")) for q in sent)
    newest = (await records(db))[-1]
    assert (newest.operation, newest.beneficiary_ids) == ("query P", [person.id])
    assert (await links(db)).ok
