"""Fund balances on the dashboard (issue 14, resolvers/balances.py): on the dashboard's seeded
database (tests/resolvers/test_cube.py, with hospitals, claims without one, a reversal and an
adjustment booked today, subsidies booked before and in the year), ``Dashboard.fundBalances``
equals independent SQL sums of ``fund_entries`` and ``fundStatement``'s YEAR figures for the same
fund and region; departments without the grant are refused that field only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from gateway.storage.database import Database
from policies.funds import AccountKind
from policies.labels import label
from tests.conftest import GraphQLClient
from tests.resolvers.test_cube import YEAR, seed

FIELDS = "fund label opening debits credits closing settlements subsidies"
BALANCES = f"""query($y: Int!, $p: String) {{ dashboard(year: $y, regionPrefix: $p) {{
  year regionPrefix fundBalances {{ {FIELDS} }} }} }}"""
STATEMENT = """query($f: AccountKind!, $y: Int!, $p: String) {
  fundStatement(fund: $f, year: $y, period: YEAR, regionPrefix: $p) {
    opening debits credits closing lines { kind debit credit } } }"""
FIGURES = ("opening", "debits", "credits", "closing", "settlements", "subsidies")


@dataclass(frozen=True)
class Sums:
    opening: Decimal
    debits: Decimal
    credits: Decimal
    closing: Decimal
    settlements: Decimal
    subsidies: Decimal


async def independent(db: Database, prefix: str, year: int) -> dict[str, Sums]:
    """Each fund kind's year straight from ``fund_entries`` (booking days of ``year``), written
    apart from the product's statement SQL; kinds without entries are zero."""
    async with db.transaction() as session:
        rows = (
            await session.execute(
                text(
                    """
                    WITH e AS (
                      SELECT a.kind, e.kind AS event, e.booked_on,
                             CASE e.side WHEN 'DEBIT' THEN e.amount ELSE 0 END AS dr,
                             CASE e.side WHEN 'CREDIT' THEN e.amount ELSE 0 END AS cr
                      FROM fund_entries e JOIN fund_accounts a ON a.id = e.account_id
                      WHERE a.region_code LIKE :p
                    )
                    SELECT kind,
                      coalesce(sum(dr - cr) FILTER (WHERE booked_on < :start), 0),
                      coalesce(sum(dr) FILTER (WHERE booked_on BETWEEN :start AND :end), 0),
                      coalesce(sum(cr) FILTER (WHERE booked_on BETWEEN :start AND :end), 0),
                      coalesce(sum(dr - cr) FILTER (WHERE booked_on <= :end), 0),
                      coalesce(sum(dr - cr) FILTER (WHERE booked_on BETWEEN :start AND :end
                                                    AND event <> 'SUBSIDY'), 0),
                      coalesce(sum(dr - cr) FILTER (WHERE booked_on BETWEEN :start AND :end
                                                    AND event = 'SUBSIDY'), 0)
                    FROM e GROUP BY kind
                    """
                ),
                {
                    "p": f"{prefix}%",
                    "start": date(year, 1, 1),
                    "end": date(year, 12, 31),
                },
            )
        ).all()
    found = {r[0]: Sums(*(Decimal(v) for v in r[1:])) for r in rows}
    zero = Sums(*([Decimal("0.00")] * 6))
    return {kind.value: found.get(kind.value, zero) for kind in AccountKind}


async def booked_years(db: Database) -> list[int]:
    """The years of the seeded entries' booking days (the enrollments' 2022, the claims' year,
    today's for the reversal and the adjustment)."""
    async with db.transaction() as session:
        years = await session.scalars(
            text("SELECT DISTINCT extract(year FROM booked_on)::int FROM fund_entries ORDER BY 1")
        )
        return list(years)


async def balances(gql: GraphQLClient, year: int, prefix: str, **token: Any) -> list[Any]:
    data = await gql.data(BALANCES, {"y": year, "p": prefix}, **token)
    assert (data["dashboard"]["year"], data["dashboard"]["regionPrefix"]) == (year, prefix)
    result: list[Any] = data["dashboard"]["fundBalances"]
    return result


def figures(row: dict[str, Any]) -> Sums:
    return Sums(*(Decimal(row[name]) for name in FIGURES))


async def test_fund_balances_equal_independent_sums_and_the_year_statements(
    gql: GraphQLClient, db: Database
) -> None:
    await seed(gql)
    years = await booked_years(db)
    assert {YEAR - 1, YEAR} < set(years), years  # and today's
    seen: set[str] = set()
    for year in years:
        for prefix in ("5104", "510402", "510403"):
            expected = await independent(db, prefix, year)
            found = await balances(gql, year, prefix, department="medical_insurance")
            assert [b["fund"] for b in found] == [k.value for k in AccountKind]
            for row in found:
                fund = row["fund"]
                assert row["label"] == label("account", fund) != fund
                got = figures(row)
                assert got == expected[fund], (year, prefix, fund)
                assert got.closing == got.opening + got.debits - got.credits
                assert got.settlements + got.subsidies == got.debits - got.credits
                statement = (await gql.data(STATEMENT, {"f": fund, "y": year, "p": prefix}))[
                    "fundStatement"
                ]
                assert [Decimal(statement[n]) for n in ("opening", "debits", "credits")] == [
                    got.opening,
                    got.debits,
                    got.credits,
                ]
                assert Decimal(statement["closing"]) == got.closing
                subsidy = sum(
                    (Decimal(x["debit"]) - Decimal(x["credit"]) for x in statement["lines"]
                     if x["kind"] == "SUBSIDY"),
                    Decimal(0),
                )  # fmt: skip
                assert got.subsidies == subsidy
                if got.debits or got.credits:
                    seen.add(fund)
            # Double entry: both sides of every posting are booked the same day in one region.
            assert sum(Decimal(b["debits"]) for b in found) == sum(
                Decimal(b["credits"]) for b in found
            )
    # Every fund the seed posts to (its policy has no finance part, its persons no inclusive
    # commercial plan: those two stay at zero, and are listed all the same).
    assert seen == {
        "BASIC_FUND",
        "CRITICAL_ILLNESS_INSURER",
        "ASSISTANCE_FUND",
        "HOSPITAL",
        "PERSON",
    }
    # The assistance fund's use against the subsidies it paid, in the seeded year: both.
    [assistance] = [
        b for b in await balances(gql, YEAR, "5104", department="finance", regions=["5104"])
        if b["fund"] == "ASSISTANCE_FUND"
    ]  # fmt: skip
    assert Decimal(assistance["settlements"]) > 0
    assert Decimal(assistance["subsidies"]) > 0
    assert Decimal(assistance["opening"]) > 0  # the subsidies booked in December before


async def test_departments_without_fund_figures_are_refused_that_field_only(
    gql: GraphQLClient,
) -> None:
    await seed(gql)
    for department in ("dashboard", "health", "civil_affairs", "rural_revitalisation", "auditor"):
        error = await gql.error(BALANCES, {"y": YEAR, "p": "5104"}, department=department)
        assert error["extensions"]["code"] == "FORBIDDEN", department
        assert "fundBalances" in error["message"]
        # The rest of the dashboard still answers.
        data = await gql.data(
            "query($y: Int!) { dashboard(year: $y) { year k } }", {"y": YEAR}, department=department
        )
        assert data["dashboard"]["year"] == YEAR
    # Outside the token's regions: FORBIDDEN as for the rest of the dashboard.
    error = await gql.error(
        BALANCES, {"y": YEAR, "p": "3708"}, department="finance", regions=["5104"]
    )
    assert error["extensions"]["code"] == "FORBIDDEN"
