"""Aggregates: counts and sums, no person-level data, k-suppressed (spec/ACCESS.md)."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from policies.vocabulary import Payer
from resolvers.statistics import Figures
from schema.enums import Category

SUPPRESSED = (
    "Null when computed over 1 to k−1 persons (k = MEDGW_STATISTICS_K, default 5; "
    "`suppressed` is then true)."
)


@strawberry.type(description="Persons holding one category.")
class CategoryCount:
    category: Category = strawberry.field(description="The category counted.")
    persons: int | None = strawberry.field(description=SUPPRESSED)
    suppressed: bool = strawberry.field(description="Whether `persons` is withheld.")


@strawberry.type(
    description="Counts and sums of a year over the persons of the caller's regions, "
    "k-suppressed: no cell narrows down to fewer than k persons (ACCESS.md, Aggregates). "
    "Amounts in yuan."
)
class Statistics:
    region_prefix: str | None = strawberry.field(
        description="The region prefix asked for (null: all the caller's regions)."
    )
    year: int = strawberry.field(description="The settlement year.")
    suppressed: bool = strawberry.field(
        description="Whether a cell of this object (not of byCategory) is withheld as null."
    )
    persons: int | None = strawberry.field(description="Persons registered. " + SUPPRESSED)
    by_category: list[CategoryCount] = strawberry.field(
        description="Persons holding each category on 31 December (today for this year)."
    )
    claims: int | None = strawberry.field(
        description="Settled claims of the year (not reversed). This and the amounts are one "
        "cell over the persons with claims in the year. " + SUPPRESSED
    )
    total_cost: Decimal | None = strawberry.field(description="总费用. " + SUPPRESSED)
    basic_insurance: Decimal | None = strawberry.field(description="基本医保. " + SUPPRESSED)
    critical_illness: Decimal | None = strawberry.field(description="大病保险. " + SUPPRESSED)
    inclusive_commercial: Decimal | None = strawberry.field(
        description="普惠型商业健康保险. " + SUPPRESSED
    )
    assistance: Decimal | None = strawberry.field(description="医疗救助. " + SUPPRESSED)
    secondary_assistance: Decimal | None = strawberry.field(
        description="倾斜救助 / 再救助. " + SUPPRESSED
    )
    out_of_pocket: Decimal | None = strawberry.field(
        description="What the patients paid. " + SUPPRESSED
    )

    @classmethod
    def of(cls, f: Figures) -> Statistics:
        return cls(
            region_prefix=f.region_prefix,
            year=f.year,
            suppressed=f.suppressed,
            persons=f.persons,
            by_category=[
                CategoryCount(category=Category(c), persons=n, suppressed=n is None)
                for c, n in f.by_category
            ],
            claims=f.claims,
            total_cost=f.total_cost,
            out_of_pocket=f.out_of_pocket,
            **{payer.field_name: f.paid[payer] for payer in Payer},
        )
