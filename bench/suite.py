"""``make bench``: every figure of the performance issue in one run, each next to a raw baseline
measured in the same run (interleaved rounds, medians, the machine's load printed).

Run on demand (not part of the test suite)::

    .venv/bin/python -m bench.suite [--rounds 3] [--clients 4] [--quick]

What it measures, gateway (uvicorn over HTTP) against raw (asyncpg, one transaction per request,
the same statements and the same audit record, JSON encoded with the standard library):

- **settle**: ``settleClaim`` per second, and raw = :func:`bench.settle.settle_plain`.
- **page**: a page of ``--page`` beneficiaries with identities, monitoring flags, enrollments and
  claims with their settlements (req/s, p50, p95); raw = the same 7 selects + the READ audit record.
- **point**: one beneficiary by ID number with identities; raw = 2 selects + the audit record.
  Beside it, the **HTTP floor**: the same raw function behind uvicorn with no gateway logic
  (:mod:`bench.bare`), the best any Python gateway on this server can do for the request.
  Over HTTP, point lookups are driven by wrk (:mod:`bench.wrk`, ``--seconds`` a load) where it
  is installed, else by the bench's aiohttp clients (``--requests`` a load), which take a
  quarter of the machine's CPU from the server they measure; the other requests by the
  aiohttp clients (a settlement or a page costs the server far more than the client).
- **statements**: SQL statements the server receives per settle, page and point request, on an
  in-process gateway: SQLAlchemy's statements by its cursor events, and what is sent on the
  asyncpg connections directly (compiled reads, audit records, BEGIN and COMMIT) by an asyncpg
  query logger; per raw request by the query logger.
- **resettle**: a late recognition (``recordIdentity`` back-dated) of a person with ``--resettle``
  settled claims, which re-settles each of them: milliseconds, scaled to 100 claims (after
  :data:`WARM_RECOGNITIONS` late recognitions of one claim, so that the workers are warm).
- **audited reads**: point lookups per second at 1, 4 and 16 concurrent clients (wrk as
  above), and how many of the database's active backends wait on an advisory lock (the audit
  shards') meanwhile.
- **RSS** of the uvicorn processes and of this process.

The last line is one machine-readable summary::

    BENCH {"settle_ratio": …, "page100_slowdown": …, "point_slowdown": …,
           "statements_per_settle": …, "resettle_100_ms": …, "audited_reads_4_vs_1": …}

``settle_ratio`` = gateway settlements/s ÷ raw; a slowdown = raw req/s ÷ gateway req/s.
``--quick`` is a tiny run (seconds, not minutes) for the test suite and busy machines: its figures
say little, its summary line has the same keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import asyncpg  # type: ignore[import-untyped]
import graphql
import httpx
import psutil
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import event

from bench import settle as s
from bench import wrk
from gateway import migrate
from gateway.app import create_app
from gateway.config import Settings
from gateway.storage import audit
from gateway.storage.database import Database

console = Console()
RR = {"department": "rural_revitalisation", "org": "rr-5104"}
FLAG = (
    "mutation($i: RecordCategoryInput!) { recordMonitoringFlag(input: $i) { monitoringFlag "
    "{ category } } }"
)
PAGE = """query Page($first: Int!) { beneficiaries(regionPrefix: "5104", first: $first) {
  edges { node { id idNumber name regionCode
    identities { category validFrom validTo }
    monitoringFlags { category validFrom validTo }
    enrollments { year contribution inclusiveCommercial }
    claims(first: 5) { edges { node { claimNumber admissionDate totalCost
      settlement { basicInsurance criticalIllness inclusiveCommercial assistance
        secondaryAssistance outOfPocket } } } } } } } }"""
POINT = """query Point($n: String!) { beneficiary(idNumber: $n) {
  id name regionCode identities { category validFrom validTo } } }"""
PAGE_PATHS = sorted(
    [
        "beneficiaries.edges.node.idNumber",
        "beneficiaries.edges.node.name",
        "beneficiaries.edges.node.identities.category",
        "beneficiaries.edges.node.monitoringFlags.category",
        "beneficiaries.edges.node.enrollments.contribution",
        "beneficiaries.edges.node.claims.edges.node.totalCost",
        "beneficiaries.edges.node.claims.edges.node.settlement.assistance",
    ]
)
POINT_ANSWER = '"beneficiary":%s*{"id":%s*"'
"""A Lua pattern every point lookup's answer contains (checked by wrk's script)."""
POINT_PATHS = ["beneficiary(idNumber)", "beneficiary.name", "beneficiary.identities.category"]


# -- the raw baseline of the reads ----------------------------------------------------------------

RAW_PERSONS = """SELECT id, id_number, name, region_code FROM beneficiaries
WHERE region_code LIKE '5104%' ORDER BY id LIMIT $1"""
RAW_IDENTITIES = """SELECT beneficiary_id, category, valid_from, valid_to FROM identities
WHERE beneficiary_id = ANY($1) ORDER BY id"""
RAW_FLAGS = """SELECT beneficiary_id, category, valid_from, valid_to FROM monitoring_flags
WHERE beneficiary_id = ANY($1) ORDER BY id"""
RAW_ENROLMENTS = """SELECT beneficiary_id, year, contribution, inclusive_commercial
FROM enrollments WHERE beneficiary_id = ANY($1) ORDER BY year"""
RAW_CLAIMS = """SELECT id, beneficiary_id, claim_number, admission_date, total_cost FROM (
  SELECT c.*, row_number() OVER (PARTITION BY beneficiary_id ORDER BY id) AS n FROM claims c
  WHERE beneficiary_id = ANY($1)) ranked WHERE n <= 6 ORDER BY id"""
RAW_SETTLEMENTS = """SELECT id, claim_id, out_of_pocket FROM settlements
WHERE claim_id = ANY($1) ORDER BY id"""
RAW_LINES = """SELECT settlement_id, payer, amount FROM settlement_lines
WHERE settlement_id = ANY($1)"""
RAW_PERSON = """SELECT id, name, region_code FROM beneficiaries
WHERE id_number = $1 AND region_code LIKE '5104%'"""
INSERT_READ = """INSERT INTO audit_log (at, action, department, org, subject, purpose, operation,
  query_hash, query_text, beneficiary_ids, field_paths, detail, prev_hash, hash, shard)
