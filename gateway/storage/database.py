"""The database: which server (configured or embedded), the async engine and sessions."""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import ClauseElement, Dialect, event, text
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, MissingGreenlet
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    AsyncSessionTransaction,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import PoolProxiedConnection, QueuePool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn

from gateway.config import Settings
from gateway.errors import causes, is_transient
from gateway.storage import embedded


def _asyncpg(url: str, name: str) -> str:
    """``url`` with the asyncpg driver; ``name`` (the setting) is named if it is not PostgreSQL."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername != "postgresql+asyncpg":
        raise ValueError(f"{name} = {url!r}: only PostgreSQL URLs are supported")
    return parsed.render_as_string(hide_password=False)


def resolve_url(settings: Settings) -> str:
    """The URL the gateway connects with: ``DATABASE_URL`` in asyncpg form, or the embedded
    server's app role (server started on demand).

    >>> resolve_url(Settings(DATABASE_URL="postgresql://u:p@db:5432/medgw"))
    'postgresql+asyncpg://u:p@db:5432/medgw'
    """
    if settings.database_url:
        return _asyncpg(settings.database_url, "DATABASE_URL")
    return embedded.start(settings.data_dir / "pgdata").app


def resolve_migration_url(settings: Settings) -> str:
    """The URL migrations run with (the owner role): ``MEDGW_MIGRATION_URL``, else
    ``DATABASE_URL``, else the embedded server's owner role.

    >>> resolve_migration_url(Settings(DATABASE_URL="postgresql://app@db/medgw",
    ...                                MEDGW_MIGRATION_URL="postgresql://owner@db/medgw"))
    'postgresql+asyncpg://owner@db/medgw'
    """
    if settings.migration_url:
        return _asyncpg(settings.migration_url, "MEDGW_MIGRATION_URL")
    if settings.database_url:
        return _asyncpg(settings.database_url, "DATABASE_URL")
    return embedded.start(settings.data_dir / "pgdata").owner


@dataclass
class Commits:
    """How many transactions a unit of work (one GraphQL operation) has committed."""

    count: int = 0


COMMITS: ContextVar[Commits | None] = ContextVar("medgw_commits", default=None)
"""The running operation's :class:`Commits` (set by gateway/reconnection.py)."""


def _counted() -> None:
    commits = COMMITS.get()
    if commits is not None:
        commits.count += 1


@dataclass
class Held:
    """A mutation's last transaction, kept open after its block ended until the payload has
    been resolved (set in :data:`HELD` by ``gateway.access.ReadAudit``): the read audit record of
    what the payload returned is appended in it, then it commits (:meth:`commit`); the write and
    the record of the read commit together or not at all.

    Only transactions begun by the task that set it are held (a task it spawns commits as
    usual); one begun while another is held commits the held one first, so a mutation's
    transactions still commit in order and none waits on locks held by an earlier one."""

    owner: asyncio.Task[object] | None = field(default_factory=asyncio.current_task)
    session: AsyncSession | None = None
    transaction: AsyncSessionTransaction | None = None

    def holds(self) -> bool:
        """Whether a transaction begun now is to be held."""
        return asyncio.current_task() is self.owner

    async def commit(self) -> None:
        """Commit the held transaction (if any) and let its session go."""
        session, transaction = self.session, self.transaction
        self.session = self.transaction = None
        if session is None or transaction is None:
            return
        try:
            await transaction.commit()
        except BaseException as error:
            await drop_if_unusable(session, error)
            raise
        finally:
            await session.close()
        _counted()

    async def rollback(self, error: BaseException | None = None) -> None:
        """Roll the held transaction back (if any) and let its session go; its connection is
        dropped when ``error``, what failed the mutation, says it is unusable
        (:func:`drop_if_unusable`)."""
        session, self.session, self.transaction = self.session, None, None
        if session is not None:
            if error is not None:
                await drop_if_unusable(session, error)
            await session.close()  # rolls back what was not committed


HELD: ContextVar[Held | None] = ContextVar("medgw_held", default=None)
"""The running mutation's :class:`Held` (set by ``gateway.access.ReadAudit``)."""


@dataclass(frozen=True)
class Positional:
    """A statement compiled once, as asyncpg takes it on a transaction's connection: ``$n``
    parameters bound in the order of ``names``, each converted as SQLAlchemy converts its type
    (``processors``: JSON to text, booleans checked), ``constants`` the values of the binds the
    statement carries (literals)."""

    sql: str
    names: tuple[str, ...]
    processors: Mapping[str, Callable[[Any], Any]]
    constants: Mapping[str, object]

    def arguments(self, params: Mapping[str, object]) -> list[object]:
        """The positional arguments for ``params`` (every named parameter not a constant);
        ``KeyError`` for one missing."""
        values: list[object] = []
        for name in self.names:
            value = params[name] if name in params else self.constants[name]
            process = self.processors.get(name)
            values.append(value if process is None else process(value))
        return values


