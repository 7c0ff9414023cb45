"""Fund balances for dashboards (issue 14, the last point; the ledgers of issue 13): per fund
kind, for a region prefix and a calendar year of booking days, the opening balance, the year's
debits and credits, the closing balance and how the year's postings split between settlement
events and enrollment subsidies (the assistance fund's use against the subsidies it paid).

Computed in SQL by the statement code (:func:`resolvers.statements.select_statement`, the rows of
``fundStatement(period: YEAR)``): one statement per fund kind, joined by UNION ALL and summed per
kind, so a balance here is the YEAR statement's figure by construction. Every account of a kind
is summed over the prefix (all carriers, all hospitals, all persons: a person's receivable is
never listed on its own). Sums per fund account hold no personal data and are not
k-suppressed. Balances are debits minus credits in yuan (a payer's fund is in debit by what it
paid, a payee's — a hospital, persons — in credit by what it is owed).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, case, func, literal, select, union_all

from policies.funds import AccountKind
from policies.funds.rules import SUBSIDY_KIND
from policies.money import ZERO
from resolvers.context import Context
from resolvers.rows import RowRules
from resolvers.statements import select_statement

FUNDS = tuple(AccountKind)
"""The fund kinds of a dashboard, in the order of the ledgers' rules."""


@dataclass(frozen=True)
class Balance:
    """One fund kind's year, yuan: ``closing = opening + debits − credits`` and
    ``debits − credits = settlements + subsidies``."""

    fund: AccountKind
    opening: Decimal
    debits: Decimal
    credits: Decimal
    closing: Decimal
    settlements: Decimal
    """Net postings (debits − credits) of settlement events: ORIGINAL, ADJUSTMENT, REVERSAL
    and RECOVERY."""
    subsidies: Decimal
    """Net postings (debits − credits) of enrollment subsidies (资助参保)."""


async def balances(ctx: Context, region_prefix: str | None, year: int) -> list[Balance]:
    """Every fund kind's balance of ``year`` (booking days 1 January–31 December, China time)
    over the caller's regions narrowed to ``region_prefix``, in :data:`FUNDS` order.

    One SQL statement (:func:`select_balances`). FORBIDDEN for a prefix outside the token's
    regions, BAD_INPUT for a bad prefix (as ``fundStatement``); the caller's department must
    read every fund (finance, medical insurance: the access policy grants
    ``Dashboard.fundBalances`` to no other).
    """
    return [
        Balance(
            AccountKind(r.fund),
            Decimal(r.opening),
            Decimal(r.debits),
            Decimal(r.credits),
            Decimal(r.closing),
            Decimal(r.settlements),
            Decimal(r.subsidies),
        )
        for r in await ctx.tuples(select_balances(ctx.rows, region_prefix, year))
    ]


def select_balances(rows: RowRules, region_prefix: str | None, year: int) -> Select[Any]:
    """The balances as rows labelled fund, opening, debits, credits, closing, settlements,
    subsidies: the YEAR statement of every fund kind, summed per kind."""
    parts = [
        select_statement(
            rows, fund=fund.value, year=year, period="YEAR", number=None,
            region_prefix=region_prefix, party=None,
        ).order_by(None)
        for fund in FUNDS
    ]  # fmt: skip
    lines = union_all(*parts).subquery("lines")
    net = lines.c.debit - lines.c.credit
    subsidy = lines.c.kind == SUBSIDY_KIND
    position = case({fund.value: i for i, fund in enumerate(FUNDS)}, value=lines.c.fund)
    return (
        select(
            lines.c.fund,
            func.min(lines.c.opening).label("opening"),
            func.sum(lines.c.debit).label("debits"),
            func.sum(lines.c.credit).label("credits"),
            func.min(lines.c.closing).label("closing"),
            func.sum(case((subsidy, literal(ZERO)), else_=net)).label("settlements"),
            func.sum(case((subsidy, net), else_=literal(ZERO))).label("subsidies"),
        )
        .group_by(lines.c.fund)
        .order_by(func.min(position))
    )
