"""Tables partitioned by year (issue 15, point 5): one partition per year plus ``DEFAULT``.

Two kinds share this machinery:

- the audit log (migration 0018, :mod:`gateway.storage.audit_partitions`): by range of its
  timestamp ``at``, one partition per calendar year **in China time** (UTC+8, no daylight
  saving), in the schema ``audit_partitions``, each partition carrying the append-only TRUNCATE
  trigger;
- the person-scoped business tables ``claims``, ``settlements`` and ``settlement_lines``
  (migration 0019, :data:`BUSINESS`): by list of their settlement ``year`` (the claim's, which
  its events and their lines carry too), in the schema ``year_partitions``.

Partitions live in schemas where the gateway's role has no right at all: it reads and writes
through the parent tables only (where its grants are), and cannot touch a partition directly.
Indexes, foreign keys and row triggers declared on a parent are cloned by PostgreSQL onto every
partition, present and future; what is not cloned (grants, statement triggers) is created for
each partition by :meth:`YearPartitioned.statements`.

A ``DEFAULT`` partition takes the rows of any year without a partition of its own, so no write
can fail for want of one. A year can only be given a partition while ``DEFAULT`` holds none of
its rows (:func:`add_years` refuses otherwise): add the years ahead before they begin
(``medgw partitions add-years 2037 2040``, run with the owner's rights).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

CHINA = timezone(timedelta(hours=8), "China")
FIRST_YEAR = 2024
"""The first year the migrations create a partition for; older rows land in ``DEFAULT`` (a
business table also gets a partition for each older year its rows hold at the upgrade)."""
YEARS_AHEAD = 10
"""The migrations create partitions up to this many years after the year they run in."""


def year_start(year: int) -> datetime:
    """The first instant of ``year`` in China time.

    >>> year_start(2026).isoformat()
    '2026-01-01T00:00:00+08:00'
    """
    return datetime(year, 1, 1, tzinfo=CHINA)


def years_ahead(now: datetime | None = None) -> range:
    """:data:`FIRST_YEAR` to :data:`YEARS_AHEAD` years after ``now``'s year (default: now)."""
    return range(FIRST_YEAR, (now or datetime.now(UTC)).year + YEARS_AHEAD + 1)


@dataclass(frozen=True)
class YearPartitioned:
    """One table partitioned by year: its name, the schema of its partitions, how a year's rows
    are told (by range of the timestamp ``at_column`` in China time, else by list of ``year``),
    the statement trigger function each partition carries (None: none), and the words naming
    its rows in a refusal (``rows``, ``kept``: why they stay in ``DEFAULT``)."""

    table: str
    schema: str
    rows: str
    kept: str
    at_column: str | None = None
    truncate_trigger: str | None = None

    def name(self, year: int) -> str:
        """Example: ``'year_partitions.claims_2026'``."""
        return f"{self.schema}.{self.table}_{year}"

    @property
    def default(self) -> str:
        """Example: ``'year_partitions.claims_default'``."""
        return f"{self.schema}.{self.table}_default"

    def _bounds(self, year: int) -> str:
        if self.at_column is None:
            return f"FOR VALUES IN ({int(year)})"
        start, end = year_start(year).isoformat(), year_start(year + 1).isoformat()
        return f"FOR VALUES FROM ('{start}') TO ('{end}')"

    def _of_year(self, year: int) -> tuple[str, dict[str, Any]]:
        """A condition on the table's rows selecting ``year``'s, and its parameters."""
        if self.at_column is None:
            return "year = :year", {"year": year}
        column = self.at_column
        return f"{column} >= :start AND {column} < :end", {
            "start": year_start(year),
            "end": year_start(year + 1),
        }

    def _protected(self, partition: str) -> list[str]:
        statements = [f"REVOKE ALL ON {partition} FROM PUBLIC"]
        if self.truncate_trigger:
            statements.append(
                f"CREATE TRIGGER {self.table}_no_truncate BEFORE TRUNCATE ON {partition} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {self.truncate_trigger}()"
            )
        return statements

    def statements(self, year: int) -> list[str]:
        """The DDL creating ``year``'s partition (it must not exist yet)."""
        partition = self.name(year)
        create = f"CREATE TABLE {partition} PARTITION OF {self.table} {self._bounds(year)}"
        return [create, *self._protected(partition)]

    def default_statements(self) -> list[str]:
        """The DDL creating the ``DEFAULT`` partition."""
        create = f"CREATE TABLE {self.default} PARTITION OF {self.table} DEFAULT"
        return [create, *self._protected(self.default)]

    def schema_statements(self) -> list[str]:
        """The DDL creating the partitions' schema (if missing), closed to everyone but its
        owner."""
        return [
            f"CREATE SCHEMA IF NOT EXISTS {self.schema}",
            f"REVOKE ALL ON SCHEMA {self.schema} FROM PUBLIC",
        ]

    async def stranded(self, conn: AsyncConnection, year: int) -> int:
        """How many rows of ``year`` the ``DEFAULT`` partition holds."""
        condition, params = self._of_year(year)
        found = await conn.scalar(
            text(f"SELECT count(*) FROM {self.default} WHERE {condition}"), params
        )
        return int(found or 0)