@lru_cache(maxsize=256)
def positional(statement: ClauseElement, dialect: Dialect) -> Positional:
    """``statement`` compiled for ``dialect`` (asyncpg's), once per statement object: what
    SQLAlchemy does on each execution of a cached statement (its cache key over the whole
    statement, building the parameters' dictionary) is done here once; each value is still
    converted by its type's bind processor."""
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    names = tuple(compiled.positiontup or ())
    processors: dict[str, Callable[[Any], Any]] = {}
    constants: dict[str, object] = {}
    for name in names:
        bind = compiled.binds[name]
        process = bind.type._cached_bind_processor(dialect)
        if process is not None:
            processors[name] = process
        if not bind.required:
            constants[name] = bind.effective_value
    return Positional(compiled.string, names, processors, constants)


async def fetch_compiled(
    session: AsyncSession, statement: ClauseElement, params: Mapping[str, object]
) -> list[Any]:
    """The rows of ``statement`` (:func:`positional`, compiled once) run on the asyncpg
    connection of the session's transaction, which an earlier statement has begun there (a
    statement sent bare outside it would commit on its own: ``RuntimeError``). A constraint
    violation is raised as SQLAlchemy raises it (``IntegrityError``), so callers tell it apart
    as they do for their other statements."""
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    if driver is None or not driver.is_in_transaction():
        raise RuntimeError("a compiled statement runs in a transaction begun on its connection")
    compiled = positional(statement, connection.dialect)
    try:
        return list(await driver.fetch(compiled.sql, *compiled.arguments(params)))
    except asyncpg.exceptions.IntegrityConstraintViolationError as exc:
        raise IntegrityError(compiled.sql, None, exc) from exc


CUSTOM_PLAN = "SET LOCAL plan_cache_mode = force_custom_plan"
"""Sent first in the transaction of a read over a set, an export or an import: its statements
are planned for their values every time. A pooled connection keeps a prepared statement's
plan, and after five runs PostgreSQL may keep a generic one priced with the statistics of that
moment: made while the tables held a few rows, it scans them in nested loops, for seconds to
minutes once they hold tens of thousands (a bulk load, until autovacuum's ``ANALYZE``;
tests/gateway/test_generic_plans.py). Planning costs little next to those; a point read by its
key and the writes keep their plans (every point lookup planned anew doubled PostgreSQL's
CPU)."""


def quiet_refused_connects() -> None:
    """Do not report what SQLAlchemy's refusal of I/O outside its greenlet leaves
    (:meth:`Database.check_out`): the connecting coroutine it made and closed unstarted, which
    Python reports as never awaited. Set when this module is imported."""
    warnings.filterwarnings(
        "ignore",
        message="coroutine 'connect' was never awaited",
        category=RuntimeWarning,
        module="sqlalchemy.util.concurrency",
    )


quiet_refused_connects()


