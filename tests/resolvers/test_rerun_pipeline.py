"""A late re-settlement stores its adjustments while the engine settles the next claims
(``resolvers.settlement.Events`` on a ``resolvers.pipeline.Pipeline``, issue 15.3): what is
stored and answered does not depend on how many adjustments go in one statement, a recovery set
while a statement is in flight waits for it, and a failure with a statement in flight (the
engine's, or the statement's own) stores nothing and leaves the connection usable."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from gateway.storage.database import Database
from policies.benefits import PolicySet
from policies.settlement import explanation
from policies.settlement.engine import CategoryRecord, Ledger, Person, Reported, Visit
from policies.settlement.engine import settle_visit as engine_settle_visit
from policies.vocabulary import Category, HospitalLevel, Payer, VisitType
from resolvers import settlement
from resolvers.pipeline import Pipeline
from tests.conftest import GraphQLClient
from tests.factories import category_document, recorder
from tests.resolvers.test_settlement_governance import (
    PAN_ID,
    PANZHIHUA,
    enroll,
    ok,
    record,
    recoveries,
    register,
    settle,
    snapshot,
    stay,
)

ADJUSTED = "adjustments { claimNumber assistance secondaryAssistance outOfPocket category }"

# Settled in this order while the person holds 因病致贫 only; 低保 is then recognised from
# 2023-05-01: the first three gain (adjustments), the last one, settled after them, loses
# (its re-assistance falls more than its assistance rises): a pending recovery (§9.4).
STAYS = [
    ("M-0", "2023-11-10", "8000.00", "7200.00"),
    ("M-1", "2023-08-10", "8000.00", "7200.00"),
    ("M-2", "2023-06-10", "60000.00", "54000.00"),
    ("M-3", "2023-07-10", "3000.00", "2700.00"),
]
ASSISTANCE = (Payer.ASSISTANCE, Payer.SECONDARY_ASSISTANCE)


async def person_with_stays(gql: GraphQLClient) -> list[dict[str, Any]]:
    await register(gql, PAN_ID, PANZHIHUA)
    await enroll(gql, PAN_ID, 2023)
    ok(await record(gql, PAN_ID, "ILLNESS_IMPOVERISHED", "2021-06-01"))
    return [await settle(gql, stay(PAN_ID, *s)) for s in STAYS]


async def recognise(gql: GraphQLClient) -> dict[str, Any]:
    """低保 recognised from 2023-05-01 (the raw body; within 30 s: a re-run left waiting on a
    statement fails the test instead of hanging it)."""
    item = {
        "idNumber": PAN_ID,
        "category": "MINIMUM_LIVING",
        "validFrom": "2023-05-01",
        "reference": "late-pipeline",
    }
    return await asyncio.wait_for(
        gql.post(
            category_document("MINIMUM_LIVING", selection=ADJUSTED),
            {"i": item},
            department=recorder("MINIMUM_LIVING"),
        ),
        timeout=30,
    )


def engine_targets(
    policies: PolicySet, settled: list[dict[str, Any]]
) -> list[dict[Payer, Decimal]]:
    """What the engine pays each stay's assistance payers with 低保 known, insurance as paid."""
    person = Person(
        PANZHIHUA,
        date(1970, 1, 1),
        insured=True,
        categories=(
            CategoryRecord(Category.ILLNESS_IMPOVERISHED, _day("2021-06-01")),
            CategoryRecord(Category.MINIMUM_LIVING, _day("2023-05-01")),
        ),
    )
    ledger = Ledger.empty(2023)
    targets = []
    for (number, day, total, scope), paid in zip(STAYS, settled, strict=True):
        visit = Visit(
            number, VisitType.INPATIENT, HospitalLevel.SECONDARY, _day(day), _day(day),
            Decimal(total), Decimal(scope),
            reported=Reported(
                basic_insurance=Decimal(paid["basicInsurance"]),
                critical_illness=Decimal(paid["criticalIllness"]),
                inclusive_commercial=None,
            ),
        )  # fmt: skip
        result, ledger = engine_settle_visit(policies, person, visit, ledger)
        targets.append({p: result.payments[p] for p in ASSISTANCE})
    return targets


def _day(iso: str) -> date:
    return date.fromisoformat(iso)