VALUES ($1, 'READ', $2, $3, 'bench', NULL, $4, $5, $6, $7, $8, '{}', $9, $10, $11)"""


def raw_record(operation: str, query: str, ids: list[uuid.UUID], paths: list[str]) -> audit.Entry:
    """The READ record of a raw read, hashed exactly as the gateway hashes its own."""
    return audit.Entry(
        at=datetime.now(UTC),
        action="READ",
        department=s.MI["department"],
        org=s.MI["org"],
        subject="bench",
        purpose=None,
        operation=operation,
        query_hash=audit.query_hash(query),
        query_text=query,
        beneficiary_ids=sorted(set(ids)),
        field_paths=paths,
        detail={},
    )


async def raw_audit(
    conn: Any, operation: str, query: str, ids: list[uuid.UUID], paths: list[str]
) -> None:
    """:func:`gateway.storage.audit.append` in plain asyncpg, in the request's transaction: a
    free shard's lock, its head, insert (:func:`bench.settle.audit_shard`)."""
    shard, prev = await s.audit_shard(conn)
    record = raw_record(operation, query, ids, paths)
    await conn.execute(
        INSERT_READ,
        record.at,
        record.department,
        record.org,
        operation,
        record.query_hash,
        query,
        record.beneficiary_ids,
        paths,
        prev,
        audit.record_digest(prev, record),
        shard,
    )


async def raw_append(
    conn: Any, operation: str, query: str, ids: list[uuid.UUID], paths: list[str]
) -> None:
    """The READ record as the gateway appends a point read's, outside a transaction: one call
    of the schema's ``audit_append`` (migration 0021) with the record's canonical JSON."""
    record = raw_record(operation, query, ids, paths)
    values = [getattr(record, name) for name in audit.APPENDED if name != "detail"]
    await conn.fetchrow(
        audit.APPEND,
        0,
        audit.shards(),
        audit._CHAIN_LOCK,
        audit.canonical(record),
        *values,
        "{}",
    )


def _money(value: Any) -> str:
    return str(value)