@dataclass
class Database:
    """One engine per process; sessions never expire loaded objects on commit."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    @classmethod
    def connect(cls, url: str, settings: Settings) -> Database:
        engine = create_async_engine(
            url,
            pool_size=settings.pool_size,
            max_overflow=settings.pool_size,
            # No ping before each checkout (a round trip per transaction): a connection found
            # dead is dropped with the pool's older ones, and the request that met it is run
            # again once if it had committed nothing (gateway/reconnection.py).
            pool_pre_ping=False,
            pool_timeout=settings.connection_timeout_s,
            # Bound values (ID numbers, names) never appear in errors or logs (ACCESS.md).
            hide_parameters=True,
            connect_args={
                "timeout": settings.connection_timeout_s,
                "server_settings": {
                    "statement_timeout": str(settings.statement_timeout_ms),
                    "application_name": "medgw",
                    "timezone": "UTC",
                },
            },
        )
        event.listen(engine.sync_engine, "handle_error", _drop_unusable)
        return cls(engine, async_sessionmaker(engine, expire_on_commit=False))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on any error.
        Each commit is counted in :data:`COMMITS` (when the caller set one). In a mutation
        (:data:`HELD`) the commit waits until the payload is resolved and its read recorded
        (:class:`Held`); the block's changes are flushed when it ends."""
        held = HELD.get()
        if held is not None and held.holds():
            await held.commit()  # an earlier transaction of the mutation
            session = self.sessions()
            try:
                transaction = await session.begin()
                yield session
                await session.flush()
            except BaseException as error:
                await drop_if_unusable(session, error)
                await session.close()
                raise
            held.session, held.transaction = session, transaction
            return
        async with self.sessions() as session:  # closing it rolls back what did not commit
            transaction = await session.begin()
            try:
                yield session
                if transaction.is_active:  # the block may have ended it (committed) itself
                    await transaction.commit()
            except BaseException as error:
                await drop_if_unusable(session, error)  # before the rollback ends it
                raise
        _counted()

    async def check_out(self) -> PoolProxiedConnection:
        """A connection from the pool for work on its driver connection (``engine.
        raw_connection()``), given back by :meth:`give_back` (or invalidated).

        SQLAlchemy checks a connection out inside a greenlet (``greenlet_spawn``), for the I/O
        it may need: opening a new connection, replacing one the pool invalidated, or waiting
        for one to be given back. Taking a connection the pool holds ready needs none, so while
        the pool holds one that is tried first without a greenlet: a served A/B measured 1,416
        → 1,538 point lookups/s (+8.6%, 2026-12-02). Where I/O is needed after all (the
        connection taken was invalidated, after a restart of the server), SQLAlchemy raises
        ``MissingGreenlet`` before attempting any, having put the connection back as it puts
        back one that failed to open (the invalidated driver connection is terminated, where the
        greenlet would have closed it politely first: the server may log an unexpected end of
        file); then, and whenever the pool holds none, the checkout is made inside the
        greenlet, as before."""
        pool = self.engine.sync_engine.pool
        if isinstance(pool, QueuePool) and pool.checkedin():
            try:
                return self.engine.sync_engine.raw_connection()
            except MissingGreenlet:
                pass  # the connection must be opened anew: in the greenlet
        return await self.engine.raw_connection()

    async def give_back(self, proxy: PoolProxiedConnection) -> None:
        """Return to the pool a connection taken by :meth:`check_out` whose driver connection is
        open and outside any transaction (a compiled read's bare connection,
        ``resolvers.context.Context``).

        SQLAlchemy runs a pool's return in a greenlet (``greenlet_spawn``), for the I/O it may
        do: rolling back, or closing a connection the pool has no room for. Such a connection
        needs neither while the pool's queue has room (its rollback on return has no
        transaction to end: SQLAlchemy's adapter began none), so it is returned directly: the
        greenlet made and ended for it cost a point lookup 4–6% of its throughput (served A/B,
        2026-12-02; its frame stack alone is an ``mmap`` and a ``munmap``). Otherwise, and for
        a pool that is not a queue, through ``greenlet_spawn`` as before."""
        pool = self.engine.sync_engine.pool
        if isinstance(pool, QueuePool) and pool.checkedin() < pool.size():
            proxy.close()
        else:
            await greenlet_spawn(proxy.close)

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()


def unusable(error: BaseException, internal: type[BaseException] | tuple[()] = ()) -> bool:
    """Whether a connection that raised ``error`` is dropped rather than pooled again: lost
    mid-operation (server shut down, socket gone), refused, busy, or cancelled by the statement
    timeout (``gateway.errors.is_transient``: a plan cached on that connection may be what made
    it slow), or left in a broken protocol state (``internal``, the driver's
    ``InternalClientError``; asyncpg's when not given)."""
    internal = internal or asyncpg.exceptions.InternalClientError
    return is_transient(error) or isinstance(error, internal)


DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
"""What asyncpg raises on a connection it has (a lost one included: ``ConnectionDoesNotExistError``
is a ``PostgresError``), not a failure to connect."""


def driver_unusable(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is what asyncpg raised on a connection it had and
    says that connection is :func:`unusable`: a statement sent on the driver directly (a
    compiled read or write, an audit append), which SQLAlchemy's :func:`_drop_unusable` does
    not see. Not what SQLAlchemy raised (``DBAPIError``: it judged that itself, failures to
    connect included), nor an ``OSError`` of connecting: there is no connection to drop."""
    found = list(causes(error))
    if any(isinstance(e, DBAPIError) for e in found):
        return False
    return any(isinstance(e, DRIVER_ERRORS) and unusable(e) for e in found)


async def drop_if_unusable(session: AsyncSession, error: BaseException) -> None:
    """Drop the connection of ``session``'s transaction, with the pooled connections opened
    before it, when ``error`` (what failed the transaction) is :func:`driver_unusable`, as
    SQLAlchemy drops its own (:func:`_drop_unusable`); else nothing. Nothing either when the
    session holds no connection, or SQLAlchemy dropped it already. Best effort: whatever
    getting the connection raises is left out, and the caller raises ``error`` as it would."""
    if not driver_unusable(error) or not session.in_transaction():
        return
    with contextlib.suppress(Exception):
        raw: Any = await (await session.connection()).get_raw_connection()
        await greenlet_spawn(raw._pool._invalidate, raw, error)


def _drop_unusable(context: ExceptionContext) -> None:
    """Treat an :func:`unusable` connection as a disconnect, so that the pool drops it (and the
    connections opened before it) instead of handing it out again after the server is back. Only
    what runs through SQLAlchemy comes here: work on the driver's connection directly (compiled
    reads and writes, audit appends) is judged by :func:`driver_unusable` where its transaction
    ends (:meth:`Database.transaction`, :class:`Held`, ``resolvers.context.Context``)."""
    internal = getattr(context.dialect.loaded_dbapi, "InternalClientError", ())
    if unusable(context.original_exception, internal):
        context.is_disconnect = True
