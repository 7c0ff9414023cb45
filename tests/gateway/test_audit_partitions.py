"""The audit log partitioned by year (issue 15, point 5; migration 0018).

Records land in the partition of their year in China time, a year without a partition lands in
DEFAULT and still verifies, no partition can be changed (the app role cannot even reach one,
the owner is refused by the append-only triggers), and upgrading a populated log keeps every
record, id, hash and the id sequence: the chain verifies across the upgrade and back.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from typer.testing import CliRunner

from gateway import migrate
from gateway.cli import app as cli
from gateway.config import Settings
from gateway.storage import audit, audit_partitions
from gateway.storage.database import Database
from tests.gateway.test_audit import records
from tests.gateway.test_audit_shards import WRITER, links, open_writers, write
from tests.gateway.test_migrate import scratch  # noqa: F401  (fixture)


@contextlib.contextmanager
def clock(monkeypatch: pytest.MonkeyPatch, moment: datetime) -> Iterator[None]:
    """Audit records written inside are dated ``moment``."""

    class Fixed(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return datetime.fromtimestamp(moment.timestamp(), tz)

    with monkeypatch.context() as patch:
        patch.setattr(audit, "datetime", Fixed)
        yield


async def written_at(db: Database, monkeypatch: pytest.MonkeyPatch, *moments: datetime) -> None:
    for moment in moments:
        with clock(monkeypatch, moment):
            async with db.transaction() as session:
                await write(session, moment.isoformat())


async def partition_of_each(engine: AsyncEngine) -> list[tuple[int, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT id, tableoid::regclass::text FROM audit_log"))
        return sorted((id_, table) for id_, table in rows.all())


async def partitions(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.scalars(
            text(
                "SELECT inhrelid::regclass::text FROM pg_inherits "
                "WHERE inhparent = 'audit_log'::regclass ORDER BY 1"
            )
        )
        return list(rows)


async def test_records_land_in_the_partition_of_their_year_in_china_time(
    db: Database, admin: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await written_at(
        db,
        monkeypatch,
        datetime(2025, 12, 31, 15, 59, tzinfo=UTC),  # 23:59 in China: still 2025
        datetime(2025, 12, 31, 16, 0, tzinfo=UTC),  # 00:00 on 1 January 2026 in China
        datetime(2026, 7, 1, 12, 0, tzinfo=UTC),
        datetime(2027, 3, 1, 0, 0, tzinfo=UTC),
    )
    assert await partition_of_each(admin) == [
        (1, "audit_partitions.audit_log_2025"),
        (2, "audit_partitions.audit_log_2026"),
        (3, "audit_partitions.audit_log_2026"),
        (4, "audit_partitions.audit_log_2027"),
    ]
    assert [r.id for r in await records(db)] == [1, 2, 3, 4]
    assert (await links(db)).checked == 4
    this_year = audit_partitions.year_of(datetime.now(UTC))
    assert audit_partitions.name(this_year + audit_partitions.YEARS_AHEAD) in await partitions(
        admin
    )


async def test_a_year_without_a_partition_lands_in_default_and_verifies(
    db: Database, admin: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await written_at(
        db,
        monkeypatch,
        datetime(2026, 5, 1, tzinfo=UTC),
        datetime(1999, 5, 1, tzinfo=UTC),
        datetime(2120, 5, 1, tzinfo=UTC),
        datetime(2026, 5, 2, tzinfo=UTC),
    )
    assert await partition_of_each(admin) == [
        (1, "audit_partitions.audit_log_2026"),
        (2, "audit_partitions.audit_log_default"),
        (3, "audit_partitions.audit_log_default"),
        (4, "audit_partitions.audit_log_2026"),
    ]
    result = await links(db)
    assert (result.ok, result.checked) == (True, 4)
    # A record of the DEFAULT partition is chained like any other: changing it is found.
    async with admin.begin() as conn:
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await conn.execute(text("UPDATE audit_log SET org = 'elsewhere' WHERE id = 3"))
    assert (await links(db)).broken_at == 3


async def test_adding_a_year_refuses_one_whose_records_are_in_default(
    db: Database, admin: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await written_at(db, monkeypatch, datetime(2120, 5, 1, tzinfo=UTC))
    async with admin.begin() as conn:
        with pytest.raises(audit_partitions.PartitionError, match="1 audit records of 2120"):
            await audit_partitions.add_years(conn, 2119, 2120)
    created = []
    try:
        async with admin.begin() as conn:
            created = await audit_partitions.add_years(conn, 2121, 2122)
            assert await audit_partitions.add_years(conn, 2121, 2122) == []
        assert created == [2121, 2122]
        await written_at(db, monkeypatch, datetime(2122, 5, 1, tzinfo=UTC))
        assert (await partition_of_each(admin))[-1] == (2, "audit_partitions.audit_log_2122")
        assert (await links(db)).checked == 2
    finally:
        async with admin.begin() as conn:
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
            for year in created:
                await conn.execute(text(f"DROP TABLE {audit_partitions.name(year)}"))


async def test_medgw_audit_add_years(
    db: Database,
    admin: AsyncEngine,
    admin_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await written_at(db, monkeypatch, datetime(2140, 5, 1, tzinfo=UTC))
    env = {
        "DATABASE_URL": admin_url,
        "MEDGW_MIGRATION_URL": admin_url,
        "MEDGW_DATA_DIR": str(tmp_path),
    }

    def add_years(*years: str) -> Any:
        return CliRunner().invoke(cli, ["audit", "add-years", *years], env=env)

    try:
        refused = await asyncio.to_thread(add_years, "2139", "2140")
        assert refused.exit_code == 1, refused.output
        assert "1 audit records of 2140 are in audit_partitions.audit_log_default" in refused.output
        added = await asyncio.to_thread(add_years, "2138", "2139")
        assert (added.exit_code, added.output) == (0, "audit log partitions added: 2138, 2139\n")
        again = await asyncio.to_thread(add_years, "2139")
        assert "already has one" in again.output
        assert audit_partitions.name(2140) not in await partitions(admin)
    finally:
        async with admin.begin() as conn:
            for year in (2138, 2139):
                await conn.execute(text(f"DROP TABLE IF EXISTS {audit_partitions.name(year)}"))


@pytest.fixture
async def app_role(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.mark.parametrize(
    "statement",
    ["UPDATE {} SET purpose = 'curiosity'", "DELETE FROM {}", "TRUNCATE {}", "SELECT * FROM {}"],
    ids=["update", "delete", "truncate", "select"],
)
async def test_no_partition_can_be_changed_directly(
    db: Database,
    admin: AsyncEngine,
    app_role: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    statement: str,
) -> None:
    await written_at(
        db, monkeypatch, datetime(2026, 5, 1, tzinfo=UTC), datetime(1999, 5, 1, tzinfo=UTC)
    )
    before = [(r.id, r.hash, r.purpose) for r in await records(db)]
    every = await partitions(admin)
    assert len(every) >= 14
    assert audit_partitions.DEFAULT in every
    for partition in every:
        with pytest.raises(DBAPIError, match="permission denied for schema audit_partitions") as e:
            async with app_role.begin() as conn:
                await conn.execute(text(statement.format(partition)))
        assert getattr(e.value.orig, "sqlstate", None) == "42501"
        holds_rows = partition in (audit_partitions.name(2026), audit_partitions.DEFAULT)
        if statement.startswith("SELECT") or not (holds_rows or "TRUNCATE" in statement):
            continue  # a row trigger fires for rows only (every partition has one, below)
        # The owner (here the superuser) is refused by the triggers every partition carries.
        with pytest.raises(DBAPIError, match="append-only"):
            async with admin.begin() as conn:
                await conn.execute(text(statement.format(partition)))
    async with admin.connect() as conn:
        triggers = await conn.execute(
            text(
                "SELECT tgrelid::regclass::text, tgname FROM pg_trigger "
                "WHERE tgname LIKE 'audit_log_no_%' AND tgenabled = 'O'"
            )
        )
        protected = {(table, name) for table, name in triggers.all()}
    for partition in every:
        assert (partition, "audit_log_no_update_delete") in protected
        assert (partition, "audit_log_no_truncate") in protected
    assert [(r.id, r.hash, r.purpose) for r in await records(db)] == before


async def test_shard_heads_are_read_by_index_in_every_partition(
    admin: AsyncEngine, db: Database
) -> None:
    """The newest record of a shard (the head ``audit_take_shard`` reads): a backward index scan
    on (shard, id) in every partition holding records, merged in id order, stopped at the first
    row: no sort, no scan of a whole partition. (Rows written directly, unchained: only the plan
    is looked at.)

    The records earlier tests wrote were deleted (``clean``), but their pages stay until a
    vacuum, and the planner prices a partition by its pages: 5,000 records deleted from this
    year's partition made it scan its primary key backward instead. Vacuumed first, as
    autovacuum does, the partitions hold this test's rows only, whichever tests ran before."""
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM audit_log"))
    async with admin.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO audit_log (at, action, department, org, subject, beneficiary_ids, "
                "field_paths, detail, prev_hash, hash, shard) SELECT "
                "timestamptz '2025-01-01 00:00+08' + g * interval '1 hour', 'READ', 'd', 'o', "
                "'s', '{}', '{}', '{}', 'p', md5(g::text), g % 16 "
                "FROM generate_series(1, 20000) g"
            )
        )
        await conn.execute(text("ANALYZE audit_log"))
        plan = list(
            await conn.scalars(
                text("EXPLAIN SELECT hash FROM audit_log WHERE shard = 0 ORDER BY id DESC LIMIT 1")
            )
        )
    assert plan[0].startswith("Limit"), plan
    assert "Merge Append" in plan[1], plan
    assert not any("Sort" in line and "Sort Key" not in line for line in plan), plan
    for year in (2025, 2026, 2027):
        [scan] = [line for line in plan if f"audit_log_{year} " in line]
        assert f"Index Scan Backward using audit_log_{year}_shard_id_idx" in scan, plan