async def raw_page(conn: Any, first: int) -> bytes:
    """The page of ``first`` persons as the gateway answers it, then its READ audit record."""
    async with conn.transaction():
        persons = await conn.fetch(RAW_PERSONS, first)
        ids = [p["id"] for p in persons]
        nodes: dict[uuid.UUID, dict[str, Any]] = {
            p["id"]: {
                "id": str(p["id"]),
                "idNumber": p["id_number"],
                "name": p["name"],
                "regionCode": p["region_code"],
                "identities": [],
                "monitoringFlags": [],
                "enrollments": [],
                "claims": {"edges": []},
            }
            for p in persons
        }
        for key, statement in (("identities", RAW_IDENTITIES), ("monitoringFlags", RAW_FLAGS)):
            for row in await conn.fetch(statement, ids):
                nodes[row["beneficiary_id"]][key].append(
                    {
                        "category": row["category"],
                        "validFrom": row["valid_from"].isoformat(),
                        "validTo": row["valid_to"] and row["valid_to"].isoformat(),
                    }
                )
        for row in await conn.fetch(RAW_ENROLMENTS, ids):
            nodes[row["beneficiary_id"]]["enrollments"].append(
                {
                    "year": row["year"],
                    "contribution": _money(row["contribution"]),
                    "inclusiveCommercial": row["inclusive_commercial"],
                }
            )
        claims = await conn.fetch(RAW_CLAIMS, ids)
        settlements = await conn.fetch(RAW_SETTLEMENTS, [c["id"] for c in claims])
        lines = await conn.fetch(RAW_LINES, [e["id"] for e in settlements])
        paid: dict[int, dict[str, Any]] = {}
        of_event = {e["id"]: e["claim_id"] for e in settlements}
        for e in settlements:
            total = paid.setdefault(e["claim_id"], {p.value: 0 for p in s.PAYERS} | {"oop": 0})
            total["oop"] += e["out_of_pocket"]
        for line in lines:
            paid[of_event[line["settlement_id"]]][line["payer"]] += line["amount"]
        for c in claims:
            node = {
                "claimNumber": c["claim_number"],
                "admissionDate": c["admission_date"].isoformat(),
                "totalCost": _money(c["total_cost"]),
                "settlement": None,
            }
            if c["id"] in paid:
                amounts = paid[c["id"]]
                node["settlement"] = {k: _money(v) for k, v in amounts.items() if k != "oop"} | {
                    "outOfPocket": _money(amounts["oop"])
                }
            edges = nodes[c["beneficiary_id"]]["claims"]["edges"]
            if len(edges) < 5:
                edges.append({"node": node})
        body = {"data": {"beneficiaries": {"edges": [{"node": n} for n in nodes.values()]}}}
        encoded = json.dumps(body, ensure_ascii=False).encode()
        await raw_audit(conn, "query Page", PAGE, ids, PAGE_PATHS)
    return encoded


async def raw_point(conn: Any, number: str) -> bytes:
    """As the gateway: the reads outside a transaction, then the record by one statement."""
    person = await conn.fetchrow(RAW_PERSON, number)
    identities = await conn.fetch(RAW_IDENTITIES, [person["id"]])
    body = {
        "data": {
            "beneficiary": {
                "id": str(person["id"]),
                "name": person["name"],
                "regionCode": person["region_code"],
                "identities": [
                    {
                        "category": r["category"],
                        "validFrom": r["valid_from"].isoformat(),
                        "validTo": r["valid_to"] and r["valid_to"].isoformat(),
                    }
                    for r in identities
                ],
            }
        }
    }
    encoded = json.dumps(body, ensure_ascii=False).encode()
    await raw_append(conn, "query Point", POINT, [person["id"]], POINT_PATHS)
    return encoded


# -- driving requests -----------------------------------------------------------------------------

Call = Callable[[int], Awaitable[None]]


async def timed(name: str, count: int, calls: Sequence[Call]) -> s.Run:
    """``count`` requests by ``len(calls)`` concurrent clients (client ``i`` runs ``calls[i]``
    with the request's number); each request timed."""
    run = s.Run(name, len(calls))
    numbers = iter(range(count))

    async def worker(call: Call) -> None:
        for n in numbers:
            began = time.perf_counter()
            try:
                await call(n)
            except Exception as exc:
                run.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            else:
                run.latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in calls))
    run.seconds = time.perf_counter() - began
    return run


WAITS = """SELECT count(*) FILTER (WHERE state = 'active'),
  count(*) FILTER (WHERE wait_event_type = 'Lock' AND wait_event = 'advisory')
FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND backend_type = 'client backend'"""


@dataclass
class Waits:
    """Samples of the database's backends: (active, waiting on an advisory lock: the audit
    chain's shards)."""

    samples: list[tuple[int, int]] = field(default_factory=list)

    def mean(self) -> tuple[float, float]:
        if not self.samples:
            return float("nan"), float("nan")
        active = statistics.fmean(a for a, _ in self.samples)
        return active, statistics.fmean(w for _, w in self.samples)


@asynccontextmanager
async def sampling_waits(url: str, every_s: float = 0.02) -> AsyncIterator[Waits]:
    """While the block runs, every ``every_s`` seconds: how many backends of the database are
    active and how many of them wait on an advisory lock (on a connection of its own)."""
    waits = Waits()
    conn = await asyncpg.connect(**s.asyncpg_options(url))

    async def sample() -> None:
        while True:
            row = await conn.fetchrow(WAITS)
            waits.samples.append((row[0], row[1]))
            await asyncio.sleep(every_s)

    task = asyncio.create_task(sample())
    try:
        yield waits
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await conn.close()


@asynccontextmanager
async def http_clients(urls: Sequence[str], count: int) -> AsyncIterator[list[s.LoadClient]]:
    """``count`` load clients, client ``i`` on ``urls[i mod len(urls)]``."""
    clients = [s.LoadClient(urls[i % len(urls)]) for i in range(count)]
    try:
        yield clients
    finally:
        for c in clients:
            await c.aclose()


