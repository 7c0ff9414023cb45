"""Aggregates: counts and sums, no person-level data, k-suppressed (spec/ACCESS.md)."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from policies.labels import ALERT_STATES, label
from policies.vocabulary import Payer
from resolvers import balances, statistics
from resolvers.context import Context
from resolvers.cube import BANDS
from resolvers.statistics import Figures
from schema.enums import Category
from schema.fund import FundBalance

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


# Dashboards (issue 14): resolvers/statistics.board over the rollup of resolvers/cube.py.

ZERO = Decimal("0.00")
NONE = Decimal("0.0000")
"""The share of a payer that paid nobody."""
ALERT_ORDER = list(ALERT_STATES)
SHARE = "A ratio in [0, 1] of the total cost, four decimals (null when nothing was spent). "


@strawberry.type(
    description="One cell of a dashboard: the persons behind it and its sums in yuan, all null "
    "with `suppressed: true` when 1 to k−1 persons are behind it (ACCESS.md, Aggregates)."
)
class DashboardCell:
    key: str = strawberry.field(
        description="The cell's value: a month `01`–`12` (of the discharge date), a region "
        "prefix, a category (`NONE`: settled without one), a visit type, a hospital level "
        "(`NONE`: not given), or `-` for the whole selection."
    )
    label: str = strawberry.field(description="Its Chinese name (policies/labels.py).")
    suppressed: bool = strawberry.field(description="Whether the figures are withheld.")
    persons: int | None = strawberry.field(
        description="Distinct persons with a settled claim or a payment in the cell. " + SUPPRESSED
    )
    claims: int | None = strawberry.field(description="Settled claims, net of reversals.")
    total_cost: Decimal | None = strawberry.field(description="总费用, yuan.")
    out_of_scope_cost: Decimal | None = strawberry.field(
        description="目录外费用: total cost minus policy-scope cost, yuan."
    )
    out_of_pocket: Decimal | None = strawberry.field(description="个人自付, yuan.")
    basic_insurance: Decimal | None = strawberry.field(description="基本医保, yuan.")
    critical_illness: Decimal | None = strawberry.field(description="大病保险, yuan.")
    inclusive_commercial: Decimal | None = strawberry.field(description="普惠型商业健康保险, yuan.")
    assistance: Decimal | None = strawberry.field(description="医疗救助, yuan.")
    secondary_assistance: Decimal | None = strawberry.field(description="倾斜救助 / 再救助, yuan.")
    out_of_pocket_share: Decimal | None = strawberry.field(
        description="综合保障后个人负担比例: out-of-pocket / total cost. " + SHARE
    )
    out_of_scope_share: Decimal | None = strawberry.field(
        description="目录外费用占比: out-of-scope cost / total cost. " + SHARE
    )
    average_out_of_pocket: Decimal | None = strawberry.field(
        description="Out-of-pocket per person of the cell, yuan."
    )

    @classmethod
    def of(cls, cell: statistics.Cell) -> DashboardCell:
        paid = cell.paid or {}
        return cls(
            key=cell.value,
            label=label(cell.dim, cell.value),
            suppressed=cell.suppressed,
            persons=cell.persons,
            claims=cell.claims,
            total_cost=cell.total_cost,
            out_of_scope_cost=cell.out_of_scope,
            out_of_pocket=cell.out_of_pocket,
            out_of_pocket_share=cell.out_of_pocket_share,
            out_of_scope_share=cell.out_of_scope_share,
            average_out_of_pocket=cell.average_out_of_pocket,
            **{payer.field_name: paid.get(payer) for payer in Payer},
        )


@strawberry.type(description="What one payer bore, over the persons it paid.")
class PayerShare:
    payer: str = strawberry.field(
        description="basicInsurance, criticalIllness, inclusiveCommercial, assistance, "
        "secondaryAssistance, or `assisted` (assistance and secondary assistance together)."
    )
    label: str = strawberry.field(description="Its Chinese name.")
    suppressed: bool = strawberry.field(description="Whether the figures are withheld.")
    persons: int | None = strawberry.field(description="Persons it paid. " + SUPPRESSED)
    amount: Decimal | None = strawberry.field(description="What it paid, yuan.")
    share: Decimal | None = strawberry.field(
        description="Its share of the whole selection's total cost. " + SHARE
    )

    @classmethod
    def of(cls, cell: statistics.Cell) -> PayerShare:
        key = "assisted" if cell.dim == "assisted" else cell.value
        amount = None if cell.paid is None else sum(cell.paid.values(), Decimal("0.00"))
        return cls(
            payer=key,
            label="医疗救助合计" if key == "assisted" else label("payer", key),
            suppressed=cell.suppressed,
            persons=cell.persons,
            amount=amount,
            share=cell.share,
        )


@strawberry.type(description="Persons whose yearly out-of-pocket falls in a band.")
class OutOfPocketBand:
    lower: Decimal = strawberry.field(description="Lower bound, yuan (the lowest band: below).")
    upper: Decimal | None = strawberry.field(description="Upper bound, excluded (null: none).")
    suppressed: bool = strawberry.field(description="Whether the figures are withheld.")
    persons: int | None = strawberry.field(description=SUPPRESSED)
    out_of_pocket: Decimal | None = strawberry.field(description="Their out-of-pocket, yuan.")


@strawberry.type(description="A count of persons under a key, k-suppressed.")
class DashboardCount:
    key: str = strawberry.field(
        description="ALL, or an alert state: OPEN, ACKNOWLEDGED, RECOGNISED, REJECTED, CLOSED."
    )
    label: str = strawberry.field(description="Its Chinese name.")
    suppressed: bool = strawberry.field(description="Whether `persons` is withheld.")
    persons: int | None = strawberry.field(description=SUPPRESSED)


@strawberry.type(description="Enrollment subsidies (参保资助) of the year by fund, yuan.")
class SubsidyTotal:
    category: str = strawberry.field(description="The subsidised category, or ALL.")
    label: str = strawberry.field(description="Its Chinese name.")
    suppressed: bool = strawberry.field(description="Whether the figures are withheld.")
    persons: int | None = strawberry.field(description="Persons subsidised. " + SUPPRESSED)
    assistance_fund: Decimal | None = strawberry.field(description="医疗救助基金, yuan.")
    finance: Decimal | None = strawberry.field(description="财政, yuan.")
    individual: Decimal | None = strawberry.field(description="个人缴费 left to pay, yuan.")


@strawberry.type(
    description="A dashboard's figures for a year over the caller's regions (issue 14): "
    "computed from the rollup kept with every settlement event; every cell k-suppressed "
    "(ACCESS.md, Aggregates). Amounts in yuan."
)
class Dashboard:
    region_prefix: str | None = strawberry.field(description="The prefix asked for, if any.")
    year: int = strawberry.field(description="The settlement year.")
    k: int = strawberry.field(description="Cells over 1 to k−1 persons are suppressed.")
    total: DashboardCell = strawberry.field(description="The whole selection (key `-`).")
    assisted: PayerShare = strawberry.field(
        description="Persons assisted: paid assistance or secondary assistance."
    )
    by_month: list[DashboardCell] = strawberry.field(description="By month of discharge.")
    by_region: list[DashboardCell] = strawberry.field(
        description="By region prefix one level (2 digits) below the prefix asked for."
    )
    by_category: list[DashboardCell] = strawberry.field(
        description="By the category each settlement event was settled with."
    )
    by_visit_type: list[DashboardCell] = strawberry.field(description="By visit type.")
    by_hospital_level: list[DashboardCell] = strawberry.field(description="By hospital level.")
    by_payer: list[PayerShare] = strawberry.field(
        description="The share of the total cost each payer bore, in payment order."
    )
    out_of_pocket_bands: list[OutOfPocketBand] = strawberry.field(
        description="Distribution of the persons' yearly out-of-pocket."
    )
    alerts: list[DashboardCount] = strawberry.field(
        description="High-cost alerts of the year (主动发现): ALL, then by state."
    )
    subsidies: list[SubsidyTotal] = strawberry.field(
        description="Enrollment subsidies by fund: ALL, then by category."
    )

    @strawberry.field(
        description="The fund ledgers' balances of the year (issue 13 and 14), one per fund "
        "kind: opening, debits, credits, closing, and the split between settlements and "
        "enrollment subsidies (the assistance fund's use against the subsidies it paid). By "
        "booking day, as fundStatement(period: YEAR); finance and medical insurance only "
        "(FORBIDDEN for the others, naming this field). Yuan."
    )
    async def fund_balances(self, info: strawberry.Info[Context, None]) -> list[FundBalance]:
        return [
            FundBalance.of(b)
            for b in await balances.balances(info.context, self.region_prefix, self.year)
        ]

    @classmethod
    def of(cls, b: statistics.Board) -> Dashboard:
        empty = statistics.Cell("year", "-", False, 0, 0, ZERO, ZERO, ZERO, {})
        [total] = b.of("year") or [empty]
        [assisted] = b.of("assisted") or [
            statistics.Cell("assisted", "-", False, 0, paid={}, share=NONE)
        ]
        payers = {c.value: c for c in b.of("payer")}
        by_band = {int(c.value): c for c in b.of("band")}
        bands = []
        for i, low in enumerate(BANDS):
            c = by_band.get(low)
            bands.append(
                OutOfPocketBand(
                    lower=Decimal(low),
                    upper=Decimal(BANDS[i + 1]) if i + 1 < len(BANDS) else None,
                    suppressed=total.suppressed or (c is not None and c.suppressed),
                    persons=None if total.suppressed else 0 if c is None else c.persons,
                    out_of_pocket=None
                    if total.suppressed
                    else ZERO
                    if c is None
                    else c.out_of_pocket,
                )
            )
        return cls(
            region_prefix=b.region_prefix,
            year=b.year,
            k=b.k,
            total=DashboardCell.of(total),
            assisted=PayerShare.of(assisted),
            by_month=[DashboardCell.of(c) for c in b.of("month")],
            by_region=[DashboardCell.of(c) for c in b.of("region")],
            by_category=[DashboardCell.of(c) for c in b.of("category")],
            by_visit_type=[DashboardCell.of(c) for c in b.of("visit_type")],
            by_hospital_level=[DashboardCell.of(c) for c in b.of("hospital_level")],
            by_payer=[
                PayerShare.of(
                    statistics.Cell("payer", p.value, True)
                    if total.suppressed  # which payers paid under k persons: not said
                    else payers.get(p.value)
                    or statistics.Cell("payer", p.value, False, 0, paid={}, share=NONE)
                )
                for p in Payer
            ],
            out_of_pocket_bands=bands,
            alerts=[
                DashboardCount(key=s, label=label("alert", s), suppressed=n is None, persons=n)
                for s, n in sorted(b.alerts, key=lambda a: ALERT_ORDER.index(a[0]))
            ],
            subsidies=[
                SubsidyTotal(
                    category=s.category or "ALL",
                    label="合计" if s.category is None else label("category", s.category),
                    suppressed=s.suppressed,
                    persons=s.persons,
                    assistance_fund=s.assistance_fund,
                    finance=s.finance,
                    individual=s.individual,
                )
                for s in sorted(b.subsidies, key=lambda s: (s.category is not None, s.category))
            ],
        )
