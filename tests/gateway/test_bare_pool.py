"""A compiled read's bare connection is taken from the pool without a greenlet when the pool
holds one ready (``Database.check_out``), and goes back without one when the pool has room for
it (``Database.give_back``); otherwise both go through SQLAlchemy's greenlet, as before."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import greenlet
import pytest
from sqlalchemy import text

from gateway.config import Settings
from gateway.storage.database import Database, quiet_refused_connects


@pytest.fixture
async def one(settings: Settings, database_url: str, db: Database) -> AsyncIterator[Database]:
    """A database of its own with a pool of one connection (and one more of overflow)."""
    own = Database.connect(database_url, settings.model_copy(update={"pool_size": 1}))
    try:
        yield own
    finally:
        await own.engine.dispose()


@contextmanager
def switches() -> Iterator[list[object]]:
    """The greenlet switches made meanwhile (greenlet's own tracing hook)."""
    seen: list[object] = []
    before = greenlet.settrace(lambda event, args: seen.append(event))
    try:
        yield seen
    finally:
        greenlet.settrace(before)


async def test_a_clean_connection_goes_back_without_a_greenlet(one: Database) -> None:
    pool = one.engine.sync_engine.pool
    proxy = await one.engine.raw_connection()
    driver = proxy.driver_connection
    assert await driver.fetchval("SELECT 1") == 1
    with switches() as seen:
        await one.give_back(proxy)
    assert seen == []
    assert pool.checkedin() == 1  # type: ignore[attr-defined]
    again = await one.engine.raw_connection()  # the same connection, pooled and usable
    assert again.driver_connection is driver
    assert await driver.fetchval("SELECT 2") == 2
    await one.give_back(again)
    # A session on it afterwards works as before (SQLAlchemy's adapter began nothing on it).
    async with one.sessions() as session:
        assert (await session.execute(text("SELECT 3"))).scalar() == 3


async def test_a_connection_the_pool_has_no_room_for_is_closed_through_a_greenlet(
    one: Database,
) -> None:
    pool = one.engine.sync_engine.pool
    first = await one.engine.raw_connection()
    overflow = await one.engine.raw_connection()  # the pool's one connection of overflow
    closing = overflow.driver_connection
    await one.give_back(first)
    assert pool.checkedin() == 1  # type: ignore[attr-defined]
    with switches() as seen:
        await one.give_back(overflow)  # no room: closed, as SQLAlchemy closes it (with I/O)
    assert seen  # through greenlet_spawn
    assert closing.is_closed()
    assert pool.checkedin() == 1  # type: ignore[attr-defined]
    assert pool.checkedout() == 0  # type: ignore[attr-defined]
    proxy = await one.engine.raw_connection()
    assert await proxy.driver_connection.fetchval("SELECT 1") == 1
    await one.give_back(proxy)


async def test_a_ready_connection_is_taken_without_a_greenlet(one: Database) -> None:
    pool = one.engine.sync_engine.pool
    with switches() as seen:
        first = await one.check_out()  # none ready yet: opened in the greenlet
    assert seen
    driver = first.driver_connection
    await one.give_back(first)
    with switches() as seen:
        again = await one.check_out()
    assert seen == []
    assert again.driver_connection is driver
    assert await driver.fetchval("SELECT 1") == 1
    assert pool.checkedout() == 1  # type: ignore[attr-defined]
    await one.give_back(again)
    assert pool.checkedin() == 1  # type: ignore[attr-defined]


async def test_a_connection_the_pool_invalidated_is_opened_anew_in_the_greenlet(
    one: Database,
) -> None:
    """A pooled connection invalidated (as after the server restarted) must be opened anew:
    SQLAlchemy refuses that outside its greenlet, having put it back; it is then opened in
    the greenlet. Nothing is reported of the refusal."""
    pool = one.engine.sync_engine.pool
    proxy = await one.check_out()
    old = proxy.driver_connection
    proxy.invalidate()  # back in the pool, to be opened anew
    assert pool.checkedin() == 1  # type: ignore[attr-defined]
    with warnings.catch_warnings(record=True) as reported:
        warnings.simplefilter("always")
        quiet_refused_connects()
        with switches() as seen:
            fresh = await one.check_out()
    assert seen  # opened in the greenlet
    assert [w for w in reported if issubclass(w.category, RuntimeWarning)] == []
    assert fresh.driver_connection is not old
    assert old.is_closed()
    assert await fresh.driver_connection.fetchval("SELECT 1") == 1
    assert (pool.checkedout(), pool.checkedin()) == (1, 0)  # type: ignore[attr-defined]
    await one.give_back(fresh)
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)  # type: ignore[attr-defined]


async def test_the_refusal_is_what_the_filter_quiets(one: Database) -> None:
    """The control of the test above: without the filter, Python reports the connecting
    coroutine that SQLAlchemy closed unstarted."""
    proxy = await one.check_out()
    proxy.invalidate()
    with warnings.catch_warnings(record=True) as reported:
        warnings.simplefilter("always")
        fresh = await one.check_out()
    assert any(
        issubclass(w.category, RuntimeWarning) and "never awaited" in str(w.message)
        for w in reported
    )
    await one.give_back(fresh)
