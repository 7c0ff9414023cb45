"""The lean settlement path (issue 15.3): the READ audit record of a mutation's payload is
written in the mutation's own transaction, the statements a settlement sends, the fund entries
posted with the claim when an account is opened concurrently, and the late re-settlement of a
person-year written set-based, equal to the engine's figures."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import bindparam, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.auth import Principal
from gateway.storage import audit, models
from gateway.storage.database import Database, fetch_compiled
from gateway.storage.outbox import OutboxEvent
from policies.benefits import PolicySet
from policies.settlement.engine import Ledger, Person, settle_visit
from policies.vocabulary import PAYERS, Payer
from resolvers import cube, pending, settlement
from tests.conftest import GraphQLClient, StatementCounter
from tests.factories import category_document, recorder
from tests.resolvers.test_settlement_governance import (
    PAN_ID,
    PANZHIHUA,
    SETTLE,
    enroll,
    ok,
    record,
    register,
    settle,
    stay,
)

ZERO = Decimal("0.00")


async def insured(gql: GraphQLClient) -> None:
    await register(gql, PAN_ID, PANZHIHUA)
    await enroll(gql, PAN_ID, 2023)


async def rows(db: Database, sql: str) -> list[Any]:
    async with db.sessions() as session:
        return list((await session.execute(text(sql))).all())


async def test_a_mutations_read_record_is_written_in_the_transaction_of_its_write(
    gql: GraphQLClient, db: Database
) -> None:
    await insured(gql)
    await settle(gql, stay(PAN_ID, "L-1", "2023-03-01", "10000.00", "8000.00"))
    [(claim_tx,)] = await rows(db, "SELECT xmin::text FROM claims WHERE claim_number = 'L-1'")
    found = await rows(
        db, "SELECT action, operation, xmin::text FROM audit_log ORDER BY id DESC LIMIT 2"
    )
    assert [(a, o) for a, o, _ in found] == [
        ("READ", "mutation settleClaim"),
        ("WRITE", "settleClaim"),
    ]
    assert {tx for _, _, tx in found} == {claim_tx}  # one transaction: write and both records


async def test_a_write_that_does_not_commit_records_no_read_and_answers_no_data(
    gql: GraphQLClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await insured(gql)
    before = await rows(db, "SELECT count(*) FROM audit_log")

    def failing(deltas: Any) -> pending.Part:  # the commit fails, after the READ record
        return pending.Part((), "INSERT INTO no_such_table VALUES (1)", {})

    monkeypatch.setitem(pending.WRITERS, cube.PENDING, failing)
    body = await gql.post(SETTLE, {"i": stay(PAN_ID, "L-2", "2023-03-01", "900.00", "800.00")})
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL"
    assert await rows(db, "SELECT count(*) FROM claims") == [(0,)]
    assert await rows(db, "SELECT count(*) FROM audit_log") == before  # no WRITE, no READ


async def test_without_its_read_record_a_mutation_is_rolled_back_and_answers_no_data(
    gql: GraphQLClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await insured(gql)
    before = await rows(db, "SELECT count(*) FROM audit_log")
    append = audit.append

    async def broken_read(session: Any, principal: Principal, **kwargs: Any) -> Any:
        if kwargs["action"] == "READ":
            raise RuntimeError("audit store down")
        return await append(session, principal, **kwargs)

    monkeypatch.setattr(audit, "append", broken_read)
    body = await gql.post(SETTLE, {"i": stay(PAN_ID, "L-3", "2023-03-01", "900.00", "800.00")})
    assert body["data"] is None
    assert "audit unavailable" in body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL"
    assert await rows(db, "SELECT count(*) FROM claims") == [(0,)]
    assert await rows(db, "SELECT count(*) FROM settlements") == [(0,)]
    assert await rows(db, "SELECT count(*) FROM outbox_events WHERE type = 'CLAIM_CHANGED'") == [
        (0,)
    ]
    assert await rows(db, "SELECT count(*) FROM audit_log") == before  # the WRITE went too
    monkeypatch.setattr(audit, "append", append)
    # and the same claim settles afterwards, as if never sent
    assert (await settle(gql, stay(PAN_ID, "L-3", "2023-03-01", "900.00", "800.00")))[
        "claimNumber"
    ] == "L-3"


COSTS = [
    ("8000.00", "7000.00"),
    ("35000.00", "30000.00"),
    ("1200.00", "900.00"),
    ("64000.00", "60000.00"),
    ("5000.00", "4800.00"),
    ("22000.00", "15000.00"),
    ("3000.00", "2500.00"),
    ("90000.00", "85000.00"),
    ("450.00", "400.00"),
    ("12000.00", "11000.00"),
    ("7000.00", "6000.00"),
    ("41000.00", "39000.00"),
]


async def test_a_late_recognition_re_settles_the_year_set_based_as_the_engine_says(
    gql: GraphQLClient,
    db: Database,
    policies: PolicySet,
    count_statements: Callable[[], StatementCounter],
) -> None:
    """12 stays settled without a category, then 低保 recognised back-dated: every claim's
    events sum to what the engine computes over the year with full knowledge (insurance as
    paid), each adjustment carries the difference, its fund entries balance, its outbox event
    follows in claim order, the ledger sums the lines; and the statements sent do not grow with
    the number of claims."""
    await insured(gql)
    for n, (total, scope) in enumerate(COSTS):
        month = 3 + n % 9
        await settle(gql, stay(PAN_ID, f"Y-{n:02d}", f"2023-{month:02d}-1{n % 9}", total, scope))
    statements = count_statements()
    ok(await record(gql, PAN_ID, "MINIMUM_LIVING", "2021-06-01"))
    sent = len(statements)
    assert sent < 60, statements.statements  # was 8 per adjusted claim and more

    async with db.sessions() as session:
        person = (
            await session.scalars(
                select(models.Beneficiary).where(models.Beneficiary.id_number == PAN_ID)
            )
        ).one()
        claims = (
            await session.scalars(
                select(models.Claim)
                .where(models.Claim.beneficiary_id == person.id)
                .order_by(models.Claim.id)
            )
        ).all()
        records = tuple(await settlement.category_records(session, person))
        states = await settlement.claim_states(session, claims)
        entries = (
            await session.execute(
                select(
                    models.FundEntry.settlement_id, models.FundEntry.side, models.FundEntry.amount
                )
            )
        ).all()
        told = (
            await session.execute(
                select(OutboxEvent.subject, OutboxEvent.detail)
                .where(OutboxEvent.type == "CLAIM_CHANGED")
                .order_by(OutboxEvent.id)
            )
        ).all()
        ledger = await session.get(models.Ledger, (person.id, 2023))
    assert records
    assert ledger is not None
    engine_ledger = Ledger.empty(2023)
    adjusted: list[str] = []
    for state in states:
        claim = state.claim
        [original] = [e for e in state.events if e.kind == "ORIGINAL"]
        paid = {Payer(line.payer): line.amount for line in state.lines[original.id]}
        subject = Person(
            person.region_code, person.birth_date, claim.insured, claim.inclusive_commercial,
            records,
        )  # fmt: skip
        result, engine_ledger = settle_visit(
            policies, subject, settlement.visit_as_settled(claim, paid), engine_ledger
        )
        assert state.payments == {p: result.payments[p] for p in PAYERS}, claim.claim_number
        assert state.out_of_pocket == result.out_of_pocket, claim.claim_number
        adjustments = [e for e in state.events if e.kind == "ADJUSTMENT"]
        if not adjustments:
            continue
        [adjustment] = adjustments
        adjusted.append(claim.claim_number)
        lines = {Payer(line.payer): line.amount for line in state.lines[adjustment.id]}
        assert lines == {p: result.payments[p] - paid[p] for p in PAYERS}
        assert adjustment.category == "MINIMUM_LIVING"
        assert adjustment.explanation == result.explanation.stored()
        sides = [(side, amount) for event, side, amount in entries if event == adjustment.id]
        debit = sum((a for s, a in sides if s == "DEBIT"), ZERO)
        credit = sum((a for s, a in sides if s == "CREDIT"), ZERO)
        assert debit == credit == sum((abs(a) for a in lines.values()), ZERO) > 0
    assert len(adjusted) >= 10
    assert [s for s, d in told if d == {"kind": "ADJUSTMENT"}] == adjusted
    for payer in PAYERS:
        assert getattr(ledger, payer.field_name) == sum((s.payments[payer] for s in states), ZERO)


async def test_an_account_opened_by_a_concurrent_transaction_still_gets_every_entry(
    gql: GraphQLClient, db: Database, admin: AsyncEngine
) -> None:
    """The claim's statement cannot see an account committed while it ran (it waited on that
    insert): it posts nothing, and the entries are posted step by step, all of them."""
    await insured(gql)
    async with admin.connect() as conn:
        transaction = await conn.begin()
        opened = await conn.scalar(
            text(
                "INSERT INTO fund_accounts (kind, region_code, party) "
                "VALUES ('HOSPITAL', :region, 'H-RACE') RETURNING id"
            ),
            {"region": PANZHIHUA},
        )
        claim = stay(PAN_ID, "L-R", "2023-03-01", "9000.00", "8000.00", hospitalCode="H-RACE")
        settling = asyncio.create_task(settle(gql, claim))
        await asyncio.sleep(0.5)
        assert not settling.done()  # waiting on the account being opened
        await transaction.commit()
    paid = await settling
    entries = await rows(
        db,
        "SELECT e.account_id, e.side, e.amount FROM fund_entries e "
        "JOIN settlements s ON s.id = e.settlement_id "
        "JOIN claims c ON c.id = s.claim_id WHERE c.claim_number = 'L-R'",
    )
    payers = [p for p in PAYERS if Decimal(paid[p.value]) != 0]
    assert len(entries) == 2 * len(payers) > 0  # one debit and one credit per payer
    credited = [(a, m) for a, side, m in entries if side == "CREDIT"]
    assert {a for a, _ in credited} == {opened}  # the hospital is owed every payer's share
    assert sum((m for _, m in credited), ZERO) == sum(
        (Decimal(paid[p.value]) for p in payers), ZERO
    )
    months = await rows(db, "SELECT sum(amount) FROM fund_entry_months WHERE side = 'CREDIT'")
    assert months == [(sum((m for _, m in credited), ZERO),)]


def test_a_row_held_as_written_reads_like_a_constructed_one() -> None:
    """``settlement.as_written`` (the re-run's events and lines, held without attribute events)
    answers every attribute as the constructor's object does, unset ones None, and is
    transient (in no session)."""
    values: dict[str, Any] = {
        "id": 7, "claim_id": 3, "year": 2023, "kind": "ADJUSTMENT", "policy": "510400-2023",
        "category": "MINIMUM_LIVING", "out_of_pocket": Decimal("12.30"), "reason": "late",
        "department": "civil_affairs", "org": "ca-5104",
    }  # fmt: skip
    held = settlement.as_written(models.Settlement, **values)
    built = models.Settlement(**values)
    for name in models.Settlement.__table__.columns.keys():  # noqa: SIM118
        assert getattr(held, name) == getattr(built, name), name
    assert held.explanation is None
    assert held.created_at is None
    assert inspect(held).transient
    line = settlement.as_written(models.SettlementLine, settlement_id=7, payer="assistance",
                                 amount=Decimal("1.00"))  # fmt: skip
    assert (line.settlement_id, line.payer, line.amount) == (7, "assistance", Decimal("1.00"))


ADJUSTED = (
    "adjustments { claimNumber kind reason createdAt policy category basicInsurance "
    "criticalIllness inclusiveCommercial assistance secondaryAssistance outOfPocket }"
)


async def test_a_late_recognitions_payload_lists_the_adjustments_as_stored(
    gql: GraphQLClient, db: Database
) -> None:
    """The payload's adjustments (held in memory by the set-based re-run) are the ADJUSTMENT
    events and lines stored, in the order written, field by field."""
    await insured(gql)
    for n, (total, scope) in enumerate(COSTS[:6]):
        await settle(gql, stay(PAN_ID, f"P-{n:02d}", f"2023-0{3 + n}-10", total, scope))
    item = {
        "idNumber": PAN_ID,
        "category": "MINIMUM_LIVING",
        "validFrom": "2021-06-01",
        "reference": "late-payload",
    }
    answer = await gql.post(
        category_document("MINIMUM_LIVING", selection=ADJUSTED),
        {"i": item},
        department=recorder("MINIMUM_LIVING"),
    )
    shown = ok(answer)["recordIdentity"]["adjustments"]
    stored = await rows(
        db,
        "SELECT c.claim_number, s.kind, s.reason, s.created_at, s.policy, s.category, "
        + ", ".join(
            f"(SELECT l.amount FROM settlement_lines l WHERE l.settlement_id = s.id "
            f"AND l.payer = '{p.value}')"
            for p in PAYERS
        )
        + ", s.out_of_pocket FROM settlements s JOIN claims c ON c.id = s.claim_id "
        "WHERE s.kind = 'ADJUSTMENT' ORDER BY s.id",
    )
    assert len(shown) == len(stored) >= 4
    for event, row in zip(shown, stored, strict=True):
        number, kind, reason, at, policy, category, *money = row
        assert (event["claimNumber"], event["kind"], event["reason"]) == (number, kind, reason)
        assert datetime.fromisoformat(event["createdAt"]) == at
        assert (event["policy"], event["category"]) == (policy, category)
        fields = [p.value for p in PAYERS] + ["outOfPocket"]
        assert [Decimal(event[f]) for f in fields] == money


async def test_a_re_run_posts_to_a_fund_account_opened_meanwhile_by_another_transaction(
    gql: GraphQLClient, db: Database, admin: AsyncEngine
) -> None:
    """The re-run's one statement that opens and reads the accounts cannot see the assistance
    fund's account committed while it waited on it: the account is read then, and every
    adjustment's assistance is debited to it, each entry balanced."""
    await insured(gql)
    for n, (total, scope) in enumerate(COSTS[:4]):
        await settle(gql, stay(PAN_ID, f"F-{n:02d}", f"2023-0{3 + n}-10", total, scope))
    assert not await rows(db, "SELECT id FROM fund_accounts WHERE kind = 'ASSISTANCE_FUND'")
    async with admin.connect() as conn:
        transaction = await conn.begin()
        opened = await conn.scalar(
            text(
                "INSERT INTO fund_accounts (kind, region_code, party) "
                "VALUES ('ASSISTANCE_FUND', :region, '') RETURNING id"
            ),
            {"region": PANZHIHUA},
        )
        recognising = asyncio.create_task(record(gql, PAN_ID, "MINIMUM_LIVING", "2021-06-01"))
        await asyncio.sleep(0.5)
        assert not recognising.done()  # waiting on the account being opened
        await transaction.commit()
    ok(await recognising)
    entries = await rows(
        db,
        "SELECT e.settlement_id, e.account_id, e.side, e.amount FROM fund_entries e "
        "JOIN settlements s ON s.id = e.settlement_id WHERE s.kind = 'ADJUSTMENT'",
    )
    adjusted = {event for event, _, _, _ in entries}
    assert len(adjusted) >= 3
    for event in adjusted:
        sides = [(account, side, amount) for e, account, side, amount in entries if e == event]
        debits = [(account, amount) for account, side, amount in sides if side == "DEBIT"]
        assert {account for account, _ in debits} == {opened}
        credit = sum((amount for _, side, amount in sides if side == "CREDIT"), ZERO)
        assert sum((amount for _, amount in debits), ZERO) == credit > 0


async def test_a_compiled_statement_runs_only_in_a_transaction_begun_on_its_connection(
    db: Database,
) -> None:
    """``fetch_compiled`` sends on the bare asyncpg connection: before a statement has begun
    the session's transaction there, it refuses (sent bare, it would commit on its own)."""
    statement = select(models.Beneficiary.id).where(
        models.Beneficiary.id_number == bindparam("n", type_=models.Beneficiary.id_number.type)
    )
    async with db.sessions() as session, session.begin():
        await session.connection()
        with pytest.raises(RuntimeError, match="begun on its connection"):
            await fetch_compiled(session, statement, {"n": "x"})
        await session.execute(text("SELECT 1"))
        assert await fetch_compiled(session, statement, {"n": "x"}) == []
