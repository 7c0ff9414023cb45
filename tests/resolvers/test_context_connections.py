"""The request context's connections: a read that needs no ORM session runs on a bare
connection from the engine's pool (:meth:`resolvers.context.Context.read`), and a request holds
one connection at a time, given back (or dropped when unusable) at its end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import greenlet
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gateway.app import load_access_for_schema
from gateway.auth import Principal
from gateway.config import Settings
from gateway.reconnection import lost_connection
from gateway.storage import audit
from gateway.storage.database import HELD, Database, Held
from policies.benefits import PolicySet
from resolvers import pending
from resolvers.context import Context
from tests.conftest import GraphQLClient
from tests.factories import add_people
from tests.gateway.test_audit import records
from tests.gateway.test_audit_shards import links

MI = Principal("reader", "medical_insurance", "mi-5104", ("5104",), "test")
_, ACCESS = load_access_for_schema()
POINT = """query BarePoint($n: String!) { beneficiary(idNumber: $n) {
  id name identities { category } } }"""


@pytest.fixture
def context(db: Database, settings: Settings, policies: PolicySet) -> Context:
    return Context(
        request=None,  # type: ignore[arg-type]
        response=None,  # type: ignore[arg-type]
        request_id="test",
        principal=MI,
        settings=settings,
        db=db,
        policies=policies,
        access=ACCESS,
    )


def checked_out(db: Database) -> int:
    return int(db.engine.sync_engine.pool.checkedout())


async def backend(driver: Any) -> int:
    return int(await driver.fetchval("SELECT pg_backend_pid()"))


async def session_backend(session: AsyncSession) -> int:
    return int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_bare_work_runs_without_a_session_on_one_connection(
    context: Context, db: Database
) -> None:
    first = await context.read(session_backend, backend)
    again = await context.read(session_backend, backend)
    assert first == again, "the request keeps its bare connection"
    assert context._session is None, "no ORM session was made"
    assert checked_out(db) == 1
    await context.close()
    assert checked_out(db) == 0


async def test_work_that_needs_a_session_gets_the_bare_connection_back_first(
    context: Context, db: Database
) -> None:
    await context.read(session_backend, backend)
    await context.read(session_backend)  # a resolver's select: a session now
    assert context._bare is None
    assert checked_out(db) == 1, "one connection at a time"
    # Once a session is open, bare work runs on it (its connection), not on a second one.
    on_session = await context.read(session_backend)
    assert await context.read(session_backend, backend) == on_session
    assert checked_out(db) == 1
    await context.close()
    assert checked_out(db) == 0


async def test_a_bare_connection_left_in_a_transaction_is_dropped_not_pooled(
    context: Context, db: Database, settings: Settings, policies: PolicySet
) -> None:
    async def leave_open(driver: Any) -> int:
        await driver.execute("BEGIN")
        return await backend(driver)

    left = await context.read(session_backend, leave_open)
    await context.close()
    assert checked_out(db) == 0

    async def state(driver: Any) -> tuple[int, bool]:
        return await backend(driver), driver.is_in_transaction()

    later = Context(None, None, "later", MI, settings, db, policies, ACCESS)  # type: ignore[arg-type]
    pid, in_transaction = await later.read(session_backend, state)  # type: ignore[arg-type]
    await later.close()
    assert not in_transaction
    assert pid != left, "a new connection, not the one left inside its transaction"


async def test_a_dead_bare_connection_is_dropped_and_the_next_request_gets_a_live_one(
    context: Context, db: Database, admin: AsyncEngine, settings: Settings, policies: PolicySet
) -> None:
    dead = await context.read(session_backend, backend)
    async with admin.begin() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": dead})
    with pytest.raises(Exception) as lost:  # noqa: PT011 - asyncpg's, as the socket ends
        await context.read(session_backend, backend)
    assert lost_connection(lost.value)
    await context.close()
    later = Context(None, None, "later", MI, settings, db, policies, ACCESS)  # type: ignore[arg-type]
    alive = await later.read(session_backend, backend)
    assert alive != dead
    await later.close()


async def test_a_bare_connection_appends_committed_records_only(db: Database) -> None:
    async with db.sessions() as session:
        driver = (await (await session.connection()).get_raw_connection()).driver_connection
        with pytest.raises(ValueError, match="outside a transaction"):
            await audit.append(driver, MI, action="READ", operation="not committed")
        async with driver.transaction():
            with pytest.raises(ValueError, match="outside a transaction"):
                await audit.append(driver, MI, action="READ", operation="in", committed=True)
        record = await audit.append(driver, MI, action="READ", operation="alone", committed=True)
    assert [r.operation for r in await records(db)] == ["alone"]
    assert record.hash == (await records(db))[0].hash
    assert (await links(db)).ok


async def test_a_prepared_point_read_makes_no_orm_session(
    gql: GraphQLClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    [person] = await add_people(db, 1)
    for _ in range(2):  # answered by the pipeline, then prepared
        await gql.data(POINT, {"n": person.id_number})
    made: list[AsyncSession] = []
    sessions = db.sessions

    def counted() -> AsyncSession:
        made.append(sessions())
        return made[-1]

    monkeypatch.setattr(db, "sessions", counted)
    data = await gql.data(POINT, {"n": person.id_number})
    assert data["beneficiary"]["name"] == person.name
    assert made == [], "the read and its record on a bare connection"
    assert checked_out(db) == 0
    stored = await records(db)
    assert len(stored) == 3
    assert (stored[-1].operation, stored[-1].beneficiary_ids) == ("query BarePoint", [person.id])
    assert (await links(db)).ok


async def test_a_dead_bare_connection_drops_the_pooled_ones_opened_before_it(
    database_url: str, admin: AsyncEngine, settings: Settings, policies: PolicySet
) -> None:
    """After a restart of the server every pooled connection is dead: the first request to
    meet one (on the bare path, a compiled point read) drops the others too, so that the next
    requests do not meet them one by one (two at once, so that both pooled connections are
    handed out, whichever order the pool keeps)."""
    from tests.gateway.test_reconnection import Pool

    pool = Pool(database_url, settings)

    async def two_at_once() -> set[int]:
        """The backends of two requests holding their bare connections at once."""
        contexts = [
            Context(None, None, name, MI, settings, pool.db, policies, ACCESS)  # type: ignore[arg-type]
            for name in ("one", "two")
        ]
        pids = {await c.read(session_backend, backend) for c in contexts}
        for c in contexts:
            await c.close()
        assert len(pids) == 2
        return pids

    try:
        opened = await two_at_once()
        assert await pool.terminate(admin) == 2  # the server "restarted"
        meets = Context(None, None, "meets", MI, settings, pool.db, policies, ACCESS)  # type: ignore[arg-type]
        with pytest.raises(Exception) as lost:  # noqa: PT011 - asyncpg's, as the socket ends
            await meets.read(session_backend, backend)
        assert lost_connection(lost.value)
        await meets.close()
        assert not await two_at_once() & opened
    finally:
        await pool.db.dispose()


async def backend_alive(admin: AsyncEngine, pid: int) -> bool:
    """Whether the server still has backend ``pid`` (waits up to 2 s for one closing)."""
    for _ in range(40):
        async with admin.begin() as conn:
            found = await conn.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid}
            )
        if not found:
            return False
        await asyncio.sleep(0.05)
    return True


TIMEOUT = "SET statement_timeout = '50ms'"
SLEEP = "SELECT pg_sleep(2)"


class TimesOut:
    """Work on the driver's connection that the statement timeout cancels (it notes the
    connection's backend first)."""

    pid = 0

    async def __call__(self, driver: Any) -> None:
        self.pid = await backend(driver)
        await driver.execute(TIMEOUT)
        await driver.execute(SLEEP)


