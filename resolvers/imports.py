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

import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Select, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import Principal
from gateway.errors import Forbidden, NotFound
from gateway.storage import audit, models
from gateway.storage.database import CUSTOM_PLAN, Database
from policies.access.policy import AccessPolicies, DepartmentPolicy
from policies.benefits import PolicySet
from policies.errors import InvalidInput
from policies.vocabulary import Category
from resolvers import funds
from resolvers.import_files import (
    RowChecks,
    RowParser,
    open_sheet,
)
from resolvers.import_merge import Merge
from resolvers.import_staging import OPERATIONS, ImportKind, Planned, Progress, Summary

__all__ = [
    "ImportKind",
    "ImportRequest",
    "Importer",
    "Planned",
    "Progress",
    "Summary",
    "after_enrollments_merged",
    "create_job",
    "file_sha256",
    "import_file",
    "job_of",
    "plan",
    "report_rows",
]
log = logging.getLogger(__name__)

TEMP_BUFFERS = "256MB"
"""Memory for the staging tables (per connection, at most; the server's default is 8 MB)."""
STATEMENT_TIMEOUT = "1h"
WORK_MEM = "64MB"
"""Memory for each sort and hash of an import's set-based statements (SET LOCAL: this
transaction only; the server's default of 4 MB makes the sorts of a million rows spill)."""
"""The statement timeout inside an import's transaction (a bulk job, not a request)."""


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


@dataclass(frozen=True)
class ImportRequest:
    """What the caller asks for (CLI options or HTTP query parameters)."""

    kind: str
    snapshot: bool = False
    category: str | None = None
    as_of: date | None = None
    accept_valid: bool = False


def plan(
    request: ImportRequest, principal: Principal, access: AccessPolicies, today: date
) -> Planned:
    """The import the caller may run.

    :raises InvalidInput: an unknown kind or category, a snapshot without its category and
        date or with ``acceptValid``, a date after today (field and value named).
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
        if request.accept_valid:
            # A snapshot is the complete list: a refused row would read as "no longer listed"
            # and end its person's record. Fix the rows, or load them as changes.
            raise InvalidInput(
                "acceptValid",
                "true",
                "a snapshot is stored whole or not at all: a refused row would end its "
                "person's record; correct the rows or import them without --snapshot",
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
        await session.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
        # An import is a bulk load: its statements are planned for the tables as they are now,
        # not with a plan the connection kept from when they held a few rows.
        await session.execute(text(CUSTOM_PLAN))
        # The staging tables of a large file stay in memory rather than spill to disk. Set for
        # the connection (only imports use temporary tables), before it first uses one; after
        # that the connection keeps what it has.
        try:
            async with session.begin_nested():
                await session.execute(text(f"SET temp_buffers = '{TEMP_BUFFERS}'"))
        except DBAPIError:
            log.debug("temp_buffers already fixed for this connection")
        # Looked up when called, so that the funds module (or a test) can replace it.
        work = Merge(session, self, summary, lambda s, q: after_enrollments_merged(s, q))
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


async def after_enrollments_merged(
    session: AsyncSession, enrollment_ids_query: Select[tuple[Any]]
) -> None:
    """Called once an import's enrollments are merged, in its transaction, with a query of the
    ids of the enrollments it stored (``SELECT id FROM import_enrolled``, a temporary table of
    the transaction): posts each enrollment's subsidy (assistance fund and finance shares) to
    the fund accounts, set-based (:func:`resolvers.funds.post_enrollments_of`); CONFLICT when
    the year is closed, which rolls the whole import back.
    """
    compiled = enrollment_ids_query.compile(compile_kwargs={"literal_binds": True})
    await funds.post_enrollments_of(session, str(compiled))
