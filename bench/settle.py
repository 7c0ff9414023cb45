"""Settlements per second through the gateway's HTTP API with N concurrent clients, and the ratio
to a plain asyncpg transaction doing the same writes.

Run on demand (``make bench``; not part of the test suite)::

    .venv/bin/python -m bench.settle [--clients 8] [--claims 400] [--workers 1] [--processes 2]
                                     [--persons 200] [--hot]

What it does, in order:

1. A throwaway PostgreSQL: the embedded server (pgserver) in a temporary directory, or, with
   ``DATABASE_URL`` set, a scratch database created on that server and dropped at the end.
   Migrated with ``gateway.migrate.upgrade``.
2. ``--processes`` separate ``uvicorn gateway.main:app --workers W`` processes on that database.
3. Set-up through the API: each person is registered, enrolled for 2023 and recognised as
   MINIMUM_LIVING (civil_affairs) from 2021-06-01, region 510402 (policy 510400-2023).
   The gateway run and the baseline get their own persons, so both start from empty ledgers.
4. A short warm-up of each side on separate warm-up persons (not measured).
5. Gateway: ``--claims`` ``settleClaim`` mutations over HTTP by ``--clients`` concurrent clients
   (one keep-alive connection each, spread over the processes); claim *n* belongs to person
   *n mod persons* (``--hot``: every claim to one person, which serialises on the person lock).
6. Baseline: the same number of settlements by the same number of concurrent asyncpg
   connections, each one transaction writing what ``resolvers.settlement._settle`` writes (see
   :func:`settle_plain`): the claim, its event and lines, the ledger, the outbox event and its
   wake-up, the fund entries (accounts opened when missing), the fund months' and dashboard's
   rollups (the gateway's own statement, :data:`ROLLUPS`), the WRITE record and the READ record
   of the answer (the query text and field paths the gateway recorded for its last answer).
   *Fixed amounts*: the engine's result for one such stay, computed once before timing. No
   HTTP, GraphQL, ORM or engine inside the timed loop.
7. Correctness over the whole database, printed; the exit status is 1 if a check fails. One
   check compares what each side wrote per claim (:data:`WRITTEN_PER_CLAIM`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from gateway import migrate
from gateway.auth import issue_token
from gateway.config import Settings
from gateway.resident_id import check_character
from gateway.storage import audit, embedded, models
from gateway.storage.database import positional, resolve_url
from gateway.storage.outbox import CHANNEL
from gateway.transport import UVICORN_HTTP
from policies.benefits import load_policies
from policies.funds.rules import Parties
from policies.settlement.engine import CategoryRecord, Ledger, Person, Visit, settle_visit
from policies.vocabulary import PAYERS, Category, HospitalLevel, Payer, VisitType
from resolvers import cube, fund_months, funds, pending

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-" + "x" * 40
REGION = "510402"  # 攀枝花东区: policy 510400-2023, in force from 2023-02-01
YEAR = 2023
TOTAL_COST = Decimal("30000.00")
SCOPE_COST = Decimal("26000.00")
FIRST_ADMISSION = date(2023, 3, 1)
STAY_DAYS = 9
MI = {"department": "medical_insurance", "org": "mi-5104"}
CA = {"department": "civil_affairs", "org": "ca-5104"}
SETTLE = """mutation($i: SettleClaimInput!) { settleClaim(input: $i) {
  claimNumber basicInsurance criticalIllness inclusiveCommercial assistance secondaryAssistance
  outOfPocket } }"""
REGISTER = "mutation($i: RegisterBeneficiaryInput!) { registerBeneficiary(input: $i) { id } }"
ENROL = "mutation($i: RecordEnrollmentInput!) { recordEnrollment(input: $i) { year } }"
IDENTITY = (
    "mutation($i: RecordCategoryInput!) { recordIdentity(input: $i) { identity { category } } }"
)
# The same session settings as gateway.storage.database.Database.connect.
SERVER_SETTINGS = {
    "statement_timeout": "5000",
    "application_name": "medgw-bench",
    "timezone": "UTC",
}

console = Console()


# -- the people and their claims -----------------------------------------------------------------


def id_number(i: int) -> str:
    """The ``i``-th bench person's resident ID (GB 11643), as ``tests.factories.id_number``."""
    born = date(1940 + i % 60, 1 + i % 12, 1 + i % 28)
    first17 = f"{REGION}{born:%Y%m%d}{i % 1000:03d}"
    return first17 + check_character(first17)


@dataclass(frozen=True)
class ClaimSpec:
    number: str
    id_number: str
    admission: date
    discharge: date

    def variables(self) -> dict[str, Any]:
        return {
            "i": {
                "claimNumber": self.number,
                "idNumber": self.id_number,
                "type": "INPATIENT",
                "hospitalLevel": "SECONDARY",
                "admissionDate": self.admission.isoformat(),
                "dischargeDate": self.discharge.isoformat(),
                "totalCost": str(TOTAL_COST),
                "policyScopeCost": str(SCOPE_COST),
            }
        }


def claims_for(prefix: str, count: int, persons: Sequence[str]) -> list[ClaimSpec]:
    """``count`` stays in 2023, claim ``n`` for person ``n mod len(persons)``."""
    specs: list[ClaimSpec] = []
    for n in range(count):
        admission = FIRST_ADMISSION + timedelta(days=n % 180)
        specs.append(
            ClaimSpec(
                f"{prefix}-{n:06d}",
                persons[n % len(persons)],
                admission,
                admission + timedelta(days=STAY_DAYS),
            )
        )
    return specs


