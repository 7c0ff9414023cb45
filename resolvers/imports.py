"""List imports (issue 11): a department's list of persons, identities, monitoring flags or
enrollments, loaded in bulk with the mutations' rules.

The file is read as a stream (:mod:`resolvers.import_files`), each row parsed and checked in
Python, the good rows COPied (asyncpg ``copy_records_to_table``) into a temporary staging table
in batches; what needs the stored data (persons in the caller's rows, duplicates and overlaps
inside the file, conflicts with stored records, enrollments already made) is checked with
set-based SQL, and the merge is one ``INSERT … SELECT`` (and one ``UPDATE … FROM``) per table.
Memory stays flat whatever the file's size; the problems go to a table too.

Rules, as for the mutations (resolvers/ingestion.py):

- who may import what: ``persons`` needs ``Mutation.registerBeneficiary``, ``identities``
  ``recordIdentity`` (a snapshot ``endIdentity`` too), ``flags`` ``recordMonitoringFlag``
  (``endMonitoringFlag``), ``enrollments`` ``recordEnrollment``; a category is imported by the
  department that recognises it (``write_categories``), a person by the department of a region
  the token serves (row rules), and a department whose personal fields need a purpose needs it;
- *incremental* mode: each row is a record; a stored record of the same person, category and
  ``validFrom`` is the same record (unchanged when its ``validTo`` and reference agree, else
  changed), any other overlap is a conflict;
- *snapshot* mode (``category``, ``as_of``): the file is the whole list of that category in the
  token's regions on ``as_of``: a row also matches the person's record open on that day, and
  each stored record of the category open after ``as_of`` whose person is not in the file is
  ended on ``as_of`` with ``decidedOn = as_of`` (SETTLEMENT.md §4.2). Nothing is deleted.

All or nothing by default: any problem refuses the whole file (nothing stored but the job and
its report); with ``accept_valid`` the good rows are stored and the rest reported. The same file
twice changes nothing. After the merge, the person-years whose claims the changes reach are
re-settled (late news, SETTLEMENT.md §9.4) in the same transaction, and one audit record says
what was imported: counts, kind, mode and the file's SHA-256 (no list of persons, which would
grow with the file).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import Select, and_, column, select, table, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import Principal
from gateway.errors import Forbidden, NotFound
from gateway.storage import audit, models
from gateway.storage.database import Database
from policies.access.policy import AccessPolicies, DepartmentPolicy
from policies.benefits import PolicySet
from policies.errors import InvalidInput
from policies.settlement.categories import CategoryRecord
from policies.settlement.subsidy import enrollment_subsidy
from policies.vocabulary import Category
from resolvers import alerts, applications, settlement
from resolvers.import_files import (
    Batch,
    Problem,
    RowChecks,
    RowParser,
    open_sheet,
    parse_batch,
)
from resolvers.rows import RowRules

log = logging.getLogger(__name__)

BATCH_ROWS = 10_000
"""Rows per COPY batch (the most rows held in memory at once)."""
STATEMENT_TIMEOUT = "1h"
"""The statement timeout inside an import's transaction (a bulk job, not a request)."""
PAGE = 1_000
"""Persons per page when re-settling, enrollments per page when splitting contributions."""


class ImportKind(StrEnum):
    PERSONS = "persons"
    IDENTITIES = "identities"
    FLAGS = "flags"
    ENROLLMENTS = "enrollments"


MUTATIONS: dict[ImportKind, str] = {
    ImportKind.PERSONS: "registerBeneficiary",
    ImportKind.IDENTITIES: "recordIdentity",
    ImportKind.FLAGS: "recordMonitoringFlag",
    ImportKind.ENROLLMENTS: "recordEnrollment",
}
"""The mutation whose grant an import of each kind needs."""
SNAPSHOT_MUTATIONS: dict[ImportKind, str] = {
    ImportKind.IDENTITIES: "endIdentity",
    ImportKind.FLAGS: "endMonitoringFlag",
}
OPERATIONS: dict[ImportKind, str] = {
    ImportKind.PERSONS: "importPersons",
    ImportKind.IDENTITIES: "importIdentities",
    ImportKind.FLAGS: "importMonitoringFlags",
    ImportKind.ENROLLMENTS: "importEnrollments",
}


@dataclass(frozen=True)
class ImportRequest:
    """What the caller asks for (CLI options or HTTP query parameters)."""

    kind: str
    snapshot: bool = False
    category: str | None = None
    as_of: date | None = None
    accept_valid: bool = False


@dataclass(frozen=True)
class Planned:
    kind: ImportKind
    snapshot: bool
    category: Category | None
    as_of: date | None
    accept_valid: bool

    @property
    def mode(self) -> str:
        return "SNAPSHOT" if self.snapshot else "INCREMENTAL"


