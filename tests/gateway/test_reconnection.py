"""No ping before each transaction: a connection the server closed since is met by the next
request, which is run again once on a live connection when it had committed nothing
(gateway/reconnection.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from graphql import GraphQLError
from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import Response
from strawberry.types import ExecutionResult

from gateway.config import Settings
from gateway.reconnection import at_most_twice, lost_connection
from gateway.storage import models
from gateway.storage.database import COMMITS, Database
from policies.benefits import PolicySet
from tests.conftest import bearer, in_process
from tests.factories import add_people, id_number

POINT = "query($n: String!) { beneficiary(idNumber: $n) { name identities { category } } }"
REGISTER = "mutation($i: RegisterBeneficiaryInput!) { registerBeneficiary(input: $i) { id } }"


class Pool:
    """Its own engine on the test database, noting the server pid of every connection."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.db = Database.connect(url, settings.model_copy(update={"pool_size": 2}))
        self.pids: list[int] = []

        def opened(dbapi_connection: Any, _record: Any) -> None:
            self.pids.append(dbapi_connection.driver_connection.get_server_pid())

        event.listen(self.db.engine.sync_engine, "connect", opened)

    async def terminate(self, admin: AsyncEngine) -> int:
        """``pg_terminate_backend`` every connection this pool opened; how many were alive."""
        async with admin.connect() as conn:
            ended = await conn.scalar(
                text(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                    "FROM unnest(CAST(:p AS int[])) pid"
                ),
                {"p": self.pids},
            )
            for _ in range(100):  # the backends end asynchronously: wait until they are gone
                # A transaction keeps its first view of pg_stat_activity: look anew each time.
                await conn.execute(text("SELECT pg_stat_clear_snapshot()"))
                alive = await conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(CAST(:p AS int[]))"
                    ),
                    {"p": self.pids},
                )
                if not alive:
                    break
                await asyncio.sleep(0.05)
        return int(ended or 0)


@pytest.fixture
async def pool(database_url: str, settings: Settings, db: Database) -> AsyncIterator[Pool]:
    own = Pool(database_url, settings)
    yield own
    await own.db.dispose()


async def reads(db: Database) -> int:
    async with db.sessions() as session:
        found = await session.scalar(
            select(func.count())
            .select_from(models.AuditRecord)
            .where(models.AuditRecord.action == "READ")
        )
    return int(found or 0)


async def test_a_terminated_connection_is_replaced_and_the_request_still_answers(
    pool: Pool,
    admin: AsyncEngine,
    db: Database,
    settings: Settings,
    policies: PolicySet,
    caplog: pytest.LogCaptureFixture,
) -> None:
    [person] = await add_people(db, 1)
    variables = {"n": person.id_number}
    async with in_process(settings, pool.db, policies) as client:
        first = await client.post("/graphql", json={"query": POINT, "variables": variables},
                                  headers=bearer())  # fmt: skip
        assert first.status_code == 200
        assert "errors" not in first.json()
        assert await pool.terminate(admin) >= 1
        opened = len(pool.pids)
        with caplog.at_level(logging.WARNING, logger="medgw.reconnection"):
            again = await client.post(
                "/graphql", json={"query": POINT, "variables": variables}, headers=bearer()
            )
        assert again.status_code == 200, again.text
        assert again.json() == first.json()
        assert "retry-after" not in again.headers
        assert "connection lost; running it again" in caplog.text  # it met the dead one
        assert len(pool.pids) > opened  # and answered on a new one
        assert await reads(db) == 2  # one record per answer: the lost attempt wrote none

        # A write: nothing was committed when the connection was found dead, so it runs again,
        # and is stored once.
        assert await pool.terminate(admin) >= 1
        caplog.clear()
        new = {"idNumber": id_number("510402", person.birth_date, 999), "name": "重连",
               "regionCode": "510402"}  # fmt: skip
        with caplog.at_level(logging.WARNING, logger="medgw.reconnection"):
            written = await client.post(
                "/graphql", json={"query": REGISTER, "variables": {"i": new}}, headers=bearer()
            )
        assert written.status_code == 200, written.text
        assert "errors" not in written.json(), written.json()
        assert "connection lost" in caplog.text
    async with db.sessions() as session:
        stored = await session.scalar(
            select(func.count())
            .select_from(models.Beneficiary)
            .where(models.Beneficiary.id_number == new["idNumber"])
        )
        writes = await session.scalar(
            select(func.count())
            .select_from(models.AuditRecord)
            .where(models.AuditRecord.operation == "registerBeneficiary")
        )
    assert (stored, writes) == (1, 1)


def lost(error: BaseException) -> ExecutionResult:
    return ExecutionResult(data=None, errors=[GraphQLError("x", original_error=error)])


async def test_an_operation_that_committed_is_not_run_again() -> None:
    calls: list[object] = []

    async def attempt(context: Any) -> ExecutionResult:
        calls.append(context)
        commits = COMMITS.get()
        assert commits is not None
        commits.count += 1  # as Database.transaction does after a commit
        return lost(ConnectionResetError(104, "reset"))

    result = await at_most_twice(attempt, object(), Response())  # type: ignore[arg-type]
    assert len(calls) == 1
    assert result.errors


class Sqlstate(Exception):
    def __init__(self, sqlstate: str) -> None:
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (Sqlstate("57P01"), True),  # admin shutdown: pg_terminate_backend
        (Sqlstate("08006"), True),  # connection failure
        (Sqlstate("57014"), False),  # statement timeout: busy, not lost
        (Sqlstate("40P01"), False),  # deadlock
        (Sqlstate("55P03"), False),  # lock not available
        (ValueError("x"), False),
    ],
)
def test_only_a_lost_connection_is_run_again(error: BaseException, expected: bool) -> None:
    assert lost_connection(error) is expected
    wrapped = RuntimeError("wrapped")
    wrapped.__cause__ = error
    assert lost_connection(wrapped) is expected
