"""The typed per-request context handed to every resolver."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.util import greenlet_spawn
from starlette.requests import Request
from starlette.responses import Response

from gateway.auth import Principal
from gateway.config import Settings
from gateway.storage.database import (
    CUSTOM_PLAN,
    HELD,
    Database,
    driver_unusable,
    drop_if_unusable,
)
from resolvers.loaders import Loaders
from resolvers.rows import RowRules

if TYPE_CHECKING:
    from policies.access.policy import AccessPolicies, DepartmentPolicy
    from policies.benefits import PolicySet

T = TypeVar("T")


@dataclass
class Context:
    request: Request
    response: Response
    request_id: str
    principal: Principal
    settings: Settings
    db: Database
    policies: PolicySet
    access: AccessPolicies
    rows: RowRules = field(init=False)
    _loaders: Loaders | None = field(init=False, default=None, repr=False)
    _session: AsyncSession | None = None
    _bare: Any = None
    """The pool's connection (SQLAlchemy's proxy) checked out for bare work, when no session."""
    _unusable: BaseException | None = None
    """What work on the driver's connection raised, when it says the connection is unusable
    (:func:`~gateway.storage.database.driver_unusable`): dropped, not pooled, when given back."""
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.rows = RowRules.of(self.principal, self.policy.rows)

    @property
    def loaders(self) -> Loaders:
        """The request's data loaders (one batch and cache per request), made on first use: a
        compiled read needs none. A context made anew (``dataclasses.replace``) has its own."""
        if self._loaders is None:
            self._loaders = Loaders(self.all, self.rows, self.tuples)
        return self._loaders

    def forget_loaded(self) -> None:
        """Drop what the loaders cached (a long-lived subscription's next batch reads anew)."""
        self._loaders = None

    @property
    def policy(self) -> DepartmentPolicy:
        """The access policy of the caller's department."""
        return self.access.departments[self.principal.department]

    async def read(
        self,
        work: Callable[[AsyncSession], Awaitable[T]],
        bare: Callable[[Any], Awaitable[T]] | None = None,
    ) -> T:
        """Run read-only work on the request's one session and connection.

        Resolvers run concurrently but an AsyncSession must not, hence the lock. While a
        mutation's transaction is held open for its payload (``gateway.storage.database.Held``)
        the work runs in that transaction: the payload reads what the mutation wrote.

        ``bare``, the same work on an asyncpg connection outside any transaction, runs instead
        when the request has no session (held or its own): on a connection checked out from
        the engine's pool for the request, without an ORM session (a point read's statement
        and audit record need none). Work that needs a session later gets the same kind of
        connection back first: a request holds one connection at a time.
        """
        async with self._lock:
            held = HELD.get()
            if held is not None and held.session is not None:
                # A failure here that fails the mutation drops the connection where it ends
                # (Held.rollback); a compiled read's savepoint may leave the mutation to commit.
                return await work(held.session)
            try:
                if self._session is None:
                    if bare is not None:
                        if self._bare is None:
                            self._bare = await self.db.check_out()
                        return await bare(self._bare.driver_connection)
                    await self._give_back_bare()
                    self._session = self.db.sessions()
                    # The resolvers' reads: pages, lists and aggregates, planned for their values.
                    await self._session.execute(text(CUSTOM_PLAN))
                return await work(self._session)
            except Exception as error:
                # SQLAlchemy judges what runs through it (_drop_unusable); what the driver
                # raised on a connection it had (a compiled read's or an audit append's
                # statement, sent on it directly) is ours, when the connection is given back.
                if driver_unusable(error):
                    self._unusable = error
                raise

    async def _give_back_bare(self) -> None:
        """Return the bare connection to the pool; one left inside a transaction (bare work
        opens none) is dropped instead, and one whose socket is gone, or that raised an
        :func:`~gateway.storage.database.driver_unusable` error (a statement timeout among them), is
        dropped with every pooled connection opened before it, as SQLAlchemy drops them when a
        session meets such an error (gateway/storage/database.py): the server it was connected
        to is gone or was restarted, and so are they."""
        if self._bare is not None:
            proxy, self._bare = self._bare, None
            driver = proxy.driver_connection
            if driver.is_closed() or self._unusable is not None:
                self._unusable = None
                pool = self.db.engine.sync_engine.pool
                await greenlet_spawn(pool._invalidate, proxy)  # what Connection does then
            elif driver.is_in_transaction():
                await greenlet_spawn(proxy.invalidate)
            else:
                await self.db.give_back(proxy)

    async def _give_back_session(self) -> None:
        """Close the read session; when work on its driver connection raised an
        :func:`~gateway.storage.database.driver_unusable` error, drop that connection (and those
        opened before it) first, as :meth:`_give_back_bare` does."""
        session, self._session = self._session, None
        if session is None:
            return
        if self._unusable is not None:
            await drop_if_unusable(session, self._unusable)
            self._unusable = None
        await session.close()

    async def all(self, stmt: Select[Any]) -> Sequence[Any]:
        """The rows (ORM entities) a select returns, on the request's read session."""

        async def run(session: AsyncSession) -> Sequence[Any]:
            return (await session.scalars(stmt)).all()

        return await self.read(run)

    async def tuples(self, stmt: Select[*tuple[Any, ...]]) -> Sequence[Any]:
        """The rows of a select of several columns (each a tuple), on the request's read session."""

        async def run(session: AsyncSession) -> Sequence[Any]:
            rows: Sequence[Any] = (await session.execute(stmt)).all()
            return rows

        return await self.read(run)

    async def one_or_none(self, stmt: Select[Any]) -> Any:
        rows = await self.all(stmt)
        return rows[0] if rows else None

    async def close(self) -> None:
        """Give the read connection back (a later read opens a new one)."""
        async with self._lock:
            await self._give_back_bare()
            await self._give_back_session()
