"""The audit chain in shards and the group commit of read records (issue 15, point 4).

Concurrent writers each take a free shard, every shard is a chain of its own that verify walks,
checkpoints sign every shard's head, and the READ records of concurrent requests are written
together, each response released only after its record committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from gateway.auth import Principal
from gateway.config import Settings
from gateway.storage import audit, checkpoints, models
from gateway.storage.checkpoints import Checkpoint
from gateway.storage.database import Database
from gateway.storage.group_commit import GroupCommit
from tests.conftest import GraphQLClient
from tests.factories import add_people
from tests.gateway.test_audit import PAGE, records, tamper

WRITER = Principal("writer", "medical_insurance", "mi-5104", ("5104",), "test")


async def write(session: AsyncSession, note: str) -> models.AuditRecord:
    return await audit.append(session, WRITER, action="WRITE", operation=note)


@contextlib.asynccontextmanager
async def open_writers(db: Database, count: int) -> AsyncIterator[list[AsyncSession]]:
    """``count`` sessions, each in a transaction left open (holding its shard) until the end."""
    async with contextlib.AsyncExitStack() as stack:
        sessions = []
        for _ in range(count):
            session = await stack.enter_async_context(db.sessions())
            await stack.enter_async_context(session.begin())
            sessions.append(session)
        yield sessions


async def shard_of_each(db: Database) -> list[tuple[int, int]]:
    return [(r.id, r.shard) for r in await records(db)]


async def links(db: Database) -> audit.Verification:
    async with db.sessions() as session:
        return await audit.verify(session)


@contextlib.asynccontextmanager
async def every_shard_held(admin: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """Another transaction holds the lock of every shard: audit appends wait."""
    async with admin.begin() as conn:
        await conn.execute(
            text(
                "SELECT pg_advisory_xact_lock(CAST(:k AS bigint) + s) FROM generate_series(0, :n) s"
            ),
            {"k": audit._CHAIN_LOCK, "n": audit.shards() - 1},
        )
        yield conn


async def until(condition: Any, seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


# --- shards -----------------------------------------------------------------------------------


async def test_concurrent_writers_take_different_shards_and_every_shard_verifies(
    gql: GraphQLClient, db: Database
) -> None:
    await add_people(db, 1)
    async with open_writers(db, 3) as sessions:
        first = [await write(session, f"w{n}") for n, session in enumerate(sessions)]
        assert [r.shard for r in first] == [0, 1, 2], "each open transaction its own shard"
        # A request's read record meanwhile: the next free shard, nobody waits.
        await asyncio.wait_for(gql.data(PAGE), timeout=10)
        again = await write(sessions[1], "w1 again")
        assert again.shard == 1, "a transaction keeps to the shard it holds"
        assert again.prev_hash == first[1].hash
    assert await shard_of_each(db) == [(1, 0), (2, 1), (3, 2), (4, 3), (5, 1)]
    result = await links(db)
    assert result.ok, result
    assert (result.checked, result.shards) == (5, {0: 1, 1: 2, 2: 1, 3: 1})
    # Alone again: shard 0, linked to its own head, not to the newest record.
    await gql.data(PAGE)
    [*_, newest] = await records(db)
    assert (newest.shard, newest.prev_hash) == (0, first[0].hash)
    assert (await links(db)).ok


async def test_an_append_takes_exactly_one_shard_lock(db: Database) -> None:
    async with open_writers(db, 2) as (holder, session):
        await write(holder, "holds shard 0")
        await write(session, "takes shard 1")
        await write(session, "keeps shard 1")
        held = await session.scalar(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid()"
            )
        )
    assert held == 1


async def test_a_writer_that_waited_for_a_shard_links_after_the_record_committed_meanwhile(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One shard: the second writer waits in ``audit_take_shard`` for the first's lock, and the
    head it then reads is the record the first committed meanwhile (the function's head query
    is a statement younger than its lock: one chain, no fork)."""
    monkeypatch.setattr(audit, "_SHARDS", 1)
    async with db.sessions() as first, db.sessions() as second:
        async with first.begin():
            earlier = await write(first, "first")
            waiting = asyncio.create_task(write(second, "second"))
            await asyncio.sleep(0.3)
            assert not waiting.done(), "the second writer waits for the shard's lock"
        later = await asyncio.wait_for(waiting, timeout=10)
        await second.commit()
    assert (later.shard, later.prev_hash) == (0, earlier.hash)
    assert (await links(db)).ok


