"""A database that is gone or has no free connection is a retryable UNAVAILABLE (HTTP 503 with
Retry-After), never INTERNAL, and the gateway recovers by itself (issue 9, fault 13).

The loss test stops and restarts its own embedded PostgreSQL (not the session's) under load,
through a real uvicorn server.
"""

from __future__ import annotations

import asyncio
import importlib
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import TimeoutError as PoolTimeout

from gateway import migrate
from gateway.config import Settings
from gateway.errors import is_transient
from gateway.storage import embedded
from gateway.storage.database import Database
from policies.benefits import PolicySet
from tests.conftest import SECRET, bearer, in_process, serving

QUERY = {"query": "{ statistics(year: 2023) { persons claims } }"}


def outcome(response: httpx.Response) -> str:
    """``ok``, or the code of the one error with the HTTP status."""
    body: dict[str, Any] = response.json()
    if response.status_code == 200 and "errors" not in body:
        return "ok"
    codes = {e["extensions"]["code"] for e in body["errors"]}
    return f"{response.status_code} {'/'.join(sorted(codes))}"


def assert_retryable(response: httpx.Response, retry_after: int) -> None:
    assert response.status_code == 503
    assert response.headers["retry-after"] == str(retry_after)
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAVAILABLE"
    assert error["extensions"]["retryAfter"] == retry_after
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]
    assert "SELECT" not in error["message"]


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[tuple[Any, str]]:
    """A separate embedded server (its pgserver handle and URL), migrated; like the session's
    in a temporary directory of its own (pytest's may be pruned by parallel runs)."""
    with tempfile.TemporaryDirectory(prefix="medgw-unavailable-") as tmp:
        pgdata = Path(tmp) / "pgdata"
        urls = embedded.start(pgdata, cleanup_mode="delete")
        server = pgserver().get_server(pgdata)  # the handle embedded.start opened

        async def upgrade() -> None:  # by the owner; the gateway connects as the app role
            database = Database.connect(urls.owner, Settings(database_url=urls.owner))
            await migrate.upgrade_engine(database.engine)
            await database.dispose()

        asyncio.run(upgrade())
        yield server, urls.app
        server.ensure_postgres_running()  # a failed test may have left it stopped
        server.cleanup()


def pgserver() -> Any:
    with warnings.catch_warnings():  # as in gateway.storage.embedded
        warnings.simplefilter("ignore")
        return importlib.import_module("pgserver")


