"""Writes a transaction keeps until it commits (the dashboard cube, the fund entries' months).

A rollup that many transactions add to (per region, per month) is not updated as each event is
written: its deltas wait in the session's ``info`` under their writer's key, summed, and one
statement upserts them all, each table in key order, just before the transaction commits (a
``before_commit`` listener; the asyncio session runs it in its greenlet, so it may execute SQL):
each writer gives its part (:class:`Part`), the parts are chained as CTEs of one statement.
The rows stay locked only for the commit, and concurrent transactions cannot deadlock on them.
A transaction that ends without commit (rolled back, closed) drops its deltas; a savepoint's
end is not the transaction's, so what is recorded must not be written inside a savepoint that
may roll back on its own (none is, today: the only one, in imports, sets a setting).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import TextClause, event, text
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.util import await_only

from gateway.storage.database import positional


@dataclass(frozen=True)
class Part:
    """One writer's share of the statement: its CTEs (``name AS (…)``, names of its own), the
    data-modifying statement that ends it (without RETURNING) and its parameters (names of its
    own: the parts share one statement)."""

    ctes: Sequence[str]
    final: str
    params: Mapping[str, object]


Writer = Callable[[Any], Part]
WRITERS: dict[str, Writer] = {}
"""The writers by the key of their deltas in a session's ``info``, in the order they run."""


def register(key: str, writer: Writer) -> None:
    """Have ``writer(deltas)`` give the part that writes what the transaction left under
    ``key``."""
    WRITERS[key] = writer


def statement(parts: Sequence[Part]) -> str:
    """The parts as one statement: each but the last a CTE ``pending_<n> AS (… RETURNING 1)``
    (PostgreSQL runs every data-modifying CTE, referenced or not), the last at the top.

    >>> statement([Part(["d AS (SELECT 1)"], "INSERT INTO a TABLE d", {}),
    ...            Part([], "DELETE FROM b", {})])
    'WITH d AS (SELECT 1), pending_0 AS (INSERT INTO a TABLE d RETURNING 1) DELETE FROM b'
    """
    ctes: list[str] = []
    for n, part in enumerate(parts[:-1]):
        ctes += [*part.ctes, f"pending_{n} AS ({part.final} RETURNING 1)"]
    ctes += parts[-1].ctes
    return ("WITH " + ", ".join(ctes) + " " if ctes else "") + parts[-1].final


def write_pending(session: Session) -> None:
    """Write what every writer has waiting, in one statement (the ``before_commit``
    listener): on the transaction's asyncpg connection directly (the statement compiled once
    per text: :func:`gateway.storage.database.positional`), or through SQLAlchemy when its
    transaction has not begun on the connection yet."""
    parts: list[Part] = []
    for key, writer in WRITERS.items():
        deltas = session.info.pop(key, None)
        if deltas:
            parts.append(writer(deltas))
    if parts:
        params = merged(parts)
        sql = statement(parts)
        connection = session.connection()
        driver = connection.connection.driver_connection
        if driver is not None and driver.is_in_transaction():
            compiled = positional(clause(sql), connection.dialect)
            await_only(driver.execute(compiled.sql, *compiled.arguments(params)))
        else:
            session.execute(clause(sql), params)


def merged(parts: Sequence[Part]) -> dict[str, object]:
    """The parameters of every part (their names are their own)."""
    params: dict[str, object] = {}
    for part in parts:
        params.update(part.params)
    return params


@lru_cache(maxsize=64)
def clause(sql: str) -> TextClause:
    """The statement's SQLAlchemy clause, built once per text (one per combination of writers:
    parsing its parameters out of kilobytes of SQL cost as much as the rest of the commit)."""
    return text(sql)


def drop_pending(session: Session, transaction: SessionTransaction) -> None:
    """Forget the deltas of a transaction that ended without commit."""
    if transaction.parent is None:
        for key in WRITERS:
            session.info.pop(key, None)


event.listen(Session, "before_commit", write_pending)
event.listen(Session, "after_transaction_end", drop_pending)