async def test_an_append_in_a_repeatable_read_transaction_is_refused(db: Database) -> None:
    """Its head would be read from the transaction's first snapshot, which may be older than the
    shard's lock: ``audit_take_shard`` raises, nothing is written."""
    async with db.sessions() as session:
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        with pytest.raises(DBAPIError, match="needs READ COMMITTED"):
            await write(session, "stale head")
    assert await records(db) == []


def test_a_pending_record_has_every_column_of_the_audit_log() -> None:
    """``audit.Entry`` repeats the table's columns (an ORM instance per record cost more than
    the rest of an append): a column added to one and not the other fails here, not at the
    first append."""
    columns = {c.key for c in models.AuditRecord.__table__.columns}
    assert {f.name for f in dataclasses.fields(audit.Entry)} == columns


async def driver_of(session: AsyncSession) -> Any:
    connection = await session.connection()
    return (await connection.get_raw_connection()).driver_connection


async def test_a_transactions_next_append_is_one_statement_after_its_own_record(
    db: Database,
) -> None:
    """A settlement's WRITE record and its answer's READ record: the second append links after
    the first without taking the lock or reading the head again (the lock, taken outside any
    savepoint, is held until the transaction ends)."""
    sent: list[str] = []
    async with open_writers(db, 1) as (session,):
        first = await write(session, "first")
        driver = await driver_of(session)
        driver.add_query_logger(lambda record: sent.append(record.query))
        second = await write(session, "second")
        third = await write(session, "third")
        await asyncio.sleep(0)  # the logger is called soon after its statement
        statements = [q.split(" (")[0] for q in sent]
    assert statements == ["INSERT INTO audit_log"] * 2
    assert (second.shard, second.prev_hash) == (first.shard, first.hash)
    assert (third.shard, third.prev_hash) == (first.shard, second.hash)
    assert [(r.id, r.shard, r.hash) for r in await records(db)] == [
        (r.id, r.shard, r.hash) for r in (first, second, third)
    ]
    assert first.id < second.id < third.id
    assert (await links(db)).ok


async def test_after_a_rolled_back_savepoint_the_next_append_reads_the_head_again(
    db: Database,
) -> None:
    async with open_writers(db, 1) as (session,):
        kept = await write(session, "kept")
        savepoint = await session.begin_nested()
        gone = await write(session, "rolled back")
        assert gone.prev_hash == kept.hash
        await savepoint.rollback()
        after = await write(session, "after the savepoint")
        again = await write(session, "and again")
    assert after.prev_hash == kept.hash, "linked after the record that stayed"
    assert again.prev_hash == after.hash
    assert [r.operation for r in await records(db)] == ["kept", "after the savepoint", "and again"]
    assert (await links(db)).ok


async def test_after_a_released_savepoint_the_next_append_links_after_its_record(
    db: Database,
) -> None:
    async with open_writers(db, 1) as (session,):
        await write(session, "before")
        async with session.begin_nested():
            inside = await write(session, "inside")
        after = await write(session, "after")
    assert after.prev_hash == inside.hash
    assert (await links(db)).ok


async def two_shards(db: Database) -> None:
    """Records 1-6: ids 1, 3, 5 in shard 0 and 2, 4, 6 in shard 1."""
    async with open_writers(db, 2) as (zero, one):
        for n in range(3):
            assert (await write(zero, f"a{n}")).shard == 0
            assert (await write(one, f"b{n}")).shard == 1


