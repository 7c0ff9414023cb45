"""Fund statements (issue 13; 鲁医保发〔2020〕79号 四(三): the assistance fund's special account is
reconciled with finance at least once a quarter): for a fund, a region prefix and a period
(a month, a quarter or a year of the booking days), the opening balance, the postings by event
kind and flow (the payer line or subsidy part), and the closing balance.

The same statement serves every reader, with the rows it may see: a hospital's is the account
``HOSPITAL`` of its own hospital code (what each payer owes it for its claims: the ``flow`` of a
line is the payer, net of reversals), an insurer's the insurer accounts of its own carrier
(claims paid, adjustments, reversals: the ``kind`` of a line). Balances are debits minus credits
in yuan: a payer's account is in debit by what it paid, a payee's in credit by what it is owed.
"""

from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    case,
    column,
    func,
    literal,
    select,
    values,
)

from gateway.errors import Forbidden
from gateway.storage import models
from policies.errors import InvalidInput
from policies.funds import AccountKind
from policies.money import ZERO
from resolvers import funds
from resolvers.context import Context
from resolvers.inputs import check_in_token, check_region_prefix, check_text
from resolvers.rows import RowRules

PERIODS = ("MONTH", "QUARTER", "YEAR")
INSURER_FUNDS = (AccountKind.CRITICAL_ILLNESS_INSURER, AccountKind.INCLUSIVE_COMMERCIAL_INSURER)


def period_bounds(year: int, period: str, number: int | None) -> tuple[date, date]:
    """First and last day of the period (``number``: the month 1–12 or the quarter 1–4).

    >>> period_bounds(2026, "QUARTER", 2)
    (datetime.date(2026, 4, 1), datetime.date(2026, 6, 30))
    >>> period_bounds(2026, "YEAR", None)
    (datetime.date(2026, 1, 1), datetime.date(2026, 12, 31))
    """
    if period not in PERIODS:
        raise InvalidInput("period", period, f"one of {', '.join(PERIODS)}")
    if period == "YEAR":
        if number not in (None, 1):
            raise InvalidInput("number", number, "a YEAR statement takes no number")
        return date(year, 1, 1), date(year, 12, 31)
    count = 12 if period == "MONTH" else 4
    if number is None or not 1 <= number <= count:
        raise InvalidInput("number", number, f"the {period.lower()} of the year, 1 to {count}")
    first_month = number if period == "MONTH" else 3 * number - 2
    last_month = number if period == "MONTH" else 3 * number
    return date(year, first_month, 1), date(year, last_month, monthrange(year, last_month)[1])


@dataclass(frozen=True)
class StatementLine:
    kind: str
    flow: str
    debit: Decimal
    credit: Decimal


@dataclass(frozen=True)
class Statement:
    fund: AccountKind
    region_prefix: str | None
    party: str
    """The carrier or hospital code; '' for all accounts of the kind (or a fund without one)."""
    period_start: date
    period_end: date
    opening: Decimal
    lines: list[StatementLine]

    @property
    def debits(self) -> Decimal:
        return sum((line.debit for line in self.lines), ZERO)

    @property
    def credits(self) -> Decimal:
        return sum((line.credit for line in self.lines), ZERO)

    @property
    def closing(self) -> Decimal:
        return self.opening + self.debits - self.credits


def readable_party(rows: RowRules, fund: AccountKind, party: str | None) -> str | None:
    """The party the caller may read the fund of: an insurer its own carrier's insurer
    accounts, a hospital its own hospital code's account (FORBIDDEN otherwise, naming the
    field); a person's account is never a statement of its own (BAD_INPUT)."""
    party = check_text(party, "party", 120)
    own = rows.principal.org
    if "carrier" in rows.rules or "hospital" in rows.rules:
        allowed = INSURER_FUNDS if "carrier" in rows.rules else (AccountKind.HOSPITAL,)
        if fund not in allowed:
            raise Forbidden(
                f"fund = {fund}: this department reads only "
                f"{' and '.join(a.value for a in allowed)} statements of its own",
                field="fund",
                value=fund.value,
            )
        if party is not None and party != own:
            raise Forbidden(
                f"party = {party}: only the caller's own ({own})", field="party", value=party
            )
        return own
    if fund is AccountKind.PERSON and party is not None:
        raise InvalidInput("party", party, "person accounts are summed per region, not one by one")
    return party


