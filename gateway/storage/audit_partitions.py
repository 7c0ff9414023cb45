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

Add the years ahead before they begin (``medgw audit add-years 2037 2040``, or ``medgw
partitions add-years`` for every partitioned table, run with the owner's rights): a year can
only be given a partition while the ``DEFAULT`` partition holds none of its records (records
cannot move out of an append-only table). The machinery is :mod:`gateway.storage.partitions`'s,
shared with the business tables partitioned by year.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.storage import partitions
from gateway.storage.partitions import (
    CHINA,
    FIRST_YEAR,
    YEARS_AHEAD,
    PartitionError,
    year_start,
)

__all__ = [
    "CHINA",
    "DEFAULT",
    "FIRST_YEAR",
    "SCHEMA",
    "YEARS_AHEAD",
    "PartitionError",
    "add_years",
    "default_statements",
    "name",
    "statements",
    "year_of",
    "year_start",
]

AUDIT = partitions.AUDIT
SCHEMA = AUDIT.schema
DEFAULT = AUDIT.default


def name(year: int) -> str:
    """Example: ``name(2026) == 'audit_partitions.audit_log_2026'``."""
    return AUDIT.name(year)


def year_of(at: datetime) -> int:
    """The partition year of a record's ``at`` (aware).

    >>> from datetime import timezone
    >>> year_of(datetime(2026, 12, 31, 17, 0, tzinfo=timezone.utc))
    2027
    """
    return at.astimezone(CHINA).year


def statements(year: int) -> list[str]:
    """The DDL creating ``year``'s partition of ``audit_log`` (it must not exist yet)."""
    return AUDIT.statements(year)


def default_statements() -> list[str]:
    """The DDL creating the ``DEFAULT`` partition."""
    return AUDIT.default_statements()


async def add_years(conn: AsyncConnection, first: int, last: int) -> list[int]:
    """Create the partitions of the years ``first`` to ``last`` (inclusive) that do not exist
    yet, in the caller's transaction, as the table's owner; returns the years created. Raises
    :class:`PartitionError` (nothing created) when ``DEFAULT`` holds records of one of them."""
    return (await partitions.add_years(conn, [AUDIT], first, last))[AUDIT.table]
