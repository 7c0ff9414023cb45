"""Readers of a claim's settlement events and lines name the claim's year, so that PostgreSQL
plans a read of that year's partition only (migration 0019), not an index probe in every
year's: the resolvers' loaders, the settlement's claim states, the recoveries' claim numbers.

Each test runs the reader, takes the statements it sent through SQLAlchemy with their
parameters, and asks PostgreSQL for their plans (``EXPLAIN``, plan-time pruning with the values
bound): the partitions named there are the ones it would read.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import event, select

from gateway.app import load_access_for_schema
from gateway.auth import Principal
from gateway.config import Settings
from gateway.storage import models
from gateway.storage.database import Database
from policies.benefits import PolicySet
from resolvers import recoveries, settlement
from resolvers.context import Context
from tests.conftest import GraphQLClient
from tests.factories import add_people
from tests.resolvers.test_settlement import person, settle, stay

MI = Principal("reader", "medical_insurance", "mi-5104", ("5104",), "test")
_, ACCESS = load_access_for_schema()
YEAR = 2025
PARTITIONED = {"claims", "settlements", "settlement_lines"}


def relations(plan: Any) -> Iterator[str]:
    if isinstance(plan, dict):
        if "Relation Name" in plan:
            yield plan["Relation Name"]
        for value in plan.values():
            yield from relations(value)
    elif isinstance(plan, list):
        for item in plan:
            yield from relations(item)


async def partitions_read(db: Database, run: Callable[[], Awaitable[Any]]) -> dict[str, set[str]]:
    """For each partitioned table that ``run``'s statements read: the relations planned."""
    sent: list[tuple[str, Any]] = []

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", before)
    try:
        await run()
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", before)
    read: dict[str, set[str]] = {}
    async with db.sessions() as session:
        connection = await session.connection()
        for statement, parameters in sent:
            result = await connection.exec_driver_sql(
                f"EXPLAIN (FORMAT JSON) {statement}", parameters
            )
            plan = result.scalar_one()
            for name in relations(json.loads(plan) if isinstance(plan, str) else plan):
                table = name.rsplit("_", 1)[0]
                if table in PARTITIONED:
                    read.setdefault(table, set()).add(name)
    return read


def only(year: int | str, *tables: str) -> dict[str, set[str]]:
    return {t: {f"{t}_{year}"} for t in tables}


@pytest.fixture
def context(db: Database, settings: Settings, policies: PolicySet) -> Context:
    return Context(None, None, "test", MI, settings, db, policies, ACCESS)  # type: ignore[arg-type]


async def a_claim(db: Database) -> models.Claim:
    """A claim of :data:`YEAR` (its partition exists)."""
    [person] = await add_people(db, 1, claims_each=1, year=YEAR)
    async with db.sessions() as session:
        found = await session.scalars(
            select(models.Claim).where(models.Claim.beneficiary_id == person.id)
        )
        return found.one()


async def test_the_loaders_read_the_claims_year_only(db: Database, context: Context) -> None:
    claim = await a_claim(db)

    async def run() -> None:
        assert await context.loaders.settlements.load((claim.id, YEAR)) == []
        assert await context.loaders.lines.load((1, YEAR)) == []

    assert await partitions_read(db, run) == only(YEAR, "settlements", "settlement_lines")
    await context.close()


async def test_claim_states_read_the_claims_year_only(gql: GraphQLClient, db: Database) -> None:
    """A settled claim of 2023 (a year before the first partition: its rows are in DEFAULT)."""
    await person(gql, ("MINIMUM_LIVING", "2021-01-01", None))
    await settle(gql, stay("C-PART-1", "2023-03-01", "10000.00", "9000.00"))
    async with db.sessions() as session:
        claim = (
            await session.scalars(
                select(models.Claim).where(models.Claim.claim_number == "C-PART-1")
            )
        ).one()

    async def run() -> None:
        async with db.sessions() as session:
            [state] = await settlement.claim_states(session, [claim])
            assert state is not None

    read = await partitions_read(db, run)
    assert read == only("default", "settlements", "settlement_lines")


async def test_recoveries_name_their_claims_in_their_year(db: Database, context: Context) -> None:
    claim = await a_claim(db)
    recovery = models.Recovery(claim_id=claim.id, year=YEAR)

    async def run() -> None:
        assert await recoveries.claim_numbers(context, [recovery]) == {claim.id: claim.claim_number}

    assert await partitions_read(db, run) == only(YEAR, "claims")
    await context.close()