@dataclass
class Summary:
    """What an import did (counts of rows), as shown to the caller and kept with the job."""

    importId: str
    kind: str
    mode: str
    status: str = "RUNNING"
    fileSha256: str = ""
    rows: int = 0
    """Data rows read (the header not counted)."""
    stored: int = 0
    """New records stored."""
    changed: int = 0
    """Stored records whose dates or reference the file changed."""
    unchanged: int = 0
    """Rows that were already stored as given."""
    ended: int = 0
    """Snapshot: stored records missing from the list, ended on the snapshot date."""
    refused: int = 0
    """Rows with a problem (not stored)."""
    problems: int = 0
    adjustments: int = 0
    """ADJUSTMENT settlement events the re-settlement stored."""
    recoveries: int = 0
    """Recoveries the re-settlement created, changed or withdrawn."""
    ignoredColumns: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    """Time spent reading and staging the file, checking, merging (with the re-settlement)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan(
    request: ImportRequest, principal: Principal, access: AccessPolicies, today: date
) -> Planned:
    """The import the caller may run.

    :raises InvalidInput: an unknown kind or category, a snapshot without its category and
        date, a date after today (field and value named).
    :raises Forbidden: the department may not write this kind or category (no grant of the
        mutation, not its recogniser) or lacks the purpose its personal fields need.
    """
    try:
        kind = ImportKind(request.kind)
    except ValueError:
        raise InvalidInput(
            "kind", request.kind, f"expected one of {', '.join(ImportKind)}"
        ) from None
    policy = access.departments[principal.department]
    mutations = [MUTATIONS[kind]]
    category = None
    if request.snapshot:
        if kind not in SNAPSHOT_MUTATIONS:
            raise InvalidInput("snapshot", "true", "only identities and flags are lists to sync")
        if request.category is None:
            raise InvalidInput("category", "", "a snapshot names its category")
        if request.as_of is None:
            raise InvalidInput("asOf", "", "a snapshot names the date it is the list of")
        if request.as_of > today:
            raise InvalidInput(
                "asOf", request.as_of.isoformat(), f"is after today ({today.isoformat()})"
            )
        category = _category(request.category, kind, policy)
        mutations.append(SNAPSHOT_MUTATIONS[kind])
    elif request.category is not None or request.as_of is not None:
        raise InvalidInput("snapshot", "false", "category and asOf belong to a snapshot")
    missing = [m for m in mutations if not policy.can_use("Mutation", m)]
    if missing:
        raise Forbidden(
            f"kind = {kind}: {principal.department} may not use {', '.join(missing)}",
            field="kind",
        )
    if policy.needs_purpose(principal.purpose):
        wanted = " or ".join(sorted(policy.purposes_for_personal))
        raise Forbidden(f"personal data needs a token with purpose {wanted}", field="purpose")
    return Planned(kind, request.snapshot, category, request.as_of, request.accept_valid)


def _category(word: str, kind: ImportKind, policy: DepartmentPolicy) -> Category:
    try:
        category = Category(word)
    except ValueError:
        raise InvalidInput("category", word, "unknown category") from None
    if category.is_monitoring_flag != (kind is ImportKind.FLAGS):
        raise InvalidInput("category", word, f"is not a category of {kind}")
    if not policy.may_write_category(category):
        raise Forbidden(
            f"category = {word}: {policy.department} does not recognise it", field="category"
        )
    return category


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def create_job(
    db: Database, principal: Principal, planned: Planned, file_name: str, sha256: str
) -> uuid.UUID:
    """Record a new import (RUNNING) and return its id."""
    job = models.ImportJob(
        kind=planned.kind.value,
        mode=planned.mode,
        category=planned.category.value if planned.category else None,
        as_of=planned.as_of,
        accept_valid=planned.accept_valid,
        file_name=file_name[:255],
        file_sha256=sha256,
        department=principal.department,
        org=principal.org,
        subject=principal.subject,
        regions=list(principal.regions),
        status="RUNNING",
        summary={},
    )
    async with db.transaction() as session:
        session.add(job)
    return job.id


async def job_of(db: Database, principal: Principal, job_id: uuid.UUID) -> models.ImportJob:
    """The import, when the caller's department and organisation ran it; else NOT_FOUND."""
    async with db.sessions() as session:
        job = await session.get(models.ImportJob, job_id)
    if job is None or (job.department, job.org) != (principal.department, principal.org):
        raise NotFound(f"id = {job_id}: no such import", field="id")
    return job


async def report_rows(
    db: Database, principal: Principal, job_id: uuid.UUID
) -> AsyncIterator[tuple[int, str, str, str]]:
    """The problems of an import ``(line, column, value, reason)`` in file order, streamed; the
    read is audited (the values are the caller's own rows, which name persons)."""
    job = await job_of(db, principal, job_id)
    async with db.transaction() as session:
        await audit.append(
            session,
            principal,
            action="READ",
            operation="importReport",
            detail={"importId": str(job.id), "fileSha256": job.file_sha256},
        )
    async with db.sessions() as session:
        result = await session.stream(
            select(
                models.ImportProblem.line,
                models.ImportProblem.column,
                models.ImportProblem.value,
                models.ImportProblem.reason,
            )
            .where(models.ImportProblem.import_id == job_id)
            .order_by(models.ImportProblem.line, models.ImportProblem.id)
            .execution_options(yield_per=2_000)
        )
        async for line, col, value, reason in result:
            yield int(line), col, value, reason


