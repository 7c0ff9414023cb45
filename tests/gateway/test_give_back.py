"""A compiled read's bare connection goes back to the pool without a greenlet when the pool has
room for it (``Database.give_back``), and through SQLAlchemy's greenlet otherwise."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import greenlet
import pytest
from sqlalchemy import text

from gateway.config import Settings
from gateway.storage.database import Database


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
