"""Staging and checking a list import (:mod:`resolvers.imports`), on its transaction's
connection: the rows COPied into a temporary staging table batch by batch (parsing in a worker
thread overlaps the COPY), the checks that need the stored data as set-based SQL (persons in
the caller's rows, locked in id order; duplicates and overlaps inside the file; conflicts with
stored records; enrollments already made, and their subsidy splits). The merge that follows is
:mod:`resolvers.import_merge`.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import multiprocessing
import os
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import and_, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import Principal
from gateway.storage import models
from policies.access.policy import DepartmentPolicy
from policies.benefits import PolicySet
from policies.errors import InvalidInput
from policies.settlement.categories import CategoryRecord
from policies.settlement.subsidy import enrollment_subsidy
from policies.vocabulary import Category
from resolvers.import_files import (
    CopyBatch,
    Problem,
    RowParser,
    parse_batch,
    parse_copy_batch,
    start_worker,
)
from resolvers.rows import RowRules

BATCH_ROWS = 10_000
"""Rows per COPY batch (at most max(PARSE_WORKERS, 1) + 1 batches are in memory at once)."""
PARSE_WORKERS = int(os.environ.get("MEDGW_PARSE_WORKERS", "0"))
"""Worker processes parsing the batches of a large file; 0 (the default): a worker thread.
Measured on the shared 2-core machine, one process was no faster (1,000,000 rows: staging
12.5 s against 11.8 s in a thread at load 1.3) and, since identity rows are parsed without
pydantic, slower (200,000 rows at load 3: 1.8-3.0 s against 1.1-1.3 s): the rows crossing to
the process cost more than their parse (README, "Speed and memory")."""
THREAD_BATCHES = 2
"""Batches parsed in a worker thread before worker processes are started (small files)."""
PARSE_START = os.environ.get("MEDGW_PARSE_START", "fork")
"""How worker processes start (``fork``: at once, nothing re-imported; ``spawn`` re-imports
the program's main module)."""
PAGE = 1_000
"""Persons per page when re-settling, enrollments per page when splitting contributions."""


class ImportKind(StrEnum):
    PERSONS = "persons"
    IDENTITIES = "identities"
    FLAGS = "flags"
    ENROLLMENTS = "enrollments"


OPERATIONS: dict[ImportKind, str] = {
    ImportKind.PERSONS: "importPersons",
    ImportKind.IDENTITIES: "importIdentities",
    ImportKind.FLAGS: "importMonitoringFlags",
    ImportKind.ENROLLMENTS: "importEnrollments",
}


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


Progress = Callable[[int, int], None]
"""Called with (rows read, bytes of the file read) as the import goes."""


class Caller(Protocol):
    """Who runs an import and how (:class:`resolvers.imports.Importer`)."""

    principal: Principal
    policies: PolicySet
    planned: Planned
    progress: Progress | None

    @property
    def policy(self) -> DepartmentPolicy: ...


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


class Staging:
    """The rows of one import staged and checked, on its transaction's connection."""

    def __init__(self, session: AsyncSession, importer: Caller, summary: Summary) -> None:
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

        # Parsing overlaps the COPY of the batch before it (the server), in a worker thread;
        # with PARSE_WORKERS, from the THREAD_BATCHES+1st batch on in worker processes (a
        # small file never starts one; from a process, batches come back as CSV for COPY, one
        # bytes object, cheap to pickle). A bounded number is in flight: memory stays flat.
        loop = asyncio.get_running_loop()
        pool: ProcessPoolExecutor | None = None
        in_flight: deque[tuple[asyncio.Future[CopyBatch], int]] = deque()
        batches = 0
        try:
            exhausted = False
            while True:
                while not exhausted and len(in_flight) <= max(PARSE_WORKERS, 1):
                    batch, position = await asyncio.to_thread(read)
                    if not batch:
                        exhausted = True
                        break
                    batches += 1
                    if batches > THREAD_BATCHES and PARSE_WORKERS and pool is None:
                        pool = ProcessPoolExecutor(
                            PARSE_WORKERS,
                            mp_context=multiprocessing.get_context(PARSE_START),
                            initializer=start_worker,
                            initargs=(parser,),
                        )
                    future = (
                        loop.run_in_executor(pool, parse_copy_batch, batch)
                        if pool is not None
                        # In a thread the records stay records (COPY binary, no CSV to write).
                        else asyncio.ensure_future(asyncio.to_thread(_parse_records, parser, batch))
                    )
                    in_flight.append((future, position))
                if not in_flight:
                    break
                future, position = in_flight.popleft()
                payload, problems, parsed = await future
                if isinstance(payload, bytes):
                    await driver.copy_to_table(
                        "import_stage", source=io.BytesIO(payload), columns=names, format="csv"
                    )
                else:
                    await driver.copy_records_to_table(
                        "import_stage", records=payload, columns=names
                    )
                await self.problems(problems)
                count += parsed
                if progress is not None:
                    progress(count, position)
        finally:
            for future, _ in in_flight:
                future.cancel()
            if pool is not None:
                await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)
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
        # An ID number names at most one person: when every staged row found its person
        # (the usual list), there is nothing to look for line by line.
        counts = await self.sql(
            "SELECT (SELECT count(*) FROM import_stage), (SELECT count(*) FROM import_staged)"
        )
        staged, found = counts.one()
        if staged != found:
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


def _parse_records(parser: RowParser, batch: Sequence[tuple[int, Sequence[Any]]]) -> CopyBatch:
    records, problems, count = parse_batch(parser, batch)
    return records, problems, count


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