@pytest.fixture
async def own_pool(
    database_url: str, settings: Settings, policies: PolicySet
) -> AsyncIterator[Context]:
    """A context on an engine of its own: what drops connections here (with those opened
    before them) leaves the pool of the other tests warm."""
    db = Database.connect(database_url, settings.model_copy(update={"pool_size": 2}))
    try:
        yield Context(None, None, "own", MI, settings, db, policies, ACCESS)  # type: ignore[arg-type]
    finally:
        await db.dispose()


@pytest.mark.parametrize("where", ["bare", "session"])
async def test_a_connection_a_statement_timeout_cancelled_is_dropped_not_pooled(
    where: str, own_pool: Context, admin: AsyncEngine
) -> None:
    """A compiled read or an audit append cancelled by the statement timeout leaves its
    connection to the pool no more (SQLAlchemy drops its own then: ``_drop_unusable``): the plan
    it had cached may be what made it slow, and retries would meet it again. On a bare
    connection, and on the read session's (a compiled read inside a session's transaction sends
    its statement on the driver directly, where SQLAlchemy does not see it)."""
    context = own_pool
    times_out = TimesOut()

    async def on_the_session(session: AsyncSession) -> None:
        raw = await (await session.connection()).get_raw_connection()
        await times_out(raw.driver_connection)

    async def cancelled() -> None:
        if where == "bare":
            await context.read(session_backend, times_out)
        else:
            await context.read(on_the_session)

    with pytest.raises(asyncpg.exceptions.QueryCanceledError):
        await cancelled()
    await context.close()
    assert not await backend_alive(admin, times_out.pid), "dropped, not pooled"
    assert checked_out(context.db) == 0


async def test_a_bare_connection_that_raised_an_ordinary_error_is_pooled_again(
    context: Context, db: Database, admin: AsyncEngine
) -> None:
    """Only an unusable connection is dropped: a statement that failed on its own (division by
    zero) leaves a connection the pool hands out again."""
    pid = await context.read(session_backend, backend)

    async def divides(driver: Any) -> None:
        await driver.fetchval("SELECT 1 / 0")

    with pytest.raises(asyncpg.exceptions.DivisionByZeroError):
        await context.read(session_backend, divides)
    await context.close()
    assert await backend_alive(admin, pid)
    assert checked_out(db) == 0


