"""Fund statements and who may read them (issue 13).

Claims of 2023 discharged in every quarter, at two hospitals and without one, carried by two
insurers; one reversed and two adjusted today (late recognition). Every quarterly statement of
every fund (and of each hospital and insurer) read through GraphQL equals an independent SQL sum
over the settlement lines and the enrollments, never over the entries."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from gateway.storage.database import Database
from policies.funds import AccountKind
from tests.conftest import GraphQLClient
from tests.factories import id_number
from tests.resolvers.test_settlement_governance import (
    BORN,
    REVERSE,
    enroll,
    ok,
    record,
    register,
    settle,
    stay,
)

ZERO = Decimal("0.00")
A = id_number("510402", BORN, 21)
B = id_number("510403", BORN, 22)
STATEMENT = """query($f: AccountKind, $y: Int!, $p: StatementPeriod!, $n: Int, $r: String,
  $party: String) { fundStatement(fund: $f, year: $y, period: $p, number: $n, regionPrefix: $r,
  party: $party) { fund party periodStart periodEnd opening debits credits closing
  lines { kind flow debit credit } } }"""
RECONCILE = """query($y: Int!, $p: StatementPeriod, $n: Int) {
  fundReconciliation(year: $y, period: $p, number: $n) { balanced year
  lines { fund regionCode party flow expected posted difference } } }"""

# The signed amount (debit positive) each fund's account gets from each source row, with its
# booking day: the discharge for an ORIGINAL event, the event's China day otherwise, the
# enrollment day for a subsidy. Hospitals and persons are owed what they are credited.
SOURCES = """
WITH line AS (
    SELECT c.carrier, c.hospital_code, c.reversed_at, s.kind, l.payer, l.amount,
           CASE WHEN s.kind = 'ORIGINAL' THEN c.discharge_date
                ELSE (s.created_at AT TIME ZONE 'Asia/Shanghai')::date END AS day,
           (SELECT (r.created_at AT TIME ZONE 'Asia/Shanghai')::date FROM settlements r
            WHERE r.claim_id = c.id AND r.kind = 'REVERSAL') AS reversed_on
    FROM settlement_lines l JOIN settlements s ON s.id = l.settlement_id
    JOIN claims c ON c.id = s.claim_id
)
SELECT 'BASIC_FUND', '', kind, payer, amount, day FROM line WHERE payer = 'basicInsurance'
UNION ALL SELECT 'CRITICAL_ILLNESS_INSURER', carrier, kind, payer, amount, day FROM line
    WHERE payer = 'criticalIllness'
UNION ALL SELECT 'INCLUSIVE_COMMERCIAL_INSURER', carrier, kind, payer, amount, day FROM line
    WHERE payer = 'inclusiveCommercial'
UNION ALL SELECT 'ASSISTANCE_FUND', '', kind, payer, amount, day FROM line
    WHERE payer IN ('assistance', 'secondaryAssistance')
UNION ALL SELECT 'HOSPITAL', hospital_code, kind, payer, -amount, day FROM line
    WHERE kind = 'ORIGINAL' AND hospital_code IS NOT NULL
UNION ALL SELECT 'HOSPITAL', hospital_code, 'REVERSAL', payer, amount, reversed_on FROM line
    WHERE kind = 'ORIGINAL' AND hospital_code IS NOT NULL AND reversed_on IS NOT NULL
UNION ALL SELECT 'ASSISTANCE_FUND', '', 'SUBSIDY', 'assistanceFund', subsidy_assistance_fund,
    enrolled_on FROM enrollments
UNION ALL SELECT 'FINANCE', '', 'SUBSIDY', 'finance', subsidy_finance, enrolled_on
    FROM enrollments
UNION ALL SELECT 'BASIC_FUND', '', 'SUBSIDY', 'assistanceFund', -subsidy_assistance_fund,
    enrolled_on FROM enrollments
