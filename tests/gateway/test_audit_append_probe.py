"""Probing the point read's record appended in one statement (migration 0021's ``audit_append``)
and the bare connection it runs on (``resolvers.context.Context.read``), as an attacker or an
unlucky operator would: concurrency of every kind of writer, text whose bytes could differ
between Python and PostgreSQL, connections killed at the worst moment, timeouts while a shard is
held, mutations and batches, and a pool too small for the burst.

Every case holds the rule of ACCESS.md: an answer carries personal data only once its READ record
is committed, and every record stored verifies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from gateway.app import create_app
from gateway.auth import Principal, issue_token
from gateway.config import Settings
from gateway.storage import audit, models
from gateway.storage.database import Database, Held
from policies.benefits import PolicySet
from tests.factories import add_people, id_number
from tests.gateway.test_audit import records
from tests.gateway.test_audit_shards import every_shard_held, links, until
from tests.gateway.test_reconnection import Pool

PAGE = """query People { beneficiaries(first: 10) { edges { node {
  name identities { category } } } } }"""
POINT = "query P($n: String!) { beneficiary(idNumber: $n) { name } }"
SETTLE = "mutation($i: SettleClaimInput!) { settleClaim(input: $i) { assistance } }"
REGISTER = "mutation($i: RegisterBeneficiaryInput!) { registerBeneficiary(input: $i) { id name } }"


SHARD_HELD_BY_OTHERS = f"""SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
  AND pid <> :me AND classid::text::bigint = {audit._CHAIN_LOCK >> 32}
  AND objid::text::bigint = {audit._CHAIN_LOCK & 0xFFFFFFFF}"""
"""Whether a backend other than ``:me`` holds audit shard 0's lock (an advisory lock on a bigint
key shows its high half as ``classid``, its low half as ``objid``)."""

# --- helpers -----------------------------------------------------------------------------------


class GraphQLClient:
    """Posts GraphQL to an app as a medical insurance reader (tests/conftest.py's client)."""

    def __init__(self, client: httpx.AsyncClient, secret: str) -> None:
        self.client = client
        token = issue_token(
            secret,
            subject="tester",
            department="medical_insurance",
            org="mi-5104",
            regions=("5104", "3708", "32", "43"),
        )
        self.headers = {"Authorization": f"Bearer {token}"}

    async def post(
        self, query: str, variables: dict[str, Any] | None = None, status: int = 200
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=self.headers
        )
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()
        return body

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = await self.post(query, variables)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data


@pytest.fixture
def gql(client: httpx.AsyncClient, settings: Settings) -> GraphQLClient:
    """This module's client of the session's app (shadows tests/conftest.py's ``gql``)."""
    return GraphQLClient(client, settings.jwt_secret)


@contextlib.asynccontextmanager
async def in_process(
    settings: Settings, db: Database, policies: PolicySet
) -> AsyncIterator[GraphQLClient]:
    """A client of an app built with ``settings`` on ``db`` (as tests/conftest.py's)."""
    app = create_app(settings, db=db, policies=policies)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            yield GraphQLClient(client, settings.jwt_secret)


def checked_out(db: Database) -> int:
    pool = db.engine.sync_engine.pool
    assert isinstance(pool, QueuePool)
    return int(pool.checkedout())


def named(body: dict[str, Any], person: models.Beneficiary) -> bool:
    """Whether ``body`` is an answer with ``person``'s name and no error."""
    data = body.get("data") or {}
    return "errors" not in body and (data.get("beneficiary") or {}).get("name") == person.name


async def prepare(gql: GraphQLClient, query: str, person: models.Beneficiary) -> None:
    """Answer ``query`` twice (the pipeline, then a prepared read from then on)."""
    for _ in range(2):
        assert named(await gql.post(query, {"n": person.id_number}), person)


def settle(person: models.Beneficiary, number: str) -> dict[str, Any]:
    return {
        "claimNumber": number,
        "idNumber": person.id_number,
        "type": "INPATIENT",
        "hospitalLevel": "SECONDARY",
        "admissionDate": "2023-03-01",
        "totalCost": "30000.00",
        "policyScopeCost": "26000.00",
    }


def register(sequence: int) -> dict[str, Any]:
    from datetime import date

    return {
        "idNumber": id_number("510402", date(1980, 2, 3), sequence),
        "name": f"探针{sequence}",
        "regionCode": "510402",
    }


def linear(stored: Sequence[models.AuditRecord]) -> dict[int, int]:
    """Assert each shard of ``stored`` (in id order) is one chain from the genesis: no two
    records with one predecessor, each linked to the record before it in its shard. Returns the
    number of records of each shard."""
    heads: dict[int, str] = {}
    seen: dict[int, set[str]] = {}
    counts: dict[int, int] = {}
    for record in stored:
        prev = heads.get(record.shard, audit.GENESIS)
        assert record.prev_hash not in seen.setdefault(record.shard, set()), record.id
        assert record.prev_hash == prev, f"record {record.id} forks shard {record.shard}"
        assert record.hash == audit.record_digest(prev, record), record.id
        seen[record.shard].add(record.prev_hash)
        heads[record.shard] = record.hash
        counts[record.shard] = counts.get(record.shard, 0) + 1
    return counts


async def terminate(admin: AsyncEngine, pid: int) -> None:
    """``pg_terminate_backend(pid)``, returning once the backend is gone (each look in a
    transaction of its own: a transaction keeps its first view of ``pg_stat_activity``)."""
    async with admin.connect() as conn:
        assert await conn.scalar(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
    for _ in range(500):
        async with admin.connect() as conn:
            alive = await conn.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid}
            )
        if not alive:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"backend {pid} still alive")


