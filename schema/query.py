"""The root Query type."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import strawberry

from policies.funds import AccountKind
from resolvers import (
    alerts,
    applications,
    audit_log,
    beneficiaries,
    claims,
    closings,
    reconciliation,
    recoveries,
    statements,
    statistics,
    webhooks,
)
from resolvers.admission import deposit_waiver
from resolvers.pages import Order
from schema import change, webhook
from schema.admission import DepositWaiver
from schema.application import Application
from schema.audit import AccessReport, AuditCheckpoint, AuditRecord
from schema.beneficiary import (
    AlertOrder,
    AlertStatus,
    Beneficiary,
    Claim,
    ClaimOrder,
    HighCostAlert,
)
from schema.enums import Category
from schema.fund import FundReconciliation, FundStatement, StatementPeriod
from schema.pagination import (
    AFTER,
    AMOUNT_AND_ID,
    DATE_AND_ID,
    FIRST,
    KEYS,
    Connection,
    after_key,
    check_first,
    connection,
    decode_cursor,
)
from schema.policy import BenefitPolicy
from schema.recovery import LateNews, Recovery, RecoveryStatus, SettlementYearClosing
from schema.statistics import Dashboard, Statistics

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


YEAR = strawberry.argument(description="Only rows of this settlement year.")


def _sorted(kind: str, order_by: StrEnum | None, orders: Mapping[str, Order]) -> tuple[str, Order]:
    """The cursor kind and keyset order of a sort order (the id order, also when none is given,
    keeps the plain kind, so its cursors are those given out before sort orders existed).

    An order is passed only when asked for: it reveals the column it sorts on, so the access
    policy treats it as a filter (policies/access/_fields.yaml)."""
    if order_by is None or order_by.value == "ID":
        return kind, orders["ID"]
    return f"{kind} by {order_by.value}", orders[order_by.value]


for _kind, _pattern, _orders in (
    ("claim", DATE_AND_ID, claims.ORDERS),
    ("alert", AMOUNT_AND_ID, alerts.ORDERS),
):
    KEYS.update({f"{_kind} by {name}": _pattern for name in _orders if name != "ID"})


def _page_size(info: strawberry.Info[Context, None], first: int) -> int:
    return check_first(first, info.context.settings.max_page_size)


@strawberry.type(description="What a department may read, under its access policy and row rules.")
class Query:
    @strawberry.field(description="One person by opaque id or by ID number; null if not visible.")
    async def beneficiary(
        self,
        info: strawberry.Info[Context, None],
        id: Annotated[
            strawberry.ID | None, strawberry.argument(description="Beneficiary.id (opaque).")
        ] = None,
        id_number: Annotated[
            str | None,
            strawberry.argument(description="Resident ID number (身份证号); give id or this."),
        ] = None,
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
        category: Annotated[
            Category | None,
            strawberry.argument(
                description="Only persons holding this category today (China time)."
            ),
        ] = None,
        first: Annotated[int, FIRST] = 20,
        after: Annotated[str | None, AFTER] = None,
    ) -> Connection[Beneficiary]:
        first = check_first(first, info.context.settings.max_page_size)
        after_id = (
            beneficiaries.parse_id(decode_cursor("beneficiary", after), "after") if after else None
        )
        found = await beneficiaries.page(
            info.context,
            region_prefix=region_prefix,
            category=category,
            first=first,
            after=after_id,
        )
        return connection(
            found, first, "beneficiary", Beneficiary.from_model, lambda r: (r.id,), after
        )

    @strawberry.field(description="One claim by its number; null if not visible.")
    async def claim(
        self,
        info: strawberry.Info[Context, None],
        claim_number: Annotated[str, strawberry.argument(description="The claim's number.")],
    ) -> Claim | None:
        row = await claims.find(info.context, claim_number)
        return Claim.from_model(row) if row else None

    @strawberry.field(
        description="Claims the caller may see (an insurer: those it carries), in orderBy's order."
    )
    async def claims(
        self,
        info: strawberry.Info[Context, None],
        year: Annotated[int | None, YEAR] = None,
        first: Annotated[int, FIRST] = 20,
        after: Annotated[str | None, AFTER] = None,
        order_by: Annotated[
            ClaimOrder | None,
            strawberry.argument(description="The order of the rows; null (the default): ID."),
        ] = None,
    ) -> Connection[Claim]:
        size = _page_size(info, first)
        kind, order = _sorted("claim", order_by, claims.ORDERS)
        found = await claims.page(
            info.context, year=year, order=order, first=size, after=after_key(kind, order, after)
        )
        return connection(found, size, kind, Claim.from_model, order.key, after)

    @strawberry.field(description="High-cost alerts (主动发现) of the caller's regions.")
    async def high_cost_alerts(
        self,
        info: strawberry.Info[Context, None],
        status: Annotated[
            AlertStatus | None, strawberry.argument(description="Only alerts in this status.")
        ] = None,
        year: Annotated[int | None, YEAR] = None,
        first: Annotated[int, FIRST] = 20,
        after: Annotated[str | None, AFTER] = None,
        order_by: Annotated[
            AlertOrder | None,
            strawberry.argument(
                description="The order of the rows; null (the default): ID. OUT_OF_POCKET_DESC: "
                "largest amount first."
            ),
        ] = None,
    ) -> Connection[HighCostAlert]:
        size = _page_size(info, first)
        kind, order = _sorted("alert", order_by, alerts.ORDERS)
        found = await alerts.page(
            info.context,
            status=status.value if status else None,
            year=year,
            order=order,
            first=size,
            after=after_key(kind, order, after),
        )
        return connection(found, size, kind, HighCostAlert.from_model, order.key, after)

    @strawberry.field(
        description="Applications for assistance (依申请救助) of the caller's regions that its "
        "department received (受理) or was routed (分办转办), oldest first: the routed department "
        "decides them, the receiving window reads the result (结果反馈)."
    )
    async def applications(
        self,
        info: strawberry.Info[Context, None],
        status: Annotated[
            AlertStatus | None, strawberry.argument(description="Only applications in this status.")
        ] = None,
        first: Annotated[int, FIRST] = 20,
        after: Annotated[str | None, AFTER] = None,
    ) -> Connection[Application]:
        size = _page_size(info, first)
        order = applications.BY_ID
        found = await applications.page(
            info.context,
            status=status.value if status else None,
            first=size,
            after=after_key("application", order, after),
        )
        return connection(found, size, "application", Application.from_model, order.key, after)

    @strawberry.field(
        description="Recoveries (追回) of assistance after late news, of the caller's regions, "
        "oldest first (SETTLEMENT.md §9.4)."
    )
    async def recoveries(
        self,
        info: strawberry.Info[Context, None],
        status: Annotated[
            RecoveryStatus | None,
            strawberry.argument(description="Only recoveries in this status."),
        ] = None,
        year: Annotated[int | None, YEAR] = None,
        claim_number: Annotated[
            str | None, strawberry.argument(description="Only recoveries of this claim.")
        ] = None,
        first: Annotated[int, FIRST] = 20,
        after: Annotated[str | None, AFTER] = None,
    ) -> Connection[Recovery]:
        size = _page_size(info, first)
        order = recoveries.BY_ID
        key = after_key("recovery", order, after)
        found = await recoveries.page(
            info.context,
            status=status.value if status else None,
            year=year,
            claim_number=claim_number,
            first=size,
            after=key,
        )
        numbers = await recoveries.claim_numbers(info.context, found.rows)
        return connection(
            found,
            size,
            "recovery",
            lambda r: Recovery.from_model(r, numbers[r.claim_id]),
            order.key,
            after,
        )

    @strawberry.field(
        description="Late news recorded for closed settlement years, with what a re-run would "
        "have changed (SETTLEMENT.md §9.5)."
    )
    async def late_news(
        self,
        info: strawberry.Info[Context, None],
        region_code: Annotated[str | None, POLICY_REGION] = None,
        year: Annotated[int | None, YEAR] = None,
        first: Annotated[int, FIRST] = 20,
        after: Annotated[str | None, AFTER] = None,
    ) -> Connection[LateNews]:
        size = _page_size(info, first)
        order = closings.BY_ID
        key = after_key("lateNews", order, after)
        found = await closings.late_news_page(
            info.context, region_code=region_code, year=year, first=size, after=key
        )
        return connection(found, size, "lateNews", LateNews.from_model, order.key, after)

    @strawberry.field(
        description="Settlement years closed for a policy's region (SETTLEMENT.md §9.5), newest "
        "first: those of policy regions that share a region with the token."
    )
    async def settlement_year_closings(
        self,
        info: strawberry.Info[Context, None],
        region_code: Annotated[str | None, POLICY_REGION] = None,
        year: Annotated[int | None, YEAR] = None,
    ) -> list[SettlementYearClosing]:
        rows = await closings.closed_years(info.context, region_code, year)
        return [SettlementYearClosing.from_model(r) for r in rows]

    @strawberry.field(description="Aggregates of a year over the caller's regions.")
    async def statistics(
        self,
        info: strawberry.Info[Context, None],
        year: Annotated[int, strawberry.argument(description="The settlement year.")],
        region_prefix: Annotated[str | None, REGION_PREFIX] = None,
    ) -> Statistics:
        return Statistics.of(await statistics.figures(info.context, region_prefix, year))

    @strawberry.field(
        description="A dashboard's figures of a year over the caller's regions (issue 14): by "
        "month, region, category, visit type, hospital level and payer, k-suppressed."
    )
    async def dashboard(
        self,
        info: strawberry.Info[Context, None],
        year: Annotated[int, strawberry.argument(description="The settlement year.")],
        region_prefix: Annotated[str | None, REGION_PREFIX] = None,
    ) -> Dashboard:
        return Dashboard.of(await statistics.board(info.context, region_prefix, year))

    @strawberry.field(description="The bundled regional benefit policies.")
    def benefit_policies(
        self,
        info: strawberry.Info[Context, None],
        in_force_on: Annotated[
            date | None,
            strawberry.argument(description="Only policies in force on this date (null: all)."),
        ] = None,
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
        department: Annotated[
            str | None, strawberry.argument(description="Only records of this department.")
        ] = None,
        beneficiary_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="Only records naming this person (Beneficiary.id)."),
        ] = None,
        since: Annotated[
            datetime | None, strawberry.argument(description="Only records at or after this time.")
        ] = None,
        until: Annotated[
            datetime | None, strawberry.argument(description="Only records before this time.")
        ] = None,
        first: Annotated[int, FIRST] = 20,
        after: Annotated[str | None, AFTER] = None,
    ) -> Connection[AuditRecord]:
        size = _page_size(info, first)
        order = audit_log.BY_ID
        key = after_key("audit", order, after)
        found = await audit_log.page(
            info.context,
            department=department,
            beneficiary_id=(
                beneficiaries.parse_id(beneficiary_id, "beneficiaryId") if beneficiary_id else None
            ),
            since=since,
            until=until,
            first=size,
            after=key,
        )
        return connection(found, size, "audit", AuditRecord.from_model, order.key, after)

    @strawberry.field(
        description="The newest signed checkpoints of the audit chain, newest first (auditor "
        "only); `medgw audit verify` checks the chain against them."
    )
    async def audit_checkpoints(
        self,
        info: strawberry.Info[Context, None],
        last: Annotated[
            int, strawberry.argument(description="How many checkpoints, newest first (1 to max).")
        ] = 20,
    ) -> list[AuditCheckpoint]:
        size = check_first(last, info.context.settings.max_page_size, "last")
        found = await audit_log.signed_checkpoints(info.context, size)
        return [AuditCheckpoint.of(checkpoint, valid) for checkpoint, valid in found]

    @strawberry.field(
        description="Who saw or changed this person's data, when, what and why (auditor only)."
    )
    async def access_report(
        self,
        info: strawberry.Info[Context, None],
        id_number: Annotated[
            str, strawberry.argument(description="Resident ID number (身份证号).")
        ],
    ) -> AccessReport | None:
        found = await audit_log.access_report(info.context, id_number)
        return AccessReport.of(*found) if found else None

    @strawberry.field(
        description="At admission (hospitals): is the person entitled to 先诊疗后付费 / deposit "
        "waiver on a date? Yes or no, no category. A lookup by ID number: a personal read, "
        "audited as depositWaiver(idNumber) even when nobody is found."
    )
    async def deposit_waiver(
        self,
        info: strawberry.Info[Context, None],
        id_number: Annotated[
            str, strawberry.argument(description="The patient's resident ID number (身份证号).")
        ],
        on: Annotated[
            date | None,
            strawberry.argument(description="The admission date (China time); default today."),
        ] = None,
    ) -> DepositWaiver:
        return DepositWaiver.of(await deposit_waiver(info.context, id_number, on))

    # -- change notifications (schema/change.py, resolvers/outbox.py) --------------------------

    @strawberry.field(
        description="The change feed: what changed that the caller may read, after since:, in "
        "transaction order, at most first per call; the cursor never skips a change (a change "
        "appears once every transaction before it has finished). Pull-based sync: keep "
        "ChangeFeed.cursor, ask again with it."
    )
    async def changes(
        self,
        info: strawberry.Info[Context, None],
        since: Annotated[str | None, change.SINCE] = None,
        types: Annotated[list[change.ChangeType] | None, change.TYPES_ARGUMENT] = None,
        first: Annotated[int, FIRST] = 20,
    ) -> change.ChangeFeed:
        return await change.feed(info.context, since, types, _page_size(info, first))

    @strawberry.field(description="The webhooks of the caller's department and organisation.")
    async def webhooks(self, info: strawberry.Info[Context, None]) -> list[webhook.Webhook]:
        return [webhook.Webhook.from_model(row) for row in await webhooks.mine(info.context)]

    @strawberry.field(
        description="Deliveries of the caller's webhooks, newest first; status: DEAD lists the "
        "dead letters."
    )
    async def webhook_deliveries(
        self,
        info: strawberry.Info[Context, None],
        status: Annotated[
            webhook.DeliveryStatus | None,
            strawberry.argument(description="Only deliveries in this status."),
        ] = None,
        webhook_id: Annotated[
            strawberry.ID | None, strawberry.argument(description="Only this webhook's.")
        ] = None,
        first: Annotated[int, FIRST] = 20,
    ) -> list[webhook.WebhookDelivery]:
        rows = await webhooks.deliveries(
            info.context,
            status.value if status else None,
            webhook_id,
            _page_size(info, first),
        )
        return [webhook.WebhookDelivery.from_model(row) for row in rows]

    @strawberry.field(
        description="A fund's statement for a period (issue 13): opening balance, postings by "
        "event kind and flow, closing balance, yuan. Finance and medical insurance read every "
        "fund of their regions; an insurer only its own carrier's insurer accounts, a hospital "
        "only its own account (what each payer owes it for its claims); another fund or party is "
        "FORBIDDEN naming it. BAD_INPUT for a period number out of range."
    )
    async def fund_statement(
        self,
        info: strawberry.Info[Context, None],
        year: Annotated[int, strawberry.argument(description="The calendar year of the period.")],
        fund: Annotated[
            AccountKind | None,
            strawberry.argument(
                description="The account kind; default: an insurer's CRITICAL_ILLNESS_INSURER, "
                "a hospital's HOSPITAL, else ASSISTANCE_FUND."
            ),
        ] = None,
        period: Annotated[
            StatementPeriod, strawberry.argument(description="MONTH, QUARTER or YEAR.")
        ] = StatementPeriod.YEAR,
        number: Annotated[
            int | None,
            strawberry.argument(description="The month (1–12) or quarter (1–4); none for YEAR."),
        ] = None,
        region_prefix: Annotated[str | None, REGION_PREFIX] = None,
        party: Annotated[
            str | None,
            strawberry.argument(
                description="A carrier or hospital code (default: all; an insurer's or a "
                "hospital's own is implied)."
            ),
        ] = None,
    ) -> FundStatement:
        return FundStatement.of(
            await statements.statement(
                info.context,
                fund=None if fund is None else fund.value,
                year=year,
                period=period.value,
                number=number,
                region_prefix=region_prefix,
                party=party,
            )
        )

    @strawberry.field(
        description="Reconciliation of the fund ledgers with the settlement lines and subsidies "
        "(finance, medical insurance): by settlement year (what closeSettlementYear requires), "
        "or by the booking days of a period of the year."
    )
    async def fund_reconciliation(
        self,
        info: strawberry.Info[Context, None],
        year: Annotated[int, strawberry.argument(description="The settlement or calendar year.")],
        period: Annotated[
            StatementPeriod | None,
            strawberry.argument(
                description="A period of the year by booking day; none: the settlement year."
            ),
        ] = None,
        number: Annotated[
            int | None,
            strawberry.argument(description="The month (1–12) or quarter (1–4)."),
        ] = None,
        region_prefix: Annotated[str | None, REGION_PREFIX] = None,
    ) -> FundReconciliation:
        return FundReconciliation.of(
            await reconciliation.report(
                info.context,
                year=year,
                period=None if period is None else period.value,
                number=number,
                region_prefix=region_prefix,
            )
        )
