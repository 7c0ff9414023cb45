"""Aggregates without person-level data, for finance, health, dashboards and supervision.

Every cell is k-suppressed (spec/ACCESS.md, "Aggregates"): a count or a sum computed over 1 to
k-1 persons (k = ``MEDGW_STATISTICS_K``, default 5) is ``None``, so that no region prefix or rare
category narrows an aggregate down to one person's figures. Zero persons is shown as zero.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, literal, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.storage import models
from policies.errors import InvalidInput
from policies.vocabulary import Payer
from resolvers.context import Context
from resolvers.cube import SUMS
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


def withheld(persons: Sequence[int], k: int) -> set[int]:
    """Which cells of one breakdown to withhold (by index), given the persons behind each: those
    over 1 to k−1 persons, and then, so that they cannot be found as the whole minus the cells
    shown, the smallest others until at least two are withheld and together they stand for k
    persons or more (complementary suppression).

    >>> sorted(withheld([2, 8, 6], 5)), sorted(withheld([2, 3, 8, 6], 5))
    ([0, 2], [0, 1])
    >>> sorted(withheld([1, 1, 8, 6, 9], 5)), withheld([8, 0, 6], 5)
    ([0, 1, 3], set())
    """
    hidden = {i for i, n in enumerate(persons) if not shown(n, k)}
    others = sorted((n, i) for i, n in enumerate(persons) if i not in hidden and n > 0)
    while hidden and (len(hidden) == 1 or sum(persons[i] for i in hidden) < k) and others:
        hidden.add(others.pop(0)[1])
    return hidden


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


# Dashboards (issue 14): figures of the rollup kept by resolvers/cube.py.

BREAKDOWNS = ("month", "region", "category", "visit_type", "hospital_level", "band")
"""The breakdowns whose cells add up to the whole (each event or person in one cell): a withheld
cell must not be the whole minus the others (:func:`withheld`)."""


@dataclass(frozen=True)
class Cell:
    """One dashboard cell: ``dim`` and ``value`` (a month ``03``, a region prefix, a category…),
    the persons behind it and its sums in yuan, or ``None`` everywhere but ``dim``, ``value`` and
    ``suppressed`` when 1 to k−1 persons are behind it. Shares are of the total cost, rounded to
    four places; ``average_out_of_pocket`` is per person."""

    dim: str
    value: str
    suppressed: bool
    persons: int | None = None
    claims: int | None = None
    total_cost: Decimal | None = None
    out_of_scope: Decimal | None = None
    out_of_pocket: Decimal | None = None
    paid: dict[Payer, Decimal] | None = None
    share: Decimal | None = None
    """For ``payer`` and ``assisted`` cells: their amount's share of the whole total cost."""
    out_of_pocket_share: Decimal | None = None
    out_of_scope_share: Decimal | None = None
    average_out_of_pocket: Decimal | None = None


@dataclass(frozen=True)
class Subsidy:
    """Enrollment subsidies of a category (``None``: every category), by fund, in yuan."""

    category: str | None
    suppressed: bool
    persons: int | None = None
    assistance_fund: Decimal | None = None
    finance: Decimal | None = None
    individual: Decimal | None = None


@dataclass(frozen=True)
class Board:
    """Everything a dashboard shows for a region prefix and a year."""

    region_prefix: str | None
    year: int
    k: int
    cells: list[Cell]
    alerts: list[tuple[str, int | None]]
    subsidies: list[Subsidy]

    def of(self, dim: str) -> list[Cell]:
        """The cells of one dimension, in the order of their values."""
        return [c for c in self.cells if c.dim == dim]