def gateway_calls(
    clients: Sequence[s.LoadClient], query: str, variables: Callable[[int], dict[str, Any]]
) -> list[Call]:
    auth = s.token(**s.MI)

    def call_of(client: s.LoadClient) -> Call:
        async def call(n: int) -> None:
            await client.post(query, variables(n), auth)

        return call

    return [call_of(c) for c in clients]


# -- statements per request -----------------------------------------------------------------------


RESETTLE_COUNTED = 10
"""Claims of the late re-settlement whose statements are counted."""
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


@dataclass(eq=False)
class Statements:
    """Round trips of SQL per request, transaction control (BEGIN, COMMIT) counted apart."""

    statements: int = 0
    transactions: int = 0

    def note(self, query: str) -> None:
        if query.lstrip().upper().startswith(TRANSACTION_CONTROL):
            self.transactions += query.lstrip().upper().startswith("BEGIN")
        else:
            self.statements += 1

    def __call__(self, record: Any) -> None:  # an asyncpg query logger
        self.note(record.query)

    @asynccontextmanager
    async def counting(self) -> AsyncIterator[Statements]:
        """Counts from zero what runs inside the block. An asyncpg query logger is called soon
        after its statement (``loop.call_soon``): what ran before the block lands before the
        count starts, what ran inside before it ends."""
        await asyncio.sleep(0)
        self.statements = self.transactions = 0
        yield self
        await asyncio.sleep(0)


def watch(db: Database, counter: Statements) -> None:
    """Count what the gateway's engine sends to the server: SQLAlchemy's statements (its cursor
    events), and what goes to a connection's asyncpg connection directly: compiled reads, the
    audit records, transaction control (an asyncpg query logger on every connection checked
    out; it does not see SQLAlchemy's prepared statements, so nothing is counted twice). The
    engine does not pre-ping."""
    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", lambda *args: counter.note(str(args[2])))

    def checkout(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(counter)

    def checkin(dbapi_connection: Any, *_: Any) -> None:
        if dbapi_connection is not None:
            dbapi_connection.driver_connection.remove_query_logger(counter)

    event.listen(engine.pool, "checkout", checkout)
    event.listen(engine.pool, "checkin", checkin)


async def count_statements(
    url: str, data_dir: Path, settle_people: Sequence[str], page: int, point: str
) -> dict[str, tuple[float, float]]:
    """(statements, transactions) per settle, page and point request: an in-process gateway
    and raw asyncpg."""
    settings = Settings(database_url=url, jwt_secret=s.SECRET, data_dir=data_dir)
    db = Database.connect(url, settings)
    counter = Statements()
    watch(db, counter)
    app = create_app(settings, db=db)
    logging.getLogger("medgw").setLevel(logging.WARNING)
    auth = s.token(**s.MI)
    figures: dict[str, tuple[float, float]] = {}
    claims = s.claims_for("S", 4, settle_people)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                # Warm: each connection's first use of a type makes asyncpg look it up (three
                # statements, once per connection), which is not what a request costs.
                for warm in s.claims_for("SW", 4, settle_people):
                    await s.post(client, s.SETTLE, warm.variables(), auth)
                for _ in range(2):
                    await s.post(client, PAGE, {"first": page}, auth)
                    await s.post(client, POINT, {"n": point}, auth)
                async with counter.counting():
                    for claim in claims:
                        await s.post(client, s.SETTLE, claim.variables(), auth)
                figures["gateway settle"] = per(counter, len(claims))
                async with counter.counting():
                    await s.post(client, PAGE, {"first": page}, auth)
                figures["gateway page"] = per(counter, 1)
                async with counter.counting():
                    await s.post(client, POINT, {"n": point}, auth)
                figures["gateway point"] = per(counter, 1)
                number = s.id_number(20_000)
                await unrecognised(client, number, RESETTLE_COUNTED, "RC")
                async with counter.counting():
                    await recognise_late(client, number)
                figures["gateway resettle"] = per(counter, 1)
                schema = app.state.gateway.views["medical_insurance"].schema._schema
                figures["parse+validate page"] = parse_and_validate_ms(schema, PAGE)
                figures["parse+validate point"] = parse_and_validate_ms(schema, POINT)
    finally:
        await db.dispose()
    conn = await asyncpg.connect(**s.asyncpg_options(url))
    try:
        conn.add_query_logger(counter)
        fixed = await s.Fixed.compute().with_payload_record(conn)
        await s.settle_plain(conn, s.claims_for("SRW", 1, settle_people)[0], fixed)
        await raw_page(conn, page)
        await raw_point(conn, point)
        async with counter.counting():
            for claim in s.claims_for("SR", 4, settle_people):
                await s.settle_plain(conn, claim, fixed)
        figures["raw settle"] = per(counter, 4)
        async with counter.counting():
            await raw_page(conn, page)
        figures["raw page"] = per(counter, 1)
        async with counter.counting():
            await raw_point(conn, point)
        figures["raw point"] = per(counter, 1)
    finally:
        await conn.close()
    return figures


def per(counter: Statements, requests: int) -> tuple[float, float]:
    return counter.statements / requests, counter.transactions / requests


def parse_and_validate_ms(schema: graphql.GraphQLSchema, query: str) -> tuple[float, float]:
    """(ms, 0): what graphql-core's parse and validate of ``query`` cost, median of 20; the
    document cache (gateway/query_cache.py) saves this on every request after the first."""
    times = []
    for _ in range(20):
        began = time.perf_counter()
        graphql.validate(schema, graphql.parse(query))
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), 0.0