AUDIT = YearPartitioned(
    table="audit_log",
    schema="audit_partitions",
    rows="audit records",
    kept="that year keeps them there (an append-only log cannot move records)",
    at_column="at",
    truncate_trigger="audit_log_append_only",
)
"""The audit log (migration 0018)."""

_BUSINESS_KEPT = (
    "that year keeps them there (rows that other tables' foreign keys reference are not moved)"
)
CLAIMS = YearPartitioned("claims", "year_partitions", "claims", _BUSINESS_KEPT)
SETTLEMENTS = YearPartitioned("settlements", "year_partitions", "settlement events", _BUSINESS_KEPT)
SETTLEMENT_LINES = YearPartitioned(
    "settlement_lines", "year_partitions", "settlement lines", _BUSINESS_KEPT
)
BUSINESS = (CLAIMS, SETTLEMENTS, SETTLEMENT_LINES)
"""The business tables partitioned by settlement year (migration 0019), referenced before
referencing (the order to create them in)."""
EVERY = (AUDIT, *BUSINESS)


class PartitionError(Exception):
    """A year that cannot be given a partition: the ``DEFAULT`` partition holds its rows."""


async def add_years(
    conn: AsyncConnection, tables: Sequence[YearPartitioned], first: int, last: int
) -> dict[str, list[int]]:
    """Create the partitions of the years ``first`` to ``last`` (inclusive) that ``tables`` do
    not have yet, in the caller's transaction, as the tables' owner; returns the years created
    per table name (every table named, in order). Raises :class:`PartitionError` (nothing
    created) when a ``DEFAULT`` partition holds rows of a year one of them lacks."""
    missing: dict[str, list[int]] = {}
    for table in tables:
        missing[table.table] = [
            year
            for year in range(first, last + 1)
            if await conn.scalar(text("SELECT to_regclass(:t)"), {"t": table.name(year)}) is None
        ]
    for table in tables:
        for year in missing[table.table]:
            stranded = await table.stranded(conn, year)
            if stranded:
                raise PartitionError(
                    f"{stranded} {table.rows} of {year} are in {table.default}: {table.kept}; "
                    "add years before they begin"
                )
    for table in tables:
        for year in missing[table.table]:
            for statement in table.statements(year):
                await conn.execute(text(statement))
    return missing


SCHEMAS = frozenset(table.schema for table in EVERY)
"""The schemas holding partitions (and nothing else)."""


def reflect_declared_foreign_keys() -> None:
    """Have SQLAlchemy's reflection of PostgreSQL (Alembic's autogenerate, the inspector) show
    the foreign keys as declared: a foreign key referencing a partitioned table (``claims``,
    ``settlements``) is kept by PostgreSQL as one constraint on the parent plus one clone per
    partition of the referenced table (``pg_constraint.conparentid`` set), which SQLAlchemy
    2.1 reflects as foreign keys to ``year_partitions.claims_2024`` …; those are left out.
    Idempotent; changes nothing else."""
    from sqlalchemy.dialects.postgresql.base import PGDialect

    reflect = cast(
        Callable[..., Iterable[tuple[Any, list[dict[str, Any]]]]], PGDialect.get_multi_foreign_keys
    )
    if getattr(reflect, "declared_only", False):
        return

    def declared_only(self: PGDialect, *args: Any, **kw: Any) -> list[tuple[Any, Any]]:
        return [
            (key, [fk for fk in found if fk.get("referred_schema") not in SCHEMAS])
            for key, found in reflect(self, *args, **kw)
        ]

    declared_only.declared_only = True  # type: ignore[attr-defined]
    PGDialect.get_multi_foreign_keys = declared_only  # type: ignore[method-assign]
