"""The fund ledgers (issue 13): every settlement event and every subsidy posts balanced entries.

The property drives random sequences of settlements (with and without a hospital code), late
news (recordIdentity / endIdentity), reversals and recovery decisions through the GraphQL API,
the same scenarios as the settlement-governance property, and after every step compares each
account's balance with an independent SQL sum over the settlement lines and subsidies that touch
it (never over the entries themselves), and the debits with the credits of every event.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from gateway.errors import Conflict
from gateway.storage import models
from gateway.storage.database import Database
from policies.benefits import PolicySet
from resolvers import fund_months, funds, history, reconciliation
from tests.conftest import GraphQLClient
from tests.factories import id_number
from tests.resolvers.test_settlement_governance import (
    BORN,
    CLOSE,
    ENROLL,
    LATE_NEWS,
    SEQUENCE,
    YEAR,
    _scenario,
    _step,
    end,
    enroll,
    enrollment,
    ok,
    record,
    refused,
    register,
    settle,
    snapshot,
    stay,
)

CLOSINGS = "{ settlementYearClosings { regionCode year } }"

ZERO = Decimal("0.00")

# What each account should hold, from the settlement lines and the enrollments alone (the rules
# of postings.yaml restated as sums: debit positive, credit negative).
EXPECTED = """
WITH line AS (
    SELECT b.region_code, b.id::text AS person, c.carrier, c.hospital_code, c.reversed_at,
           s.kind, l.payer, l.amount
    FROM settlement_lines l JOIN settlements s ON s.id = l.settlement_id
    JOIN claims c ON c.id = s.claim_id JOIN beneficiaries b ON b.id = c.beneficiary_id
), enrolled AS (
    SELECT b.region_code, e.subsidy_assistance_fund AS fund, e.subsidy_finance AS finance
    FROM enrollments e JOIN beneficiaries b ON b.id = e.beneficiary_id
), expected(kind, region_code, party, balance) AS (
    SELECT 'BASIC_FUND', region_code, '', amount FROM line WHERE payer = 'basicInsurance'
    UNION ALL SELECT 'CRITICAL_ILLNESS_INSURER', region_code, coalesce(carrier, ''), amount
        FROM line WHERE payer = 'criticalIllness'
    UNION ALL SELECT 'INCLUSIVE_COMMERCIAL_INSURER', region_code, coalesce(carrier, ''), amount
        FROM line WHERE payer = 'inclusiveCommercial'
    UNION ALL SELECT 'ASSISTANCE_FUND', region_code, '', amount
        FROM line WHERE payer IN ('assistance', 'secondaryAssistance')
    -- the payees: a reversed claim owes nobody anything any more
    UNION ALL SELECT 'HOSPITAL', region_code, hospital_code, -amount FROM line
        WHERE kind = 'ORIGINAL' AND hospital_code IS NOT NULL AND reversed_at IS NULL
    UNION ALL SELECT 'PERSON', region_code, person, -amount FROM line
        WHERE reversed_at IS NULL AND (kind IN ('ADJUSTMENT', 'RECOVERY')
              OR (kind = 'ORIGINAL' AND hospital_code IS NULL))
    UNION ALL SELECT 'ASSISTANCE_FUND', region_code, '', fund FROM enrolled
    UNION ALL SELECT 'FINANCE', region_code, '', finance FROM enrolled
    UNION ALL SELECT 'BASIC_FUND', region_code, '', -(fund + finance) FROM enrolled
)
SELECT kind, region_code, party, sum(balance) FROM expected
GROUP BY 1, 2, 3 HAVING sum(balance) <> 0
"""

POSTED = """
SELECT a.kind, a.region_code, a.party,
       sum(CASE e.side WHEN 'DEBIT' THEN e.amount ELSE -e.amount END)
FROM fund_entries e JOIN fund_accounts a ON a.id = e.account_id
GROUP BY 1, 2, 3 HAVING sum(CASE e.side WHEN 'DEBIT' THEN e.amount ELSE -e.amount END) <> 0
"""

UNBALANCED = """
SELECT coalesce(settlement_id::text, 'enrollment ' || enrollment_id),
       sum(CASE side WHEN 'DEBIT' THEN amount ELSE -amount END)
FROM fund_entries GROUP BY settlement_id, enrollment_id
HAVING sum(CASE side WHEN 'DEBIT' THEN amount ELSE -amount END) <> 0
"""


# The monthly rollup (resolvers/fund_months.py) against the entries, summed here independently.
ROLLUP = """
SELECT account_id, year, month, kind, flow, side, amount, entries
FROM fund_entry_months ORDER BY 1, 2, 3, 4, 5, 6
"""
ENTRY_MONTHS = """
SELECT account_id, year, make_date(extract(year FROM booked_on)::int,
                                   extract(month FROM booked_on)::int, 1),
       kind, flow, side, sum(amount), count(*)