# -- measurements ------------------------------------------------------------------------------


@dataclass
class Run:
    name: str
    clients: int
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile of the latencies, in milliseconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))
        return ordered[rank] * 1000


async def drive(
    claims: Sequence[ClaimSpec],
    clients: int,
    open_client: Callable[[int], Awaitable[Callable[[ClaimSpec], Awaitable[None]]]],
    close_client: Callable[[int], Awaitable[None]],
    run: Run,
    progress: Progress,
    task: TaskID,
) -> Run:
    """``clients`` workers take the next claim until none is left; each request is timed."""
    queue: asyncio.Queue[ClaimSpec] = asyncio.Queue()
    for claim in claims:
        queue.put_nowait(claim)
    settles = [await open_client(i) for i in range(clients)]

    async def worker(settle: Callable[[ClaimSpec], Awaitable[None]]) -> None:
        while not queue.empty():
            claim = queue.get_nowait()
            started = time.perf_counter()
            try:
                await settle(claim)
            except Exception as exc:
                run.errors.append(f"{claim.number}: {type(exc).__name__}: {exc}"[:300])
            else:
                run.latencies.append(time.perf_counter() - started)
            progress.advance(task)

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker(settle) for settle in settles))
    finally:
        run.seconds = time.perf_counter() - started
        for i in range(clients):
            await close_client(i)
    return run


# -- the gateway over HTTP ---------------------------------------------------------------------


def token(department: str, org: str) -> str:
    return issue_token(
        SECRET, subject="bench", department=department, org=org, regions=[REGION[:4]]
    )


class GraphQLError(Exception):
    pass


def data_of(status: int, body: bytes) -> dict[str, Any]:
    """The ``data`` of a GraphQL answer; :class:`GraphQLError` for another status or errors."""
    if status != 200:
        raise GraphQLError(f"HTTP {status}: {body[:200].decode(errors='replace')}")
    answer: dict[str, Any] = json.loads(body)
    if answer.get("errors"):
        raise GraphQLError(json.dumps(answer["errors"], ensure_ascii=False)[:300])
    data: dict[str, Any] = answer["data"]
    return data


async def post(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any], auth: str
) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {auth}"},
    )
    return data_of(response.status_code, response.content)


class LoadClient:
    """One client of the timed load: one kept-alive HTTP/1.1 connection (aiohttp). The load
    generator shares the machine's cores with the gateway, and httpx costs ~0.7 ms of CPU a
    request (it alone caps at ~1,400 requests/s to a handler that answers a constant here;
    aiohttp ~8,400): so the figures measure the gateway, not the client. Set-up stays on
    httpx (:func:`post`)."""

    def __init__(self, base_url: str) -> None:
        self.session = aiohttp.ClientSession(
            base_url=base_url,
            connector=aiohttp.TCPConnector(limit=1),
            timeout=aiohttp.ClientTimeout(total=120),
        )

    async def post(self, query: str, variables: dict[str, Any], auth: str) -> dict[str, Any]:
        """The answer's ``data`` (:func:`data_of`)."""
        async with self.session.post(
            "/graphql",
            data=json.dumps({"query": query, "variables": variables}),
            headers={"Authorization": f"Bearer {auth}", "Content-Type": "application/json"},
        ) as response:
            return data_of(response.status, await response.read())

    async def aclose(self) -> None:
        await self.session.close()


async def set_up(
    url: str, people: Sequence[str], concurrency: int, progress: Progress, task: TaskID
) -> None:
    """Register, enrol and recognise each person (MINIMUM_LIVING) through the API."""
    mi, ca = token(**MI), token(**CA)
    queue: asyncio.Queue[str] = asyncio.Queue()
    for number in people:
        queue.put_nowait(number)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            number = queue.get_nowait()
            person = {"idNumber": number, "name": "基准", "regionCode": REGION}
            await post(client, REGISTER, {"i": person}, mi)
            enrolment = {
                "idNumber": number,
                "year": YEAR,
                "contribution": "380.00",
                "enrolledOn": "2022-12-01",
            }
            await post(client, ENROL, {"i": enrolment}, mi)
            identity = {
                "idNumber": number,
                "category": "MINIMUM_LIVING",
                "validFrom": "2021-06-01",
                "reference": f"bench-{number}",
            }
            await post(client, IDENTITY, {"i": identity}, ca)
            progress.advance(task)

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))