def stop_postgres(server: Any) -> None:
    """``pg_ctl stop -m fast``: sessions are ended, then the server is gone."""
    pgserver().pg_ctl(
        ["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=30
    )


async def test_stopping_postgresql_under_load_is_503_unavailable_and_it_recovers_unrestarted(
    own_postgres: tuple[Any, str], tmp_path: Path
) -> None:
    server, url = own_postgres
    settings = Settings(
        database_url=url,
        data_dir=tmp_path,
        jwt_secret=SECRET,
        connection_timeout_s=2,
        retry_after_s=7,
    )
    from gateway.app import create_app

    with serving(create_app(settings)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30, headers=bearer()) as client:
            assert outcome(await client.post("/graphql", json=QUERY)) == "ok"
            seen: list[httpx.Response] = []
            down = asyncio.Event()

            async def load() -> None:
                while not down.is_set():
                    seen.append(await client.post("/graphql", json=QUERY))

            workers = [asyncio.create_task(load()) for _ in range(8)]
            await asyncio.sleep(0.5)
            await asyncio.to_thread(stop_postgres, server)
            after_stop = len(seen)
            await asyncio.sleep(1.5)
            down.set()
            await asyncio.gather(*workers)
            while_down = [await client.post("/graphql", json=QUERY) for _ in range(3)]

            outcomes = [outcome(r) for r in seen + while_down]
            assert set(outcomes) <= {"ok", "503 UNAVAILABLE"}, sorted(set(outcomes))
            assert outcomes[:after_stop].count("ok") > 0
            assert len(seen) > after_stop  # requests kept being answered while it was down
            for response in seen[after_stop:] + while_down:
                assert_retryable(response, 7)
            assert (await client.get("/readyz")).status_code == 503

            await asyncio.to_thread(server.ensure_postgres_running)
            deadline = time.monotonic() + 20
            answers = []
            while time.monotonic() < deadline:
                answers.append(outcome(await client.post("/graphql", json=QUERY)))
                if answers[-1] == "ok":
                    break
                await asyncio.sleep(0.2)
            assert answers[-1] == "ok", answers
            assert set(answers) <= {"ok", "503 UNAVAILABLE"}
            again = [outcome(await client.post("/graphql", json=QUERY)) for _ in range(5)]
            assert again == ["ok"] * 5


@pytest.fixture
async def tiny_pool(settings: Settings, database_url: str, db: Database) -> AsyncIterator[Database]:
    """Its own engine on the test database: one connection and one overflow, 0.3 s to wait."""
    small = settings.model_copy(update={"pool_size": 1, "connection_timeout_s": 0.3})
    database = Database.connect(database_url, small)
    yield database
    await database.dispose()


async def test_an_exhausted_pool_is_503_unavailable_then_serves_again(
    settings: Settings, tiny_pool: Database, policies: PolicySet
) -> None:
    async with in_process(settings, tiny_pool, policies) as client:
        held = [await tiny_pool.engine.connect() for _ in range(2)]  # what the pool may open
        try:
            started = time.monotonic()
            answers = await asyncio.gather(
                *(client.post("/graphql", json=QUERY, headers=bearer()) for _ in range(20))
            )
            assert time.monotonic() - started < 10
            for response in answers:
                assert_retryable(response, settings.retry_after_s)
        finally:
            for connection in held:
                await connection.close()
        # Served again once connections are free: one request after another (twenty at once on
        # a two-connection pool with a 0.3 s wait would time out under a loaded machine).
        served = [await client.post("/graphql", json=QUERY, headers=bearer()) for _ in range(5)]
        assert [outcome(r) for r in served] == ["ok"] * 5


def test_transient_faults_are_told_apart_from_bugs() -> None:
    assert is_transient(PoolTimeout("QueuePool limit of size 1 overflow 1 reached"))
    assert is_transient(FileNotFoundError(2, "No such file or directory"))
    shutdown = RuntimeError("terminating connection due to administrator command")
    shutdown.sqlstate = "57P01"  # type: ignore[attr-defined]
    assert is_transient(shutdown)
    too_many = RuntimeError("sorry, too many clients already")
    too_many.sqlstate = "53300"  # type: ignore[attr-defined]
    wrapped = ValueError("while reading")
    wrapped.__cause__ = too_many
    assert is_transient(wrapped)
    unique = RuntimeError("duplicate key value violates unique constraint")
    unique.sqlstate = "23505"  # type: ignore[attr-defined]
    assert not is_transient(unique)
    assert not is_transient(KeyError("x"))


async def test_a_write_that_waits_past_the_statement_timeout_is_retryable_and_stores_nothing(
    settings: Settings, admin: Any, gql: Any, tmp_path: Path
) -> None:
    """A busy database (a lock held longer than MEDGW_STATEMENT_TIMEOUT_MS: SQLSTATE 57014) is
    UNAVAILABLE with Retry-After, not INTERNAL; retried once the lock is gone, it succeeds."""
    from sqlalchemy import text

    from gateway.app import create_app
    from tests.factories import category_document, id_number

    number = id_number("510402", date(1970, 1, 1), 3)
    await gql.data(
        "mutation($i: RegisterBeneficiaryInput!) { registerBeneficiary(input: $i) { id } }",
        {"i": {"idNumber": number, "name": "张三", "regionCode": "510402"}},
    )
    busy = settings.model_copy(update={"statement_timeout_ms": 300, "retry_after_s": 3})
    request = {
        "query": category_document("MINIMUM_LIVING"),
        "variables": {
            "i": {
                "idNumber": number,
                "category": "MINIMUM_LIVING",
                "validFrom": "2023-01-01",
                "reference": "R-1",
            }
        },
    }
    headers = bearer(department="civil_affairs", org="ca-5104")
    with serving(create_app(busy)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30, headers=headers) as client:
            async with admin.connect() as holder:
                transaction = await holder.begin()
                await holder.execute(
                    text("SELECT id FROM beneficiaries WHERE id_number = :n FOR UPDATE"),
                    {"n": number},
                )
                response = await client.post("/graphql", json=request)
                await transaction.rollback()
            assert_retryable(response, 3)
            count = text("SELECT count(*) FROM identities")
            async with admin.connect() as conn:
                assert await conn.scalar(count) == 0
            retried = await client.post("/graphql", json=request)
    assert retried.json() == {
        "data": {"recordIdentity": {"identity": {"category": "MINIMUM_LIVING"}}}
    }
