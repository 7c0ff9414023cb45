"""Aggregates without person-level data, for finance, health, dashboards and supervision.

Every cell is k-suppressed (spec/ACCESS.md, "Aggregates"): a count or a sum computed over 1 to
k-1 persons (k = ``MEDGW_STATISTICS_K``, default 5) is ``None``, so that no region prefix or rare
category narrows an aggregate down to one person's figures. Zero persons is shown as zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.storage import models
from policies.errors import InvalidInput
from policies.vocabulary import Payer
from resolvers.context import Context
from resolvers.inputs import check_in_token, check_region_prefix

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Figures:
    """The year's aggregates; ``None`` where a cell was suppressed.

    ``persons``: persons in the rows; ``by_category``: persons per category held on the day;
    ``claims`` … ``out_of_pocket``: over the ledgers of the persons with claims in the year (one
    cell: suppressed together when fewer than k persons are behind them).
    """

    region_prefix: str | None
    year: int
    persons: int | None
    by_category: list[tuple[str, int | None]]
    claims: int | None
    total_cost: Decimal | None
    paid: dict[Payer, Decimal | None]
    out_of_pocket: Decimal | None

    @property
    def suppressed(self) -> bool:
        """Whether any cell of the top level was suppressed."""
        return self.persons is None or self.claims is None


def shown(persons: int, k: int) -> bool:
    """Whether a cell over ``persons`` persons may be shown: none, or at least ``k``.

    >>> [shown(n, 5) for n in (0, 1, 4, 5)]
    [True, False, False, True]
    """
    return persons == 0 or persons >= k


async def figures(ctx: Context, region_prefix: str | None, year: int) -> Figures:
    """Counts and sums over the persons the caller's rows allow, narrowed to a region prefix;
    categories are those held on 31 December of ``year`` (or today, for the current year).
    FORBIDDEN for a prefix disjoint from the token's regions (:func:`check_in_token`)."""
    if region_prefix is not None:
        check_in_token(ctx.principal, "regionPrefix", check_region_prefix(region_prefix))
    if not 1990 <= year <= 2100:
        raise InvalidInput("year", year, "expected a year between 1990 and 2100")
    people = [*ctx.rows.persons()]
    if region_prefix:
        people.append(models.Beneficiary.region_code.like(f"{region_prefix}%"))
    on = min(date(year, 12, 31), ctx.settings.today())
    persons_q = select(func.count()).select_from(models.Beneficiary).where(*people)

    def holding(model: type[models.Identity] | type[models.MonitoringFlag]) -> Any:
        return (
            select(model.category, model.beneficiary_id)
            .join(models.Beneficiary, models.Beneficiary.id == model.beneficiary_id)
            .where(
                *people,
                model.valid_from <= on,
                or_(model.valid_to.is_(None), model.valid_to >= on),
            )
        )

    held = union_all(holding(models.Identity), holding(models.MonitoringFlag)).subquery()
    categories_q = (
        select(held.c.category, func.count(func.distinct(held.c.beneficiary_id)))
        .group_by(held.c.category)
        .order_by(held.c.category)
    )
    ledger = models.Ledger
    sums_q = (
        select(
            func.coalesce(func.sum(ledger.visits), 0).label("claims"),
            func.count(func.distinct(ledger.beneficiary_id)).label("claimants"),
            func.coalesce(func.sum(ledger.total_cost), ZERO).label("total_cost"),
            func.coalesce(func.sum(ledger.out_of_pocket), ZERO).label("out_of_pocket"),
            *(
                func.coalesce(func.sum(getattr(ledger, payer.field_name)), ZERO).label(payer.value)
                for payer in Payer
            ),
        )
        .join(models.Beneficiary, models.Beneficiary.id == ledger.beneficiary_id)
        .where(and_(*people), ledger.year == year)
    )

    k = ctx.settings.statistics_k

    async def run(session: AsyncSession) -> Figures:
        persons = int(await session.scalar(persons_q) or 0)
        by_category = [
            (str(c), int(n) if shown(n, k) else None)
            for c, n in (await session.execute(categories_q)).all()
        ]
        sums = (await session.execute(sums_q)).one()._mapping
        # The ledger figures are one cell over the persons with claims in the year.
        withheld = not shown(sums["claimants"], k)

        def money(key: str) -> Decimal | None:
            return None if withheld else Decimal(sums[key])

        return Figures(
            region_prefix=region_prefix,
            year=year,
            persons=persons if shown(persons, k) else None,
            by_category=by_category,
            claims=None if withheld else int(sums["claims"]),
            total_cost=money("total_cost"),
            paid={payer: money(payer.value) for payer in Payer},
            out_of_pocket=money("out_of_pocket"),
        )

    return await ctx.read(run)