async def settle_http(
    urls: Sequence[str],
    claims: Sequence[ClaimSpec],
    clients: int,
    progress: Progress,
    task: TaskID,
    answers: dict[str, dict[str, str]] | None = None,
) -> Run:
    """``settleClaim`` over HTTP; client ``i`` keeps one connection to process ``i mod P``."""
    auth = token(**MI)
    opened: dict[int, LoadClient] = {}

    async def open_client(i: int) -> Callable[[ClaimSpec], Awaitable[None]]:
        client = LoadClient(urls[i % len(urls)])
        opened[i] = client

        async def settle(claim: ClaimSpec) -> None:
            data = await client.post(SETTLE, claim.variables(), auth)
            answer: dict[str, str] = data["settleClaim"]
            if answer["claimNumber"] != claim.number:
                raise GraphQLError(f"answer for {answer['claimNumber']}")
            if answers is not None:
                answers[claim.number] = answer

        return settle

    async def close_client(i: int) -> None:
        await opened.pop(i).aclose()

    run = Run("gateway", clients)
    return await drive(claims, clients, open_client, close_client, run, progress, task)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve(
    url: str,
    data_dir: Path,
    processes: int,
    workers: int,
    log: Path | None = None,
    app: str = "gateway.main:app",
    env: Mapping[str, str] | None = None,
) -> Iterator[list[str]]:
    """``processes`` separate uvicorn processes of ``app`` (the gateway), each with ``workers``
    workers, ready when ``/readyz`` answers 200; their output goes to ``log`` when given (else
    to this process's); ``env`` is added to their environment."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "MEDGW_JWT_SECRET": SECRET,
        "MEDGW_DATA_DIR": str(data_dir),
        **(env or {}),
    }
    ports = [free_port() for _ in range(processes)]
    started: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            command = [sys.executable, "-m", "uvicorn", app, "--port", str(port)]
            command += ["--workers", str(workers), "--log-level", "warning", "--no-access-log"]
            # As `medgw serve` serves: its HTTP protocol, no proxy headers (it is not told of one).
            command += ["--http", UVICORN_HTTP, "--no-proxy-headers"]
            output = None if log is None else log.open("ab")
            started.append(
                subprocess.Popen(command, env=env, cwd=ROOT, stdout=output, stderr=output)
            )
            if output is not None:
                output.close()
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        deadline = time.monotonic() + 90
        for url_, process in zip(urls, started, strict=True):
            while True:
                try:
                    if httpx.get(f"{url_}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None:
                    raise RuntimeError(f"uvicorn on {url_} exited with {process.returncode}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url_} did not become ready")
                time.sleep(0.2)
        yield urls
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# -- the plain asyncpg baseline ----------------------------------------------------------------


@dataclass(frozen=True)
class Fixed:
    """The engine's result for one bench stay, computed once, used for every baseline row."""

    payments: dict[Payer, Decimal]
    out_of_pocket: Decimal
    policy: str
    category: str | None
    explanation: str  # JSON, as stored by the gateway (Explanation.stored_json: no text)
    state: str  # JSON ledger state after one such stay
    empty_state: str
    # the fund entries' parameters (funds.entry_params) with PERSON as the person's account
    entries: dict[str, Any] = field(default_factory=dict)
    # the READ record of the answer, as the gateway writes it
    payload_operation: str | None = None
    payload_query: str | None = None
    payload_paths: tuple[str, ...] = ()

    @classmethod
    async def of_gateway(cls, url: str) -> Fixed:
        """:meth:`compute` :meth:`with_payload_record` (a connection of its own to ``url``)."""
        conn = await asyncpg.connect(**asyncpg_options(url))
        try:
            return await cls.compute().with_payload_record(conn)
        finally:
            await conn.close()

    async def with_payload_record(self, conn: Any) -> Fixed:
        """These amounts with the query text and field paths of the READ record the gateway
        wrote for its last ``settleClaim`` answer (the payload's personal fields): the raw
        transaction writes the same record. Raises ``LookupError`` before any answer."""
        row = await conn.fetchrow(PAYLOAD_RECORD)
        if row is None:
            raise LookupError("no READ record of a settleClaim answer: settle through HTTP first")
        return replace(
            self,
            payload_operation=row["operation"],
            payload_query=row["query_text"],
            payload_paths=tuple(row["field_paths"]),
        )

    @classmethod
    def compute(cls) -> Fixed:
        person = Person(
            REGION,
            date(1970, 1, 1),
            categories=(CategoryRecord(Category.MINIMUM_LIVING, date(2021, 6, 1)),),
        )
        visit = Visit(
            "fixed",
            VisitType.INPATIENT,
            HospitalLevel.SECONDARY,
            FIRST_ADMISSION,
            FIRST_ADMISSION + timedelta(days=STAY_DAYS),
            TOTAL_COST,
            SCOPE_COST,
        )
        result, ledger = settle_visit(load_policies(), person, visit, Ledger.empty(YEAR))
        return cls(
            payments={p: result.payments[p] for p in PAYERS},
            out_of_pocket=result.out_of_pocket,
            policy=result.policy_id,
            category=result.category.value if result.category else None,
            explanation=result.explanation.stored_json(),
            state=json.dumps(ledger.to_dict()),
            empty_state=json.dumps(Ledger.empty(YEAR).to_dict()),
            entries=funds.entry_params(
                funds.rules().settlement_entries(
                    "ORIGINAL", result.payments, Parties(REGION, person=PERSON)
                )
            ),
        )


