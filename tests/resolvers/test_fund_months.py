"""The fund entries' monthly rollup (resolvers/fund_months.py): equal to the sums of the entries
after a bulk enrollment import, nothing left by a rolled-back transaction, and transactions
posting to the same region's accounts neither wait for each other nor deadlock.

(The hypothesis-driven sequences of tests/resolvers/test_funds.py check the rollup after every
step too: ``assert_rollup_holds`` in ``assert_ledgers_hold``.)"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import Settings
from gateway.storage import models
from gateway.storage.database import Database
from policies.benefits import PolicySet
from resolvers import fund_months, funds
from tests.conftest import GraphQLClient
from tests.factories import id_number
from tests.resolvers.test_funds import assert_ledgers_hold, assert_rollup_holds
from tests.resolvers.test_imports import example, load_all, run, write
from tests.resolvers.test_settlement_governance import (
    BORN,
    enroll,
    ok,
    record,
    register,
    settle,
    stay,
)

ZERO = Decimal("0.00")
REGION = "510402"
NUMBERS = [id_number(REGION, BORN, n) for n in (31, 32, 33)]


async def months(db: Database) -> int:
    async with db.sessions() as session:
        return int(
            await session.scalar(select(func.count()).select_from(models.FundEntryMonth)) or 0
        )


async def test_a_bulk_enrollment_import_keeps_the_rollup(
    db: Database, policies: PolicySet, settings: Settings, tmp_path: Path
) -> None:
    await load_all(db, policies, settings, tmp_path, ".csv", "utf_8")
    # 王五 is recognised (低保) on his enrollment day: subsidised, posted by the import
    rows = [
        *example("enrollments")[:1],
        ["51040219551230003X", "2026", "380", "2025-12-01", "", ""],
    ]
    done = await run(db, policies, settings, "enrollments", write(tmp_path / "more.csv", rows))
    assert (done.status, done.stored) == ("STORED", 1), done
    async with db.sessions() as session:
        subsidies = await session.scalar(
            text("SELECT count(*) FROM fund_entries WHERE kind = 'SUBSIDY'")
        )
    assert subsidies
    assert await months(db) > 0
    await assert_rollup_holds(db)


async def _subsidy(session: AsyncSession, number: str, year: int, amount: str) -> int:
    """An enrollment with an assistance-fund subsidy, stored in the session (not posted)."""
    person = await session.scalar(
        select(models.Beneficiary.id).where(models.Beneficiary.id_number == number)
    )
    row = models.Enrollment(
        beneficiary_id=person, year=year, contribution=Decimal("380.00"),
        inclusive_commercial=False, enrolled_on=date(year - 1, 12, 1),
        subsidy_policy="510400-2023", subsidy_assistance_fund=Decimal(amount),
        subsidy_finance=ZERO, subsidy_individual=ZERO, department="x", org="y",
    )  # fmt: skip
    session.add(row)
    await session.flush()
    return row.id


async def test_a_rolled_back_transaction_leaves_nothing_in_the_rollup(
    gql: GraphQLClient, db: Database
) -> None:
    await register(gql, NUMBERS[0], REGION)
    async with db.transaction() as session:
        await funds.post_enrollments(session, [await _subsidy(session, NUMBERS[0], 2024, "380")])
        assert session.info[fund_months.PENDING]  # waiting for the commit
        await session.rollback()
        assert fund_months.PENDING not in session.info
    assert await months(db) == 0
    await assert_rollup_holds(db)
    async with db.transaction() as session:
        await funds.post_enrollments(session, [await _subsidy(session, NUMBERS[0], 2024, "380")])
    # ASSISTANCE_FUND debit, BASIC_FUND credit: one month each
    assert await months(db) == 2
    await assert_rollup_holds(db)


async def test_sums_of_a_transaction_not_begun_on_its_connection_are_written_in_it(
    db: Database,
) -> None:
    """The rollup statement goes to the transaction's asyncpg connection once a statement has
    begun it there; before that (sums noted, nothing sent yet) it goes through SQLAlchemy, which
    begins it: never on the bare connection, where it would commit on its own. A commit that
    fails after the statement leaves nothing."""
    async with db.transaction() as session:
        account = await session.scalar(
            text(
                "INSERT INTO fund_accounts (kind, region_code, party) "
                "VALUES ('ASSISTANCE_FUND', '510402', '') RETURNING id"
            )
        )
    day = date(2026, 3, 9)

    def fail(_: Any) -> None:
        raise RuntimeError("the commit fails after the rollups were written")

    for amount, failing in ((5, True), (7, False)):
        async with db.sessions() as session:
            if failing:
                event.listen(session.sync_session, "before_commit", fail)
            fund_months.add(
                session, [(account, 2026, day, "ORIGINAL", "assistance", "DEBIT", amount)]
            )
            connection = await session.connection()
            driver = (await connection.get_raw_connection()).driver_connection
            assert not driver.is_in_transaction()
            with pytest.raises(RuntimeError) if failing else contextlib.nullcontext():
                await session.commit()
    async with db.sessions() as session:
        found = (
            await session.execute(
                text("SELECT amount, entries FROM fund_entry_months WHERE account_id = :a"),
                {"a": account},
            )
        ).all()
    assert [(Decimal(a), n) for a, n in found] == [(Decimal("7.00"), 1)]


async def test_postings_to_one_regions_accounts_do_not_wait_for_each_other(
    gql: GraphQLClient, db: Database
) -> None:
    for number in NUMBERS:
        await register(gql, number, REGION)
    async with db.transaction() as session:  # the region's accounts and rollup rows exist
        await funds.post_enrollments(session, [await _subsidy(session, NUMBERS[0], 2024, "100")])
    async with db.transaction() as first:
        await funds.post_enrollments(first, [await _subsidy(first, NUMBERS[1], 2024, "200")])
        # the first transaction is still open: the second posts to the same rollup rows and
        # commits without waiting for it (a row lock held since the posting would block here)
        async with db.transaction() as second:
            ids = [await _subsidy(second, NUMBERS[2], 2024, "300")]
            await asyncio.wait_for(funds.post_enrollments(second, ids), timeout=30)
            await asyncio.wait_for(second.commit(), timeout=30)
    await assert_rollup_holds(db)
    async with db.sessions() as session:
        total = await session.scalar(
            text("SELECT sum(amount) FROM fund_entry_months WHERE kind = 'SUBSIDY'")
        )
    assert total == Decimal("1200.00")  # 600 debited, 600 credited


async def test_concurrent_settlements_of_different_persons_in_one_region_all_commit(
    gql: GraphQLClient, db: Database
) -> None:
    for number in NUMBERS:
        await register(gql, number, REGION)
        ok(await record(gql, number, "MINIMUM_LIVING", "2021-06-01"))
        await enroll(gql, number, 2024)
    # the region's accounts exist (opening one is serialised by its unique key, not the rollup)
    await settle(gql, stay(NUMBERS[0], "C-0", "2024-01-05", "30000.00", "26000.00"))
    counter = itertools.count(1)

    async def settle_some(number: str) -> list[str]:
        done = []
        for month in (2, 3, 2, 4):
            claim = f"C-{next(counter)}"
            admitted = f"2024-{month:02d}-1{len(done)}"
            got = await settle(gql, stay(number, claim, admitted, "30000.00", "26000.00"))
            done.append(got["assistance"])
        return done

    results = await asyncio.wait_for(
        asyncio.gather(*(settle_some(number) for number in NUMBERS)), timeout=300
    )
    assert all(len(r) == 4 for r in results)
    async with db.sessions() as session:
        settled = await session.scalar(text("SELECT count(*) FROM settlements"))
    assert settled == 1 + 4 * len(NUMBERS)
    await assert_ledgers_hold(db)


async def test_the_gateway_role_cannot_delete_from_the_rollup(db: Database) -> None:
    async with db.transaction() as session:
        with pytest.raises(DBAPIError, match="permission denied"):
            await session.execute(text("DELETE FROM fund_entry_months"))
        await session.rollback()
