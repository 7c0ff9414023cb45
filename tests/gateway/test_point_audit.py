"""A compiled point read (``beneficiary(idNumber:)``, ``claim``) writes its READ record on its own
read connection, before the response leaves; pages keep the group commit (issue 15)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage import audit
from gateway.storage.database import Database
from tests.conftest import GraphQLClient
from tests.factories import add_people
from tests.gateway.test_audit import PAGE, records
from tests.gateway.test_audit_shards import every_shard_held, links

POINT = """query Point($n: String!) { beneficiary(idNumber: $n) {
  id name identities { category } } }"""


async def test_a_point_read_is_recorded_on_its_own_connection_not_in_a_group(
    gql: GraphQLClient, db: Database
) -> None:
    [person] = await add_people(db, 1)
    group = audit.group(db)
    writes = group.writes
    data = await gql.data(POINT, {"n": person.id_number})
    assert data["beneficiary"]["name"] == person.name
    [record] = await records(db)
    assert group.writes == writes, "no group commit for a point read"
    assert record.action == "READ"
    assert record.operation == "query Point"
    assert record.beneficiary_ids == [person.id]
    assert record.field_paths == [
        "beneficiary(idNumber)",
        "beneficiary.identities",
        "beneficiary.identities.category",
        "beneficiary.name",
    ]
    assert (await links(db)).ok
    # A page still goes through the group commit.
    await gql.data(PAGE)
    assert group.writes == writes + 1
    assert len(await records(db)) == 2


async def test_no_point_answer_leaves_before_its_record_is_committed(
    gql: GraphQLClient, db: Database, admin: AsyncEngine
) -> None:
    [person] = await add_people(db, 1)
    await answered_once_recorded(gql, db, admin, POINT, person, before=0)


async def answered_once_recorded(
    gql: GraphQLClient, db: Database, admin: AsyncEngine, query: str, person: Any, before: int
) -> None:
    """While every audit shard is held, ``query`` of ``person`` gets no answer and adds no
    record; once they are free it is answered, with one record more than ``before``."""
    async with every_shard_held(admin):
        request = asyncio.create_task(gql.post(query, {"n": person.id_number}))
        await asyncio.sleep(0.5)
        assert not request.done(), "no response before its record is written"
        assert len(await records(db)) == before
    body = await request
    assert body["data"]["beneficiary"]["name"] == person.name
    assert len(await records(db)) == before + 1
    assert (await links(db)).ok


async def refused_record(
    gql: GraphQLClient, admin: AsyncEngine, query: str, id_number: str
) -> None:
    """``query`` for ``id_number`` while the app role may not insert audit records: the answer
    carries no data, only the INTERNAL ``audit unavailable`` error."""
    async with admin.begin() as conn:
        await conn.execute(text("REVOKE INSERT ON audit_log FROM medgw_app"))
    try:
        body = await gql.post(query, {"n": id_number})
    finally:
        async with admin.begin() as conn:
            await conn.execute(text("GRANT INSERT ON audit_log TO medgw_app"))
    assert body["data"] is None
    [error] = body["errors"]
    assert "audit unavailable" in error["message"]
    assert error["extensions"]["code"] == "INTERNAL"


async def test_a_point_read_whose_record_fails_carries_no_data(
    gql: GraphQLClient, db: Database, admin: AsyncEngine
) -> None:
    [person] = await add_people(db, 1)
    await refused_record(gql, admin, POINT, person.id_number)
    assert await records(db) == []
    # The connection was rolled back and given back: the next read is answered and recorded.
    assert (await gql.data(POINT, {"n": person.id_number}))["beneficiary"]["name"] == person.name
    assert len(await records(db)) == 1


async def test_a_point_read_whose_append_raises_carries_no_data(
    gql: GraphQLClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    [person] = await add_people(db, 1)

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("audit store down")

    monkeypatch.setattr(audit, "append", broken)
    body = await gql.post(POINT, {"n": person.id_number})
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL"
    assert await records(db) == []


# -- the same for a prepared read (answered without the pipeline: gateway.read_compiler) --------

PREPARED = POINT.replace("query Point(", "query PreparedPoint(")
"""A document of this module's own: the app outlives a test, and its prepared reads with it."""


async def prepared(gql: GraphQLClient, db: Database) -> Any:
    """A person whose point read ``PREPARED`` was answered twice (so it is a prepared read)."""
    [person] = await add_people(db, 1)
    for _ in range(2):
        assert (await gql.data(PREPARED, {"n": person.id_number}))["beneficiary"]
    assert len(await records(db)) == 2
    return person


async def test_no_prepared_answer_leaves_before_its_record_is_committed(
    gql: GraphQLClient, db: Database, admin: AsyncEngine
) -> None:
    person = await prepared(gql, db)
    await answered_once_recorded(gql, db, admin, PREPARED, person, before=2)


async def test_a_prepared_read_whose_record_fails_carries_no_data(
    gql: GraphQLClient, db: Database, admin: AsyncEngine
) -> None:
    person = await prepared(gql, db)
    await refused_record(gql, admin, PREPARED, person.id_number)
    assert len(await records(db)) == 2


async def test_a_prepared_read_whose_first_record_fails_is_answered_by_the_pipeline(
    gql: GraphQLClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing was committed: the pipeline reads again and its record is written, once."""
    person = await prepared(gql, db)
    append = audit.append
    calls: list[int] = []

    async def once_broken(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("audit store down for a moment")
        return await append(*args, **kwargs)

    monkeypatch.setattr(audit, "append", once_broken)
    body = await gql.post(PREPARED, {"n": person.id_number})
    assert body["data"]["beneficiary"]["name"] == person.name
    assert len(calls) == 2
    assert len(await records(db)) == 3
    assert (await links(db)).ok
    assert db.engine.sync_engine.pool.checkedout() == 0, "the prepared read's connection is back"


async def test_a_failed_point_or_prepared_read_gives_its_connections_back(
    gql: GraphQLClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    person = await prepared(gql, db)

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("audit store down")

    monkeypatch.setattr(audit, "append", broken)
    for document in (POINT, PREPARED, PREPARED):
        body = await gql.post(document, {"n": person.id_number})
        assert body["data"] is None
        assert db.engine.sync_engine.pool.checkedout() == 0, document
