"""Shared fixtures: a throwaway PostgreSQL (embedded unless DATABASE_URL is set), the migrated
schema, the ASGI app, tokens, and a SQL statement counter.

The suite never touches ./var: the embedded server lives in a temporary directory and is
deleted at the end; with DATABASE_URL a fresh database is created on that server and dropped.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway import migrate
from gateway.app import create_app
from gateway.auth import issue_token
from gateway.config import Settings
from gateway.storage import embedded
from gateway.storage.database import Database, resolve_url
from gateway.transport import HttpToolsProtocol
from policies.benefits import PolicySet, load_policies

SECRET = "test-secret-" + "x" * 40
TABLES = (
    "recoveries, late_news, settlement_year_closings, settlement_lines, settlements, ledgers, "
    "high_cost_alerts, claims, enrollments, "
    "identities, monitoring_flags, beneficiaries, audit_log, "
    "webhook_deliveries, webhooks, outbox_cursors, outbox_events, "
    "dashboard_person_cells, dashboard_cube, fund_entries, fund_accounts, "
    "import_problems, imports, "
    "fund_entry_months"
)


APP_TEST_PASSWORD = "medgw-app-test"


@pytest.fixture(scope="session")
def database_urls() -> Iterator[embedded.Urls]:
    """The throwaway database's URLs per role: the superuser (to set up, clean, and play the
    attacker), the owner (migrations) and the app role (everything the gateway does)."""
    configured = os.environ.get("DATABASE_URL")
    if not configured:
        with embedded.temporary("medgw-test-") as urls:
            yield urls
        return
    # A fresh database on the configured server (its URL: a superuser), dropped afterwards; the
    # configured role owns it and runs the migrations, the app connects as medgw_app.
    base = make_url(resolve_url(Settings(database_url=configured)))
    name = f"medgw_test_{uuid.uuid4().hex[:8]}"
    admin = base.set(database="postgres")

    import asyncio

    async def ddl(statement: str) -> None:
        engine = create_async_engine(admin, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(statement))
        await engine.dispose()

    asyncio.run(ddl(f'CREATE DATABASE "{name}"'))
    role = embedded.APP_ROLE
    asyncio.run(
        ddl(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
            f"CREATE ROLE {role} LOGIN; END IF; "
            f"ALTER ROLE {role} PASSWORD '{APP_TEST_PASSWORD}'; END $$"
        )
    )
    here = base.set(database=name)
    yield embedded.Urls(
        superuser=here.render_as_string(hide_password=False),
        owner=here.render_as_string(hide_password=False),
        app=here.set(username=role, password=APP_TEST_PASSWORD).render_as_string(
            hide_password=False
        ),
    )
    asyncio.run(ddl(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def database_url(database_urls: embedded.Urls) -> str:
    """The app role's URL: the suite runs the gateway without any privilege it does not need."""
    return database_urls.app


@pytest.fixture(scope="session")
def admin_url(database_urls: embedded.Urls) -> str:
    """The superuser's URL, for set-up and for tests that play an attacker with full rights."""
    return database_urls.superuser


