"""The fund entries' monthly rollup (issue 14): ``fund_entry_months`` holds, per account,
settlement year, booking month (its first day), kind, flow and side, the sum and the number of
``fund_entries``, so that statements and fund balances (resolvers/statements.py) read a few
rows per account and month instead of every entry.

Kept exactly equal to the sums of the entries, in the entries' transaction: every INSERT into
``fund_entries`` (resolvers/funds.py) returns its rows summed per month (:func:`summed`) and
hands them to :func:`add`; the transaction's sums are upserted, in key order, by one statement
just before it commits (:mod:`resolvers.pending`, as the dashboard cube), and dropped if it
rolls back. :data:`REBUILD` builds the table again from the entries (migration 0016's backfill,
and after ``resolvers.history.post_history``, which writes entries outside a session).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from resolvers import pending

PENDING = "fund_entry_months"
"""The key of a session's ``info`` under which its transaction's sums wait for the commit."""
Key = tuple[int, int, date, str, str, str]
"""account_id, year, month (first day), kind, flow, side."""
KEYS = ("account_id", "year", "month", "kind", "flow", "side")
_TYPES = ("bigint", "smallint", "date", "text", "text", "text")

GROUPED = """
    SELECT account_id, year, date_trunc('month', booked_on)::date AS month, kind, flow, side,
           sum(amount) AS amount, count(*) AS entries
    FROM {source} GROUP BY 1, 2, 3, 4, 5, 6
"""


def summed(insert: str) -> str:
    """``insert`` (an INSERT INTO fund_entries … without RETURNING) as a statement that returns
    its rows summed per key of the rollup (:data:`KEYS`, amount, entries): hand them to
    :func:`add`."""
    returning = "RETURNING account_id, year, booked_on, kind, flow, side, amount"
    return f"WITH ins AS ({insert} {returning}) " + GROUPED.format(source="ins")


def add(session: AsyncSession | Session, rows: Iterable[Sequence[Any]]) -> None:
    """Add rows ``(account_id, year, month or booking day, kind, flow, side, amount[, entries])``
    to the caller's transaction's sums (a booking day counts in its month; entries default
    to 1)."""
    sums: dict[Key, list[Any]] = session.info.setdefault(PENDING, {})
    for row in rows:
        day: date = row[2]
        key: Key = (int(row[0]), int(row[1]), day.replace(day=1), row[3], row[4], row[5])
        cell = sums.setdefault(key, [Decimal("0.00"), 0])
        cell[0] += Decimal(row[6])
        cell[1] += int(row[7]) if len(row) > 7 else 1


_ARRAYS = ", ".join(f"CAST(:fm_{k} AS {t}[])" for k, t in zip(KEYS, _TYPES, strict=True))
UPSERT = f"""
INSERT INTO fund_entry_months AS t ({", ".join(KEYS)}, amount, entries)
SELECT * FROM unnest({_ARRAYS},
                     CAST(:fm_amount AS numeric[]), CAST(:fm_entries AS bigint[]))
     AS d({", ".join(KEYS)}, amount, entries)
ORDER BY {", ".join(KEYS)}
ON CONFLICT ({", ".join(KEYS)}) DO UPDATE
SET amount = t.amount + excluded.amount, entries = t.entries + excluded.entries
"""
"""The upsert of a transaction's sums (parameters ``fm_<key>``, ``fm_amount``, ``fm_entries``)."""


def write_pending(sums: dict[Key, list[Any]]) -> pending.Part:
    """The upsert of the transaction's sums in key order (run just before it commits by
    :mod:`resolvers.pending`)."""
    keys = sorted(sums)
    params: dict[str, object] = {f"fm_{c}": [k[i] for k in keys] for i, c in enumerate(KEYS)}
    params["fm_amount"] = [sums[k][0] for k in keys]
    params["fm_entries"] = [sums[k][1] for k in keys]
    return pending.Part((), UPSERT, params)


pending.register(PENDING, write_pending)

REBUILD = (
    "DELETE FROM fund_entry_months",
    f"INSERT INTO fund_entry_months ({', '.join(KEYS)}, amount, entries) "
    + GROUPED.format(source="fund_entries"),
)
"""The statements that build the rollup again from every fund entry (as the table's owner:
the gateway's role may not DELETE)."""


async def rebuild(connection: AsyncConnection | AsyncSession) -> None:
    """Build the rollup again from the entries, in the caller's transaction."""
    for statement in REBUILD:
        await connection.execute(text(statement))
