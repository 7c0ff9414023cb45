"""Reads over sets answer after a bulk load on a connection that ran them before.

PostgreSQL keeps a prepared statement's plan per connection, and after five runs it may keep a
generic plan priced with the statistics of that moment: made while the tables held a few rows,
it scans them in nested loops, which takes seconds to minutes once they hold tens of thousands
(README, *Generic plans after a bulk load*). One connection in the pool, so that every request
runs on the connection that ran it before; the bulk load is plain SQL without ``ANALYZE``.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config import Settings
from gateway.storage.database import Database
from policies.benefits import PolicySet
from tests.factories import add_people
from tests.gateway.test_audit_append_probe import own_app

LOADED = 50_000
LOAD = [
    "INSERT INTO beneficiaries (id, id_number, name, gender, birth_date, region_code, created_by) "
    "SELECT md5('bulk' || i)::uuid, '8' || lpad(i::text, 17, '0'), 'x' || i, 'MALE', "
    "date '1970-01-01', (ARRAY['510402', '510403', '370811', '320102'])[1 + i % 4], 'bulk' "
    f"FROM generate_series(1, {LOADED}) i",
    "INSERT INTO identities (beneficiary_id, category, valid_from, reference, department, org) "
    "SELECT md5('bulk' || i)::uuid, 'MINIMUM_LIVING', date '2020-01-01', 'B' || i, "
    f"'civil_affairs', 'b' FROM generate_series(1, {LOADED}, 10) i",
    "INSERT INTO monitoring_flags (beneficiary_id, category, valid_from, reference, department, "
    "org) SELECT md5('bulk' || i)::uuid, 'MONITORED', date '2020-01-01', 'F' || i, "
    f"'rural_revitalisation', 'b' FROM generate_series(1, {LOADED}, 7) i",
]
READS = {
    "category page": (
        '{ beneficiaries(regionPrefix: "5104", category: MINIMUM_LIVING, first: 20) '
        "{ edges { node { id name } } } }"
    ),
    "statistics": (
        '{ statistics(year: 2023, regionPrefix: "5104") '
        "{ persons byCategory { category persons } } }"
    ),
}


async def test_set_reads_answer_after_a_bulk_load_on_the_connection_that_ran_them(
    settings: Settings, database_url: str, policies: PolicySet, db: Database, admin: AsyncEngine
) -> None:
    # As in a new deployment: the pages earlier tests' rows left (``clean`` deletes them) gone.
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM"))
    await add_people(db, 6)
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("ANALYZE"))
    one = {"pool_size": 1, "statement_timeout_ms": 3000}
    async with own_app(settings, database_url, policies, **one) as (client, _):
        for _ in range(8):  # more than the five runs after which a generic plan may be kept
            for query in READS.values():
                await client.data(query)
        async with admin.begin() as conn:
            for statement in LOAD:
                await conn.execute(text(statement))
        for query in READS.values():  # a 503 (the statement timeout) fails here
            await client.data(query)