@pytest.mark.parametrize(
    ("statement", "broken_at", "reason"),
    [
        ("UPDATE audit_log SET purpose = 'curiosity' WHERE id = 4", 4, "content does not match"),
        ("DELETE FROM audit_log WHERE id = 2", 4, "prev_hash does not match"),
        ("UPDATE audit_log SET shard = 0 WHERE id = 6", 6, "prev_hash does not match"),
    ],
    ids=["changed", "deleted", "moved"],
)
async def test_tampering_in_one_shard_is_detected_at_its_record(
    db: Database, admin: AsyncEngine, statement: str, broken_at: int, reason: str
) -> None:
    await two_shards(db)
    assert (await links(db)).ok
    await tamper(admin, statement)
    result = await links(db)
    assert result.broken_at == broken_at
    assert reason in str(result.reason)


async def test_a_deleted_shard_tail_is_caught_by_the_checkpoints(
    db: Database, admin: AsyncEngine, settings: Settings
) -> None:
    await two_shards(db)
    signed = await audit.checkpoint(db, settings.audit_key, settings.audit_checkpoints)
    assert (signed.count, signed.last_id) == (6, 6)
    assert [(h.shard, h.count, h.last_id) for h in signed.heads()] == [(0, 3, 5), (1, 3, 6)]
    # Shard 0's newest record is not the log's newest: the total head alone would not show it.
    await tamper(admin, "DELETE FROM audit_log WHERE id = 5")
    assert (await links(db)).ok, "the links alone cannot show a cut-off tail"
    async with db.sessions() as session:
        result = await audit.verify_with_checkpoints(
            session, settings.audit_checkpoints, settings.audit_key
        )
    assert result.problem == (
        f"truncated: the checkpoint of {signed.at} counts 3 records up to id 5, "
        "the log has 2 (shard 0)"
    )


async def test_a_recomputed_shard_is_caught_by_the_checkpoints(
    db: Database, admin: AsyncEngine, settings: Settings
) -> None:
    await two_shards(db)
    signed = await audit.checkpoint(db, settings.audit_key, settings.audit_checkpoints)
    async with admin.begin() as conn:
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await conn.execute(text("UPDATE audit_log SET purpose = 'curiosity' WHERE id = 4"))
    async with db.sessions() as session:
        rows = (
            await session.scalars(
                select(models.AuditRecord)
                .where(models.AuditRecord.shard == 1)
                .order_by(models.AuditRecord.id)
            )
        ).all()
    prev = audit.GENESIS
    for record in rows:
        record.hash = audit.record_digest(prev, record)
        async with admin.begin() as conn:
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            await conn.execute(
                text("UPDATE audit_log SET prev_hash = :p, hash = :h WHERE id = :i"),
                {"p": prev, "h": record.hash, "i": record.id},
            )
        prev = record.hash
    assert (await links(db)).ok, "a recomputed shard holds all its links"
    async with db.sessions() as session:
        result = await audit.verify(session, checkpoints.read(settings.audit_checkpoints))
    [_, one] = signed.heads()
    assert result.problem == (
        f"rewritten: record 3 of the chain is id 6 with hash {prev[:16]}…, the checkpoint of "
        f"{signed.at} signed id 6 with hash {one.head[:16]}… (shard 1)"
    )