async def lock_waiters(admin: AsyncEngine) -> list[int]:
    """The backends waiting for an advisory lock (an audit shard's)."""
    async with admin.connect() as conn:
        rows = await conn.execute(
            text("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        )
        return [int(pid) for (pid,) in rows]


async def until_async(condition: Any, seconds: float = 10) -> Any:
    for _ in range(int(seconds / 0.02)):
        found = await condition()
        if found:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


@contextlib.asynccontextmanager
async def own_app(
    settings: Settings, database_url: str, policies: PolicySet, **update: Any
) -> AsyncIterator[tuple[GraphQLClient, Database]]:
    """An app of its own on its own engine, ``settings`` changed by ``update``."""
    changed = settings.model_copy(update=update)
    own = Database.connect(database_url, changed)
    try:
        async with in_process(changed, own, policies) as client:
            yield client, own
    finally:
        await own.dispose()


def spy_alone(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The operations of the records appended by one statement on a bare connection from now
    on (:func:`gateway.storage.audit._append_alone`)."""
    calls: list[str | None] = []
    original = audit._append_alone

    async def spied(driver: Any, record: audit.Entry) -> audit.Entry:
        calls.append(record.operation)
        return await original(driver, record)

    monkeypatch.setattr(audit, "_append_alone", spied)
    return calls


def lose_commits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A mutation's held transaction fails to commit once its payload's READ is appended in it
    (the no-op commit of no transaction held, at a transaction's start, still passes)."""
    commit = Held.commit

    async def lost(self: Held) -> None:
        if self.session is None:
            return await commit(self)
        raise RuntimeError("commit lost")

    monkeypatch.setattr(Held, "commit", lost)


# --- 1. concurrency of every kind of writer ----------------------------------------------------


@pytest.mark.parametrize("shards", [1, 2])
async def test_mixed_concurrency_keeps_every_shard_one_chain(
    gql: GraphQLClient, db: Database, monkeypatch: pytest.MonkeyPatch, shards: int
) -> None:
    """Prepared point reads (one statement, outside any transaction), settlements (a WRITE and
    its payload's READ in one transaction) and pages (group commits) all at once, with fewer
    shards than writers: they queue on a shard's lock, and still each shard is one chain."""
    monkeypatch.setattr(audit, "_SHARDS", shards)
    people = await add_people(db, 4)
    await prepare(gql, POINT, people[0])
    alone = spy_alone(monkeypatch)
    points = [people[n % 4] for n in range(24)]
    tasks = [gql.post(POINT, {"n": p.id_number}) for p in points]
    tasks += [gql.post(SETTLE, {"i": settle(people[n], f"PR-{n}")}) for n in range(4)]
    tasks += [gql.post(PAGE) for _ in range(4)]
    bodies = await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    assert all(named(body, person) for body, person in zip(bodies, points, strict=False))
    assert all("errors" not in body and body["data"] for body in bodies[24:]), bodies[24:]
    stored = await records(db)
    kinds = [(r.action, r.operation) for r in stored]
    assert kinds.count(("READ", "query P")) == 2 + 24
    assert kinds.count(("WRITE", "settleClaim")) == 4
    assert kinds.count(("READ", "mutation settleClaim")) == 4
    assert kinds.count(("READ", "query People")) == 4
    assert len(stored) == 2 + 24 + 8 + 4
    assert len(alone) == 24, "every prepared point read's record by one statement"
    counts = linear(stored)
    assert set(counts) <= set(range(shards))
    result = await links(db)
    assert (result.ok, result.checked) == (True, len(stored)), result
    # Each settlement's payload READ links right after its WRITE (one transaction).
    by_prev = {r.prev_hash: r for r in stored}
    for write in (r for r in stored if r.action == "WRITE"):
        assert by_prev[write.hash].operation == "mutation settleClaim"
    assert checked_out(db) == 0


# --- 2. text whose bytes could differ between Python and PostgreSQL ----------------------------


ODD_TEXTS = {
    "emoji-combining": " # 🏥👩\u200d⚕️ e\u0301 \u0301\u0301 ﷽ 𝕏",
    "line-separators": "\n# \u2028 \u2029 \u0085 \u000b \u000c",
    "backslashes-dollars": " # \\ \\\\ $$ $1 $body$ ' \" E'\\x00' \\u0000 \\ud800",
    "crlf-tab": "\r\n#\t\r\n\t",
    "bom-noncharacters": " # \ufeff \ufffe \uffff \U0010ffff \U000e0001",
    "json-lookalike": ' # ","hash":"' + "0" * 64 + '"}',
}


@pytest.mark.parametrize("suffix", list(ODD_TEXTS.values()), ids=list(ODD_TEXTS))
async def test_odd_query_text_is_recorded_byte_for_byte_and_verifies(
    gql: GraphQLClient, db: Database, suffix: str
) -> None:
    """The query text (kept in the record, hashed by PostgreSQL from the canonical JSON Python
    sent) with characters whose encodings are easy to get wrong: the pipeline's records and the
    prepared read's one-statement record all verify and keep the text exactly."""
    [person] = await add_people(db, 1)
    query = POINT + suffix
    for n in range(1, 4):  # the pipeline twice, then the prepared read
        assert named(await gql.post(query, {"n": person.id_number}), person)
        stored = await records(db)
        assert len(stored) == n
        assert stored[-1].query_text == query
        assert stored[-1].query_hash == audit.query_hash(query)
    linear(stored)
    assert (await links(db)).ok


TWO = """query Two($a: String!, $b: String!) {
  first: beneficiary(idNumber: $a) { name }
  second: beneficiary(idNumber: $b) { name gender } }"""


async def test_a_prepared_read_of_two_persons_is_one_record_naming_both(
    gql: GraphQLClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two point roots: both statements and the one record on the request's bare connection;
    the record names both persons and every field path, and verifies."""
    people = await add_people(db, 2)
    variables = {"a": people[0].id_number, "b": people[1].id_number}
    for _ in range(2):
        await gql.data(TWO, variables)
    alone = spy_alone(monkeypatch)
    data = await gql.data(TWO, variables)
    assert (data["first"]["name"], data["second"]["name"]) == (people[0].name, people[1].name)
    assert alone == ["query Two"]
    stored = await records(db)
    assert len(stored) == 3
    assert sorted(stored[-1].beneficiary_ids) == sorted(p.id for p in people)
    assert stored[-1].field_paths == [
        "beneficiary(idNumber)",
        "beneficiary.gender",
        "beneficiary.name",
    ]
    linear(stored)
    assert (await links(db)).ok
    assert checked_out(db) == 0


async def test_a_nul_in_the_query_text_is_refused_with_nothing_written(
    gql: GraphQLClient, db: Database
) -> None:
    """PostgreSQL text cannot hold NUL, so no record could keep the query: it is refused before
    anything runs (400 BAD_INPUT), on the pipeline's path and beside a prepared read."""
    [person] = await add_people(db, 1)
    await prepare(gql, POINT, person)
    for query in (POINT + " # \u0000", POINT + " # NUL \u0000 again"):
        for _ in range(3):
            body = await gql.post(query, {"n": person.id_number}, status=400)
            assert body["data"] is None, body
            assert body["errors"][0]["extensions"]["code"] == "BAD_INPUT"
    assert len(await records(db)) == 2
    assert (await links(db)).ok
    assert checked_out(db) == 0


async def test_a_nul_in_the_query_text_is_refused_as_bad_input(
    gql: GraphQLClient, db: Database
) -> None:
    [person] = await add_people(db, 1)
    body = await gql.post(POINT + " # \u0000", {"n": person.id_number}, status=400)
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_INPUT", error
    assert "U+0000" in error["message"]
    assert await records(db) == []


async def test_one_poisoned_record_does_not_fail_the_reads_grouped_with_it(
    gql: GraphQLClient, db: Database, admin: AsyncEngine
) -> None:
    """A record the database refuses (here: a check constraint added for the test, refusing a
    query text that holds ``POISON``) fails its own request only; the reads grouped with it
    are written again one by one and answered."""
    await add_people(db, 2)
    group = audit.group(db)
    async with admin.begin() as conn:
        await conn.execute(
            text(
                "ALTER TABLE audit_log ADD CONSTRAINT probe_poison "
                "CHECK (query_text NOT LIKE '%POISON%') NOT VALID"
            )
        )
    try:
        async with every_shard_held(admin):
            # Documents seen for the first time (not prepared reads, which the pipeline would
            # answer again after a failed record): the group that waits for the shard, then four
            # clean reads and the poisoned one, queued together for the next group.
            first = asyncio.create_task(gql.post(PAGE + " # first"))
            await until(lambda: group.writing == 1)
            clean = [asyncio.create_task(gql.post(PAGE + f" # clean {n}")) for n in range(4)]
            poisoned = asyncio.create_task(gql.post(PAGE + " # POISON"))
            await until(lambda: group.waiting == 5)
        assert (await first)["data"]
        refused = await poisoned
        bodies = await asyncio.gather(*clean)
    finally:
        async with admin.begin() as conn:
            await conn.execute(text("ALTER TABLE audit_log DROP CONSTRAINT probe_poison"))
    assert refused["data"] is None
    assert "audit unavailable" in refused["errors"][0]["message"]
    assert [bool(body.get("data")) for body in bodies] == [True] * 4, bodies
    stored = await records(db)
    assert len(stored) == 5
    assert not any("POISON" in (r.query_text or "") for r in stored)
    assert (await links(db)).ok


async def test_a_lone_surrogate_or_a_nul_in_variables_is_refused_before_any_read(
    gql: GraphQLClient, db: Database
) -> None:
    [person] = await add_people(db, 1)
    await prepare(gql, POINT, person)
    raw = (
        '{"query": "' + POINT + ' # \\ud800", "variables": {"n": "' + person.id_number + '"}}'
    ).encode()
    response = await gql.client.post(
        "/graphql", content=raw, headers={**gql.headers, "content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["data"] is None
    body = await gql.post(POINT, {"n": person.id_number + "\u0000"})
    assert body["data"] == {"beneficiary": None}
    assert body["errors"][0]["extensions"]["code"] == "BAD_INPUT"
    assert len(await records(db)) == 2


async def test_a_megabyte_of_query_text_is_recorded_and_verifies(
    db: Database, settings: Settings, database_url: str, policies: PolicySet
) -> None:
    [person] = await add_people(db, 1)
    filler = "é🏥 \\ $$ 中文 \u2028" * 80_000  # ~1 MB of text, ~1.5 MB as UTF-8
    query = POINT + " # " + filler
    assert len(query.encode()) > 1_000_000
    async with own_app(settings, database_url, policies, max_body_bytes=4_000_000) as (client, own):
        for _ in range(3):
            assert named(await client.post(query, {"n": person.id_number}), person)
            assert checked_out(own) == 0
    stored = await records(db)
    assert len(stored) == 3
    assert all(r.query_text == query for r in stored)
    linear(stored)
    assert (await links(db)).ok


# --- 3. a connection killed at the worst moment ------------------------------------------------


def kill_before_first_append(monkeypatch: pytest.MonkeyPatch, admin: AsyncEngine) -> list[int]:
    """Make the first one-statement append (``audit._append_alone``) meet its connection
    killed (the server process ended) just before it is sent; returns the list that gets the
    killed backend's pid."""
    original = audit._append_alone
    killed: list[int] = []

    async def killing(driver: Any, record: audit.Entry) -> audit.Entry:
        if not killed:
            killed.append(driver.get_server_pid())
            await terminate(admin, killed[0])
        return await original(driver, record)

    monkeypatch.setattr(audit, "_append_alone", killing)
    return killed


@pytest.mark.parametrize("prepared", [True, False], ids=["prepared", "pipeline"])
async def test_a_connection_killed_between_the_read_and_its_record(
    gql: GraphQLClient,
    db: Database,
    admin: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    prepared: bool,
) -> None:
    """The compiled read is done on the bare connection, which dies before the record's
    statement: no record was committed, so the read runs again on a live connection and the
    answer carries data with exactly one record; the dead connection is not pooled."""
    [person] = await add_people(db, 1)
    query = POINT + (" # killed, prepared" if prepared else " # killed, pipeline")
    if prepared:
        await prepare(gql, query, person)
    before = len(await records(db))
    original = audit._append_alone
    killed = kill_before_first_append(monkeypatch, admin)
    with caplog.at_level(logging.WARNING):
        body = await asyncio.wait_for(gql.post(query, {"n": person.id_number}), timeout=20)
    assert named(body, person), body
    assert len(killed) == 1
    stored = await records(db)
    assert len(stored) == before + 1
    assert stored[-1].query_text == query
    assert (await links(db)).ok
    assert checked_out(db) == 0
    # No dead connection in the pool: the next reads meet none.
    monkeypatch.setattr(audit, "_append_alone", original)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        for _ in range(12):
            assert named(await gql.post(query, {"n": person.id_number}), person)
    assert "connection lost" not in caplog.text
    assert len(await records(db)) == before + 13


@pytest.mark.parametrize("prepared", [True, False], ids=["prepared", "pipeline"])
async def test_a_connection_killed_while_its_record_waits_for_a_shard(
    gql: GraphQLClient,
    db: Database,
    admin: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
    prepared: bool,
) -> None:
    [person] = await add_people(db, 1)
    query = POINT + (" # waits, prepared" if prepared else " # waits, pipeline")
    if prepared:
        await prepare(gql, query, person)
    before = len(await records(db))
    with caplog.at_level(logging.WARNING):
        async with every_shard_held(admin):
            request = asyncio.create_task(gql.post(query, {"n": person.id_number}))
            [waiting] = await until_async(lambda: lock_waiters(admin))
            await terminate(admin, waiting)
            # Run again on another connection, which waits for the shard in turn.
            [again] = await until_async(lambda: lock_waiters(admin))
            assert again != waiting
            assert not request.done(), "no answer before its record is committed"
            assert len(await records(db)) == before
        body = await asyncio.wait_for(request, timeout=20)
    assert named(body, person), body
    assert len(await records(db)) == before + 1
    assert (await links(db)).ok
    assert checked_out(db) == 0
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        for _ in range(12):
            assert named(await gql.post(query, {"n": person.id_number}), person)
    assert "connection lost" not in caplog.text


async def test_after_every_pooled_connection_died_a_prepared_read_still_answers_once(
    db: Database,
    admin: AsyncEngine,
    settings: Settings,
    database_url: str,
    policies: PolicySet,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server restart: every idle connection of the pool is dead. The bare path's errors do
    not pass SQLAlchemy's error handling (which drops the pool's older connections), yet the
    prepared read is answered, with one record, and the pool is clean afterwards."""
    [person] = await add_people(db, 1)
    pool = Pool(database_url, settings)
    try:
        async with in_process(settings, pool.db, policies) as client:
            await prepare(client, POINT, person)
            # Fill the pool (pool_size 2): two requests at once, each holding a connection.
            async with every_shard_held(admin):
                held = [
                    asyncio.create_task(client.post(POINT, {"n": person.id_number}))
                    for _ in range(2)
                ]
                await until_async(
                    lambda: _at_least(lock_waiters(admin), 2)  # both wait with a connection
                )
            assert all(named(body, person) for body in await asyncio.gather(*held))
            assert len(await records(db)) == 4
            assert await pool.terminate(admin) >= 2
            with caplog.at_level(logging.WARNING):
                body = await asyncio.wait_for(
                    client.post(POINT, {"n": person.id_number}), timeout=30
                )
            assert named(body, person), body
            assert len(await records(db)) == 5
            caplog.clear()
            with caplog.at_level(logging.WARNING):
                for _ in range(6):
                    assert named(await client.post(POINT, {"n": person.id_number}), person)
            assert "connection lost" not in caplog.text
            assert checked_out(pool.db) == 0
    finally:
        await pool.db.dispose()
    assert len(await records(db)) == 11
    assert (await links(db)).ok


async def _at_least(found: Any, count: int) -> bool:
    return len(await found) >= count


async def test_a_request_cancelled_while_its_record_waits_leaves_the_pool_clean(
    gql: GraphQLClient, db: Database, admin: AsyncEngine
) -> None:
    """The client goes away while the record's statement waits for a shard: the request's task
    is cancelled; the connection comes back usable (or is dropped), the chain stays whole, and
    the next read is answered with its record."""
    [person] = await add_people(db, 1)
    await prepare(gql, POINT, person)
    async with every_shard_held(admin):
        request = asyncio.create_task(gql.post(POINT, {"n": person.id_number}))
        await until_async(lambda: lock_waiters(admin))
        request.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await request
        await until(lambda: checked_out(db) == 0)
        await asyncio.sleep(0.3)
    stored = len(await records(db))
    assert stored in (2, 3), "the cancelled statement wrote at most its own record"
    for _ in range(12):
        assert named(await gql.post(POINT, {"n": person.id_number}), person)
    assert len(await records(db)) == stored + 12
    assert (await links(db)).ok
    assert checked_out(db) == 0


# --- 4. statement_timeout while a shard is held ------------------------------------------------


@pytest.mark.parametrize("prepared", [True, False], ids=["prepared", "pipeline"])
async def test_a_statement_timeout_while_every_shard_is_held_answers_no_data(
    db: Database,
    admin: AsyncEngine,
    settings: Settings,
    database_url: str,
    policies: PolicySet,
    monkeypatch: pytest.MonkeyPatch,
    prepared: bool,
) -> None:
    """The record times out waiting for a shard: 503 UNAVAILABLE, nothing written, and the
    record tried once (a prepared read does not hand the request to the pipeline to read and
    wait again)."""
    [person] = await add_people(db, 1)
    query = POINT + (" # timeout, prepared" if prepared else " # timeout, pipeline")
    async with own_app(settings, database_url, policies, statement_timeout_ms=300) as (gql, own):
        if prepared:
            await prepare(gql, query, person)
        before = len(await records(db))
        attempts = spy_alone(monkeypatch)
        async with every_shard_held(admin):
            response = await asyncio.wait_for(
                gql.client.post(
                    "/graphql",
                    json={"query": query, "variables": {"n": person.id_number}},
                    headers=gql.headers,
                ),
                timeout=20,
            )
            # A busy database, not a lost connection: UNAVAILABLE, to be retried later.
            assert response.status_code == 503, response.text
            body = response.json()
            assert body["data"] is None, body
            [error] = body["errors"]
            assert error["extensions"]["code"] == "UNAVAILABLE"
            assert len(await records(db)) == before
            assert checked_out(own) == 0
            assert len(attempts) == 1, attempts
        assert named(await gql.post(query, {"n": person.id_number}), person)
        assert len(await records(db)) == before + 1
        assert checked_out(own) == 0
    assert (await links(db)).ok


# --- 5. mutations and batches never take the bare path -----------------------------------------


async def test_a_mutation_payloads_read_is_in_the_mutations_transaction(
    gql: GraphQLClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = spy_alone(monkeypatch)
    done = await gql.data(REGISTER, {"i": register(11)})
    assert done["registerBeneficiary"]["name"] == "探针11"
    stored = await records(db)
    assert [(r.action, r.operation) for r in stored] == [
        ("WRITE", "registerBeneficiary"),
        ("READ", "mutation registerBeneficiary"),
    ]
    assert stored[1].prev_hash == stored[0].hash
    async with db.engine.connect() as conn:
        xids = await conn.scalar(text("SELECT count(DISTINCT xmin::text) FROM audit_log"))
    assert xids == 1, "the WRITE and its payload's READ commit together"
    assert bare == []

    lose_commits(monkeypatch)
    body = await gql.post(REGISTER, {"i": register(12)})
    assert body["data"] is None
    assert "not stored" in body["errors"][0]["message"]
    assert len(await records(db)) == 2, "no READ of the rolled-back payload"
    assert bare == []
    async with db.sessions() as session:
        found = await session.scalar(
            text("SELECT count(*) FROM beneficiaries WHERE name = '探针12'")
        )
    assert found == 0
    assert checked_out(db) == 0


async def test_a_batch_of_point_reads_pages_and_a_mutation(
    db: Database,
    settings: Settings,
    database_url: str,
    policies: PolicySet,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    people = await add_people(db, 2)
    batch = [
        {"query": POINT, "variables": {"n": people[0].id_number}},
        {"query": POINT, "variables": {"n": people[1].id_number}},
        {"query": PAGE},
        {"query": REGISTER, "variables": {"i": register(21)}},
    ]
    async with own_app(settings, database_url, policies, max_batch=5) as (batching, own):
        app_client: httpx.AsyncClient = batching.client
        headers = batching.headers
        response = await asyncio.wait_for(
            app_client.post("/graphql", json=batch, headers=headers), timeout=30
        )
        assert response.status_code == 200, response.text
        bodies = response.json()
        assert named(bodies[0], people[0]), bodies[0]
        assert named(bodies[1], people[1]), bodies[1]
        assert bodies[2]["data"]["beneficiaries"]["edges"], bodies[2]
        assert bodies[3]["data"]["registerBeneficiary"]["name"] == "探针21", bodies[3]
        assert checked_out(own) == 0
        stored = await records(db)
        kinds = sorted((r.action, r.operation) for r in stored)
        assert kinds == sorted(
            [
                ("READ", "query P"),
                ("READ", "query P"),
                ("READ", "query People"),
                ("WRITE", "registerBeneficiary"),
                ("READ", "mutation registerBeneficiary"),
            ]
        )
        read_of = {tuple(r.beneficiary_ids): r for r in stored if r.operation == "query P"}
        assert set(read_of) == {(people[0].id,), (people[1].id,)}
        linear(stored)

        # The mutation's commit fails: its write and its payload's READ are gone, the point
        # read beside it keeps its answer and record.
        lose_commits(monkeypatch)
        again = [batch[0], {"query": REGISTER, "variables": {"i": register(22)}}]
        response = await asyncio.wait_for(
            app_client.post("/graphql", json=again, headers=headers), timeout=30
        )
        bodies = response.json()
        assert named(bodies[0], people[0]), bodies[0]
        assert bodies[1]["data"] is None, bodies[1]
        after = await records(db)
        assert len(after) == len(stored) + 1
        assert (after[-1].action, after[-1].operation) == ("READ", "query P")
        assert checked_out(own) == 0
    assert (await links(db)).ok


# --- 6. a pool too small for the burst ---------------------------------------------------------


@pytest.mark.parametrize("held", [False, True], ids=["free", "shards-held"])
async def test_prepared_point_reads_with_a_pool_of_one_neither_deadlock_nor_lose_records(
    db: Database,
    admin: AsyncEngine,
    settings: Settings,
    database_url: str,
    policies: PolicySet,
    held: bool,
) -> None:
    people = await add_people(db, 3)
    async with own_app(settings, database_url, policies, pool_size=1) as (gql, own):
        await prepare(gql, POINT, people[0])
        asked = [people[n % 3] for n in range(30)]
        async with contextlib.AsyncExitStack() as stack:
            if held:  # every record waits, each holding its request's one connection
                await stack.enter_async_context(every_shard_held(admin))
            tasks = [asyncio.create_task(gql.post(POINT, {"n": p.id_number})) for p in asked]
            tasks += [asyncio.create_task(gql.post(PAGE)) for _ in range(3)]
            if held:
                await until_async(lambda: _at_least(lock_waiters(admin), 2))
                await asyncio.sleep(0.5)
                assert not any(t.done() for t in tasks), "no answer before its record"
                assert len(await records(db)) == 2
        bodies = await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
        assert all(named(b, p) for b, p in zip(bodies, asked, strict=False)), [
            b.get("errors") for b in bodies if "errors" in b
        ]
        assert all(b.get("data") for b in bodies[30:])
        assert checked_out(own) == 0
    stored = await records(db)
    assert [(r.action, r.operation) for r in stored].count(("READ", "query P")) == 32
    assert len(stored) == 35
    linear(stored)
    assert (await links(db)).ok


async def test_settlements_and_point_reads_with_a_pool_of_one(
    db: Database, settings: Settings, database_url: str, policies: PolicySet
) -> None:
    people = await add_people(db, 4)
    async with own_app(settings, database_url, policies, pool_size=1) as (gql, own):
        await prepare(gql, POINT, people[0])
        tasks = [gql.post(POINT, {"n": people[n % 4].id_number}) for n in range(12)]
        tasks += [gql.post(SETTLE, {"i": settle(people[n], f"PS-{n}")}) for n in range(4)]
        bodies = await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
        assert all("errors" not in b for b in bodies), [b.get("errors") for b in bodies]
        assert checked_out(own) == 0
    stored = await records(db)
    assert len(stored) == 2 + 12 + 8
    linear(stored)
    assert (await links(db)).ok


async def test_a_batch_whose_point_record_waits_for_the_mutations_shard(
    db: Database,
    admin: AsyncEngine,
    settings: Settings,
    database_url: str,
    policies: PolicySet,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One shard; a batch of a settlement and a point read, the point read's record sent once
    the settlement's transaction (open until its payload is read and recorded) holds the shard:
    the record waits for it under the request context's lock, which the settlement's payload
    needs to finish. Both must be answered, the point read once the settlement committed."""
    people = await add_people(db, 2)
    original = audit._append_alone

    async def after_the_write(driver: Any, record: audit.Entry) -> audit.Entry:
        me = driver.get_server_pid()

        async def others() -> bool:
            async with admin.connect() as conn:
                found = await conn.scalar(text(SHARD_HELD_BY_OTHERS), {"me": me})
            return bool(found)

        with contextlib.suppress(AssertionError):
            await until_async(others, seconds=5)
        return await original(driver, record)

    monkeypatch.setattr(audit, "_append_alone", after_the_write)
    append = audit.append

    async def slow_after_write(*args: Any, **kwargs: Any) -> audit.Entry:
        written = await append(*args, **kwargs)
        if kwargs.get("action") == "WRITE":  # the rest of the settlement's work, its flush
            await asyncio.sleep(0.5)
        return written

    monkeypatch.setattr(audit, "append", slow_after_write)
    batch = [
        {"query": SETTLE, "variables": {"i": settle(people[0], "PB-1")}},
        {"query": POINT, "variables": {"n": people[1].id_number}},
    ]
    async with own_app(
        settings, database_url, policies, max_batch=5, statement_timeout_ms=3000
    ) as (gql, own):
        monkeypatch.setattr(audit, "_SHARDS", 1)  # after the app's start configured them
        response = await asyncio.wait_for(
            gql.client.post("/graphql", json=batch, headers=gql.headers), timeout=30
        )
        bodies = response.json()
        assert checked_out(own) == 0
    # Deadlocked, the point read's record would have waited until the statement timeout and
    # answered UNAVAILABLE (no time is asserted: the outcome tells).
    assert response.status_code == 200, bodies
    assert bodies[0]["data"]["settleClaim"], bodies[0]
    assert named(bodies[1], people[1]), bodies[1]
    assert (await links(db)).ok


async def test_a_read_run_again_after_a_lost_connection_is_logged_ok(
    gql: GraphQLClient,
    db: Database,
    admin: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    [person] = await add_people(db, 1)
    query = POINT + " # outcome of a read run again"
    killed = kill_before_first_append(monkeypatch, admin)
    with caplog.at_level(logging.INFO, logger="medgw.requests"):
        response = await gql.client.post(
            "/graphql",
            json={"query": query, "variables": {"n": person.id_number}},
            headers=gql.headers,
        )
    assert named(response.json(), person)
    assert len(killed) == 1  # the first attempt lost its connection
    assert len(await records(db)) == 1
    [line] = [r.getMessage() for r in caplog.records if r.name == "medgw.requests"]
    assert line.startswith("POST /graphql 200 "), line
    assert " 200 OK " in line, line
    assert " query P " in line, line  # the operation once, not once per attempt


@pytest.mark.parametrize("prepared", [True, False], ids=["prepared", "pipeline"])
async def test_an_exhausted_pool_answers_unavailable_within_the_connection_timeout(
    db: Database,
    admin: AsyncEngine,
    settings: Settings,
    database_url: str,
    policies: PolicySet,
    caplog: pytest.LogCaptureFixture,
    prepared: bool,
) -> None:
    """No free connection: 503 UNAVAILABLE with Retry-After after one wait of
    ``connection_timeout_s`` (one pool timeout, counted), not one per path (the prepared read,
    the pipeline's compiled read, the resolvers), and no compiled-read failure logged as an
    error."""
    [person] = await add_people(db, 1)
    query = POINT if prepared else POINT + " # seen for the first time while the pool is full"
    async with own_app(settings, database_url, policies, pool_size=1, connection_timeout_s=0.5) as (
        gql,
        own,
    ):
        await prepare(gql, POINT, person)
        async with every_shard_held(admin):
            stuck = [
                asyncio.create_task(gql.post(POINT, {"n": person.id_number})) for _ in range(2)
            ]
            await until_async(lambda: _at_least(lock_waiters(admin), 2))
            assert checked_out(own) == 2
            pool = own.engine.sync_engine.pool
            get = pool._do_get  # type: ignore[attr-defined]
            timeouts: list[float] = []

            def counted() -> Any:
                try:
                    return get()
                except sqlalchemy.exc.TimeoutError:
                    timeouts.append(1)
                    raise

            pool._do_get = counted  # type: ignore[attr-defined]
            with caplog.at_level(logging.WARNING):
                response = await gql.client.post(
                    "/graphql",
                    json={"query": query, "variables": {"n": person.id_number}},
                    headers=gql.headers,
                )
            pool._do_get = get  # type: ignore[attr-defined]
        assert all(named(b, person) for b in await asyncio.gather(*stuck))
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"]
    body = response.json()
    assert (body["data"] or {}).get("beneficiary") is None
    assert body["errors"][0]["extensions"]["code"] == "UNAVAILABLE"
    assert len(timeouts) == 1, f"{len(timeouts)} waits for a connection, not one"
    assert not [r for r in caplog.records if r.name == "medgw.compiler"], caplog.text


@pytest.mark.parametrize("bare", [True, False], ids=["bare-connection", "in-a-transaction"])
@pytest.mark.parametrize(
    "detail",
    [
        pytest.param({"ratio": 1e16}, id="1e16"),
        pytest.param({"ratio": 1.5e300, "less": -2e22, "small": 1.5e-300}, id="1.5e300"),
        pytest.param({"n": 10**20, "x": 0.1, "s": "é\u2028", "k": [None, True]}, id="plain"),
    ],
)
async def test_a_record_appended_verifies_whatever_its_detail(
    db: Database, detail: dict[str, Any], bare: bool
) -> None:
    """``append`` takes any ``detail``: the record it stores must verify, whatever JSON it holds
    (jsonb keeps numbers as numeric and gives them back as it prints them), or be refused."""
    reader = Principal("reader", "medical_insurance", "mi-5104", ("5104",), "probe")
    if bare:
        async with db.engine.connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None
            record = await audit.append(
                driver, reader, action="READ", operation="probe", detail=detail, committed=True
            )
    else:
        async with db.transaction() as session:
            record = await audit.append(
                session, reader, action="WRITE", operation="probe", detail=detail
            )
    [stored] = await records(db)
    assert (stored.id, stored.hash) == (record.id, record.hash)
    result = await links(db)
    assert result.ok, (result, stored.detail)