@pytest.mark.parametrize("per_statement", [1, 2, 25])
async def test_adjustments_and_a_recovery_of_one_re_run_are_the_engines_whatever_the_chunks(
    gql: GraphQLClient,
    db: Database,
    policies: PolicySet,
    monkeypatch: pytest.MonkeyPatch,
    per_statement: int,
) -> None:
    """One re-run with three adjustments and, after them, a recovery: with one adjustment per
    statement the recovery is set while the third adjustment's statement is in flight (it is
    written once that statement has ended). Every claim's assistance moves to the engine's
    figures: the adjustments by their difference (stored, with their outbox events in claim
    order and balanced fund entries), the last claim by a pending recovery of what it lost;
    the payload lists the adjustments in claim order."""
    monkeypatch.setattr(settlement, "EVENTS_PER_STATEMENT", per_statement)
    settled = await person_with_stays(gql)
    targets = engine_targets(policies, settled)
    in_flight_at_recovery: list[int] = []
    set_recovery = settlement._set_recovery

    async def watched(*args: Any, **kwargs: Any) -> None:
        in_flight_at_recovery.append(len(_statements_in_flight()))
        await set_recovery(*args, **kwargs)

    monkeypatch.setattr(settlement, "_set_recovery", watched)
    paid = [{p: Decimal(s[p.value]) for p in ASSISTANCE} for s in settled]
    gains = [sum(t.values()) - sum(p.values()) for t, p in zip(targets, paid, strict=True)]
    assert [g > 0 for g in gains] == [True, True, True, False]  # the scenario holds

    shown = ok(await recognise(gql))["recordIdentity"]["adjustments"]

    assert [a["claimNumber"] for a in shown] == ["M-0", "M-1", "M-2"]
    for event, target, before in zip(shown, targets[:3], paid[:3], strict=True):
        assert Decimal(event["assistance"]) == target[Payer.ASSISTANCE] - before[Payer.ASSISTANCE]
        assert (
            Decimal(event["secondaryAssistance"])
            == target[Payer.SECONDARY_ASSISTANCE] - before[Payer.SECONDARY_ASSISTANCE]
        )
        assert event["category"] == "MINIMUM_LIVING"
    assert in_flight_at_recovery == [0]  # the session is free when the recovery is written
    [pending] = await recoveries(gql, "PENDING")
    assert pending["claimNumber"] == "M-3"
    assert Decimal(pending["amount"]) == -gains[3] > 0
    stored = await _rows(
        db,
        "SELECT c.claim_number, s.kind, l.payer, l.amount FROM settlements s "
        "JOIN claims c ON c.id = s.claim_id JOIN settlement_lines l ON l.settlement_id = s.id "
        "WHERE s.kind = 'ADJUSTMENT' AND l.payer IN ('assistance', 'secondaryAssistance') "
        "ORDER BY s.id, l.payer",
    )
    assert [(n, p, a) for n, _, p, a in stored] == [
        (number, payer.value, Decimal(event[payer.value]))
        for number, event in zip(["M-0", "M-1", "M-2"], shown, strict=True)
        for payer in ASSISTANCE
    ]
    told = await _rows(
        db,
        "SELECT subject FROM outbox_events WHERE type = 'CLAIM_CHANGED' "
        "AND detail->>'kind' = 'ADJUSTMENT' ORDER BY id",
    )
    assert [t[0] for t in told] == ["M-0", "M-1", "M-2"]
    entries = await _rows(
        db,
        "SELECT s.id, sum(f.amount) FILTER (WHERE f.side = 'DEBIT'), "
        "sum(f.amount) FILTER (WHERE f.side = 'CREDIT') FROM settlements s "
        "JOIN fund_entries f ON f.settlement_id = s.id WHERE s.kind = 'ADJUSTMENT' GROUP BY s.id",
    )
    assert len(entries) == 3
    assert all(debit == credit > 0 for _, debit, credit in entries)