def region_level(prefix: str | None) -> int:
    """The length of the region codes one level below ``prefix`` (2, 4 or 6 digits).

    >>> [region_level(p) for p in (None, "51", "5104", "510402")]
    [2, 4, 6, 6]
    """
    return min(6, (len(prefix or "") // 2 + 1) * 2)


def _ratio(part: Any, whole: Any) -> Any:
    return func.round(part / func.nullif(whole, 0), 4)


async def board(ctx: Context, region_prefix: str | None, year: int) -> Board:
    """The dashboard's figures of ``year`` over the caller's regions narrowed to
    ``region_prefix``, each k-suppressed: the rollup's cells by dimension (and by region one
    level below the prefix), high-cost alerts by state (主动发现: persons alerted, recognised…)
    and enrollment subsidies by category and fund. Three SQL statements; FORBIDDEN for a prefix
    disjoint from the token's regions, BAD_INPUT for a year outside 1990–2100."""
    if region_prefix is not None:
        check_in_token(ctx.principal, "regionPrefix", check_region_prefix(region_prefix))
    if not 1990 <= year <= 2100:
        raise InvalidInput("year", year, "expected a year between 1990 and 2100")
    cube = models.DashboardCube
    where = [cube.year == year, ctx.rows.region(cube.region_code)]
    people = [*ctx.rows.persons()]
    if region_prefix:
        where.append(cube.region_code.like(f"{region_prefix}%"))
        people.append(models.Beneficiary.region_code.like(f"{region_prefix}%"))

    def sums() -> list[Any]:
        return [func.sum(getattr(cube, c)).label(c) for c in ("persons", *SUMS)]

    level = region_level(region_prefix)
    region = func.substr(cube.region_code, 1, level)
    parts = union_all(
        select(cube.dim, cube.value, *sums()).where(*where).group_by(cube.dim, cube.value),
        select(literal("region").label("dim"), region.label("value"), *sums())
        .where(*where, cube.dim == "year")
        .group_by(region),
    ).subquery()
    # Shares of the whole selection's total cost, for the payers' cells.
    whole = select(func.sum(cube.total_cost)).where(*where, cube.dim == "year").scalar_subquery()
    c = parts.c
    cells_q = select(
        parts,
        _ratio(c.out_of_pocket, c.total_cost).label("out_of_pocket_share"),
        _ratio(c.out_of_scope, c.total_cost).label("out_of_scope_share"),
        func.round(c.out_of_pocket / func.nullif(c.persons, 0), 2).label("average"),
        _ratio(sum((getattr(c, p.field_name) for p in Payer), literal(0)), whole).label("share"),
    ).order_by(c.dim, c.value)

    alert, person = models.HighCostAlert, models.Beneficiary
    alerts_q = (
        select(func.coalesce(alert.status, "ALL"), func.count())
        .join(person, person.id == alert.beneficiary_id)
        .where(alert.year == year, *people)
        .group_by(func.rollup(alert.status))
    )
    enrolment = models.Enrollment
    subsidies_q = (
        select(
            enrolment.subsidy_category,
            func.grouping(enrolment.subsidy_category).label("total"),
            func.count(),
            func.sum(enrolment.subsidy_assistance_fund),
            func.sum(enrolment.subsidy_finance),
            func.sum(enrolment.subsidy_individual),
        )
        .join(person, person.id == enrolment.beneficiary_id)
        .where(enrolment.year == year, enrolment.subsidy_category.is_not(None), *people)
        .group_by(func.rollup(enrolment.subsidy_category))
    )
    k = ctx.settings.statistics_k

    def cell(row: Any, hidden: bool) -> Cell:
        m = row._mapping
        persons = int(m["persons"] or 0)
        if hidden:
            return Cell(m["dim"], m["value"], suppressed=True)
        paid = {p: Decimal(m[p.field_name] or 0) for p in Payer}
        if m["dim"] in ("payer", "assisted"):
            return Cell(m["dim"], m["value"], False, persons, paid=paid, share=m["share"])
        return Cell(
            m["dim"],
            m["value"],
            suppressed=False,
            persons=persons,
            claims=int(m["claims"] or 0),
            total_cost=Decimal(m["total_cost"] or 0),
            out_of_scope=Decimal(m["out_of_scope"] or 0),
            out_of_pocket=Decimal(m["out_of_pocket"] or 0),
            paid=paid,
            out_of_pocket_share=m["out_of_pocket_share"],
            out_of_scope_share=m["out_of_scope_share"],
            average_out_of_pocket=m["average"],
        )

    async def run(session: AsyncSession) -> Board:
        # A cell everyone left (a reversed claim) is not shown; the whole year always is.
        rows = [r for r in (await session.execute(cells_q)).all() if r.persons or r.dim == "year"]
        hide: set[int] = set()
        by_dim: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(rows):
            by_dim[r.dim].append(i)
        for dim, indices in by_dim.items():
            counts = [int(rows[i].persons) for i in indices]
            if dim in BREAKDOWNS:
                hide |= {indices[j] for j in withheld(counts, k)}
            else:
                hide |= {i for i, n in zip(indices, counts, strict=True) if not shown(n, k)}
        cells = [cell(r, i in hide) for i, r in enumerate(rows)]
        if any(c.dim == "year" and c.suppressed for c in cells):
            # Under k persons in all: which months, categories… have any would say theirs.
            cells = [c for c in cells if c.dim not in BREAKDOWNS]
        states = [(str(s), int(n)) for s, n in (await session.execute(alerts_q)).all()]
        alerts = [(s, n if shown(n, k) else None) for s, n in states if s == "ALL"]
        by_state = [(s, n) for s, n in states if s != "ALL"]
        hidden = withheld([n for _, n in by_state], k)
        if all(n is not None for _, n in alerts):  # the states of under k persons: none
            alerts += [(s, None if j in hidden else n) for j, (s, n) in enumerate(by_state)]
        found = (await session.execute(subsidies_q)).all()
        hidden = withheld([int(r[2]) for r in found if not r[1]], k)
        subsidies, j = [], 0
        for category, total, n, fund, finance, individual in found:
            key = None if total else str(category)
            if total:
                withhold = not shown(n, k)
            else:
                withhold, j = j in hidden, j + 1
            if withhold:
                subsidies.append(Subsidy(key, True))
            else:
                subsidies.append(Subsidy(key, False, n, fund, finance, individual))
        if any(x.category is None and x.suppressed for x in subsidies):
            # The categories of under k persons in all: none.
            subsidies = [x for x in subsidies if x.category is None]
        return Board(region_prefix, year, k, cells, alerts, subsidies)

    return await ctx.read(run)