async def kind(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        return str(
            await conn.scalar(
                text("SELECT relkind::text FROM pg_class WHERE oid = 'audit_log'::regclass")
            )
        )


@contextlib.asynccontextmanager
async def shard_function(engine: AsyncEngine) -> AsyncIterator[None]:
    """Migration 0020's ``audit_take_shard`` in a database at an older revision, for the block
    (today's appends call it), dropped after it so that the upgrade creates it."""
    path = migrate.SCRIPT_LOCATION / "versions" / "0020_audit_take_shard.py"
    spec = importlib.util.spec_from_file_location("m0020", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    async with engine.begin() as conn:
        await conn.execute(text(module.FUNCTION))
    try:
        yield
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP FUNCTION {module.SIGNATURE}"))


async def test_upgrading_a_populated_log_keeps_every_record_and_the_chain(
    scratch: AsyncEngine,  # noqa: F811
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await migrate.upgrade_engine(scratch, "0017")
    db = Database.connect(scratch.url.render_as_string(hide_password=False), settings)
    try:
        async with shard_function(scratch), open_writers(db, 3) as writers:  # three shards
            for moment in (datetime(2025, 6, 1, tzinfo=UTC), datetime(1999, 6, 1, tzinfo=UTC)):
                with clock(monkeypatch, moment):
                    for number, session in enumerate(writers * 2):
                        await write(session, f"before {moment.year} {number}")
        before = [(r.id, r.at, r.shard, r.prev_hash, r.hash) for r in await records(db)]
        assert len(before) == 12
        assert len({shard for *_, shard, _, _ in before}) == 3
        async with db.sessions() as session:
            signed = await audit.head(session)
        await db.dispose()

        await migrate.upgrade_engine(scratch)
        assert await kind(scratch) == "p"  # partitioned
        assert [(r.id, r.at, r.shard, r.prev_hash, r.hash) for r in await records(db)] == before
        async with db.sessions() as session:
            assert await audit.head(session) == signed
        assert (await links(db)).checked == 12
        assert {table for _, table in await partition_of_each(scratch)} == {
            "audit_partitions.audit_log_2025",
            "audit_partitions.audit_log_default",
        }
        async with db.transaction() as session:
            after = await audit.append(session, WRITER, action="WRITE", operation="after")
        assert after.id == 13  # the same id sequence
        assert (await links(db)).checked == 13

        await db.dispose()
        await migrate.downgrade_engine(scratch, "0017")
        assert await kind(scratch) == "r"
        assert [r.id for r in await records(db)] == list(range(1, 14))
        assert (await links(db)).ok
        with pytest.raises(DBAPIError, match="append-only"):
            async with scratch.begin() as conn:
                await conn.execute(text("DELETE FROM audit_log"))
    finally:
        await db.dispose()
