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
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from gateway.storage.database import Database
from policies.benefits import PolicySet
from tests.conftest import GraphQLClient
from tests.factories import id_number
from tests.resolvers.test_settlement_governance import (
    BORN,
    SEQUENCE,
    YEAR,
    _scenario,
    _step,
    enroll,
    record,
    register,
)

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