async def test_a_checkpoint_from_before_the_shards_still_verifies_shard_0(
    gql: GraphQLClient, db: Database, admin: AsyncEngine, settings: Settings
) -> None:
    await add_people(db, 1)
    for _ in range(3):
        await gql.data(PAGE)
    [*_, newest] = await records(db)
    legacy = Checkpoint.signed(
        settings.audit_key, count=3, last_id=newest.id, head=newest.hash, at="2026-11-30T00:00:00"
    )
    line = json.loads(legacy.line())
    assert set(line) == {"count", "last_id", "head", "at", "signature"}, "the old format"
    path = settings.audit_checkpoints
    checkpoints.append(path, legacy)
    async with db.sessions() as session:
        ok = await audit.verify_with_checkpoints(session, path, settings.audit_key)
    assert ok.ok, ok
    # A new checkpoint after it carries the shards, and both are read back.
    current = await audit.checkpoint(db, settings.audit_key, path)
    assert "shards" in json.loads(current.line())
    assert [c.valid(settings.audit_key) for c in checkpoints.read(path)] == [True, True]
    await tamper(admin, f"DELETE FROM audit_log WHERE id = {newest.id}")
    async with db.sessions() as session:
        cut = await audit.verify_with_checkpoints(session, path, settings.audit_key)
    assert str(cut.problem).startswith("truncated:")
    assert "counts 3 records up to id 3, the log has 2 (shard 0)" in str(cut.problem)


async def test_a_forged_shard_head_breaks_the_signature(db: Database, settings: Settings) -> None:
    async with open_writers(db, 2) as (zero, one):
        await write(zero, "a")
        await write(one, "b")
    signed = await audit.checkpoint(db, settings.audit_key, settings.audit_checkpoints)
    line = json.loads(signed.line())
    line["shards"] = line["shards"][:1]  # forget shard 1
    forged = Checkpoint.from_line(json.dumps(line))
    assert signed.valid(settings.audit_key)
    assert not forged.valid(settings.audit_key)


# --- group commit -----------------------------------------------------------------------------


async def transactions(db: Database) -> int:
    """How many transactions wrote the audit log's records."""
    async with db.engine.connect() as conn:
        found = await conn.scalar(text("SELECT count(DISTINCT xmin::text) FROM audit_log"))
    return int(found or 0)


async def test_concurrent_reads_are_committed_together(
    gql: GraphQLClient, db: Database, admin: AsyncEngine
) -> None:
    await add_people(db, 2)
    group = audit.group(db)
    writes = group.writes
    async with every_shard_held(admin):
        requests = [asyncio.create_task(gql.post(PAGE)) for _ in range(20)]
        await until(lambda: group.waiting + group.writing == 20)
        assert group.writing >= 1, "the first group waits for a shard"
        assert not any(r.done() for r in requests), "no response before its record is written"
    bodies = await asyncio.gather(*requests)
    assert all(body.get("errors") is None and body["data"] for body in bodies)
    assert len(await records(db)) == 20
    assert group.writes - writes == 2, "the first group, then all that queued meanwhile"
    assert await transactions(db) == 2
    result = await links(db)
    assert (result.ok, result.checked) == (True, 20)


async def test_unhindered_concurrent_reads_still_share_transactions(
    gql: GraphQLClient, db: Database
) -> None:
    await add_people(db, 2)
    await asyncio.gather(*(gql.data(PAGE) for _ in range(24)))
    assert len(await records(db)) == 24
    assert await transactions(db) < 24
    assert (await links(db)).ok


async def test_a_failed_group_commit_fails_every_waiting_request(
    gql: GraphQLClient, db: Database, admin: AsyncEngine
) -> None:
    await add_people(db, 2)
    group = audit.group(db)
    try:
        async with every_shard_held(admin) as conn:
            await conn.execute(text("REVOKE INSERT ON audit_log FROM medgw_app"))
            requests = [asyncio.create_task(gql.post(PAGE)) for _ in range(8)]
            await until(lambda: group.waiting + group.writing == 8)
        bodies = await asyncio.gather(*requests)
    finally:
        async with admin.begin() as conn:
            await conn.execute(text("GRANT INSERT ON audit_log TO medgw_app"))
    for body in bodies:
        assert body["data"] is None
        [error] = body["errors"]
        assert "audit unavailable" in error["message"]
        assert error["extensions"]["code"] == "INTERNAL"
    assert await records(db) == []
    # The appender recovers: the next read is written and answered.
    assert (await gql.data(PAGE))["beneficiaries"]
    assert len(await records(db)) == 1


