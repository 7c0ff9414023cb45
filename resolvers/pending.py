"""Writes a transaction keeps until it commits (the dashboard cube, the fund entries' months).

A rollup that many transactions add to (per region, per month) is not updated as each event is
written: its deltas wait in the session's ``info`` under their writer's key, summed, and one
statement per writer upserts them, in key order, just before the transaction commits (a
``before_commit`` listener; the asyncio session runs it in its greenlet, so it may execute SQL).
The rows stay locked only for the commit, and concurrent transactions cannot deadlock on them.
A transaction that ends without commit (rolled back, closed) drops its deltas; a savepoint's
end is not the transaction's, so what is recorded must not be written inside a savepoint that
may roll back on its own (none is, today: the only one, in imports, sets a setting).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

Writer = Callable[[Session, Any], None]
WRITERS: dict[str, Writer] = {}
"""The writers by the key of their deltas in a session's ``info``, in the order they run."""


def register(key: str, writer: Writer) -> None:
    """Have ``writer(session, deltas)`` write what the transaction left under ``key``."""
    WRITERS[key] = writer


def write_pending(session: Session) -> None:
    """Run every writer that has deltas waiting (the ``before_commit`` listener)."""
    for key, writer in WRITERS.items():
        deltas = session.info.pop(key, None)
        if deltas:
            writer(session, deltas)


def drop_pending(session: Session, transaction: SessionTransaction) -> None:
    """Forget the deltas of a transaction that ended without commit."""
    if transaction.parent is None:
        for key in WRITERS:
            session.info.pop(key, None)


event.listen(Session, "before_commit", write_pending)
event.listen(Session, "after_transaction_end", drop_pending)
