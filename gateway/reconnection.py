"""A GraphQL operation that met a dead database connection is run once more, when it had
committed nothing (issue 15.3).

The pool does not ping a connection before handing it out (one round trip per transaction
saved), so a connection the server has closed since (a restart, ``pg_terminate_backend``, an idle
timeout) is found dead by the first statement sent on it. SQLAlchemy then drops it, and every
connection of the pool opened before it (``gateway.storage.database._drop_unusable``), so a
second attempt gets a live one. The operation is run again, with a fresh context (its own
session and loaders, nothing remembered from the first attempt), only when:

- one of its errors was caused by a *lost* connection (connection errors, a connection left in
  a broken protocol state, SQLSTATE class 08, 57P01–57P03 server shutdown or termination), not
  by a busy database (statement or lock
  timeout, deadlock, pool exhausted: retrying those adds load and they stay UNAVAILABLE), and
- it committed no transaction (:data:`gateway.storage.database.COMMITS`): a write that was
  stored is never applied twice, and its answer stays what the first attempt said.

A read's audit record is written by the same operation (``ReadAudit``), so a retried read is
audited once, by the attempt that answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import Response
from strawberry.types import ExecutionResult

from gateway.errors import causes, is_transient
from gateway.outcomes import OPERATIONS
from gateway.storage.database import COMMITS, Commits
from resolvers.context import Context

log = logging.getLogger("medgw.reconnection")
LOST_SQLSTATES = ("08", "57P01", "57P02", "57P03")
"""connection exception; admin shutdown (pg_terminate_backend), crash shutdown, cannot connect
now."""


def lost_connection(error: BaseException | None) -> bool:
    """Whether ``error`` (or what caused it) says the connection itself was lost.

    >>> lost_connection(ConnectionResetError(104, "reset by peer"))
    True
    >>> lost_connection(TimeoutError("statement timeout"))
    False
    """
    for current in causes(error):
        if isinstance(
            current,
            ConnectionError
            | asyncpg.exceptions.ConnectionDoesNotExistError
            | asyncpg.exceptions.InterfaceError
            # left in a broken protocol state by the server's goodbye ("cannot switch to
            # state …; another operation is in progress"): dropped like a lost one
            | asyncpg.exceptions.InternalClientError,
        ):
            return True
        sqlstate = getattr(current, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(LOST_SQLSTATES):
            return True
    return False


def busy_database(error: BaseException | None) -> bool:
    """Whether ``error`` says the database is busy (no free connection, a statement or lock
    timeout: ``gateway.errors.is_transient``) rather than that the connection was lost: asking
    again at once would wait as long again, so the answer is UNAVAILABLE.

    >>> busy_database(TimeoutError("pool")), busy_database(ConnectionResetError(104, "reset"))
    (True, False)
    """
    return error is not None and is_transient(error) and not lost_connection(error)


def running_again(request_id: str) -> None:
    """Log that the request met a lost connection and runs again (on a live one)."""
    log.warning("request %s: database connection lost; running it again", request_id)


def _lost(result: ExecutionResult) -> bool:
    return any(lost_connection(e.original_error) for e in result.errors or ())


Attempt = Callable[[Context], Awaitable[ExecutionResult]]


async def at_most_twice(
    attempt: Attempt, context: Context, sub_response: Response
) -> ExecutionResult:
    """``attempt(context)``; once more with a fresh context if it lost its connection having
    committed nothing (the HTTP status and headers of the first attempt are undone)."""
    status, headers = sub_response.status_code, dict(sub_response.headers)
    request = getattr(context, "request", None)  # none for a context outside HTTP
    scope: dict[str, Any] = request.scope if request is not None else {}
    noted = len(scope.get(OPERATIONS, ()))
    commits = Commits()
    token = COMMITS.set(commits)
    try:
        result = await attempt(context)
        if commits.count or not _lost(result):
            return result
        running_again(context.request_id)
        # The request is recorded with the attempt that answers, not the lost one's failure.
        del scope.setdefault(OPERATIONS, [])[noted:]
        with contextlib.suppress(SQLAlchemyError):  # the pool drops the dead connection
            await context.close()
        fresh = dataclasses.replace(context, _session=None, _bare=None, _lock=asyncio.Lock())
        scope["medgw.context"] = fresh
        sub_response.status_code = status
        for name in list(sub_response.headers):
            if name not in headers:
                del sub_response.headers[name]
        return await attempt(fresh)
    finally:
        COMMITS.reset(token)