async def grouped(
    write: Any, later: Sequence[int], alone: Any = None
) -> tuple[GroupCommit[int, int], int, list[Any]]:
    """Item 1 submitted and being written (``write`` waits for the ``gate`` it is given), then
    ``later`` queued behind it as one group; the gate opened. Returns the group commit, item 1's
    result and the later items' results or exceptions."""
    gate = asyncio.Event()

    async def gated(items: Sequence[int]) -> list[int]:
        result: list[int] = await write(list(items), gate)
        return result

    group: GroupCommit[int, int] = (
        GroupCommit(gated) if alone is None else GroupCommit(gated, alone=alone)
    )
    first = asyncio.create_task(group.submit(1))
    await until(lambda: group.writing == 1)
    rest = [asyncio.create_task(group.submit(n)) for n in later]
    await asyncio.sleep(0)
    assert group.waiting == len(later)
    gate.set()
    done = await first
    return group, done, list(await asyncio.gather(*rest, return_exceptions=True))


async def test_group_commit_gives_every_item_its_result_or_the_failure() -> None:
    calls: list[list[int]] = []

    async def write(items: list[int], gate: asyncio.Event) -> list[int]:
        calls.append(items)
        await gate.wait()
        if 13 in items:
            raise ValueError("unlucky group")
        return [item * 2 for item in items]

    group, first, (two, thirteen, four) = await grouped(write, (2, 13, 4))
    assert first == 2
    # The group's write failed: each item written again alone; only the bad one fails.
    assert calls == [[1], [2, 13, 4], [2], [13], [4]]
    assert (two, four) == (4, 8)
    assert isinstance(thirteen, ValueError)
    assert str(thirteen) == "unlucky group"
    assert await group.submit(5) == 10
    assert (group.waiting, group.writing, group.writes) == (0, 0, 6)


async def test_a_write_with_the_wrong_number_of_results_is_not_written_again() -> None:
    """It may have written the items: every caller gets the error, no item is written alone."""
    calls: list[list[int]] = []

    async def write(items: list[int], gate: asyncio.Event) -> list[int]:
        calls.append(items)
        await gate.wait()
        return items[:1]

    _, first, outcomes = await grouped(write, (2, 3))
    assert first == 1
    assert calls == [[1], [2, 3]]
    assert [str(o) for o in outcomes] == ["1 results for 2 items"] * 2


async def test_a_group_whose_failure_is_not_one_items_fails_every_item_at_once() -> None:
    """``alone`` says the failure is not an item's (the database out of reach): no write of
    each item alone, every caller gets the group's exception."""
    calls: list[list[int]] = []

    async def write(items: list[int], gate: asyncio.Event) -> list[int]:
        calls.append(items)
        await gate.wait()
        if len(items) > 1:
            raise ConnectionRefusedError(111, "refused")
        return items

    _, first, outcomes = await grouped(
        write, (2, 3), alone=lambda exc: not isinstance(exc, OSError)
    )
    assert first == 1
    assert calls == [[1], [2, 3]]
    assert all(isinstance(o, ConnectionRefusedError) for o in outcomes)


async def test_a_caller_gone_does_not_stop_the_others_write() -> None:
    gate = asyncio.Event()
    written: list[list[int]] = []

    async def write(items: Sequence[int]) -> list[int]:
        await gate.wait()
        written.append(list(items))
        return list(items)

    group: GroupCommit[int, int] = GroupCommit(write)
    callers = [asyncio.create_task(group.submit(n)) for n in range(3)]
    await until(lambda: group.writing == 3)
    callers[0].cancel()  # its client went away while the group was being written
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(callers[1], callers[2]) == [1, 2]
    assert callers[0].cancelled()
    assert written == [[0, 1, 2]], "the group was written whole, once"