def accounts_of(
    rows: RowRules, fund: AccountKind, region_prefix: str | None, party: str | None
) -> list[ColumnElement[bool]]:
    """WHERE conditions on ``fund_accounts``: the fund, the token's regions, the prefix asked
    (checked against the token) and the party."""
    conditions: list[ColumnElement[bool]] = [
        models.FundAccount.kind == fund.value,
        rows.region(models.FundAccount.region_code),
    ]
    if region_prefix is not None:
        prefix = check_in_token(rows.principal, "regionPrefix", check_region_prefix(region_prefix))
        conditions.append(models.FundAccount.region_code.like(f"{prefix}%"))
    if party is not None:
        conditions.append(models.FundAccount.party == party)
    return conditions


def select_statement(
    rows: RowRules,
    *,
    fund: str | None,
    year: int,
    period: str,
    number: int | None,
    region_prefix: str | None,
    party: str | None,
) -> Select[tuple[Any, ...]]:
    """The statement as rows, one per line (every line the rules can post to the fund, in their
    order, then any other posted), labelled fund, party, periodStart, periodEnd, opening, kind,
    flow, debit, credit, closing: what ``fundStatement`` answers and the ``statements`` export
    writes. BAD_INPUT for an unknown fund or period, FORBIDDEN as :func:`readable_party`."""
    try:
        kind = AccountKind(fund) if fund is not None else default_fund(rows)
    except ValueError:
        raise InvalidInput("fund", fund, f"one of {', '.join(AccountKind)}") from None
    start, end = period_bounds(year, period, number)
    who = readable_party(rows, kind, party)
    where = and_(*accounts_of(rows, kind, region_prefix, who))
    # The monthly rollup (resolvers/fund_months.py): a period is whole months of booking days.
    entry, account = models.FundEntryMonth, models.FundAccount
    debit = func.sum(case((entry.side == "DEBIT", entry.amount), else_=ZERO))
    credit = func.sum(case((entry.side == "CREDIT", entry.amount), else_=ZERO))
    sums = (
        select(entry.kind, entry.flow, debit.label("debit"), credit.label("credit"))
        .join(account, account.id == entry.account_id)
        .where(where, entry.month.between(start, end))
        .group_by(entry.kind, entry.flow)
        .subquery("sums")
    )
    opening = (
        select(func.coalesce(debit - credit, ZERO))
        .join(account, account.id == entry.account_id)
        .where(where, entry.month < start)
        .scalar_subquery()
    )
    layout = values(
        column("position", Integer), column("kind", String), column("flow", String), name="layout"
    ).data([(i, k, f) for i, (k, f) in enumerate(funds.rules().layout(kind))])
    line_debit = func.coalesce(sums.c.debit, ZERO)
    line_credit = func.coalesce(sums.c.credit, ZERO)
    return (
        select(
            literal(kind.value).label("fund"),
            literal(who or "").label("party"),
            literal(start).label("periodStart"),
            literal(end).label("periodEnd"),
            opening.label("opening"),
            func.coalesce(layout.c.kind, sums.c.kind).label("kind"),
            func.coalesce(layout.c.flow, sums.c.flow).label("flow"),
            line_debit.label("debit"),
            line_credit.label("credit"),
            (opening + func.sum(line_debit - line_credit).over()).label("closing"),
        )
        .select_from(
            layout.join(
                sums, and_(layout.c.kind == sums.c.kind, layout.c.flow == sums.c.flow), full=True
            )
        )
        .order_by(
            func.coalesce(layout.c.position, 1_000_000),
            func.coalesce(layout.c.kind, sums.c.kind),
            func.coalesce(layout.c.flow, sums.c.flow),
        )
    )


async def statement(
    ctx: Context,
    *,
    fund: str | None,
    year: int,
    period: str,
    number: int | None,
    region_prefix: str | None,
    party: str | None,
) -> Statement:
    """The statement of ``fund`` (an account kind; default: an insurer's critical-illness
    account, a hospital's own account, else the assistance fund) for the period; see the
    module and :func:`select_statement`."""
    stmt = select_statement(
        ctx.rows, fund=fund, year=year, period=period, number=number,
        region_prefix=region_prefix, party=party,
    )  # fmt: skip
    rows = await ctx.tuples(stmt)
    first = rows[0]
    return Statement(
        AccountKind(first.fund),
        region_prefix,
        first.party,
        first.periodStart,
        first.periodEnd,
        Decimal(first.opening),
        [StatementLine(r.kind, r.flow, Decimal(r.debit), Decimal(r.credit)) for r in rows],
    )


def default_fund(rows: RowRules) -> AccountKind:
    """The fund a caller's statement is of when none is named."""
    if "carrier" in rows.rules:
        return AccountKind.CRITICAL_ILLNESS_INSURER
    if "hospital" in rows.rules:
        return AccountKind.HOSPITAL
    return AccountKind.ASSISTANCE_FUND
