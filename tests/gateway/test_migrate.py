"""Migrations run up, down and up again on an empty database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway import migrate
from gateway.storage.models import Base


@pytest.fixture
async def scratch(admin_url: str) -> AsyncIterator[AsyncEngine]:
    """A second, empty database on the test server."""
    url = make_url(admin_url)
    name = f"medgw_scratch_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_async_engine(url.set(database=name))
    yield engine
    await engine.dispose()
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    await admin.dispose()


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_upgrade_downgrade_upgrade_leaves_the_full_schema(scratch: AsyncEngine) -> None:
    expected = set(Base.metadata.tables)
    await migrate.upgrade_engine(scratch)
    assert await _tables(scratch) - {"alembic_version"} == expected
    assert await migrate.current_revision(scratch) is not None
    await migrate.downgrade_engine(scratch, "base")
    assert await _tables(scratch) - {"alembic_version"} == set()
    await migrate.upgrade_engine(scratch)
    assert await _tables(scratch) - {"alembic_version"} == expected


async def test_models_and_migrations_agree(scratch: AsyncEngine) -> None:
    """Autogenerate finds nothing to do after upgrading: no model change without a migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    await migrate.upgrade_engine(scratch)
    async with scratch.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
        )
    assert diff == []


async def test_audit_log_refuses_update_delete_and_truncate(scratch: AsyncEngine) -> None:
    await migrate.upgrade_engine(scratch)
    async with scratch.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO audit_log (at, action, department, org, subject, beneficiary_ids, "
                "field_paths, detail, prev_hash, hash) VALUES (now(), 'READ', 'd', 'o', 's', "
                "'{}', '{}', '{}', 'p', 'h')"
            )
        )
    for statement in (
        "UPDATE audit_log SET org = 'x'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with scratch.begin() as conn:
                await conn.execute(text(statement))