LOCK_PERSON = """SELECT id, region_code, birth_date FROM beneficiaries
WHERE id_number = $1 FOR NO KEY UPDATE"""
KNOWN_CLAIM = "SELECT claim_id FROM claim_numbers WHERE claim_number = $1"
IDENTITIES = """SELECT id, category, valid_from, valid_to FROM identities
WHERE beneficiary_id = $1 ORDER BY id"""
FLAGS = """SELECT id, category, valid_from, valid_to FROM monitoring_flags
WHERE beneficiary_id = $1 ORDER BY id"""
ENROLMENT = """SELECT id, inclusive_commercial FROM enrollments
WHERE beneficiary_id = $1 AND year = $2"""
INSERT_LEDGER = """INSERT INTO ledgers (beneficiary_id, year, state, basic_insurance,
  critical_illness, inclusive_commercial, assistance, secondary_assistance, total_cost,
  out_of_pocket, visits)
VALUES ($1, $2, $3, 0, 0, 0, 0, 0, 0, 0, 0) ON CONFLICT DO NOTHING"""
LOCK_LEDGER = """SELECT * FROM ledgers WHERE beneficiary_id = $1 AND year = $2 FOR UPDATE"""
INSERT_CLAIM = """INSERT INTO claims (claim_number, beneficiary_id, year, type, hospital_level,
  hospital_code, admission_date, discharge_date, total_cost, policy_scope_cost,
  referral_compliant, in_province, diagnosis, special_treatment_hospital, carrier, content_hash)
VALUES ($1, $2, $3, 'INPATIENT', 'SECONDARY', NULL, $4, $5, $6, $7, true, true, NULL, false,
  NULL, $8)
RETURNING id"""
INSERT_SETTLEMENT = """INSERT INTO settlements (claim_id, beneficiary_id, year, kind, policy,
  category, out_of_pocket, reason, explanation, department, org)
VALUES ($1, $2, $3, 'ORIGINAL', $4, $5, $6, NULL, $7, $8, $9) RETURNING id"""
INSERT_LINES = (
    "INSERT INTO settlement_lines (settlement_id, beneficiary_id, year, payer, amount) VALUES "
    + ", ".join(f"($1, $2, $3, ${2 * k + 4}, ${2 * k + 5})" for k in range(len(PAYERS)))
)
UPDATE_LEDGER = """UPDATE ledgers SET state = $3, basic_insurance = $4, critical_illness = $5,
  inclusive_commercial = $6, assistance = $7, secondary_assistance = $8, out_of_pocket = $9,
  total_cost = $10, visits = $11, updated_at = $12
WHERE beneficiary_id = $1 AND year = $2"""
TAKE_SHARD = "SELECT shard, head FROM audit_take_shard(0, $1, $2, 0)"
INSERT_AUDIT = """INSERT INTO audit_log (at, action, department, org, subject, purpose, operation,
  query_hash, query_text, beneficiary_ids, field_paths, detail, prev_hash, hash, shard)
VALUES ($1, $2, $3, $4, 'bench', NULL, $5, $6, $7, $8, $9, $10, $11, $12, $13)"""
PAYLOAD_RECORD = """SELECT operation, query_text, field_paths FROM audit_log
WHERE action = 'READ' AND query_text LIKE '%settleClaim%' ORDER BY id DESC LIMIT 1"""
INSERT_OUTBOX = """INSERT INTO outbox_events (type, beneficiary_id, subject, detail)
VALUES ('CLAIM_CHANGED', $1, $2, $3)"""
NOTIFY = "SELECT pg_notify($1, '')"
POST_ENTRIES = """WITH want AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::numeric[])
    AS w(kind, region_code, party, flow, side, amount)
), opened AS (
  INSERT INTO fund_accounts (kind, region_code, party)
  SELECT DISTINCT kind, region_code, party FROM want ORDER BY 1, 2, 3
  ON CONFLICT DO NOTHING RETURNING id, kind, region_code, party
)
INSERT INTO fund_entries (account_id, settlement_id, kind, flow, side, amount, year, booked_on)
SELECT a.id, $7, 'ORIGINAL', w.flow, w.side, w.amount, $8, $9
FROM want w JOIN (
  SELECT id, kind, region_code, party FROM opened
  UNION ALL
  SELECT id, kind, region_code, party FROM fund_accounts
  WHERE (kind, region_code, party) IN (SELECT kind, region_code, party FROM want)
) a USING (kind, region_code, party)
RETURNING account_id, flow, side, amount"""


async def audit_shard(conn: Any) -> tuple[int, str]:
    """:func:`gateway.storage.audit.append`'s shard in plain asyncpg: the lock of the first
    free shard and its head hash, by the schema's function (migration 0020)."""
    shard, head = await conn.fetchrow(TAKE_SHARD, audit.shards(), audit._CHAIN_LOCK)
    return shard, head or audit.GENESIS


LEDGER_COLUMNS = {
    Payer.BASIC_INSURANCE: "basic_insurance",
    Payer.CRITICAL_ILLNESS: "critical_illness",
    Payer.INCLUSIVE_COMMERCIAL: "inclusive_commercial",
    Payer.ASSISTANCE: "assistance",
    Payer.SECONDARY_ASSISTANCE: "secondary_assistance",
}