UNION ALL SELECT 'BASIC_FUND', '', 'SUBSIDY', 'finance', -subsidy_finance, enrolled_on
    FROM enrollments
"""


async def sources(db: Database) -> list[tuple[str, str, str, str, Decimal, Any]]:
    async with db.sessions() as session:
        return [tuple(r) for r in (await session.execute(text(SOURCES))).all()]  # type: ignore[misc]


async def scenario(gql: GraphQLClient) -> None:
    for number, region in ((A, "510402"), (B, "510403")):
        await register(gql, number, region)
    ok(await record(gql, A, "MINIMUM_LIVING", "2021-06-01"))
    await enroll(gql, A, 2023)
    await enroll(gql, B, 2023, inclusiveCommercial=True)
    claims = [
        (A, "S1", "2023-02-01", "H-1", "picc"),
        (A, "S2", "2023-05-03", "H-2", "picc"),
        (B, "S3", "2023-08-07", "H-1", "cpic"),
        (B, "S4", "2023-11-20", None, "picc"),
    ]
    for number, claim, admitted, hospital, carrier in claims:
        extra: dict[str, Any] = {"carrier": carrier}
        if hospital:
            extra["hospitalCode"] = hospital
        await settle(gql, stay(number, claim, admitted, "120000.00", "100000.00", **extra))
    await gql.data(REVERSE, {"n": "S2", "r": "退费"})
    # B recognised 低保 from 1 January: S3 and S4 get more assistance today (ADJUSTMENT).
    ok(await record(gql, B, "MINIMUM_LIVING", "2023-01-01", decided_on="2023-01-01"))


def expected(
    rows: list[tuple[str, str, str, str, Decimal, Any]],
    fund: str,
    party: str | None,
    start: Any,
    end: Any,
) -> tuple[Decimal, dict[tuple[str, str], Decimal]]:
    """Opening balance and the net (debit − credit) of each (kind, flow) in the period."""
    opening, net = ZERO, {}
    for kind_of_fund, who, kind, flow, amount, day in rows:
        if kind_of_fund != fund or (party is not None and who != party) or day > end:
            continue
        if day < start:
            opening += amount
        else:
            net[kind, flow] = net.get((kind, flow), ZERO) + amount
    return opening, {k: v for k, v in net.items() if v}


async def read(gql: GraphQLClient, **arguments: Any) -> dict[str, Any]:
    token = arguments.pop("token", {})
    return dict((await gql.data(STATEMENT, arguments, **token))["fundStatement"])


def netted(statement: dict[str, Any]) -> dict[tuple[str, str], Decimal]:
    found = {
        (line["kind"], line["flow"]): Decimal(line["debit"]) - Decimal(line["credit"])
        for line in statement["lines"]
    }
    return {k: v for k, v in found.items() if v}


@pytest.mark.parametrize("fund", [k for k in AccountKind if k is not AccountKind.PERSON], ids=str)
async def test_quarterly_statements_equal_independent_sums_of_the_source_rows(
    gql: GraphQLClient, db: Database, fund: AccountKind
) -> None:
    await scenario(gql)
    rows = await sources(db)
    today_year = max(day for *_, day in rows).year
    assert any(r[2] == "ADJUSTMENT" for r in rows)
    assert any(r[2] == "REVERSAL" for r in rows)
    seen = 0
    for year in (2022, 2023, today_year):
        for quarter in (1, 2, 3, 4):
            got = await read(gql, f=fund.value, y=year, p="QUARTER", n=quarter)
            start, end = got["periodStart"], got["periodEnd"]
            opening, net = expected(
                rows, fund.value, None, date.fromisoformat(start), date.fromisoformat(end)
            )
            assert Decimal(got["opening"]) == opening, (year, quarter)
            assert netted(got) == net, (year, quarter)
            closing = opening + sum(net.values(), ZERO)
            assert Decimal(got["closing"]) == closing
            assert Decimal(got["closing"]) == (
                Decimal(got["opening"]) + Decimal(got["debits"]) - Decimal(got["credits"])
            )
            seen += bool(net)
    # every fund with money in these rows shows some in a quarter
    assert seen >= 1 or not any(r[0] == fund.value and r[4] for r in rows)
    # The reconciliation of every quarter and of the settlement year is balanced.
    for quarter in (1, 2, 3, 4):
        report = await gql.data(RECONCILE, {"y": 2023, "p": "QUARTER", "n": quarter})
        assert report["fundReconciliation"]["balanced"], report
    report = (await gql.data(RECONCILE, {"y": 2023}))["fundReconciliation"]
    assert report["balanced"]
    assert report["lines"]
    assert all(line["difference"] == "0.00" for line in report["lines"])


async def test_a_hospital_reads_only_its_own_statement(gql: GraphQLClient, db: Database) -> None:
    await scenario(gql)
    rows = await sources(db)
    hospital = {"department": "hospital", "org": "H-1", "regions": ("5104",)}
    got = await read(gql, y=2023, p="YEAR", token=hospital)
    assert (got["fund"], got["party"]) == ("HOSPITAL", "H-1")
    _, net = expected(rows, "HOSPITAL", "H-1", date(2023, 1, 1), date(2023, 12, 31))
    assert netted(got) == net
    # what each payer owes H-1 for S1 and S3, a credit balance
    assert Decimal(got["closing"]) == sum(net.values(), ZERO) < 0
    for asked in ({"party": "H-2"}, {"f": "ASSISTANCE_FUND"}):
        error = await gql.error(STATEMENT, {"y": 2023, "p": "YEAR", **asked}, **hospital)
        assert error["extensions"]["code"] == "FORBIDDEN", error
    error = await gql.error(RECONCILE, {"y": 2023}, **hospital)
    assert error["extensions"]["code"] == "FORBIDDEN", error


async def test_an_insurer_reads_only_its_own_carriers_statement(
    gql: GraphQLClient, db: Database
) -> None:
    await scenario(gql)
    rows = await sources(db)
    for carrier in ("picc", "cpic"):
        insurer = {"department": "insurer", "org": carrier, "regions": ("5104",)}
        for fund in ("CRITICAL_ILLNESS_INSURER", "INCLUSIVE_COMMERCIAL_INSURER"):
            got = await read(gql, f=fund, y=2023, p="YEAR", token=insurer)
            assert got["party"] == carrier
            _, net = expected(rows, fund, carrier, date(2023, 1, 1), date(2023, 12, 31))
            assert netted(got) == net
        other = "cpic" if carrier == "picc" else "picc"
        for asked in ({"party": other}, {"f": "BASIC_FUND"}, {"f": "HOSPITAL"}):
            error = await gql.error(STATEMENT, {"y": 2023, "p": "YEAR", **asked}, **insurer)
            assert error["extensions"]["code"] == "FORBIDDEN", error
    # what picc's critical-illness account paid in 2023 is not cpic's
    picc = await read(gql, f="CRITICAL_ILLNESS_INSURER", y=2023, p="YEAR",
                      token={"department": "insurer", "org": "picc"})  # fmt: skip
    assert Decimal(picc["debits"]) > 0


@pytest.mark.parametrize(
    ("arguments", "field"),
    [({"p": "QUARTER", "n": 5}, "number"), ({"p": "MONTH"}, "number"),
     ({"p": "YEAR", "n": 2}, "number"), ({"p": "YEAR", "party": "p-1", "f": "PERSON"}, "party")],
)  # fmt: skip
async def test_bad_periods_name_the_argument(
    gql: GraphQLClient, arguments: dict[str, Any], field: str
) -> None:
    error = await gql.error(STATEMENT, {"y": 2023, **arguments})
    assert error["extensions"]["code"] == "BAD_INPUT", error
    assert error["extensions"]["field"] == field