async def test_a_failure_of_the_engine_with_a_statement_in_flight_stores_nothing(
    gql: GraphQLClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine fails on the third claim while the first two adjustments' statement runs:
    the answer is the error, nothing of the re-run (nor the identity) is stored, and the same
    recognition afterwards re-settles the year on the same pool."""
    monkeypatch.setattr(settlement, "EVENTS_PER_STATEMENT", 1)
    await person_with_stays(gql)
    before = await snapshot(db)
    calls = 0

    def failing(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("engine failure")
        return engine_settle_visit(*args, **kwargs)

    monkeypatch.setattr(settlement, "settle_visit", failing)
    body = await recognise(gql)
    assert body["data"] is None or body["data"].get("recordIdentity") is None, body
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL"
    assert calls == 3
    after = await snapshot(db)
    assert {k: v for k, v in after.items() if k != "audit"} == {
        k: v for k, v in before.items() if k != "audit"
    }
    monkeypatch.setattr(settlement, "settle_visit", engine_settle_visit)
    shown = ok(await recognise(gql))["recordIdentity"]["adjustments"]
    assert [a["claimNumber"] for a in shown] == ["M-0", "M-1", "M-2"]


async def test_a_statement_that_fails_in_flight_fails_the_re_run_and_stores_nothing(
    gql: GraphQLClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second statement of adjustments fails on the server (an explanation that is not
    JSON) while the engine settles the next claim: its error fails the request, nothing is
    stored, and the same recognition afterwards succeeds."""
    monkeypatch.setattr(settlement, "EVENTS_PER_STATEMENT", 1)
    await person_with_stays(gql)
    before = await snapshot(db)
    stored_json = explanation.Explanation.stored_json
    calls = 0

    def broken(self: explanation.Explanation) -> str:
        nonlocal calls
        calls += 1
        return "{not json" if calls == 2 else stored_json(self)

    monkeypatch.setattr(explanation.Explanation, "stored_json", broken)
    body = await recognise(gql)
    assert body["errors"], body
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL"
    assert calls >= 2
    after = await snapshot(db)
    assert {k: v for k, v in after.items() if k != "audit"} == {
        k: v for k, v in before.items() if k != "audit"
    }
    monkeypatch.setattr(explanation.Explanation, "stored_json", stored_json)
    shown = ok(await recognise(gql))["recordIdentity"]["adjustments"]
    assert [a["claimNumber"] for a in shown] == ["M-0", "M-1", "M-2"]


def _statements_in_flight() -> list[asyncio.Task[Any]]:
    """The tasks running a statement of adjustments (``Writer.insert_events``) not yet ended."""
    return [
        task
        for task in asyncio.all_tasks()
        if not task.done() and "insert_events" in repr(task.get_coro())
    ]


async def _rows(db: Database, sql: str) -> list[Any]:
    async with db.sessions() as session:
        return list((await session.execute(text(sql))).all())


# -- the pipeline itself --------------------------------------------------------------------------


async def test_a_pipeline_runs_each_then_in_order_while_the_next_statement_runs() -> None:
    """``then`` of a statement runs once the next statement has started (it overlaps it), in
    the order the statements were sent; leaving the pipeline waits for the last one."""
    seen: list[str] = []

    def statement(name: str) -> Any:
        async def run() -> str:
            seen.append(f"start {name}")
            await asyncio.sleep(0.01)
            seen.append(f"end {name}")
            return name

        return run

    async with Pipeline() as pipeline:
        await pipeline.send(statement("a"), lambda r: seen.append(f"then {r}"))
        seen.append("caller computes")
        await pipeline.send(statement("b"), lambda r: seen.append(f"then {r}"))
    assert seen == [
        "start a",
        "caller computes",
        "end a",
        "start b",
        "then a",
        "end b",
        "then b",
    ]


async def test_a_statements_error_is_raised_where_the_caller_next_waits() -> None:
    async def fails() -> None:
        raise ValueError("statement failed")

    pipeline = Pipeline()
    await pipeline.send(fails, lambda r: None)
    with pytest.raises(ValueError, match="statement failed"):
        await pipeline.wait()
    await pipeline.wait()  # nothing in flight any more


async def test_leaving_on_the_callers_error_waits_for_the_statement_and_keeps_that_error() -> None:
    finished: list[str] = []

    async def slow() -> None:
        await asyncio.sleep(0.02)
        finished.append("statement")
        raise ValueError("the statement's own error")

    async def caller() -> None:
        async with Pipeline() as pipeline:
            await pipeline.send(slow, lambda r: None)
            raise RuntimeError("caller")

    with pytest.raises(RuntimeError, match="caller"):
        await caller()
    assert finished == ["statement"]


async def test_a_cancelled_caller_leaves_only_once_its_statement_has_ended() -> None:
    """Cancelled while it waits for a statement, and again while it leaves, the caller still
    waits for that statement to end before it leaves the pipeline (its transaction is not ended
    under a running one)."""
    finished: list[str] = []
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(0.05)
        finished.append("statement")

    async def caller() -> None:
        async with Pipeline() as pipeline:
            await pipeline.send(slow, lambda r: None)
            await pipeline.wait()

    task = asyncio.create_task(caller())
    await started.wait()
    task.cancel()
    await asyncio.sleep(0.01)
    task.cancel()  # again, while it leaves
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished == ["statement"]