async def settle_plain(conn: Any, claim: ClaimSpec, fixed: Fixed) -> None:
    """One settlement as one asyncpg transaction writing what ``_settle`` writes, in plain
    statements (18; the gateway sends 7): the person's lock and year, the claim, its event and
    lines, the ledger, the outbox event and its wake-up, the fund entries, the rollups (which the
    gateway runs at its commit, after its audit records), the WRITE and READ records."""
    async with conn.transaction():
        person = await conn.fetchrow(LOCK_PERSON, claim.id_number)
        if person is None:
            raise LookupError(f"idNumber = {claim.id_number}: no such beneficiary")
        if await conn.fetchval(KNOWN_CLAIM, claim.number) is not None:
            return  # already settled (idempotent), as the gateway
        pid: uuid.UUID = person["id"]
        year = claim.admission.year
        await conn.fetch(IDENTITIES, pid)
        await conn.fetch(FLAGS, pid)
        await conn.fetchrow(ENROLMENT, pid, year)
        await conn.execute(INSERT_LEDGER, pid, year, fixed.empty_state)
        ledger = await conn.fetchrow(LOCK_LEDGER, pid, year)
        digest = hashlib.sha256(json.dumps(claim.variables(), sort_keys=True).encode()).hexdigest()
        claim_id = await conn.fetchval(
            INSERT_CLAIM,
            claim.number,
            pid,
            year,
            claim.admission,
            claim.discharge,
            TOTAL_COST,
            SCOPE_COST,
            digest,
        )
        settlement_id = await conn.fetchval(
            INSERT_SETTLEMENT,
            claim_id,
            pid,
            year,
            fixed.policy,
            fixed.category,
            fixed.out_of_pocket,
            fixed.explanation,
            MI["department"],
            MI["org"],
        )
        lines: list[Any] = []
        for payer in PAYERS:
            lines += [payer.value, fixed.payments[payer]]
        await conn.execute(INSERT_LINES, settlement_id, pid, year, *lines)
        await conn.execute(
            UPDATE_LEDGER,
            pid,
            year,
            fixed.state,
            *(ledger[LEDGER_COLUMNS[p]] + fixed.payments[p] for p in PAYERS),
            ledger["out_of_pocket"] + fixed.out_of_pocket,
            ledger["total_cost"] + TOTAL_COST,
            ledger["visits"] + 1,
            datetime.now(UTC),
        )
        await conn.execute(INSERT_OUTBOX, pid, claim.number, OUTBOX_DETAIL)
        await conn.execute(NOTIFY, CHANNEL)
        params = fixed.entries
        posted = await conn.fetch(
            POST_ENTRIES,
            params["kinds"],
            params["regions"],
            [str(pid) if party == PERSON else party for party in params["parties"]],
            params["flows"],
            params["sides"],
            params["amounts"],
            settlement_id,
            year,
            claim.discharge,
        )
        # resolvers.pending: the fund months' and the dashboard's rollups, one statement
        month = claim.discharge.replace(day=1)
        sums: dict[fund_months.Key, list[Any]] = {}
        for account, flow, side, amount in posted:
            cell = sums.setdefault((account, year, month, "ORIGINAL", flow, side), [ZERO, 0])
            cell[0] += amount
            cell[1] += 1
        cells: dict[cube.Key, list[int | Decimal]] = {}
        stay = models.Claim(
            total_cost=TOTAL_COST,
            policy_scope_cost=SCOPE_COST,
            discharge_date=claim.discharge,
            type=VisitType.INPATIENT.value,
            hospital_level=HospitalLevel.SECONDARY.value,
        )
        for dim, value, amounts in cube.deltas(
            stay, "ORIGINAL", fixed.payments, fixed.out_of_pocket, fixed.category
        ):
            cells[(pid, year, dim, value)] = list(amounts)
        rollups = pending.merged((fund_months.write_pending(sums), cube.write_pending(cells)))
        await conn.execute(ROLLUPS.sql, *ROLLUPS.arguments(rollups))
        # gateway.storage.audit.append: a shard's lock, its head, insert the linked records
        # (the WRITE record, then the READ record of the answer after it, in that shard).
        shard, prev = await audit_shard(conn)
        detail = {
            "claimNumber": claim.number,
            "year": year,
            "payments": {p.value: str(a) for p, a in fixed.payments.items()},
        }
        for action, operation, query, paths, details in (
            ("WRITE", "settleClaim", None, [], detail),
            ("READ", fixed.payload_operation, fixed.payload_query, list(fixed.payload_paths), {}),
        ):
            record = models.AuditRecord(  # transient: only to hash it exactly as the gateway
                at=datetime.now(UTC),
                action=action,
                department=MI["department"],
                org=MI["org"],
                subject="bench",
                purpose=None,
                operation=operation,
                query_hash=audit.query_hash(query),
                query_text=query,
                beneficiary_ids=[pid],
                field_paths=paths,
                detail=details,
            )
            digest = audit.record_digest(prev, record)
            await conn.execute(
                INSERT_AUDIT,
                record.at,
                action,
                record.department,
                record.org,
                operation,
                record.query_hash,
                query,
                [pid],
                paths,
                json.dumps(details),
                prev,
                digest,
                shard,
            )
            prev = digest


ROLLUPS = positional(
    pending.clause(pending.statement((fund_months.write_pending({}), cube.write_pending({})))),
    asyncpg_dialect.dialect(),
)
"""The gateway's rollup statement of the fund months' and the dashboard's parts, as asyncpg
takes it (:func:`gateway.storage.database.positional`)."""
OUTBOX_DETAIL = json.dumps({"kind": "ORIGINAL"})
PERSON = "<person>"
"""The party of the person's own fund account in :attr:`Fixed.entries` (its id per claim)."""
ZERO = Decimal("0.00")


def asyncpg_options(url: str) -> dict[str, Any]:
    """asyncpg.connect keyword arguments for a SQLAlchemy ``postgresql+asyncpg`` URL."""
    parsed: URL = make_url(url)
    options: dict[str, Any] = {
        "user": parsed.username,
        "password": parsed.password,
        "database": parsed.database,
        "host": parsed.query.get("host", parsed.host),
        "port": parsed.query.get("port", parsed.port),
        "server_settings": SERVER_SETTINGS,
    }
    return {k: v for k, v in options.items() if v is not None}