FROM fund_entries GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
"""


async def assert_rollup_holds(db: Database) -> None:
    """The rollup holds exactly the sums and counts of the entries, month by month."""
    async with db.sessions() as session:
        rollup = (await session.execute(text(ROLLUP))).all()
        entries = (await session.execute(text(ENTRY_MONTHS))).all()
    assert rollup == entries


async def balances(db: Database, sql: str) -> dict[tuple[str, str, str], Decimal]:
    async with db.sessions() as session:
        rows = (await session.execute(text(sql))).all()
    return {(k, r, p): Decimal(b) for k, r, p, b in rows}


async def assert_ledgers_hold(db: Database) -> None:
    expected, posted = await balances(db, EXPECTED), await balances(db, POSTED)
    assert posted == expected
    async with db.sessions() as session:
        assert (await session.execute(text(UNBALANCED))).all() == []
        # every event with a non-zero line posted something
        missing = await session.scalar(
            text(
                "SELECT count(*) FROM settlements s WHERE EXISTS (SELECT FROM settlement_lines l "
                "WHERE l.settlement_id = s.id AND l.amount <> 0) AND NOT EXISTS "
                "(SELECT FROM fund_entries e WHERE e.settlement_id = s.id)"
            )
        )
        assert missing == 0
        # the product's own reconciliation agrees: by settlement year and by booking days
        assert await reconciliation.differences(session, ["3", "5"], year=YEAR) == []
        everything = (date(2000, 1, 1), date(2100, 12, 31))
        assert await reconciliation.differences(session, ["3", "5"], period=everything) == []
    await assert_rollup_holds(db)


@st.composite
def _ledger_scenario(draw: st.DrawFn) -> dict[str, Any]:
    scenario = draw(_scenario())
    where = st.sampled_from([None, "H-1", "H-2"])
    carrier = st.sampled_from([None, "picc", "cpic"])
    steps = []
    for op, arg in scenario["steps"]:
        if op == "settle":
            extra = {"hospitalCode": draw(where), "carrier": draw(carrier)}
            arg = {**arg, **{k: v for k, v in extra.items() if v is not None}}
        steps.append((op, arg))
    return {**scenario, "steps": steps}


@settings(
    max_examples=int(os.environ.get("LEDGER_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=_ledger_scenario())
async def test_every_account_holds_the_lines_and_subsidies_that_touch_it(
    gql: GraphQLClient, db: Database, policies: PolicySet, scenario: dict[str, Any]
) -> None:
    n = next(SEQUENCE)
    number = id_number(scenario["region"], BORN, n % 1000)
    await register(gql, number, scenario["region"])
    if scenario["insured"]:
        await enroll(gql, number, YEAR, inclusiveCommercial=scenario["commercial"])
    order: list[tuple[str, dict[str, Any]]] = []
    for op, arg in [*scenario["initial"], *scenario["steps"]]:
        await _step(gql, db, number, n, op, arg, order, scenario["insured"])
        await assert_ledgers_hold(db)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE fund_entries SET amount = 1",
        "DELETE FROM fund_entries",
        "TRUNCATE fund_entries",
        "UPDATE fund_accounts SET party = 'x'",
    ],
)
async def test_the_entries_are_never_edited(
    gql: GraphQLClient, db: Database, admin: Any, statement: str
) -> None:
    number = id_number("510402", BORN, 1)
    await register(gql, number, "510402")
    await record(gql, number, "MINIMUM_LIVING", f"{YEAR - 1}-01-01")
    await enroll(gql, number, YEAR)
    before = await balances(db, POSTED)
    assert before  # the subsidy posted
    # Even the owner (no privilege check) is refused by the trigger.
    with pytest.raises(Exception, match="append-only"):
        async with admin.begin() as conn:
            await conn.execute(text(statement))
    assert await balances(db, POSTED) == before
    assert Counter(k for k, _, _ in before) == Counter({"ASSISTANCE_FUND": 1, "BASIC_FUND": 1})


PAN_ID = id_number("510402", BORN, 11)
OTHER_ID = id_number("510402", BORN, 12)


async def _a_settled_2024(gql: GraphQLClient) -> None:
    await register(gql, PAN_ID, "510402")
    ok(await record(gql, PAN_ID, "MINIMUM_LIVING", "2021-06-01"))
    await enroll(gql, PAN_ID, 2024)
    # 2024: basic 80% × (26,000 − 400) = 20,480; assistance 70% × 5,520 = 3,864.
    got = await settle(gql, stay(PAN_ID, "F24", "2024-03-01", "30000.00", "26000.00"))
    assert got["assistance"] == "3864.00"


async def test_closing_refuses_a_year_whose_ledgers_do_not_reconcile(
    gql: GraphQLClient, db: Database, admin: Any
) -> None:
    await _a_settled_2024(gql)
    # Someone with database rights adds one side of a posting to the assistance fund's account.
    async with admin.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO fund_entries (account_id, settlement_id, kind, flow, side, amount, "
                "year, booked_on) SELECT a.id, s.id, 'ORIGINAL', 'assistance', 'DEBIT', 100, "
                "2024, '2024-03-05' FROM fund_accounts a, settlements s "
                "WHERE a.kind = 'ASSISTANCE_FUND' AND a.region_code = '510402'"
            )
        )
    async with db.sessions() as session:
        [found] = await reconciliation.differences(session, ["5104"], year=2024)
    assert (found.fund, found.region_code, found.flow) == (
        "ASSISTANCE_FUND",
        "510402",
        "assistance",
    )
    # the fund paid 3,864.00 of assistance, the entries say 3,964.00
    assert (found.expected, found.posted) == (Decimal("3864.00"), Decimal("3964.00"))
    before = await snapshot(db)
    error = refused(await gql.post(CLOSE, {"r": "510400", "y": 2024}))
    assert error["extensions"]["code"] == "CONFLICT", error
    assert error["extensions"]["field"] == "year"
    assert "ASSISTANCE_FUND/510402 assistance: expected 3864.00, posted 3964.00" in error["message"]
    assert await snapshot(db) == before
    assert (await gql.data(CLOSINGS))["settlementYearClosings"] == []


async def test_after_closing_nothing_is_posted_to_the_year_and_late_news_is_listed(
    gql: GraphQLClient, db: Database
) -> None:
    await _a_settled_2024(gql)
    closed = (await gql.data(CLOSE, {"r": "510400", "y": 2024}))["closeSettlementYear"]
    assert closed["year"] == 2024
    posted = await balances(db, POSTED)
    # A subsidy of the closed year (a late enrollment) is refused, naming the year.
    await register(gql, OTHER_ID, "510402")
    ok(await record(gql, OTHER_ID, "MINIMUM_LIVING", "2021-06-01"))
    before = await snapshot(db)
    error = refused(await gql.post(ENROLL, enrollment(OTHER_ID, 2024)))
    assert error["extensions"]["code"] == "CONFLICT", error
    assert "settlement year 2024 is closed for 510400" in error["message"]
    assert await snapshot(db) == before
    # So is the bulk poster, for an enrollment stored around it.
    async with db.transaction() as session:
        person = await session.scalar(
            select(models.Beneficiary.id).where(models.Beneficiary.id_number == OTHER_ID)
        )
        row = models.Enrollment(
            beneficiary_id=person, year=2024, contribution=Decimal("380.00"),
            inclusive_commercial=False, enrolled_on=date(2023, 12, 1),
            subsidy_policy="510400-2023", subsidy_assistance_fund=Decimal("380.00"),
            subsidy_finance=ZERO, subsidy_individual=ZERO, department="x", org="y",
        )  # fmt: skip
        session.add(row)
        await session.flush()
        with pytest.raises(Conflict, match="settlement year 2024 is closed"):
            await funds.post_enrollments(session, [row.id])
        await session.rollback()
    # Late news for the closed year moves no money and is listed.
    ok(await end(gql, PAN_ID, "MINIMUM_LIVING", "2023-12-31", decided_on="2024-06-01"))
    assert await balances(db, POSTED) == posted
    news = (await gql.data(LATE_NEWS, {"r": "510400", "y": 2024}))["lateNews"]["edges"]
    assert [n["node"]["changes"] for n in news] == [
        [{"claimNumber": "F24", "payer": "assistance", "amount": "-3864.00"}]
    ]


ENTRIES = """
SELECT a.kind, a.region_code, a.party, e.settlement_id, e.enrollment_id, e.kind, e.flow, e.side,
       e.amount, e.year, e.booked_on
FROM fund_entries e JOIN fund_accounts a ON a.id = e.account_id ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
"""


async def test_migration_0010_posts_the_history_as_the_events_posted_it(
    gql: GraphQLClient, db: Database, admin: Any
) -> None:
    from tests.resolvers.test_statements import scenario

    await scenario(gql)
    async with db.sessions() as session:
        posted = (await session.execute(text(ENTRIES))).all()
    assert {row[5] for row in posted} >= {"ORIGINAL", "ADJUSTMENT", "REVERSAL", "SUBSIDY"}
    # The database as it was before 0010: nothing posted.
    async with admin.begin() as conn:
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await conn.execute(text("TRUNCATE fund_entry_months, fund_entries, fund_accounts"))
    async with admin.begin() as conn:
        written = await conn.run_sync(history.post_history)
        again = await conn.run_sync(history.post_history)
        await fund_months.rebuild(conn)  # as migration 0016 does after it
    assert (written, again) == (len(posted), 0)
    async with db.sessions() as session:
        assert (await session.execute(text(ENTRIES))).all() == posted
    await assert_ledgers_hold(db)