async def test_a_read_that_cannot_connect_closes_cleanly(
    settings: Settings, policies: PolicySet, tmp_path: Any
) -> None:
    """A failure to connect (the server down) is no connection to drop: the request's close
    gives back nothing and raises nothing (it once tried to connect again to drop one, and the
    response never left: ``test_unavailable``)."""
    down = Database.connect(f"postgresql+asyncpg://nobody@/medgw?host={tmp_path}", settings)
    context = Context(None, None, "down", MI, settings, down, policies, ACCESS)  # type: ignore[arg-type]
    try:
        for bare in (backend, None):
            with pytest.raises(OSError, match="No such file"):
                await context.read(session_backend, bare)
            await context.close()
    finally:
        await down.dispose()


async def test_a_write_transaction_whose_driver_statement_timed_out_drops_its_connection(
    own_pool: Context, admin: AsyncEngine
) -> None:
    """The same where a write's transaction ends (``Database.transaction``): its compiled
    statements and audit appends go to the driver directly (``fetch_compiled``), where
    SQLAlchemy does not see them."""
    db, times_out = own_pool.db, TimesOut()

    async def write() -> None:
        async with db.transaction() as session:
            await session.execute(text("SELECT 1"))  # the transaction begins on the connection
            raw = await (await session.connection()).get_raw_connection()
            await times_out(raw.driver_connection)

    with pytest.raises(asyncpg.exceptions.QueryCanceledError):
        await write()
    assert not await backend_alive(admin, times_out.pid), "dropped, not pooled"
    assert checked_out(db) == 0


async def test_a_mutations_held_transaction_whose_payload_read_timed_out_drops_its_connection(
    own_pool: Context, admin: AsyncEngine
) -> None:
    """A mutation's transaction is held open while its payload resolves
    (``gateway.storage.database.Held``): when a read of the payload on its connection that the
    statement timeout cancels fails the mutation, the rollback drops the connection, not
    pooled."""
    db, times_out = own_pool.db, TimesOut()
    held = Held()
    token = HELD.set(held)
    try:
        async with db.transaction() as session:
            await session.execute(text("SELECT 1"))

        async def payload(session: AsyncSession) -> None:
            raw = await (await session.connection()).get_raw_connection()
            await times_out(raw.driver_connection)

        with pytest.raises(asyncpg.exceptions.QueryCanceledError) as cancelled:
            await own_pool.read(payload)
        await held.rollback(cancelled.value)
    finally:
        HELD.reset(token)
    assert not await backend_alive(admin, times_out.pid), "dropped, not pooled"
    assert checked_out(db) == 0


async def test_a_commit_whose_rollup_statement_timed_out_drops_its_connection(
    own_pool: Context, admin: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rollups a transaction keeps until it commits are written by one statement on the
    driver as it commits (``resolvers.pending.write_pending``): cancelled by the statement
    timeout, its connection is dropped, not pooled."""
    monkeypatch.setitem(pending.WRITERS, "test-slow", lambda _: pending.Part([], SLEEP, {}))
    db, times_out = own_pool.db, TimesOut()

    async def write() -> None:
        async with db.transaction() as session:
            await session.execute(text("SELECT 1"))  # the transaction begins on the connection
            driver = (await (await session.connection()).get_raw_connection()).driver_connection
            times_out.pid = await backend(driver)
            await driver.execute(TIMEOUT)
            session.info["test-slow"] = True  # a delta for the slow writer

    with pytest.raises(asyncpg.exceptions.QueryCanceledError):
        await write()
    assert not await backend_alive(admin, times_out.pid), "dropped, not pooled"
    assert checked_out(db) == 0


async def test_a_bare_connection_goes_back_without_a_greenlet(
    context: Context, db: Database
) -> None:
    """The end of a point read: its clean bare connection is pooled again directly
    (``Database.give_back``), without SQLAlchemy's greenlet (4–6% of a lookup's throughput)."""
    pool = db.engine.sync_engine.pool
    pid = await context.read(session_backend, backend)
    assert checked_out(db) == 1
    pooled = pool.checkedin()  # type: ignore[attr-defined]
    seen: list[str] = []
    before = greenlet.settrace(lambda event, args: seen.append(event))
    try:
        await context.close()
    finally:
        greenlet.settrace(before)
    assert seen == []
    assert checked_out(db) == 0
    assert pool.checkedin() == pooled + 1  # type: ignore[attr-defined]
    # Pooled and usable: the requests after it get it back in turn (first in, first out).
    backends = set()
    for _ in range(pooled + 1):
        later = Context(None, None, "later", MI, context.settings, db, context.policies, ACCESS)  # type: ignore[arg-type]
        try:
            backends.add(await later.read(session_backend, backend))
        finally:
            await later.close()
    assert pid in backends