async def settle_baseline(
    url: str,
    claims: Sequence[ClaimSpec],
    clients: int,
    fixed: Fixed,
    progress: Progress,
    task: TaskID,
) -> Run:
    """The baseline: ``clients`` connections, each settling claim after claim."""
    pool = await asyncpg.create_pool(min_size=clients, max_size=clients, **asyncpg_options(url))
    held: dict[int, Any] = {}

    async def open_client(i: int) -> Callable[[ClaimSpec], Awaitable[None]]:
        conn = await pool.acquire()
        held[i] = conn

        async def settle(claim: ClaimSpec) -> None:
            await settle_plain(conn, claim, fixed)

        return settle

    async def close_client(i: int) -> None:
        await pool.release(held.pop(i))

    try:
        run = Run("baseline", clients)
        return await drive(claims, clients, open_client, close_client, run, progress, task)
    finally:
        await pool.close()


# -- correctness -------------------------------------------------------------------------------

SETTLEMENT_COUNTS = """SELECT count(*) FROM claims c
WHERE (SELECT count(*) FROM settlements s WHERE s.claim_id = c.id) <> 1"""
LINE_COUNTS = """SELECT count(*) FROM settlements s
WHERE (SELECT count(*) FROM settlement_lines l WHERE l.settlement_id = s.id) <> 5"""
LEDGER_MISMATCHES = """
WITH paid AS (
  SELECT s.beneficiary_id, s.year,
    sum(l.amount) FILTER (WHERE l.payer = 'basicInsurance') AS basic_insurance,
    sum(l.amount) FILTER (WHERE l.payer = 'criticalIllness') AS critical_illness,
    sum(l.amount) FILTER (WHERE l.payer = 'inclusiveCommercial') AS inclusive_commercial,
    sum(l.amount) FILTER (WHERE l.payer = 'assistance') AS assistance,
    sum(l.amount) FILTER (WHERE l.payer = 'secondaryAssistance') AS secondary_assistance
  FROM settlements s JOIN settlement_lines l ON l.settlement_id = s.id
  GROUP BY s.beneficiary_id, s.year),
pocket AS (
  SELECT beneficiary_id, year, sum(out_of_pocket) AS out_of_pocket FROM settlements
  GROUP BY beneficiary_id, year),
stays AS (
  SELECT beneficiary_id, year, count(*) AS visits, sum(total_cost) AS total_cost FROM claims
  GROUP BY beneficiary_id, year)
SELECT count(*) FROM stays c
FULL JOIN ledgers g USING (beneficiary_id, year)
LEFT JOIN paid p USING (beneficiary_id, year)
LEFT JOIN pocket o USING (beneficiary_id, year)
WHERE g.beneficiary_id IS NULL OR c.beneficiary_id IS NULL
  OR (g.basic_insurance, g.critical_illness, g.inclusive_commercial, g.assistance,
      g.secondary_assistance, g.out_of_pocket, g.total_cost, g.visits)
     IS DISTINCT FROM
     (p.basic_insurance, p.critical_illness, p.inclusive_commercial, p.assistance,
      p.secondary_assistance, o.out_of_pocket, c.total_cost, c.visits::int)"""
HTTP_LINES = """SELECT c.claim_number, l.payer, l.amount, s.out_of_pocket FROM claims c
JOIN settlements s ON s.claim_id = c.id JOIN settlement_lines l ON l.settlement_id = s.id
WHERE c.claim_number LIKE 'H-%'"""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


async def check(url: str, sent: dict[str, int], answers: dict[str, dict[str, str]]) -> list[Check]:
    checks: list[Check] = []
    conn = await asyncpg.connect(**asyncpg_options(url))
    try:
        for prefix, count in sent.items():
            stored = await conn.fetchval(
                "SELECT count(*) FROM claims WHERE claim_number LIKE $1", f"{prefix}-%"
            )
            checks.append(
                Check(
                    f"{prefix}-claims stored == sent",
                    stored == count,
                    f"{stored} stored, {count} sent",
                )
            )
        claims, settlements = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM claims), (SELECT count(*) FROM settlements)"
        )
        wrong = await conn.fetchval(SETTLEMENT_COUNTS)
        checks.append(
            Check(
                "one settlement per claim (no duplicates)",
                wrong == 0,
                f"{claims} claims, {settlements} settlements, {wrong} claims with ≠ 1",
            )
        )
        wrong = await conn.fetchval(LINE_COUNTS)
        checks.append(Check("5 lines per settlement", wrong == 0, f"{wrong} settlements with ≠ 5"))
        mismatched = await conn.fetchval(LEDGER_MISMATCHES)
        total = await conn.fetchval("SELECT count(*) FROM ledgers")
        checks.append(
            Check(
                "ledger totals == sum of settlement lines",
                mismatched == 0,
                f"{total} ledgers, {mismatched} differ (payers, out-of-pocket, cost, visits)",
            )
        )
        lines: dict[str, dict[str, Decimal]] = {}
        for row in await conn.fetch(HTTP_LINES):
            amounts = lines.setdefault(row["claim_number"], {})
            amounts[row["payer"]] = row["amount"]
            amounts["outOfPocket"] = row["out_of_pocket"]
        differ = sum(
            1
            for number, answer in answers.items()
            if {k: Decimal(v) for k, v in answer.items() if k != "claimNumber"} != lines.get(number)
        )
        checks.append(
            Check(
                "HTTP answers == stored lines",
                differ == 0 and len(answers) == sent.get("H", 0),
                f"{len(answers)} answers, {differ} differ",
            )
        )
        written = {r["side"]: r for r in await conn.fetch(WRITTEN_PER_CLAIM)}
        gateway, raw = written.get("H"), written.get("B")
        same = gateway is not None and raw is not None and tuple(gateway)[1:] == tuple(raw)[1:]
        checks.append(
            Check(
                "baseline writes what the gateway writes",
                same,
                "per claim (gateway, raw): "
                + ", ".join(
                    f"{k} {gateway[k] if gateway else '-'}/{raw[k] if raw else '-'}"
                    for k in ("entries", "outbox", "cells", "reads", "months")
                ),
            )
        )
        writes = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'WRITE' AND operation = 'settleClaim'"
        )
        checks.append(
            Check(
                "one WRITE audit record per settlement",
                writes == settlements,
                f"{writes} records",
            )
        )
    finally:
        await conn.close()
    engine = create_async_engine(url)
    try:
        async with AsyncSession(engine) as session:
            verification = await audit.verify(session)
    finally:
        await engine.dispose()
    checks.append(
        Check(
            "audit hash chain verifies",
            verification.ok,
            f"{verification.checked} records"
            + ("" if verification.ok else f"; broken at {verification.broken_at}"),
        )
    )
    return checks


