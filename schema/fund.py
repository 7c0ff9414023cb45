"""Fund ledgers: statements and the reconciliation (issue 13). Amounts in yuan; balances are
debits minus credits (a payer's account is in debit by what it paid, a payee's — a hospital, a
person — in credit by what it is owed). The posting rules are policies/funds/postings.yaml."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum

import strawberry

from policies.funds import AccountKind
from policies.labels import label
from resolvers.balances import Balance
from resolvers.reconciliation import Difference, Report
from resolvers.statements import Statement
from schema.enums import described

described(
    AccountKind,
    "A kind of fund account (基金账户). Each account is one kind, one region code (of the "
    "persons it is kept for) and one party (policies/funds/postings.yaml).",
    {
        AccountKind.BASIC_FUND: "基本医疗保险基金: the basic insurance fund of the region; pays "
        "the basicInsurance lines, receives the enrollment subsidies.",
        AccountKind.CRITICAL_ILLNESS_INSURER: "大病保险承办机构: the critical-illness insurer, one "
        "account per carrier (the claim's carrier); pays the criticalIllness lines.",
        AccountKind.INCLUSIVE_COMMERCIAL_INSURER: "普惠型商业补充保险: the inclusive commercial "
        "plan's insurer, per carrier; pays the inclusiveCommercial lines.",
        AccountKind.ASSISTANCE_FUND: "医疗救助基金专账: the assistance fund's special account "
        "(鲁医保发〔2020〕79号 四(三)); pays assistance and secondaryAssistance and its part of "
        "the enrollment subsidies, is owed what is recovered (追回).",
        AccountKind.FINANCE: "财政: finance, which pays its part of the enrollment subsidies.",
        AccountKind.HOSPITAL: "定点医疗机构: a hospital (party: its hospital code), owed by the "
        "payers what it advanced at discharge (一站式结算), net of reversals.",
        AccountKind.PERSON: "个人: persons, owed 事后救助 (assistance added after discharge, or "
        "of a claim without a hospital) and owing what is recovered; summed per region.",
    },
)


class StatementPeriod(StrEnum):
    MONTH = "MONTH"
    QUARTER = "QUARTER"
    YEAR = "YEAR"


described(
    StatementPeriod,
    "The period of a statement, by booking day (China time): a month, a quarter (鲁医保发 四(三): "
    "reconciled with finance at least once a quarter) or a calendar year.",
    {
        StatementPeriod.MONTH: "A calendar month (`number` 1–12).",
        StatementPeriod.QUARTER: "A quarter (`number` 1–4: January–March …).",
        StatementPeriod.YEAR: "The calendar year (no `number`).",
    },
)


@strawberry.type(description="The postings of one event kind and flow in the period, yuan.")
class FundStatementLine:
    kind: str = strawberry.field(
        description="ORIGINAL (settled at discharge), ADJUSTMENT (追溯调整), REVERSAL (冲销), "
        "RECOVERY (追回) or SUBSIDY (资助参保)."
    )
    flow: str = strawberry.field(
        description="The payer line (basicInsurance, criticalIllness, inclusiveCommercial, "
        "assistance, secondaryAssistance) or the subsidy part (assistanceFund, finance)."
    )
    debit: Decimal = strawberry.field(description="Debited in the period, yuan.")
    credit: Decimal = strawberry.field(description="Credited in the period, yuan.")


@strawberry.type(
    description="A fund's statement for a period: opening balance, the postings by kind and "
    "flow, closing balance (yuan; debits minus credits)."
)
class FundStatement:
    fund: AccountKind = strawberry.field(description="The account kind.")
    region_prefix: str | None = strawberry.field(
        description="The region prefix asked for (null: all the caller's regions)."
    )
    party: str = strawberry.field(
        description="The carrier or hospital code of the accounts ('' for all of them, or a "
        "fund kept per region without a party)."
    )
    period_start: date = strawberry.field(description="First booking day of the period.")
    period_end: date = strawberry.field(description="Last booking day of the period.")
    opening: Decimal = strawberry.field(description="Balance before the period, yuan.")
    debits: Decimal = strawberry.field(description="Sum of the debits of the period, yuan.")
    credits: Decimal = strawberry.field(description="Sum of the credits of the period, yuan.")
    closing: Decimal = strawberry.field(
        description="Balance at the end of the period: opening + debits − credits, yuan."
    )
    lines: list[FundStatementLine] = strawberry.field(
        description="The period's postings by event kind and flow."
    )

    @classmethod
    def of(cls, s: Statement) -> FundStatement:
        return cls(
            fund=s.fund,
            region_prefix=s.region_prefix,
            party=s.party,
            period_start=s.period_start,
            period_end=s.period_end,
            opening=s.opening,
            debits=s.debits,
            credits=s.credits,
            closing=s.closing,
            lines=[FundStatementLine(kind=x.kind, flow=x.flow, debit=x.debit, credit=x.credit)
                   for x in s.lines],
        )  # fmt: skip


@strawberry.type(
    description="One account and flow of a reconciliation: what the source rows say it holds, "
    "what its entries hold (yuan; balances are debits minus credits)."
)
class FundReconciliationLine:
    fund: AccountKind = strawberry.field(description="The account kind.")
    region_code: str = strawberry.field(description="The account's region code.")
    party: str = strawberry.field(
        description="The carrier or hospital code ('' for a region's fund, and for persons, "
        "who are summed per region)."
    )
    flow: str = strawberry.field(description="The payer line or subsidy part.")
    expected: Decimal = strawberry.field(
        description="The balance the settlement lines and subsidies give, yuan."
    )
    posted: Decimal = strawberry.field(description="The balance of the entries, yuan.")
    difference: Decimal = strawberry.field(description="posted − expected, yuan (0.00: equal).")

    @classmethod
    def of(cls, d: Difference) -> FundReconciliationLine:
        return cls(
            fund=d.fund,
            region_code=d.region_code,
            party=d.party,
            flow=d.flow,
            expected=d.expected,
            posted=d.posted,
            difference=d.difference,
        )


@strawberry.type(
    description="The reconciliation of the fund ledgers with the settlement lines and the "
    "enrollment subsidies (鲁医保发〔2020〕79号 四(三)): for a settlement year (every event of "
    "that year's claims and enrollments, whenever booked) or for a period's booking days."
)
class FundReconciliation:
    region_prefix: str | None = strawberry.field(
        description="The region prefix asked for (null: all the caller's regions)."
    )
    year: int = strawberry.field(description="The year asked for.")
    period: StatementPeriod | None = strawberry.field(
        description="The period of booking days reconciled; null: the settlement year."
    )
    period_start: date = strawberry.field(
        description="First day of the period (1 January for a settlement year)."
    )
    period_end: date = strawberry.field(
        description="Last day of the period (31 December for a settlement year)."
    )
    balanced: bool = strawberry.field(description="True when no line has a difference.")
    lines: list[FundReconciliationLine] = strawberry.field(
        description="Every account and flow, with its difference (0.00 when it reconciles)."
    )

    @classmethod
    def of(cls, r: Report) -> FundReconciliation:
        return cls(
            region_prefix=r.region_prefix,
            year=r.year,
            period=None if r.period is None else StatementPeriod(r.period),
            period_start=r.bounds[0],
            period_end=r.bounds[1],
            balanced=r.balanced,
            lines=[FundReconciliationLine.of(d) for d in r.lines],
        )


@strawberry.type(
    description="A fund kind's year on a dashboard (issue 14): every account of the kind summed "
    "over the region prefix (all carriers, hospitals or persons; no one listed), by booking day "
    "as fundStatement(period: YEAR) gives it. Yuan; balances are debits minus credits (a payer "
    "in debit by what it paid, a payee in credit by what it is owed). Not k-suppressed: sums "
    "per fund account hold no person's figures."
)
class FundBalance:
    fund: AccountKind = strawberry.field(description="The account kind.")
    label: str = strawberry.field(description="Its Chinese name (policies/labels.py).")
    opening: Decimal = strawberry.field(description="Balance on 1 January, yuan.")
    debits: Decimal = strawberry.field(description="Debits of the year, yuan.")
    credits: Decimal = strawberry.field(description="Credits of the year, yuan.")
    closing: Decimal = strawberry.field(
        description="Balance on 31 December (today for this year): opening + debits − credits."
    )
    settlements: Decimal = strawberry.field(
        description="Of debits − credits, the settlement events' (ORIGINAL, ADJUSTMENT, "
        "REVERSAL, RECOVERY), yuan: for the assistance fund the assistance it paid net of "
        "reversals and recoveries (its use on claims)."
    )
    subsidies: Decimal = strawberry.field(
        description="Of debits − credits, the enrollment subsidies' (资助参保, SUBSIDY), yuan: "
        "what the assistance fund and finance paid (positive), what the basic fund received "
        "(negative). settlements + subsidies = debits − credits."
    )

    @classmethod
    def of(cls, b: Balance) -> FundBalance:
        return cls(
            fund=b.fund,
            label=label("account", b.fund.value),
            opening=b.opening,
            debits=b.debits,
            credits=b.credits,
            closing=b.closing,
            settlements=b.settlements,
            subsidies=b.subsidies,
        )