Progress = Callable[[int, int], None]
"""Called with (rows read, bytes of the file read) as the import goes."""


@dataclass
class Importer:
    """Runs one import job in one transaction."""

    db: Database
    principal: Principal
    policies: PolicySet
    access: AccessPolicies
    planned: Planned
    today: date
    progress: Progress | None = None

    @property
    def policy(self) -> DepartmentPolicy:
        return self.access.departments[self.principal.department]

    async def run(self, job_id: uuid.UUID, path: Path, sha256: str) -> Summary:
        """Import ``path``; the job ends STORED or REFUSED (FAILED, and re-raised, on an
        unexpected error)."""
        summary = Summary(str(job_id), self.planned.kind.value, self.planned.mode)
        summary.fileSha256 = sha256
        try:
            async with self.db.transaction() as session:
                await self._run(session, job_id, path, summary)
        except BaseException:
            summary.status = "FAILED"
            async with self.db.transaction() as session:
                await _finish(session, job_id, summary)
            raise
        return summary

    async def _run(
        self, session: AsyncSession, job_id: uuid.UUID, path: Path, summary: Summary
    ) -> None:
        kind = self.planned.kind
        # A list of a million rows takes longer than a request's statement timeout.
        await session.execute(text(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'"))
        work = _Work(session, self, summary)
        await work.create_tables()
        clock = _Clock(summary.seconds)
        with open_sheet(path) as sheet:
            parser = RowParser(
                kind.value,
                sheet.header,
                RowChecks(
                    self.today,
                    self.policy.write_categories,
                    self.principal.department,
                    self.planned.category,
                    self.principal.regions,
                ),
            )
            summary.ignoredColumns = parser.ignored
            await work.problems(parser.header_problems)
            if not parser.header_problems:
                await work.stage(parser, sheet.rows, sheet.done)
        clock.lap("stage")
        await work.check()
        await work.count_problems()
        clock.lap("check")
        if summary.problems and not self.planned.accept_valid:
            summary.status = "REFUSED"
        else:
            await work.merge()
            summary.status = "STORED"
            clock.lap("merge")
        await session.execute(
            text(
                'INSERT INTO import_problems (import_id, line, "column", value, reason) '
                'SELECT :id, line, left("column", 120), value, reason FROM import_problem '
                'ORDER BY line, "column"'
            ),
            {"id": job_id},
        )
        if work.disclosed:
            await audit.append(
                session,
                self.principal,
                action="READ",
                operation=f"mutation {OPERATIONS[kind]}",
                beneficiary_ids=work.disclosed,
                field_paths=[f"{OPERATIONS[kind]}(idNumber)"],
            )
        await audit.append(
            session,
            self.principal,
            action="WRITE",
            operation=OPERATIONS[kind],
            detail={
                k: v
                for k, v in summary.to_dict().items()
                if k not in ("ignoredColumns", "seconds") and v not in (None, "")
            }
            | {"category": self.planned.category, "asOf": _iso(self.planned.as_of)},
        )
        await _finish(session, job_id, summary)


async def import_file(
    db: Database,
    principal: Principal,
    policies: PolicySet,
    access: AccessPolicies,
    planned: Planned,
    path: Path,
    today: date,
    *,
    file_name: str | None = None,
    progress: Progress | None = None,
) -> Summary:
    """Record the job and run it: :func:`create_job` then :meth:`Importer.run`."""
    sha256 = file_sha256(path)
    job_id = await create_job(db, principal, planned, file_name or path.name, sha256)
    importer = Importer(db, principal, policies, access, planned, today, progress)
    return await importer.run(job_id, path, sha256)


class _Clock:
    def __init__(self, laps: dict[str, float]) -> None:
        self.laps = laps
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self.last, 3)
        self.last = now


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


async def _finish(session: AsyncSession, job_id: uuid.UUID, summary: Summary) -> None:
    await session.execute(
        update(models.ImportJob)
        .where(models.ImportJob.id == job_id)
        .values(status=summary.status, summary=summary.to_dict(), finished_at=datetime.now(UTC))
    )


# -- the SQL --------------------------------------------------------------------------------

_STAGE_COLUMNS: dict[ImportKind, tuple[tuple[str, str], ...]] = {
    ImportKind.PERSONS: (
        ("id_number", "varchar(18)"),
        ("name", "text"),
        ("region_code", "varchar(6)"),
        ("gender", "varchar(6)"),
        ("birth_date", "date"),
    ),
    ImportKind.IDENTITIES: (
        ("id_number", "varchar(18)"),
        ("category", "varchar(40)"),
        ("valid_from", "date"),
        ("valid_to", "date"),
        ("decided_on", "date"),
        ("reference", "text"),
    ),
    ImportKind.ENROLLMENTS: (
        ("id_number", "varchar(18)"),
        ("year", "smallint"),
        ("contribution", "numeric(14, 2)"),
        ("inclusive_commercial", "boolean"),
        ("enrolled_on", "date"),
        ("scheme", "varchar(12)"),
    ),
}
_STAGE_COLUMNS[ImportKind.FLAGS] = _STAGE_COLUMNS[ImportKind.IDENTITIES]
_TARGETS = {ImportKind.IDENTITIES: "identities", ImportKind.FLAGS: "monitoring_flags"}


def _admissible(rules: RowRules) -> str:
    """The row rules of a write (:meth:`RowRules.admissible`) as SQL on ``beneficiaries``
    (region prefixes are digits, checked when the token was read: literal binds are safe)."""
    condition = and_(*rules.admissible())
    if rules.rules <= {"region"}:
        return _literal(condition)
    return f"beneficiaries.id IN ({_literal(select(models.Beneficiary.id).where(condition))})"


def _literal(clause: Any) -> str:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    return str(clause.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


class _Work:
    """The statements of one import, on its transaction's connection."""

    def __init__(self, session: AsyncSession, importer: Importer, summary: Summary) -> None:
        self.session = session
        self.importer = importer
        self.planned = importer.planned
        self.summary = summary
        self.kind = importer.planned.kind
        self.columns = _STAGE_COLUMNS[self.kind]
        self.admissible = _admissible(RowRules.of(importer.principal, importer.policy.rows))
        self.labels: dict[str, str] = {}
        self.disclosed: list[uuid.UUID] = []
        """Persons outside the caller's rows whose ID numbers the file gave (persons)."""

    async def sql(self, statement: str, **params: Any) -> Any:
        return await self.session.execute(text(statement), params)

    async def create_tables(self) -> None:
        columns = ", ".join(f"{name} {kind}" for name, kind in self.columns)
        await self.sql(f"CREATE TEMP TABLE import_stage (line integer, {columns}) ON COMMIT DROP")
        await self.sql(
            'CREATE TEMP TABLE import_problem (line integer, "column" text, value text, '
            "reason text) ON COMMIT DROP"
        )

    async def _driver(self) -> Any:
        connection = await self.session.connection()
        raw = await connection.get_raw_connection()
        return raw.driver_connection

    async def problems(self, problems: Sequence[Problem]) -> None:
        if not problems:
            return
        driver = await self._driver()
        await driver.copy_records_to_table(
            "import_problem",
            records=[(p.line, p.column, p.value, p.reason) for p in problems],
            columns=["line", "column", "value", "reason"],
        )

    async def stage(self, parser: RowParser, rows: Any, done: Callable[[], int]) -> None:
        """COPY the parsed rows into the staging table, batch by batch."""
        self.labels = {f: parser.column(f) for f in parser.index} | {
            f: f for f in ("idNumber", "validFrom", "year", "category") if f not in parser.index
        }
        driver = await self._driver()
        names = ["line", *(name for name, _ in self.columns)]
        progress = self.importer.progress
        count = 0

        def read() -> tuple[list[tuple[int, Sequence[Any]]], int]:
            return list(itertools.islice(rows, BATCH_ROWS)), done()

        def parse(batch: list[tuple[int, Sequence[Any]]]) -> Awaitable[Batch]:
            return asyncio.to_thread(parse_batch, parser, batch)

        # Parsing (a worker thread) overlaps the COPY of the batch before it (the server); at
        # most two batches are in flight, so memory stays flat. (Worker processes were tried:
        # on 2 shared cores the pickling cost what the second core gained.)
        in_flight: deque[tuple[asyncio.Future[Batch], int]] = deque()
        try:
            exhausted = False
            while True:
                while not exhausted and len(in_flight) < 2:
                    batch, position = await asyncio.to_thread(read)
                    if not batch:
                        exhausted = True
                        break
                    in_flight.append((asyncio.ensure_future(parse(batch)), position))
                if not in_flight:
                    break
                future, position = in_flight.popleft()
                records, problems, parsed = await future
                await driver.copy_records_to_table("import_stage", records=records, columns=names)
                await self.problems(problems)
                count += parsed
                if progress is not None:
                    progress(count, position)
        finally:
            for future, _ in in_flight:
                future.cancel()
        self.summary.rows = count
        await self.sql("ANALYZE import_stage")

    async def count_problems(self) -> None:
        counts = (await self.sql("SELECT count(*), count(DISTINCT line) FROM import_problem")).one()
        self.summary.problems, self.summary.refused = int(counts[0]), int(counts[1])

    def label(self, name: str) -> str:
        return self.labels.get(name, name)

    async def problem_sql(self, select_sql: str, **params: Any) -> None:
        await self.sql(
            f'INSERT INTO import_problem (line, "column", value, reason) {select_sql}', **params
        )

    # -- checks --------------------------------------------------------------------------

    async def check(self) -> None:
        if self.kind is ImportKind.PERSONS:
            await self._check_persons()
        else:
            await self._stage_persons()
            if self.kind is ImportKind.ENROLLMENTS:
                await self._check_enrollments()
            else:
                await self._check_categories()

    async def _duplicates(self, key: str, column: str, value: str) -> None:
        await self.problem_sql(
            "SELECT line, :column, shown, 'also on line ' || first FROM ("
            f"  SELECT line, {value} AS shown, min(line) OVER (PARTITION BY {key}) AS first"
            "   FROM import_stage) d WHERE line <> first",
            column=column,
        )

    async def _check_persons(self) -> None:
        await self._duplicates("id_number", self.label("idNumber"), "id_number")
        await self.problem_sql(
            "SELECT s.line, p.col, p.value, p.reason FROM import_stage s "
            "JOIN beneficiaries ON beneficiaries.id_number = s.id_number "
            "CROSS JOIN LATERAL (VALUES "
            f" (NOT ({self.admissible}), :c_id, s.id_number, :outside),"
            f" (({self.admissible}) AND beneficiaries.name <> s.name, :c_name, s.name, :name),"
            f" (({self.admissible}) AND beneficiaries.region_code <> s.region_code, :c_region,"
            "   s.region_code, :region)"
            ") AS p(bad, col, value, reason) WHERE p.bad",
            c_id=self.label("idNumber"),
            c_name=self.label("name"),
            c_region=self.label("regionCode"),
            outside="may not be registered with this token; its region's department can "
            "change the person's region code",
            name="this idNumber is registered with another name",
            region="this idNumber is registered with another regionCode",
        )

        # As registerBeneficiary (resolvers/ingestion._disclosed): the refusal tells the caller
        # that a person outside its regions holds the number; the audit records who learnt it.
        self.disclosed = list(
            (
                await self.sql(
                    "SELECT beneficiaries.id FROM import_stage s JOIN beneficiaries ON "
                    f"beneficiaries.id_number = s.id_number WHERE NOT ({self.admissible})"
                )
            ).scalars()
        )

    async def _stage_persons(self) -> None:
        """``import_staged``: the staged rows with the person each names, locked, when in the
        caller's rows (else NOT_FOUND, as :func:`resolvers.beneficiaries.lock_person` says)."""
        # Every write about a person locks the person first (resolvers.beneficiaries.
        # lock_person), so what is checked below stays so until the commit and the re-runs
        # never deadlock with a settlement; in id order, so two imports never do either.
        await self.sql(
            "CREATE TEMP TABLE import_staged ON COMMIT DROP AS "
            "SELECT s.*, beneficiaries.id AS beneficiary_id, "
            "beneficiaries.region_code AS person_region FROM import_stage s "
            "JOIN beneficiaries ON beneficiaries.id_number = s.id_number "
            f"AND {self.admissible} ORDER BY beneficiaries.id "
            "FOR NO KEY UPDATE OF beneficiaries"
        )
        await self.problem_sql(
            "SELECT line, :column, id_number, 'no such beneficiary' FROM import_stage s "
            "WHERE NOT EXISTS (SELECT 1 FROM import_staged t WHERE t.line = s.line)",
            column=self.label("idNumber"),
        )

    async def _check_categories(self) -> None:
        target = _TARGETS[self.kind]
        snapshot = self.planned.snapshot
        await self.problem_sql(
            "SELECT line, :column, to_char(valid_from, 'YYYY-MM-DD'), "
            + (
                "'listed again (line ' || prev_line || '): a snapshot lists a person once' "
                if snapshot
                else "'overlaps line ' || prev_line || ' (the same person and category)' "
            )
            + "FROM (SELECT line, valid_from, lag(line) OVER w AS prev_line, "
            "lag(valid_to) OVER w AS prev_to FROM import_stage "
            "WINDOW w AS (PARTITION BY id_number, category ORDER BY valid_from, line)) d "
            "WHERE prev_line IS NOT NULL"
            + ("" if snapshot else " AND (prev_to IS NULL OR prev_to >= valid_from)"),
            column=self.label("validFrom"),
        )
        # The stored record each row is about: the same validFrom, or (snapshot) the one open
        # on the snapshot date.
        current = (
            "(r.valid_from = s.valid_from OR r.valid_to IS NULL OR r.valid_to >= :as_of)"
            if snapshot
            else "r.valid_from = s.valid_from"
        )
        await self.sql(
            "CREATE TEMP TABLE import_plan ON COMMIT DROP AS "
            "SELECT s.line, s.beneficiary_id, s.category, s.valid_from, s.valid_to, "
            "s.decided_on, s.reference, m.id AS record_id, m.valid_from AS old_from, "
            "m.valid_to AS old_to, m.decided_on AS old_decided, m.reference AS old_reference "
            "FROM import_staged s LEFT JOIN LATERAL ("
            f" SELECT r.id, r.valid_from, r.valid_to, r.decided_on, r.reference FROM {target} r"
            " WHERE r.beneficiary_id = s.beneficiary_id AND r.category = s.category"
            f" AND {current} ORDER BY r.valid_from = s.valid_from DESC, r.valid_from DESC"
            " LIMIT 1) m ON true WHERE s.beneficiary_id IS NOT NULL",
            **({"as_of": self.planned.as_of} if snapshot else {}),
        )
        await self.sql("ANALYZE import_plan")
        await self.problem_sql(
            "SELECT p.line, :column, to_char(p.valid_from, 'YYYY-MM-DD'), "
            "'overlaps a stored ' || p.category || ' record of this person; end that record "
            "first' FROM import_plan p WHERE EXISTS ("
            f" SELECT 1 FROM {target} r WHERE r.beneficiary_id = p.beneficiary_id"
            " AND r.category = p.category AND r.id IS DISTINCT FROM p.record_id"
            " AND (r.valid_to IS NULL OR p.valid_from <= r.valid_to)"
            " AND (p.valid_to IS NULL OR r.valid_from <= p.valid_to))",
            column=self.label("validFrom"),
        )

    async def _check_enrollments(self) -> None:
        await self._duplicates("id_number, year", self.label("year"), "year::text")
        await self.sql(
            "CREATE TEMP TABLE import_plan ON COMMIT DROP AS "
            "SELECT s.*, e.id AS enrollment_id, "
            "(e.id IS NOT NULL AND (e.contribution, e.inclusive_commercial, e.enrolled_on, "
            " e.scheme) IS DISTINCT FROM (s.contribution, s.inclusive_commercial, "
            " s.enrolled_on, s.scheme)) AS conflict "
            "FROM import_staged s LEFT JOIN enrollments e "
            "ON e.beneficiary_id = s.beneficiary_id AND e.year = s.year "
            "WHERE s.beneficiary_id IS NOT NULL"
        )
        await self.problem_sql(
            "SELECT line, :column, year::text, 'the person is already enrolled for ' || year "
            "|| ' with other terms' FROM import_plan WHERE conflict",
            column=self.label("year"),
        )
        await self.problem_sql(
            "SELECT p.line, :column, p.year::text, 'claim ' || c.claim_number || ' of ' || p.year "
            "|| ' was settled with insured: false; correct it by reversal and resubmission "
            "first' FROM import_plan p JOIN claims c ON c.beneficiary_id = p.beneficiary_id "
            "AND c.year = p.year AND NOT c.insured AND c.reversed_at IS NULL "
            "WHERE p.enrollment_id IS NULL",
            column=self.label("year"),
        )
        await self.count_problems()
        if not self.summary.problems or self.planned.accept_valid:
            await self._split()

    # -- merge -----------------------------------------------------------------------------

    def _valid(self, alias: str) -> str:
        """SQL: the row of ``alias`` has no problem (true when there are none at all)."""
        if not self.summary.problems:
            return "true"
        return f"NOT EXISTS (SELECT 1 FROM import_problem x WHERE x.line = {alias}.line)"

    async def merge(self) -> None:
        if self.kind is ImportKind.PERSONS:
            await self._merge_persons()
        elif self.kind is ImportKind.ENROLLMENTS:
            await self._merge_enrollments()
        else:
            await self._merge_categories()

    async def _merge_persons(self) -> None:
        principal = self.importer.principal
        stored = await self.session.scalar(
            text(
                "WITH new AS (INSERT INTO beneficiaries (id, id_number, name, gender, birth_date,"
                " region_code, created_by) SELECT gen_random_uuid(), s.id_number, s.name, "
                "s.gender, s.birth_date, s.region_code, :department FROM import_stage s "
                f"WHERE {self._valid('s')} ON CONFLICT (id_number) DO NOTHING RETURNING 1) "
                "SELECT count(*) FROM new"
            ),
            {"department": principal.department},
        )
        self.summary.stored = int(stored or 0)
        self.summary.unchanged = self.summary.rows - self.summary.refused - self.summary.stored

    async def _merge_categories(self) -> None:
        target = _TARGETS[self.kind]
        principal = self.importer.principal
        await self.sql(
            "CREATE TEMP TABLE import_change (record_id bigint, beneficiary_id uuid, "
            "category text, old_from date, old_to date, old_decided date, new_from date, "
            "new_to date, new_decided date) ON COMMIT DROP"
        )
        # Only persons with claims are re-settled: only their changes are kept.
        with_claims = (
            "EXISTS (SELECT 1 FROM claims c WHERE c.beneficiary_id = {0}.beneficiary_id "
            "AND c.reversed_at IS NULL)"
        )
        new = f"p.record_id IS NULL AND {self._valid('p')}"
        inserted = await self.sql(
            f"INSERT INTO {target} (beneficiary_id, category, valid_from, valid_to, reference, "
            "decided_on, department, org) SELECT p.beneficiary_id, p.category, p.valid_from, "
            f"p.valid_to, p.reference, p.decided_on, :department, :org FROM import_plan p "
            # In person order the index entries and foreign-key probes go to neighbouring pages.
            f"WHERE {new} ORDER BY p.beneficiary_id",
            department=principal.department,
            org=principal.org,
        )
        stored = inserted.rowcount
        await self.sql(
            "INSERT INTO import_change SELECT NULL, p.beneficiary_id, p.category, NULL, NULL, "
            "NULL, p.valid_from, p.valid_to, p.decided_on FROM import_plan p "
            f"WHERE {new} AND {with_claims.format('p')}"
        )
        changed = await self.session.scalar(
            text(
                f"WITH changed AS (UPDATE {target} r SET valid_from = p.valid_from, "
                "valid_to = p.valid_to, reference = p.reference, decided_on = p.decided_on "
                "FROM import_plan p WHERE r.id = p.record_id AND (p.old_from, p.old_to, "
                "p.old_reference) IS DISTINCT FROM (p.valid_from, p.valid_to, p.reference) "
                f"AND {self._valid('p')} RETURNING r.id, r.beneficiary_id, r.category, "
                "p.old_from, p.old_to, p.old_decided, r.valid_from, r.valid_to, r.decided_on), "
                "kept AS (INSERT INTO import_change SELECT * FROM changed c2 WHERE "
                f"{with_claims.format('c2')}) SELECT count(*) FROM changed"
            )
        )
        self.summary.stored = int(stored or 0)
        self.summary.changed = int(changed or 0)
        self.summary.unchanged = (
            self.summary.rows - self.summary.refused - self.summary.stored - self.summary.changed
        )
        await self._recognised(new)
        if self.planned.snapshot:
            ended = await self.session.scalar(
                text(
                    f"WITH ended AS (UPDATE {target} r SET valid_to = :as_of, "
                    "decided_on = :as_of FROM (SELECT o.id, o.valid_to AS old_to, "
                    f"o.decided_on AS old_decided FROM {target} o JOIN beneficiaries ON "
                    f"beneficiaries.id = o.beneficiary_id AND {self.admissible} "
                    "WHERE o.category = :category AND o.valid_from <= :as_of "
                    "AND (o.valid_to IS NULL OR o.valid_to > :as_of) AND NOT EXISTS ("
                    "SELECT 1 FROM import_stage s WHERE s.id_number = beneficiaries.id_number)"
                    ") e WHERE r.id = e.id RETURNING r.id, r.beneficiary_id, r.category, "
                    "r.valid_from, e.old_to, e.old_decided, r.valid_from AS new_from, "
                    "r.valid_to, r.decided_on), "
                    "kept AS (INSERT INTO import_change SELECT * FROM ended n WHERE "
                    f"{with_claims.format('n')}) SELECT count(*) FROM ended"
                ),
                {"as_of": self.planned.as_of, "category": self.planned.category},
            )
            self.summary.ended = int(ended or 0)
        await self._resettle()

    async def _recognised(self, new: str) -> None:
        """Pending applications (依申请救助) for a category the import recorded are RECOGNISED,
        linked to the new record, as after ``recordIdentity`` (resolvers/applications.py)."""
        flags = self.kind is ImportKind.FLAGS
        found = (
            await self.sql(
                f"SELECT r.id FROM import_plan p JOIN {_TARGETS[self.kind]} r ON "
                "r.beneficiary_id = p.beneficiary_id AND r.category = p.category AND "
                "r.valid_from = p.valid_from WHERE "
                f"{new} AND EXISTS (SELECT 1 FROM assistance_applications a WHERE "
                "a.beneficiary_id = p.beneficiary_id AND a.category = p.category AND "
                "a.status = ANY(:pending))",
                pending=list(applications.PENDING),
            )
        ).scalars()
        for record_id in list(found):
            record: models.Identity | models.MonitoringFlag | None = (
                await self.session.get(models.MonitoringFlag, record_id)
                if flags
                else await self.session.get(models.Identity, record_id)
            )
            assert record is not None
            await applications.recognised_by(
                self.session, self.importer.principal, record, OPERATIONS[self.kind]
            )

    async def _resettle(self) -> None:
        """Late news (§9.4) for every person whose changed records reach a claim: the years
        where some claim's stay counts differently re-run, person by person, page by page."""
        operation = OPERATIONS[self.kind]
        cause = f"re-run after {operation} {self.summary.importId}"
        last: uuid.UUID | None = None
        while True:
            page = list(
                (
                    await self.session.scalars(
                        text(
                            "SELECT DISTINCT beneficiary_id FROM import_change "
                            + ("WHERE beneficiary_id > :last " if last else "")
                            + "ORDER BY beneficiary_id LIMIT :page"
                        ),
                        {"page": PAGE} | ({"last": last} if last else {}),
                    )
                ).all()
            )
            if not page:
                return
            last = page[-1]
            for beneficiary_id in page:
                await self._resettle_person(beneficiary_id, operation, cause)

    async def _resettle_person(self, beneficiary_id: uuid.UUID, operation: str, cause: str) -> None:
        importer = self.importer
        session = self.session
        person = (
            await session.scalars(
                select(models.Beneficiary)
                .where(models.Beneficiary.id == beneficiary_id)
                .with_for_update(key_share=True)
            )
        ).one()
        changes = (
            await session.execute(
                text(
                    "SELECT category, old_from, old_to, old_decided, new_from, new_to, "
                    "new_decided FROM import_change WHERE beneficiary_id = :id"
                ),
                {"id": beneficiary_id},
            )
        ).all()
        claims = await settlement.claims_of(session, person)
        years: set[int] = set()
        for category, old_from, old_to, old_decided, new_from, new_to, new_decided in changes:
            before = (
                None
                if old_from is None
                else CategoryRecord(Category(category), old_from, old_to, old_decided)
            )
            after = CategoryRecord(Category(category), new_from, new_to, new_decided)
            years.update(settlement.touched_years(importer.policies, person, claims, before, after))
        writer = settlement.Writer(session, importer.principal, importer.policies)
        await settlement.late_news(writer, person, years, operation, cause)
        await alerts.review_person(
            session, importer.principal, importer.policies, person, operation
        )
        consequences = writer.consequences()
        self.summary.adjustments += len(consequences.adjustments)
        self.summary.recoveries += len(consequences.recoveries)

    async def _merge_enrollments(self) -> None:
        principal = self.importer.principal
        await self.sql("CREATE TEMP TABLE import_enrolled (id bigint) ON COMMIT DROP")
        stored = await self.session.scalar(
            text(
                "WITH new AS (INSERT INTO enrollments (beneficiary_id, year, scheme, "
                "contribution, inclusive_commercial, enrolled_on, subsidy_policy, "
                "subsidy_category, subsidy_assistance_fund, subsidy_finance, "
                "subsidy_individual, department, org) SELECT p.beneficiary_id, p.year, "
                "p.scheme, p.contribution, p.inclusive_commercial, p.enrolled_on, x.policy, "
                "x.category, x.assistance_fund, x.finance, x.individual, :department, :org "
                "FROM import_plan p JOIN import_split x ON x.line = p.line "
                f"WHERE {self._valid('p')} ON CONFLICT (beneficiary_id, year) DO NOTHING "
                "RETURNING id), kept AS (INSERT INTO import_enrolled SELECT id FROM new) "
                "SELECT count(*) FROM new"
            ),
            {"department": principal.department, "org": principal.org},
        )
        self.summary.stored = int(stored or 0)
        self.summary.unchanged = self.summary.rows - self.summary.refused - self.summary.stored
        enrolled = table("import_enrolled", column("id"))
        await after_enrollments_merged(self.session, select(enrolled.c.id))

    async def _split(self) -> None:
        """Each new enrollment's subsidy split (§7), computed by the engine from the person's
        records, page by page, COPied into ``import_split``."""
        await self.sql(
            "CREATE TEMP TABLE import_split (line integer, policy varchar(40), category "
            "varchar(40), assistance_fund numeric(14, 2), finance numeric(14, 2), individual "
            "numeric(14, 2)) ON COMMIT DROP"
        )
        driver = await self._driver()
        policies = self.importer.policies
        last = 0
        while True:
            page = (
                await self.session.execute(
                    text(
                        "SELECT line, beneficiary_id, person_region, year, enrolled_on, "
                        "contribution FROM import_plan p WHERE enrollment_id IS NULL AND "
                        f"line > :last AND {self._valid('p')} ORDER BY line LIMIT :page"
                    ),
                    {"last": last, "page": PAGE},
                )
            ).all()
            if not page:
                break
            last = page[-1].line
            records = await _records(self.session, [row.beneficiary_id for row in page])
            splits = []
            problems = []
            for row in page:
                try:
                    split = enrollment_subsidy(
                        policies,
                        row.person_region,
                        row.year,
                        row.enrolled_on,
                        records.get(row.beneficiary_id, ()),
                        Decimal(row.contribution),
                    )
                except InvalidInput as exc:
                    problems.append(
                        Problem(row.line, self.label(exc.field), str(exc.value), exc.reason)
                    )
                    continue
                splits.append(
                    (
                        row.line,
                        split.policy_id,
                        split.category.value if split.category else None,
                        split.assistance_fund,
                        split.finance,
                        split.individual,
                    )
                )
            await driver.copy_records_to_table(
                "import_split",
                records=splits,
                columns=["line", "policy", "category", "assistance_fund", "finance", "individual"],
            )
            await self.problems(problems)


async def _records(
    session: AsyncSession, beneficiary_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[CategoryRecord, ...]]:
    """Every identity and flag of the persons, as the engine reads them."""
    found: dict[uuid.UUID, list[CategoryRecord]] = {}
    for model in (models.Identity, models.MonitoringFlag):
        rows = await session.execute(
            select(
                model.beneficiary_id, model.category, model.valid_from, model.valid_to,
                model.decided_on,
            )
            .where(model.beneficiary_id.in_(beneficiary_ids))
            .order_by(model.id)
        )  # fmt: skip
        for beneficiary_id, category, valid_from, valid_to, decided_on in rows:
            found.setdefault(beneficiary_id, []).append(
                CategoryRecord(Category(category), valid_from, valid_to, decided_on)
            )
    return {k: tuple(v) for k, v in found.items()}


async def after_enrollments_merged(
    session: AsyncSession, enrollment_ids_query: Select[tuple[Any]]
) -> None:
    """Called once an import's enrollments are merged, in its transaction, with a query of the
    ids of the enrollments it stored (``SELECT id FROM import_enrolled``, a temporary table of
    the transaction): the place where the funds module posts each enrollment's subsidy
    (assistance fund and finance shares) to the fund accounts, set-based. A no-op until then.
    """
    del session, enrollment_ids_query