WRITTEN_PER_CLAIM = """
WITH c AS MATERIALIZED (
  SELECT left(claim_number, 1) AS side, id, year, beneficiary_id, claim_number FROM claims
  WHERE claim_number LIKE 'H-%' OR claim_number LIKE 'B-%'
), n AS (
  SELECT side, count(*) AS claims, count(DISTINCT beneficiary_id) AS persons FROM c GROUP BY 1
), events AS MATERIALIZED (
  SELECT c.side, s.id, s.year FROM settlements s JOIN c ON c.id = s.claim_id AND c.year = s.year
), paid AS (
  SELECT e.side, count(*) AS lines FROM settlement_lines l
  JOIN events e ON e.id = l.settlement_id AND e.year = l.year
  WHERE l.amount <> 0 GROUP BY 1
), entries AS (
  SELECT e.side, count(*) AS entries,
         count(*) FILTER (WHERE a.kind = 'PERSON') AS own,
         array_agg(DISTINCT f.account_id) FILTER (WHERE a.kind = 'PERSON') AS accounts
  FROM fund_entries f JOIN events e ON e.id = f.settlement_id
  JOIN fund_accounts a ON a.id = f.account_id GROUP BY 1
), told AS (
  SELECT c.side, count(*) AS events FROM outbox_events o JOIN c ON o.subject = c.claim_number
  WHERE o.type = 'CLAIM_CHANGED' GROUP BY 1
), persons AS (
  SELECT DISTINCT side, beneficiary_id FROM c
), cells AS (
  SELECT p.side, count(*) AS cells FROM dashboard_person_cells d
  JOIN persons p ON p.beneficiary_id = d.beneficiary_id
  WHERE d.dim IN ('year', 'month', 'category', 'visit_type', 'hospital_level') GROUP BY 1
), reads AS (
  SELECT p.side, count(*) AS reads FROM audit_log a
  JOIN persons p ON p.beneficiary_id = a.beneficiary_ids[1]
  WHERE a.action = 'READ' AND a.query_text LIKE '%settleClaim%' GROUP BY 1
)
SELECT n.side,
  round(entries.entries::numeric / paid.lines, 2) AS entries,
  round(told.events::numeric / n.claims, 2) AS outbox,
  round(cells.cells::numeric / n.persons, 2) AS cells,
  round(reads.reads::numeric / n.claims, 2) AS reads,
  round((SELECT sum(m.entries) FROM fund_entry_months m WHERE m.account_id = ANY(entries.accounts))
        / entries.own, 2) AS months
FROM n JOIN paid USING (side) JOIN entries USING (side) JOIN told USING (side)
JOIN cells USING (side) JOIN reads USING (side)"""
"""Per side of the timed claims (H: gateway, B: raw; each side's persons are its own, their
claims the same stays): fund entries per paid settlement line (2: a debit and a credit), outbox
events per claim, dashboard cells per person in the dimensions every claim has (year, month,
category, visit type, hospital level: the payer cells follow the amounts, which differ, as the
baseline pays every claim as a person's first of the year), READ records of the answer per
claim, and the entries of the persons' own accounts counted in the fund months per entry (1;
the region's fund accounts are both sides'). The kinds and numbers of rows must not differ."""


# -- the database ------------------------------------------------------------------------------


async def ddl(admin: URL, statement: str) -> None:
    engine = create_async_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@contextmanager
