"""Aggregates without person-level data, for finance, health, dashboards and supervision."""

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
from resolvers.inputs import check_region_prefix

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Figures:
    region_prefix: str | None
    year: int
    persons: int
    by_category: list[tuple[str, int]]
    claims: int
    total_cost: Decimal
    paid: dict[Payer, Decimal]
    out_of_pocket: Decimal


async def figures(ctx: Context, region_prefix: str | None, year: int) -> Figures:
    """Counts and sums over the persons the caller's rows allow, narrowed to a region prefix;
    categories are those held on 31 December of ``year`` (or today, for the current year)."""
    if region_prefix is not None:
        check_region_prefix(region_prefix)
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
            func.coalesce(func.sum(ledger.visits), 0),
            func.coalesce(func.sum(ledger.total_cost), ZERO),
            func.coalesce(func.sum(ledger.out_of_pocket), ZERO),
            *(
                func.coalesce(func.sum(getattr(ledger, payer.field_name)), ZERO).label(payer.value)
                for payer in Payer
            ),
        )
        .join(models.Beneficiary, models.Beneficiary.id == ledger.beneficiary_id)
        .where(and_(*people), ledger.year == year)
    )

    async def run(session: AsyncSession) -> Figures:
        persons = int(await session.scalar(persons_q) or 0)
        by_category = [(str(c), int(n)) for c, n in (await session.execute(categories_q)).all()]
        sums = (await session.execute(sums_q)).one()
        return Figures(
            region_prefix=region_prefix,
            year=year,
            persons=persons,
            by_category=by_category,
            claims=int(sums[0]),
            total_cost=Decimal(sums[1]),
            paid={payer: Decimal(sums._mapping[payer.value]) for payer in Payer},
            out_of_pocket=Decimal(sums[2]),
        )

    return await ctx.read(run)
