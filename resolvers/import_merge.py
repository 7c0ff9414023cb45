"""Merging a checked list import (:mod:`resolvers.import_staging`) into the stored tables, one
``INSERT … SELECT`` (and one ``UPDATE … FROM``) per table, then the re-settlement of the
person-years the changes reach (late news, SETTLEMENT.md §9.4) and the applications they
recognise.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Select, column, select, table, text
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.storage import models
from policies.settlement.categories import CategoryRecord
from policies.vocabulary import Category
from resolvers import alerts, applications, outbox, settlement
from resolvers.import_staging import (
    _TARGETS,
    OPERATIONS,
    PAGE,
    Caller,
    ImportKind,
    Staging,
    Summary,
)

Hook = Callable[[AsyncSession, Select[Any]], Awaitable[None]]


class Merge(Staging):
    """Stages, checks (:class:`Staging`) and merges one import; ``after_enrollments`` is
    called with the session and a query of the ids of the enrollments it stored."""

    def __init__(
        self, session: AsyncSession, importer: Caller, summary: Summary, after_enrollments: Hook
    ) -> None:
        super().__init__(session, importer, summary)
        self.after_enrollments = after_enrollments

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
        # Every person whose records the import changes or ends (with those it stores, read
        # from the plan): IDENTITY_CHANGED.
        await self.sql("CREATE TEMP TABLE import_touched (beneficiary_id uuid) ON COMMIT DROP")
        # Only persons with claims are re-settled: only their changes are kept.
        with_claims = (
            "EXISTS (SELECT 1 FROM claims c WHERE c.beneficiary_id = {0}.beneficiary_id "
            "AND c.reversed_at IS NULL)"
        )
        new = f"p.record_id IS NULL AND {self._valid('p')}"
        # Every row of the plan that is new is stored (no conflict clause): the persons of
        # the new records are read from the plan for the outbox below, not kept from a
        # RETURNING (a million rows less to write to a temporary table).
        inserted = await self.session.execute(
            text(
                f"INSERT INTO {target} (beneficiary_id, category, valid_from, "
                "valid_to, reference, decided_on, department, org) SELECT p.beneficiary_id, "
                "p.category, p.valid_from, p.valid_to, p.reference, p.decided_on, :department, "
                # In person order the index entries and foreign-key probes go to neighbouring
                # pages.
                f":org FROM import_plan p WHERE {new} ORDER BY p.beneficiary_id"
            ),
            {"department": principal.department, "org": principal.org},
        )
        stored = inserted.rowcount  # type: ignore[attr-defined]
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
                f"{with_claims.format('c2')}), touched AS (INSERT INTO import_touched "
                "SELECT beneficiary_id FROM changed) SELECT count(*) FROM changed"
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
                    f"{with_claims.format('n')}), touched AS (INSERT INTO import_touched "
                    "SELECT beneficiary_id FROM ended) SELECT count(*) FROM ended"
                ),
                {"as_of": self.planned.as_of, "category": self.planned.category},
            )
            self.summary.ended = int(ended or 0)
        await outbox.identities_changed(
            self.session,
            f"SELECT p.beneficiary_id FROM import_plan p WHERE {new} "
            "UNION ALL SELECT beneficiary_id FROM import_touched",
            OPERATIONS[self.kind],
        )
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
        await settlement.late_news(writer, person, years, operation, cause, claims)
        await alerts.review_person(
            session, importer.principal, importer.policies, person, operation, writer.records,
            writer.reviewed,
        )  # fmt: skip
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
        await self.after_enrollments(self.session, select(enrolled.c.id))