def scratch_database() -> Iterator[tuple[str, str]]:
    """(asyncpg SQLAlchemy URL, description) of a throwaway database, as ``tests/conftest.py``."""
    configured = os.environ.get("DATABASE_URL")
    if not configured:
        with embedded.temporary("medgw-bench-") as urls:
            yield urls.owner, "embedded PostgreSQL (pgserver, Unix socket)"
        return
    base = make_url(resolve_url(Settings(database_url=configured)))
    name = f"medgw_bench_{uuid.uuid4().hex[:8]}"
    admin = base.set(database="postgres")
    asyncio.run(ddl(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield (
            base.set(database=name).render_as_string(hide_password=False),
            f"DATABASE_URL server {base.host or 'socket'}, scratch database {name}",
        )
    finally:
        asyncio.run(ddl(admin, f'DROP DATABASE "{name}" WITH (FORCE)'))


# -- the report ---------------------------------------------------------------------------------


def report(http: Run, base: Run, checks: Sequence[Check]) -> bool:
    table = Table(
        title=f"settleClaim, {http.clients} concurrent clients",
        caption="gateway: HTTP, GraphQL, ORM, engine, READ audit\nbaseline: plain asyncpg",
    )
    for column in ("run", "count", "errors", "seconds", "settlements/s"):
        table.add_column(column, justify="left" if column == "run" else "right")
    table.add_column("p50 ms", justify="right")
    table.add_column("p95 ms", justify="right")
    for run in (http, base):
        table.add_row(
            run.name,
            str(run.count),
            str(len(run.errors)),
            f"{run.seconds:.2f}",
            f"{run.rate:.1f}",
            f"{run.percentile(0.50):.1f}",
            f"{run.percentile(0.95):.1f}",
        )
    console.print(table)
    if base.rate and http.rate:
        console.print(
            f"ratio gateway/baseline, settlements/s: [bold]{http.rate / base.rate:.3f}[/] "
            f"(the baseline is {base.rate / http.rate:.1f}× faster)\n"
            f"ratio gateway/baseline, latency: "
            f"p50 {http.percentile(0.50) / base.percentile(0.50):.1f}×, "
            f"p95 {http.percentile(0.95) / base.percentile(0.95):.1f}×"
        )
    for run in (http, base):
        for error in run.errors[:5]:
            console.print(f"[red]{run.name} error[/]: {escape(error)}", highlight=False)
    checked = Table(title="correctness")
    checked.add_column("check")
    checked.add_column("ok")
    checked.add_column("detail")
    for item in checks:
        checked.add_row(item.name, "[green]yes[/]" if item.ok else "[red]NO[/]", item.detail)
    console.print(checked)
    return all(c.ok for c in checks) and not http.errors and not base.errors


# -- main ----------------------------------------------------------------------------------------


async def bench(
    url: str,
    urls: Sequence[str],
    *,
    clients: int,
    claims: int,
    persons: int,
    hot: bool,
    progress: Progress,
) -> tuple[Run, Run, list[Check]]:
    """Set up, warm up, run the gateway, run the baseline, check."""
    people = 1 if hot else persons
    warm = clients
    http_people = [id_number(i) for i in range(people)]
    base_people = [id_number(people + i) for i in range(people)]
    warm_people = [id_number(2 * people + i) for i in range(2 * warm)]
    http_warm, base_warm = warm_people[:warm], warm_people[warm:]

    everyone = [*http_people, *base_people, *warm_people]
    task = progress.add_task("set-up persons (3 mutations each)", total=len(everyone))
    await set_up(urls[0], everyone, clients, progress, task)

    warm_claims = 3 * clients
    task = progress.add_task("warm-up", total=2 * warm_claims)
    await settle_http(urls, claims_for("HW", warm_claims, http_warm), clients, progress, task)
    fixed = await Fixed.of_gateway(url)
    await settle_baseline(
        url, claims_for("BW", warm_claims, base_warm), clients, fixed, progress, task
    )

    answers: dict[str, dict[str, str]] = {}
    task = progress.add_task("gateway: settleClaim over HTTP", total=claims)
    http = await settle_http(
        urls, claims_for("H", claims, http_people), clients, progress, task, answers
    )
    task = progress.add_task("baseline: plain asyncpg", total=claims)
    base = await settle_baseline(
        url, claims_for("B", claims, base_people), clients, fixed, progress, task
    )

    task = progress.add_task("checking", total=None)
    sent = {"HW": warm_claims, "BW": warm_claims, "H": claims, "B": claims}
    checks = await check(url, sent, answers)
    progress.update(task, total=1, completed=1)
    return http, base, checks


def main(
    clients: Annotated[int, typer.Option(min=1, help="Concurrent clients / connections.")] = 8,
    claims: Annotated[int, typer.Option(min=1, help="Settlements per run.")] = 400,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn workers per process.")] = 1,
    processes: Annotated[int, typer.Option(min=1, help="Separate uvicorn processes.")] = 2,
    persons: Annotated[int, typer.Option(min=1, help="Persons the claims are spread over.")] = 200,
    hot: Annotated[bool, typer.Option(help="All claims for one person (worst case).")] = False,
) -> None:
    """Settlements per second through HTTP, and the ratio to a plain asyncpg transaction."""
    began = time.perf_counter()
    people = 1 if hot else persons
    console.print(
        f"settleClaim: {claims} claims over {people} person(s){' (hot)' if hot else ''}, "
        f"{clients} concurrent clients\n"
        f"gateway: {processes} uvicorn process(es) × {workers} worker(s); {os.cpu_count()} CPUs\n"
        f"stays: INPATIENT SECONDARY 2023, cost {TOTAL_COST}, in scope {SCOPE_COST}\n"
        "baseline: same statements, amounts fixed (the engine's, computed once)"
    )
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        task = progress.add_task("starting PostgreSQL", total=None)
        with scratch_database() as (url, where), tempfile.TemporaryDirectory() as data:
            progress.update(task, description=where, total=1, completed=1)
            task = progress.add_task("migrating", total=None)
            migrate.upgrade(url)
            progress.update(task, total=1, completed=1)
            task = progress.add_task("starting uvicorn", total=None)
            with serve(url, Path(data), processes, workers) as urls:
                progress.update(task, total=1, completed=1)
                http, base, checks = asyncio.run(
                    bench(
                        url,
                        urls,
                        clients=clients,
                        claims=claims,
                        persons=persons,
                        hot=hot,
                        progress=progress,
                    )
                )
    ok = report(http, base, checks)
    console.print(f"total wall time {time.perf_counter() - began:.1f} s")
    raise typer.Exit(0 if ok else 1)


if __name__ == "__main__":
    typer.run(main)
