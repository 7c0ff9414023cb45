"""The lean settlement path's reads and writes (issue 15): the person's year read in one
statement holds what the ORM reads row by row; a settlement's fund entries in one statement are
refused in a closed year with nothing written."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.inspection import inspect

from gateway.storage import models
from gateway.storage.database import Database
from policies.funds import Account, AccountKind, Entry, Side
from resolvers import funds, person_year
from tests.conftest import GraphQLClient
from tests.factories import id_number
from tests.resolvers.test_settlement_governance import (
    BORN,
    enroll,
    record,
    register,
    settle,
    stay,
)

NUMBER = id_number("510402", BORN, 31)


def columns(row: Any) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in inspect(type(row)).column_attrs}


async def test_the_year_read_at_once_equals_the_rows(gql: GraphQLClient, db: Database) -> None:
    await register(gql, NUMBER, "510402")
    await enroll(gql, NUMBER, 2023, inclusiveCommercial=True)
    await record(gql, NUMBER, "MINIMUM_LIVING", "2022-01-01", "2023-06-30")
    await record(gql, NUMBER, "MONITORED", "2023-02-01")
    await settle(gql, stay(NUMBER, "PY-1", "2023-03-01", "30000.00", "25000.00"))
    async with db.transaction() as session:
        person = (
            await session.scalars(
                select(models.Beneficiary).where(models.Beneficiary.id_number == NUMBER)
            )
        ).one()
        state = await person_year.read(session, person, 2023, "PY-1", "510400")
        enrollment = (
            await session.scalars(
                select(models.Enrollment).where(models.Enrollment.beneficiary_id == person.id)
            )
        ).one()
        identities = (
            await session.scalars(
                select(models.Identity).where(models.Identity.beneficiary_id == person.id)
            )
        ).all()
        flags = (
            await session.scalars(
                select(models.MonitoringFlag).where(
                    models.MonitoringFlag.beneficiary_id == person.id
                )
            )
        ).all()
        claim_id = await session.scalar(
            select(models.Claim.id).where(models.Claim.claim_number == "PY-1")
        )
        assert claim_id is not None
        assert state.known_claim == claim_id
        assert state.closed is False
        assert state.enrollment is not None
        assert columns(state.enrollment) == columns(enrollment)
        assert str(state.enrollment.contribution) == "380.00"  # the column's scale kept
        assert [columns(r) for r in state.identities] == [columns(r) for r in identities]
        assert [columns(r) for r in state.flags] == [columns(r) for r in flags]
        assert [r.category for r in state.records] == ["MINIMUM_LIVING", "MONITORED"]
        assert state.ledger is not None
        assert state.ledger.visits == 1
        assert state.alert is None
        empty = await person_year.read(session, person, 2024, "PY-2", None)
        assert (empty.known_claim, empty.enrollment, empty.ledger) == (None, None, None)
        assert empty.closed is False
        assert len(empty.records) == 2


async def test_entries_in_a_closed_year_are_refused_with_nothing_written(
    gql: GraphQLClient, db: Database
) -> None:
    await register(gql, NUMBER, "510402")
    await enroll(gql, NUMBER, 2023)
    await settle(gql, stay(NUMBER, "PY-3", "2023-03-01", "3000.00", "2500.00"))
    account = Account(AccountKind.ASSISTANCE_FUND, "510402", "")
    entry = Entry(account, Side.DEBIT, Decimal("1.00"), "test")
    async with db.transaction() as session:
        event = await session.scalar(select(func.max(models.Settlement.id)))
        assert event is not None
        before = await session.scalar(select(func.count()).select_from(models.FundEntry))
        session.add(
            models.SettlementYearClosing(
                region_code="510400", year=2023, policy="510400-2023", department="x", org="x"
            )
        )
        await session.flush()
        refused = await funds.post_at_once(
            session, [entry], "510400", settlement_id=event, kind="ORIGINAL", year=2023,
            booked_on=date(2023, 3, 1),
        )  # fmt: skip
        assert refused is None
        after = await session.scalar(select(func.count()).select_from(models.FundEntry))
        assert after == before
        posted = await funds.post_at_once(
            session, [entry], "510499", settlement_id=event, kind="ORIGINAL", year=2023,
            booked_on=date(2023, 3, 1),
        )  # fmt: skip
        assert posted is True
        assert await session.scalar(select(func.count()).select_from(models.FundEntry)) == (
            (before or 0) + 1
        )
        await session.rollback()