@pytest.fixture(scope="session")
async def admin(admin_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(admin_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def settings(
    database_url: str, database_urls: embedded.Urls, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return Settings(
        database_url=database_url,
        migration_url=database_urls.owner,
        data_dir=tmp_path_factory.mktemp("data"),
        jwt_secret=SECRET,
        env="development",
        # Checkpoints at start and shutdown only: none lands in the middle of a test.
        audit_checkpoint_seconds=86_400,
        # Aggregates over the one or two persons a test seeds are shown; k-suppression (default
        # k = 5) is tested with its own app in tests/gateway/test_aggregates.py.
        statistics_k=1,
        # No webhook dispatcher in the shared apps: tests/resolvers/test_webhooks.py runs its own.
        webhooks=False,
    )


@pytest.fixture(scope="session")
def policies() -> PolicySet:
    return load_policies()


@pytest.fixture(scope="session")
async def db(
    settings: Settings, database_url: str, database_urls: embedded.Urls, admin: AsyncEngine
) -> AsyncIterator[Database]:
    """The gateway's database, migrated by the owner, connected as the app role (``admin``, the
    superuser engine, is set up first so that ``clean`` finds it)."""
    owner = create_async_engine(database_urls.owner)
    await migrate.upgrade_engine(owner)
    await owner.dispose()
    database = Database.connect(database_url, settings)
    yield database
    await database.dispose()


EMPTIED = """WITH RECURSIVE emptied(oid) AS (
    SELECT c.oid FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY(:tables)
  UNION
    SELECT x.oid FROM emptied e, LATERAL (
      SELECT k.conrelid FROM pg_constraint k WHERE k.confrelid = e.oid AND k.contype = 'f'
      UNION ALL SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = e.oid) x(oid)
)
SELECT c.oid::regclass::text, c.relkind::text,
  (SELECT coalesce(array_agg(s.oid::regclass::text || ':' || q.seqstart), '{}')
   FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
   JOIN pg_sequence q ON q.seqrelid = s.oid
   WHERE d.refobjid = c.oid AND d.deptype IN ('a', 'i'))
FROM emptied e JOIN pg_class c ON c.oid = e.oid"""
"""What ``TRUNCATE {TABLES} RESTART IDENTITY CASCADE`` empties: the tables, those whose foreign
keys reference them (transitively), their partitions; with the sequences they own."""


CATALOG = "SELECT count(*), sum(oid::int8) FROM pg_class"
"""Changes whenever a relation is created or dropped: when :data:`EMPTIED` must be read again
(its catalog query costs ~30 ms; the tables do not change from one test to the next)."""
_EMPTIED: dict[tuple[Any, ...], list[Any]] = {}


async def empty(conn: Any) -> None:
    """Empty :data:`TABLES` as ``TRUNCATE … RESTART IDENTITY CASCADE`` does, in a few round
    trips: only the tables holding rows are emptied (``DELETE``; the caller's replica role
    skips the foreign keys' checks), and the sequences restart. A ``TRUNCATE`` of them all
    (every partition of every year, their indexes) took ~240 ms a test."""
    catalog = tuple((await conn.execute(text(CATALOG))).one())
    rows = _EMPTIED.get(catalog)
    if rows is None:  # the first time, or tables or partitions were added or dropped since
        names = [name.strip() for name in TABLES.split(",")]
        found = await conn.execute(text(EMPTIED), {"tables": names})
        rows = _EMPTIED[catalog] = list(found.all())
    leaves = [name for name, kind, _ in rows if kind == "r"]
    sequences = [entry.rsplit(":", 1) for _, _, owned in rows for entry in owned]
    driver = (await conn.get_raw_connection()).driver_connection
    probe = " UNION ALL ".join(
        f"SELECT {n} WHERE EXISTS (SELECT FROM {leaf})" for n, leaf in enumerate(leaves)
    )
    held = [leaves[n] for (n,) in await driver.fetch(probe)]
    statements = [f"DELETE FROM {leaf}" for leaf in held]
    statements += [f"SELECT setval('{name}', {start}, false)" for name, start in sequences]
    await driver.execute(";\n".join(statements))


@pytest.fixture(autouse=True)
async def clean(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Empty every table before each test that uses the database, and drop the checkpoints
    of the audit chain that was there."""
    if "db" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("db")  # sets up ``admin`` as well
    admin: AsyncEngine = request.getfixturevalue("admin")
    async with admin.begin() as conn:
        # replica role skips the append-only trigger of audit_log and the foreign keys' checks
        # (tests only).
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await empty(conn)
    request.getfixturevalue("settings").audit_checkpoints.unlink(missing_ok=True)
    yield


@pytest.fixture(scope="session")
async def app(settings: Settings, db: Database, policies: PolicySet) -> AsyncIterator[Any]:
    """One app for the session: building the eleven department schemas takes a while."""
    application = create_app(settings, db=db, policies=policies)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
        yield c


def make_token(
    department: str = "medical_insurance",
    org: str = "mi-5104",
    regions: tuple[str, ...] = ("5104", "3708", "32", "43"),
    purpose: str | None = None,
    **kwargs: Any,
) -> str:
    return issue_token(
        SECRET,
        subject="tester",
        department=department,
        org=org,
        regions=regions,
        purpose=purpose,
        **kwargs,
    )


def without_request_ids(body: dict[str, Any], request_id: str) -> dict[str, Any]:
    """``body`` once every error is checked to carry ``extensions.requestId`` equal to the
    response's ``X-Request-Id``, with that key taken out (so tests compare the rest exactly)."""
    for error in body.get("errors") or []:
        extensions = error.get("extensions") or {}
        assert extensions.get("requestId") == request_id, error
        del extensions["requestId"]
    return body


class GraphQLClient:
    """Posts GraphQL with a department's token; ``data()`` asserts there were no errors."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def post(
        self, query: str, variables: dict[str, Any] | None = None, **token: Any
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {make_token(**token)}"},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return without_request_ids(body, response.headers["x-request-id"])

    async def data(
        self, query: str, variables: dict[str, Any] | None = None, **token: Any
    ) -> dict[str, Any]:
        body = await self.post(query, variables, **token)
        assert "errors" not in body, body["errors"]
        result: dict[str, Any] = body["data"]
        return result

    async def error(
        self, query: str, variables: dict[str, Any] | None = None, **token: Any
    ) -> dict[str, Any]:
        """The single error of a request that must fail."""
        body = await self.post(query, variables, **token)
        assert body.get("errors"), body
        assert len(body["errors"]) == 1, body["errors"]
        first: dict[str, Any] = body["errors"][0]
        return first


@pytest.fixture
def gql(client: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(client)


TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def introspects(query: str) -> bool:
    """Whether ``query`` is asyncpg's own look-up of types a connection meets for the first
    time (and the ``jit`` switch around it): three statements once per connection, not the
    request's, so a count would otherwise depend on which pooled connection served it."""
    return "typeinfo_tree" in query or "set_config('jit'" in query


class StatementCounter:
    """The SQL statements the engine's connections send, in the order they run: what goes
    through SQLAlchemy (its cursor events) and what code sends on a connection's asyncpg
    connection directly (compiled reads, the audit chain's records; an asyncpg query logger,
    which does not see SQLAlchemy's prepared statements, so nothing is counted twice).
    Transaction control (BEGIN, COMMIT, savepoints) and asyncpg's type look-ups
    (:func:`introspects`) are not counted."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, *args: Any) -> None:  # SQLAlchemy's before_cursor_execute
        self.statements.append(str(args[2]))

    def logged(self, record: Any) -> None:  # an asyncpg query logger
        query = record.query
        if not query.lstrip().upper().startswith(TRANSACTION_CONTROL) and not introspects(query):
            self.statements.append(query)

    def __len__(self) -> int:
        return len(self.statements)


@pytest.fixture
def count_statements(db: Database) -> Iterator[Callable[[], StatementCounter]]:
    counters: list[StatementCounter] = []
    pool = db.engine.sync_engine.pool

    def checkout(dbapi_connection: Any, *_: Any) -> None:
        for counter in counters:
            dbapi_connection.driver_connection.add_query_logger(counter.logged)

    def checkin(dbapi_connection: Any, *_: Any) -> None:
        if dbapi_connection is not None:
            for counter in counters:
                dbapi_connection.driver_connection.remove_query_logger(counter.logged)

    event.listen(pool, "checkout", checkout)
    event.listen(pool, "checkin", checkin)

    def start() -> StatementCounter:
        counter = StatementCounter()
        event.listen(db.engine.sync_engine, "before_cursor_execute", counter)
        counters.append(counter)
        return counter

    yield start
    for counter in counters:
        event.remove(db.engine.sync_engine, "before_cursor_execute", counter)
    event.remove(pool, "checkout", checkout)
    event.remove(pool, "checkin", checkin)


SERVED: list[uvicorn.Server] = []
"""The servers :func:`serving` runs now (their requests are waited for after each test)."""


@pytest.fixture(autouse=True)
def served_requests_finish() -> Iterator[None]:
    """After each test, wait (up to half a second) until the served apps' requests have ended:
    an app logs a request after its response was sent, so a test that ends on a response would
    otherwise leave that log line to be written after the test's output is captured (and
    printed among the progress dots of a run in several processes)."""
    yield
    deadline = time.monotonic() + 0.5
    while any(server.server_state.tasks for server in SERVED) and time.monotonic() < deadline:
        time.sleep(0.005)


@contextmanager
def serving(app: Any, http: type[asyncio.Protocol] = HttpToolsProtocol) -> Iterator[str]:
    """``app`` on a real uvicorn on a free loopback port, in its own thread and event loop;
    ``http``: its HTTP protocol (by default, the one `medgw serve` serves with)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # A request still hanging at the end (a receiver that never answers) is cancelled after
    # a second, instead of holding the thread's join for its whole timeout.
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=1,
        http=http,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    SERVED.append(server)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        SERVED.remove(server)
        server.should_exit = True
        thread.join(timeout=10)


@asynccontextmanager
async def in_process(
    settings: Settings, db: Database, policies: PolicySet
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app built with ``settings`` (in-process, on the given database)."""
    app = create_app(settings, db=db, policies=policies)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            yield client


@pytest.fixture(scope="session")
def http_server(settings: Settings, db: Database) -> Iterator[str]:
    """The app served by a real uvicorn (its own engine and event loop, the test database)."""
    with serving(create_app(settings)) as url:
        yield url


@pytest.fixture
async def http(http_server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=http_server, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def production_server(settings: Settings, db: Database) -> Iterator[str]:
    """The gateway in production mode behind a real uvicorn (its own engine, same database)."""
    with serving(create_app(settings.model_copy(update={"env": "production"}))) as url:
        yield url


@pytest.fixture
async def production(production_server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=production_server, timeout=30) as client:
        yield client


def bearer(**token: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(**token)}"}