# -- late re-settlement ---------------------------------------------------------------------------


async def unrecognised(client: httpx.AsyncClient, number: str, claims: int, prefix: str) -> None:
    """A person enrolled without any category, who settles ``claims`` stays."""
    mi = s.token(**s.MI)
    person = {"idNumber": number, "name": "重结", "regionCode": s.REGION}
    await s.post(client, s.REGISTER, {"i": person}, mi)
    enrolment = {
        "idNumber": number,
        "year": s.YEAR,
        "contribution": "380.00",
        "enrolledOn": "2022-12-01",
    }
    await s.post(client, s.ENROL, {"i": enrolment}, mi)
    for claim in s.claims_for(prefix, claims, [number]):
        await s.post(client, s.SETTLE, claim.variables(), mi)


async def recognise_late(client: httpx.AsyncClient, number: str) -> None:
    """Civil affairs recognises the person (MINIMUM_LIVING) from before the first stay: this
    ``recordIdentity`` re-settles every stay of the year."""
    identity = {
        "idNumber": number,
        "category": "MINIMUM_LIVING",
        "validFrom": "2021-06-01",
        "reference": f"late-{number}",
    }
    await s.post(client, s.IDENTITY, {"i": identity}, s.token(**s.CA))


WARM_RECOGNITIONS = 4
"""Late recognitions of one claim each before the timed one (:func:`resettle_ms`): the first
``recordIdentity`` a worker process serves compiles and prepares its statements (~140 ms more,
measured in process), which is not the cost of a re-settlement; several, as each lands on any
worker."""


async def resettle_ms(
    urls: Sequence[str], number: str, claims: int, prefix: str, warm: Sequence[str] = ()
) -> float:
    """The milliseconds of a late recognition that re-settles ``claims`` stays, once the
    persons ``warm`` (ID numbers) have been recognised late with one stay each."""
    async with httpx.AsyncClient(base_url=urls[0], timeout=300) as client:
        for n, other in enumerate(warm):
            await unrecognised(client, other, 1, f"{prefix}W{n}")
            await recognise_late(client, other)
        await unrecognised(client, number, claims, prefix)
        began = time.perf_counter()
        await recognise_late(client, number)
        return (time.perf_counter() - began) * 1000


# -- the run --------------------------------------------------------------------------------------


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def rss_mb() -> tuple[float, float]:
    """(RSS of the uvicorn processes and their workers, RSS of this process), MiB."""
    me = psutil.Process()
    served = 0
    for child in me.children():
        if "gateway.main:app" in child.cmdline():  # not the HTTP floor's (bench/bare.py)
            tree = [child, *child.children(recursive=True)]
            served += sum(p.memory_info().rss for p in tree)
    return served / 2**20, me.memory_info().rss / 2**20


Measured = s.Run | wrk.WrkRun
"""A timed load: by the bench's own clients (:func:`timed`) or by wrk (:func:`bench.wrk.load`)."""


@dataclass
class Pair:
    """The gateway's and the raw side's runs of one measurement, one of each per round."""

    title: str
    gateway: list[Measured] = field(default_factory=list)
    raw: list[Measured] = field(default_factory=list)
    floor: list[Measured] = field(default_factory=list)
    """The raw side behind a bare uvicorn (:mod:`bench.bare`), measured for the point lookup."""

    @staticmethod
    def median(runs: Sequence[Measured], value: Callable[[Measured], float]) -> float:
        return statistics.median(value(r) for r in runs) if runs else float("nan")

    def rate(self, side: str) -> float:
        return self.median(getattr(self, side), lambda r: r.rate)

    def p(self, side: str, q: float) -> float:
        return self.median(getattr(self, side), lambda r: r.percentile(q))

    def errors(self) -> list[str]:
        return [e for r in (*self.gateway, *self.raw, *self.floor) for e in r.errors]


