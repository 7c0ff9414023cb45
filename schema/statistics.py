"""Aggregates: counts and sums, no person-level data."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from resolvers.statistics import Figures
from schema.amounts import Amounts, amounts
from schema.enums import Category


@strawberry.type
class CategoryCount:
    category: Category
    persons: int


@strawberry.type(description="Counts and sums over the persons of the caller's regions.")
class Statistics(Amounts):
    region_prefix: str | None
    year: int
    persons: int
    by_category: list[CategoryCount] = strawberry.field(
        description="Persons holding each category on 31 December (today for this year)."
    )
    claims: int = strawberry.field(description="Settled claims of the year (not reversed).")
    total_cost: Decimal

    @classmethod
    def of(cls, f: Figures) -> Statistics:
        return cls(
            region_prefix=f.region_prefix,
            year=f.year,
            persons=f.persons,
            by_category=[CategoryCount(category=Category(c), persons=n) for c, n in f.by_category],
            claims=f.claims,
            total_cost=f.total_cost,
            **amounts(f.paid, f.out_of_pocket),
        )
