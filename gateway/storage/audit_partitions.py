"""The yearly partitions of the audit log (migration 0018).

``audit_log`` is partitioned by range of its timestamp ``at``: one partition per calendar year
**in China time** (UTC+8, no daylight saving; the year an auditor in China means, and the year
of the business data), from 00:00 on 1 January (China time) to the same instant a year later.
The partitions live in the schema :data:`SCHEMA` (``audit_partitions.audit_log_2026``), where
the gateway's role has no right at all: it reads and appends through ``audit_log`` only, and
cannot touch a partition directly. A ``DEFAULT`` partition takes every record of a year without
a partition of its own, so no append can ever fail for want of one; ``verify`` walks the parent
table by id and sees every partition alike.

The append-only rule holds on every partition: the row trigger refusing UPDATE and DELETE is
declared on ``audit_log`` and PostgreSQL clones it onto each partition, present and future; a
TRUNCATE trigger (statement-level, never cloned) is created on each partition by
:func:`statements`.

Add the years ahead before they begin (``medgw audit add-years 2037 2040``, run with the owner's
rights): a year can only be given a partition while the ``DEFAULT`` partition holds none of its
records (records cannot move out of an append-only table).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

SCHEMA = "audit_partitions"
CHINA = timezone(timedelta(hours=8), "China")
FIRST_YEAR = 2024
"""The first year migration 0018 creates a partition for; older records land in ``DEFAULT``."""
YEARS_AHEAD = 10
"""Migration 0018 creates partitions up to this many years after the year it runs in."""
DEFAULT = f"{SCHEMA}.audit_log_default"


def name(year: int) -> str:
    """Example: ``name(2026) == 'audit_partitions.audit_log_2026'``."""
    return f"{SCHEMA}.audit_log_{year}"


def year_start(year: int) -> datetime:
    """The first instant of ``year`` in China time.

    >>> year_start(2026).isoformat()
    '2026-01-01T00:00:00+08:00'
    """
    return datetime(year, 1, 1, tzinfo=CHINA)


def year_of(at: datetime) -> int:
    """The partition year of a record's ``at`` (aware).

    >>> year_of(datetime(2026, 12, 31, 17, 0, tzinfo=timezone.utc))
    2027
    """
    return at.astimezone(CHINA).year


def _protected(table: str) -> list[str]:
    return [
        f"REVOKE ALL ON {table} FROM PUBLIC",
        f"CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
    ]


def statements(year: int) -> list[str]:
    """The DDL creating ``year``'s partition of ``audit_log`` (it must not exist yet)."""
    start, end = year_start(year).isoformat(), year_start(year + 1).isoformat()
    table = name(year)
    create = f"CREATE TABLE {table} PARTITION OF audit_log FOR VALUES FROM ('{start}') TO ('{end}')"
    return [create, *_protected(table)]


def default_statements() -> list[str]:
    """The DDL creating the ``DEFAULT`` partition."""
    return [f"CREATE TABLE {DEFAULT} PARTITION OF audit_log DEFAULT", *_protected(DEFAULT)]


class PartitionError(Exception):
    """A year that cannot be given a partition: the ``DEFAULT`` partition holds its records."""


async def add_years(conn: AsyncConnection, first: int, last: int) -> list[int]:
    """Create the partitions of the years ``first`` to ``last`` (inclusive) that do not exist
    yet, in the caller's transaction, as the table's owner; returns the years created. Raises
    :class:`PartitionError` (nothing created) when ``DEFAULT`` holds records of one of them."""
    missing = []
    for year in range(first, last + 1):
        if await conn.scalar(text("SELECT to_regclass(:t)"), {"t": name(year)}) is None:
            missing.append(year)
    for year in missing:
        stranded = await conn.scalar(
            text(f"SELECT count(*) FROM {DEFAULT} WHERE at >= :start AND at < :end"),
            {"start": year_start(year), "end": year_start(year + 1)},
        )
        if stranded:
            raise PartitionError(
                f"{stranded} audit records of {year} are in {DEFAULT}: that year keeps them "
                "there (an append-only log cannot move records); add years before they begin"
            )
    for year in missing:
        for statement in statements(year):
            await conn.execute(text(statement))
    return missing
