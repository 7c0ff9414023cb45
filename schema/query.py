"""The root Query type."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from resolvers import alerts, audit_log, beneficiaries, claims, closings, recoveries, statistics
from schema.audit import AccessReport, AuditCheckpoint, AuditRecord
from schema.beneficiary import AlertStatus, Beneficiary, Claim, HighCostAlert
from schema.enums import Category
from schema.pagination import Connection, check_first, connection, decode_cursor
from schema.policy import BenefitPolicy
from schema.recovery import LateNews, Recovery, RecoveryStatus, SettlementYearClosing
from schema.statistics import Statistics

if TYPE_CHECKING:
    from resolvers.context import Context


REGION_PREFIX = strawberry.argument(
    description="A region prefix of 1 to 6 digits (32, 5104, 510402). One broader than the "
    "token's (51 with a 5104 token) is narrowed to the token's regions; one that shares no region "
    "with the token is FORBIDDEN (naming field and value), never an empty answer."
)
POLICY_REGION = strawberry.argument(
    description="A benefit policy's region code (510400, 320000; BAD_INPUT otherwise); FORBIDDEN "
    "when the policy's region shares no region with the token."
)


def _after(kind: str, after: str | None) -> int | None:
    return int(decode_cursor(kind, after)) if after else None


def _page_size(info: strawberry.Info[Context, None], first: int) -> int:
    return check_first(first, info.context.settings.max_page_size)


@strawberry.type
class Query:
    @strawberry.field(description="One person by opaque id or by ID number; null if not visible.")
    async def beneficiary(
        self,
        info: strawberry.Info[Context, None],
        id: strawberry.ID | None = None,
        id_number: str | None = None,
    ) -> Beneficiary | None:
        row = await beneficiaries.find(info.context, id=id, id_number=id_number)
        return Beneficiary.from_model(row) if row else None

    @strawberry.field(
        description="Persons of the caller's regions, optionally narrowed to a region prefix and "
        "to those holding a category today; ordered by id."
    )
    async def beneficiaries(
        self,
        info: strawberry.Info[Context, None],
        region_prefix: Annotated[str | None, REGION_PREFIX] = None,
        category: Category | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> Connection[Beneficiary]:
        first = check_first(first, info.context.settings.max_page_size)
        after_id = (
            beneficiaries.parse_id(decode_cursor("beneficiary", after), "after") if after else None
        )
        rows = await beneficiaries.page(
            info.context,
            region_prefix=region_prefix,
            category=category,
            first=first,
            after=after_id,
        )
        return connection(rows, first, "beneficiary", Beneficiary.from_model, lambda r: r.id)

    @strawberry.field(description="One claim by its number; null if not visible.")
    async def claim(self, info: strawberry.Info[Context, None], claim_number: str) -> Claim | None:
        row = await claims.find(info.context, claim_number)
        return Claim.from_model(row) if row else None

    @strawberry.field(description="Claims the caller may see (an insurer: those it carries).")
    async def claims(
        self,
        info: strawberry.Info[Context, None],
        year: int | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> Connection[Claim]:
        size = _page_size(info, first)
        rows = await claims.page(info.context, year=year, first=size, after=_after("claim", after))
        return connection(rows, size, "claim", Claim.from_model, lambda r: r.id)

    @strawberry.field(description="High-cost alerts (主动发现) of the caller's regions.")
    async def high_cost_alerts(
        self,
        info: strawberry.Info[Context, None],
        status: AlertStatus | None = None,
        year: int | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> Connection[HighCostAlert]:
        size = _page_size(info, first)
        rows = await alerts.page(
            info.context,
            status=status.value if status else None,
            year=year,
            first=size,
            after=_after("alert", after),
        )
        return connection(rows, size, "alert", HighCostAlert.from_model, lambda r: r.id)

    @strawberry.field(
        description="Recoveries (追回) of assistance after late news, of the caller's regions, "
        "oldest first (SETTLEMENT.md §9.4)."
    )
    async def recoveries(
        self,
        info: strawberry.Info[Context, None],
        status: RecoveryStatus | None = None,
        year: int | None = None,
        claim_number: str | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> Connection[Recovery]:
        size = _page_size(info, first)
        rows = await recoveries.page(
            info.context,
            status=status.value if status else None,
            year=year,
            claim_number=claim_number,
            first=size,
            after=_after("recovery", after),
        )
        numbers = await recoveries.claim_numbers(info.context, rows)
        return connection(
            rows,
            size,
            "recovery",
            lambda r: Recovery.from_model(r, numbers[r.claim_id]),
            lambda r: r.id,
        )

    @strawberry.field(
        description="Late news recorded for closed settlement years, with what a re-run would "
        "have changed (SETTLEMENT.md §9.5)."
    )
    async def late_news(
        self,
        info: strawberry.Info[Context, None],
        region_code: Annotated[str | None, POLICY_REGION] = None,
        year: int | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> Connection[LateNews]:
        size = _page_size(info, first)
        rows = await closings.late_news_page(
            info.context,
            region_code=region_code,
            year=year,
            first=size,
            after=_after("lateNews", after),
        )
        return connection(rows, size, "lateNews", LateNews.from_model, lambda r: r.id)

    @strawberry.field(
        description="Settlement years closed for a policy's region (SETTLEMENT.md §9.5), newest "
        "first: those of policy regions that share a region with the token."
    )
    async def settlement_year_closings(
        self,
        info: strawberry.Info[Context, None],
        region_code: Annotated[str | None, POLICY_REGION] = None,
        year: int | None = None,
    ) -> list[SettlementYearClosing]:
        rows = await closings.closed_years(info.context, region_code, year)
        return [SettlementYearClosing.from_model(r) for r in rows]

    @strawberry.field(description="Aggregates of a year over the caller's regions.")
    async def statistics(
        self,
        info: strawberry.Info[Context, None],
        year: int,
        region_prefix: Annotated[str | None, REGION_PREFIX] = None,
    ) -> Statistics:
        return Statistics.of(await statistics.figures(info.context, region_prefix, year))

    @strawberry.field(description="The bundled regional benefit policies.")
    def benefit_policies(
        self, info: strawberry.Info[Context, None], in_force_on: date | None = None
    ) -> list[BenefitPolicy]:
        return [
            BenefitPolicy.of(p)
            for p in info.context.policies
            if in_force_on is None or p.in_force_on(in_force_on)
        ]

    @strawberry.field(description="The audit trail, oldest first (auditor only).")
    async def audit_log(
        self,
        info: strawberry.Info[Context, None],
        department: str | None = None,
        beneficiary_id: strawberry.ID | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> Connection[AuditRecord]:
        size = _page_size(info, first)
        rows = await audit_log.page(
            info.context,
            department=department,
            beneficiary_id=(
                beneficiaries.parse_id(beneficiary_id, "beneficiaryId") if beneficiary_id else None
            ),
            since=since,
            until=until,
            first=size,
            after=_after("audit", after),
        )
        return connection(rows, size, "audit", AuditRecord.from_model, lambda r: r.id)

    @strawberry.field(
        description="The newest signed checkpoints of the audit chain, newest first (auditor "
        "only); `medgw audit verify` checks the chain against them."
    )
    async def audit_checkpoints(
        self, info: strawberry.Info[Context, None], last: int = 20
    ) -> list[AuditCheckpoint]:
        size = check_first(last, info.context.settings.max_page_size, "last")
        found = await audit_log.signed_checkpoints(info.context, size)
        return [AuditCheckpoint.of(checkpoint, valid) for checkpoint, valid in found]

    @strawberry.field(
        description="Who saw or changed this person's data, when, what and why (auditor only)."
    )
    async def access_report(
        self, info: strawberry.Info[Context, None], id_number: str
    ) -> AccessReport | None:
        found = await audit_log.access_report(info.context, id_number)
        return AccessReport.of(*found) if found else None