async def suite(
    url: str,
    urls: Sequence[str],
    data_dir: Path,
    *,
    floor_urls: Sequence[str],
    rounds: int,
    clients: int,
    claims: int,
    persons: int,
    page: int,
    requests: int,
    seconds: int,
    resettle: int,
    progress: Progress,
) -> dict[str, Any]:
    people = [s.id_number(i) for i in range(persons)]
    raw_people = [s.id_number(persons + i) for i in range(persons)]
    counted = [s.id_number(2 * persons + i) for i in range(2)]
    task = progress.add_task("set-up persons", total=2 * persons + len(counted))
    await s.set_up(urls[0], [*people, *raw_people, *counted], clients, progress, task)
    rr = s.token(**RR)
    async with httpx.AsyncClient(base_url=urls[0], timeout=60) as client:
        for number in people:
            flag = {
                "idNumber": number,
                "category": "MONITORED",
                "validFrom": "2022-01-01",
                "reference": f"flag-{number}",
            }
            await s.post(client, FLAG, {"i": flag}, rr)
    pool = await asyncpg.create_pool(
        min_size=max(clients, 16), max_size=max(clients, 16), **s.asyncpg_options(url)
    )
    settle_pair, page_pair, point_pair = Pair("settleClaim"), Pair("page"), Pair("point lookup")

    async def points(name: str, served: Sequence[str], count: int) -> Measured:
        """Point lookups over HTTP by ``count`` clients: ``seconds`` of wrk where it is
        installed (:mod:`bench.wrk`), else ``requests`` by the aiohttp clients."""
        if wrk.found():
            return await wrk.load(
                name,
                served,
                count,
                seconds,
                query=POINT,
                variable="n",
                values=people,
                authorization=f"Bearer {s.token(**s.MI)}",
                expect=POINT_ANSWER,
            )
        async with http_clients(served, count) as cs:
            calls = gateway_calls(cs, POINT, lambda n: {"n": people[n % persons]})
            return await timed(name, requests, calls)

    resettles: list[float] = []
    loads: list[str] = [load()]

    async def raw_calls(work: Callable[[Any, int], Awaitable[Any]], count: int) -> list[Call]:
        conns = [await pool.acquire() for _ in range(count)]
        held.extend(conns)

        def call_of(conn: Any) -> Call:
            async def call(n: int) -> None:
                await work(conn, n)

            return call

        return [call_of(c) for c in conns]

    held: list[Any] = []

    async def release() -> None:
        while held:
            await pool.release(held.pop())

    try:
        # warm-up: both sides, not measured
        task = progress.add_task("warm-up", total=None)
        warm_claims = s.claims_for("HW", clients, people)
        async with http_clients(urls, clients) as cs:
            settle_calls = gateway_calls(cs, s.SETTLE, lambda n: warm_claims[n].variables())
            await timed("warm", len(warm_claims), settle_calls)
            await timed("warm", clients, gateway_calls(cs, PAGE, lambda n: {"first": page}))
        fixed = await s.Fixed.of_gateway(url)
        raw_warm = s.claims_for("BW", clients, raw_people)
        await timed(
            "warm",
            clients,
            await raw_calls(lambda c, n: s.settle_plain(c, raw_warm[n], fixed), clients),
        )
        await timed("warm", clients, await raw_calls(lambda c, n: raw_page(c, page), clients))
        await release()
        progress.update(task, total=1, completed=1)

        task = progress.add_task("rounds", total=rounds)
        for r in range(rounds):
            sides = ["gateway", "raw"] if r % 2 == 0 else ["raw", "gateway"]
            for side in sides:
                if side == "gateway":
                    batch = s.claims_for(f"H{r}", claims, people)
                    async with http_clients(urls, clients) as cs:
                        calls = gateway_calls(cs, s.SETTLE, lambda n, b=batch: b[n].variables())
                        settle_pair.gateway.append(await timed("gateway", claims, calls))
                else:
                    batch = s.claims_for(f"B{r}", claims, raw_people)
                    calls = await raw_calls(
                        lambda c, n, b=batch: s.settle_plain(c, b[n], fixed), clients
                    )
                    settle_pair.raw.append(await timed("raw", claims, calls))
                    await release()
            for side in sides:
                if side == "gateway":
                    async with http_clients(urls, clients) as cs:
                        calls = gateway_calls(cs, PAGE, lambda n: {"first": page})
                        page_pair.gateway.append(await timed("gateway", requests // 4, calls))
                    point_pair.gateway.append(await points("gateway", urls, clients))
                    point_pair.floor.append(await points("floor", floor_urls, clients))
                else:
                    calls = await raw_calls(lambda c, n: raw_page(c, page), clients)
                    page_pair.raw.append(await timed("raw", requests // 4, calls))
                    await release()
                    calls = await raw_calls(lambda c, n: raw_point(c, people[n % persons]), clients)
                    point_pair.raw.append(await timed("raw", requests, calls))
                    await release()
            number = s.id_number(10_000 + r)
            warm = [
                s.id_number(11_000 + r * WARM_RECOGNITIONS + n) for n in range(WARM_RECOGNITIONS)
            ]
            resettles.append(await resettle_ms(urls, number, resettle, f"R{r}", warm))
            loads.append(load())
            progress.advance(task)

        task = progress.add_task("audited reads at 1/4/16 clients", total=3)
        audited: dict[int, Measured] = {}
        waits: dict[int, Waits] = {}
        for n_clients in (1, 4, 16):
            async with sampling_waits(url) as sampled:
                audited[n_clients] = await points(f"{n_clients} clients", urls, n_clients)
            waits[n_clients] = sampled
            progress.advance(task)
        loads.append(load())
    finally:
        await release()
        await pool.close()
    served_rss, own_rss = rss_mb()
    task = progress.add_task("statements per request", total=None)
    statements = await count_statements(url, data_dir, counted, page, people[0])
    progress.update(task, total=1, completed=1)
    return {
        "pairs": [settle_pair, page_pair, point_pair],
        "resettles": resettles,
        "audited": audited,
        "waits": waits,
        "statements": statements,
        "rss": (served_rss, own_rss),
        "loads": loads,
        "resettle_claims": resettle,
    }


def ratio(a: float, b: float) -> float:
    """``a ÷ b`` to three decimals; NaN when ``b`` is 0 (a load that failed)."""
    return round(a / b, 3) if b else float("nan")


def summary(found: dict[str, Any]) -> dict[str, float]:
    settle_pair, page_pair, point_pair = found["pairs"]
    audited = found["audited"]

    return {
        "settle_ratio": ratio(settle_pair.rate("gateway"), settle_pair.rate("raw")),
        "page100_slowdown": ratio(page_pair.rate("raw"), page_pair.rate("gateway")),
        "point_slowdown": ratio(point_pair.rate("raw"), point_pair.rate("gateway")),
        "statements_per_settle": round(found["statements"]["gateway settle"][0], 1),
        "resettle_100_ms": round(
            statistics.median(found["resettles"]) * 100 / found["resettle_claims"], 1
        ),
        "audited_reads_4_vs_1": ratio(audited[4].rate, audited[1].rate),
    }


def report(found: dict[str, Any], page: int) -> dict[str, float]:
    table = Table(title="gateway vs raw (medians over the rounds)")
    for column in ("measure", "side", "req/s", "p50 ms", "p95 ms", "raw ÷ gateway req/s"):
        table.add_column(column, justify="left" if column in ("measure", "side") else "right")
    for pair in found["pairs"]:
        title = f"page of {page}" if pair.title == "page" else pair.title
        for side in ("gateway", "raw"):
            table.add_row(
                title if side == "gateway" else "",
                side,
                f"{pair.rate(side):.1f}",
                f"{pair.p(side, 0.5):.1f}",
                f"{pair.p(side, 0.95):.1f}",
                f"{ratio(pair.rate('raw'), pair.rate('gateway')):.2f}×"
                if side == "gateway"
                else "",
            )
    console.print(table)
    point = found["pairs"][2]
    floor = point.median(point.floor, lambda r: r.rate)
    console.print(
        "HTTP floor: the raw point lookup behind uvicorn with no gateway logic (bench/bare.py, "
        f"the gateway's workers) {floor:.1f}/s (p50 "
        f"{point.median(point.floor, lambda r: r.percentile(0.5)):.1f} ms): raw ÷ floor "
        f"{ratio(point.rate('raw'), floor):.2f}×, floor ÷ gateway "
        f"{ratio(floor, point.rate('gateway')):.2f}×"
    )
    statements = Table(
        title="SQL per request: statements / transactions",
        caption="BEGIN and COMMIT are not counted as statements; transactions are explicit "
        "ones (a statement sent outside one is a transaction of its own)",
    )
    for column in ("request", "gateway", "raw"):
        statements.add_column(column, justify="left" if column == "request" else "right")
    counted = found["statements"]
    for kind in ("settle", "page", "point"):
        statements.add_row(
            kind,
            "{:.1f} / {:.1f}".format(*counted[f"gateway {kind}"]),
            "{:.1f} / {:.1f}".format(*counted[f"raw {kind}"]),
        )
    statements.add_row(
        f"late re-settlement of {RESETTLE_COUNTED} claims",
        "{:.0f} / {:.0f}".format(*counted["gateway resettle"]),
        "",
    )
    console.print(statements)
    console.print(
        "parse + validate per request without the document cache: "
        f"page {counted['parse+validate page'][0]:.2f} ms, "
        f"point {counted['parse+validate point'][0]:.2f} ms"
    )
    resettle = found["resettles"]
    console.print(
        f"late re-settlement of {found['resettle_claims']} claims (recordIdentity): "
        + ", ".join(f"{ms:.0f}" for ms in resettle)
        + f" ms; median scaled to 100 claims: {summary(found)['resettle_100_ms']:.0f} ms"
    )
    audited = found["audited"]
    console.print(
        "audited point reads/s: "
        + ", ".join(
            f"{n} client{'s' if n > 1 else ''} {run.rate:.1f} (p95 {run.percentile(0.95):.0f} ms)"
            for n, run in audited.items()
        )
    )
    console.print(
        "backends during audited reads, mean active / waiting on an audit lock: "
        + ", ".join(
            "{} client{}: {:.1f} / {:.1f}".format(n, "s" if n > 1 else "", *waits.mean())
            for n, waits in found["waits"].items()
        )
    )
    served, own = found["rss"]
    console.print(f"RSS: uvicorn processes {served:.0f} MiB, bench process {own:.0f} MiB")
    console.print("machine " + " → ".join(found["loads"]))
    errors = [e for pair in found["pairs"] for e in pair.errors()]
    errors += [e for run in audited.values() for e in run.errors]
    for error in errors[:5]:
        console.print(f"[red]error[/]: {error}", highlight=False, markup=False)
    figures = summary(found)
    if errors:
        figures["errors"] = len(errors)
    return figures


def main(
    rounds: Annotated[int, typer.Option(min=1, help="Interleaved rounds (medians).")] = 3,
    clients: Annotated[int, typer.Option(min=1, help="Concurrent clients / connections.")] = 4,
    claims: Annotated[int, typer.Option(min=1, help="Settlements per side and round.")] = 600,
    persons: Annotated[int, typer.Option(min=1, help="Persons per side (page persons).")] = 100,
    page: Annotated[int, typer.Option(min=1, max=100, help="Page size.")] = 100,
    requests: Annotated[
        int, typer.Option(min=4, help="Raw point lookups per round (and HTTP ones without wrk).")
    ] = 1000,
    seconds: Annotated[
        int, typer.Option(min=1, help="Seconds of each wrk load of point lookups over HTTP.")
    ] = 2,
    resettle: Annotated[int, typer.Option(min=1, help="Claims re-settled late.")] = 100,
    processes: Annotated[int, typer.Option(min=1, help="uvicorn processes (ports).")] = 2,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn workers per process.")] = 1,
    quick: Annotated[bool, typer.Option(help="A tiny run (the test suite's).")] = False,
) -> None:
    """Every figure of the performance issue, gateway against raw asyncpg, one summary line."""
    if quick:
        rounds, clients, claims, persons, page, requests, resettle = 2, 2, 8, 6, 6, 8, 4
        seconds = 1
        processes, workers = 1, 1
    began = time.perf_counter()
    console.print(
        f"bench suite: {rounds} rounds, {clients} clients, {claims} settlements and {requests} "
        f"point lookups per side and round, page of {page} over {persons} persons, "
        f"re-settlement of {resettle} claims, {processes} uvicorn process(es) × {workers} "
        f"worker(s); {os.cpu_count()} CPUs; {load()}"
        + (" (quick: figures say little)" if quick else "")
    )
    if wrk.found():
        console.print(
            f"point lookups over HTTP: wrk ({wrk.found()}), {seconds} s a load; the others: "
            "aiohttp clients"
        )
    else:
        console.print(
            "[red]wrk not found[/]: the point lookups over HTTP are driven by the aiohttp "
            "clients, which take a quarter of the machine's CPU from the server they measure "
            "(bench/README.md, *Load*); install Debian's wrk (`make bench` does, as root)"
        )
    progress = Progress(console=console, transient=True)
    with progress, s.scratch_database() as (url, _), tempfile.TemporaryDirectory() as data:
        migrate.upgrade(url)
        floor = {"MEDGW_BENCH_ASYNCPG": json.dumps(s.asyncpg_options(url))}
        with (
            s.serve(url, Path(data), processes, workers, log=Path(data) / "uvicorn.log") as urls,
            s.serve(
                url, Path(data), processes, workers, app="bench.bare:app", env=floor
            ) as floor_urls,
        ):
            found = asyncio.run(
                suite(
                    url,
                    urls,
                    Path(data),
                    floor_urls=floor_urls,
                    rounds=rounds,
                    clients=clients,
                    claims=claims,
                    persons=persons,
                    page=page,
                    requests=requests,
                    seconds=seconds,
                    resettle=resettle,
                    progress=progress,
                )
            )
    figures = report(found, page)
    console.print(f"total wall time {time.perf_counter() - began:.1f} s")
    print("BENCH " + json.dumps(figures), flush=True)
    raise typer.Exit(1 if "errors" in figures else 0)


if __name__ == "__main__":
    typer.run(main)
