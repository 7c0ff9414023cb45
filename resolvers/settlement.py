"""One-stop settlement in the database: settle, re-settle after late news, reverse.

Every change to what a person's year should pay goes through one mechanism: lock the person,
lock the ledger of the year, run the pure engine, store the difference. ``settleClaim`` appends
one visit to the year (the engine continues from the stored ledger); late recognition, ended
identities, enrollment changes and reversals re-run the whole year with full knowledge and store
*adjustments* — history is never rewritten, so for every claim the sum of its settlement events
equals what the engine computes now.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import metrics, resident_id
from gateway.auth import Principal
from gateway.errors import Conflict, Forbidden, NotFound, PreconditionFailed
from gateway.storage import audit, models
from gateway.storage.outbox import CHANNEL
from policies.benefits import PolicySet
from policies.errors import InvalidInput
from policies.funds import Parties
from policies.settlement.categories import counts
from policies.settlement.engine import (
    INSURANCE_VISIT_TYPES,
    REPORTABLE_PAYERS,
    CategoryRecord,
    Ledger,
    Person,
    Reported,
    Visit,
    VisitSettlement,
    settle_visit,
    validate_visit,
)
from policies.settlement.explanation import Explanation
from policies.vocabulary import PAYERS, Category, HospitalLevel, Payer, VisitType
from resolvers import alerts, cube, funds, outbox, person_year
from resolvers.beneficiaries import lock_person
from resolvers.context import Context
from resolvers.inputs import check_money, check_text
from resolvers.original import Posting, as_written, insert_original
from resolvers.pipeline import Pipeline

ZERO = Decimal("0.00")
CENT = Decimal("0.01")


@dataclass(frozen=True)
class ClaimInput:
    """A claim as billed: the visit (its id is the claim number, its ``reported`` the amounts of
    the core system), who and where, and ``insured=False`` for an explicitly uninsured claim."""

    id_number: str
    visit: Visit
    carrier: str | None = None
    hospital_code: str | None = None
    insured: bool | None = None

    def content_hash(self) -> str:
        """Identifies the billed content: the same claim number must always carry it."""
        fields = dataclasses.asdict(self.visit)
        reported = fields.pop("reported")
        body = {
            **{k: _jsonable(v) for k, v in fields.items()},
            "idNumber": self.id_number,
            "carrier": self.carrier,
            "hospitalCode": self.hospital_code,
        }
        # Only present when given, so that claims stored before v2 keep their hash.
        if self.visit.reported is not None and reported is not None:
            body["reported"] = self.visit.reported.to_dict()
        if self.insured is not None:
            body["insured"] = self.insured
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _jsonable(value: object) -> object:
    """Dates as ISO text, amounts and enums as their text, the rest as it is."""
    if value is None or isinstance(value, bool | int):
        return value
    return value.isoformat() if isinstance(value, date) else str(value)


def _input_field(error: InvalidInput) -> InvalidInput:
    """The engine names "input.<field>"; the API names the input field itself."""
    return InvalidInput(error.field.removeprefix("input."), error.value, error.reason)


def check_claim(data: ClaimInput, today: date) -> ClaimInput:
    """Normalise and validate a claim; InvalidInput names the input field and its value.

    A discharge after ``today`` (China time) is refused: nothing is settled ahead of time (§9.2).
    """
    visit = data.visit
    reported = visit.reported
    if reported is not None:
        reported = Reported(
            **{
                payer.field_name: None
                if amount is None
                else check_money(f"reported.{payer}", amount)
                for payer in REPORTABLE_PAYERS
                for amount in [reported.amount(payer)]
            }
        )
    checked = ClaimInput(
        id_number=resident_id.parse(data.id_number).number,
        visit=dataclasses.replace(
            visit,
            id=check_text(visit.id, "claimNumber", 64, required=True) or "",
            total_cost=check_money("totalCost", visit.total_cost),
            policy_scope_cost=check_money("policyScopeCost", visit.policy_scope_cost),
            diagnosis=(check_text(visit.diagnosis, "diagnosis", 20) or "").upper() or None,
            reported=reported if reported is not None and reported.payers else None,
        ),
        carrier=check_text(data.carrier, "carrier", 120),
        hospital_code=check_text(data.hospital_code, "hospitalCode", 40),
        insured=data.insured,
    )
    try:
        validate_visit(checked.visit, field="input")
    except InvalidInput as exc:
        raise _input_field(exc) from None
    if checked.visit.discharge_date > today:
        raise InvalidInput(
            "dischargeDate",
            checked.visit.discharge_date.isoformat(),
            f"is after today ({today.isoformat()}, China time): a claim is settled after "
            "discharge, never ahead of time",
        )
    return checked


def totals(
    events: Sequence[models.Settlement], lines: Mapping[int, Sequence[models.SettlementLine]]
) -> tuple[dict[Payer, Decimal], Decimal]:
    """What a claim has been paid by each payer, and its out-of-pocket: the sum of its events."""
    payments = dict.fromkeys(PAYERS, ZERO)
    out_of_pocket = ZERO
    for event in events:
        out_of_pocket += event.out_of_pocket
        for line in lines.get(event.id, ()):
            payments[Payer(line.payer)] += line.amount
    return payments, out_of_pocket


@dataclass
class Consequences:
    """What late news stored about a person's other claims (SETTLEMENT.md §9.4): ADJUSTMENT
    events as ``(claim number, event, lines)`` and recoveries created, changed or withdrawn as
    ``(recovery, claim number)``, in the order they were written."""

    adjustments: list[tuple[str, models.Settlement, list[models.SettlementLine]]] = field(
        default_factory=list
    )
    recoveries: list[tuple[models.Recovery, str]] = field(default_factory=list)


@dataclass
class ClaimState:
    """A claim, its settlement events and their lines: what it has been paid so far."""

    claim: models.Claim
    events: list[models.Settlement]
    lines: dict[int, list[models.SettlementLine]]

    @property
    def payments(self) -> dict[Payer, Decimal]:
        return totals(self.events, self.lines)[0]

    @property
    def out_of_pocket(self) -> Decimal:
        return totals(self.events, self.lines)[1]

    @property
    def latest(self) -> models.Settlement | None:
        return self.events[-1] if self.events else None


# -- reading what the database knows about a person ------------------------------------------


async def category_records(
    session: AsyncSession, person: models.Beneficiary
) -> list[CategoryRecord]:
    """Every identity and monitoring flag of the person, as the engine reads them."""
    return [record_of(r) for r in await person_records(session, person)]


async def person_records(
    session: AsyncSession, person: models.Beneficiary
) -> list[models.Identity | models.MonitoringFlag]:
    """Every identity and monitoring flag row of the person: identities, then flags, each in id
    order (what :attr:`Writer.records` holds)."""
    identities = await session.scalars(
        select(models.Identity)
        .where(models.Identity.beneficiary_id == person.id)
        .order_by(models.Identity.id)
    )
    flags = await session.scalars(
        select(models.MonitoringFlag)
        .where(models.MonitoringFlag.beneficiary_id == person.id)
        .order_by(models.MonitoringFlag.id)
    )
    return [*identities.all(), *flags.all()]


def record_of(row: models.Identity | models.MonitoringFlag) -> CategoryRecord:
    return CategoryRecord(Category(row.category), row.valid_from, row.valid_to, row.decided_on)


async def lock_ledger(session: AsyncSession, beneficiary_id: uuid.UUID, year: int) -> models.Ledger:
    """The person-year ledger, locked until the transaction ends (created empty when new)."""
    locked = (
        select(models.Ledger)
        .where(models.Ledger.beneficiary_id == beneficiary_id, models.Ledger.year == year)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    row = (await session.scalars(locked)).one_or_none()
    if row is not None:
        return row
    await session.execute(
        pg_insert(models.Ledger)
        .values(beneficiary_id=beneficiary_id, year=year, state=Ledger.empty(year).to_dict())
        .on_conflict_do_nothing()
    )
    return (await session.scalars(locked)).one()


async def claim_states(session: AsyncSession, claims: Sequence[models.Claim]) -> list[ClaimState]:
    ids = [c.id for c in claims]
    years = {c.year for c in claims}  # their partitions only (migration 0019)
    events = (
        await session.scalars(
            select(models.Settlement)
            .where(models.Settlement.claim_id.in_(ids), models.Settlement.year.in_(years))
            .order_by(models.Settlement.id)
        )
    ).all()
    lines = (
        await session.scalars(
            select(models.SettlementLine).where(
                models.SettlementLine.settlement_id.in_([e.id for e in events]),
                models.SettlementLine.year.in_(years),
            )
        )
    ).all()
    by_event: dict[int, list[models.SettlementLine]] = {}
    for line in lines:
        by_event.setdefault(line.settlement_id, []).append(line)
    by_claim: dict[int, list[models.Settlement]] = {}
    for event in events:
        by_claim.setdefault(event.claim_id, []).append(event)
    return [ClaimState(c, by_claim.get(c.id, []), by_event) for c in claims]


def closing_region(policies: PolicySet, policy_id: str | None) -> str | None:
    """The policy region whose closings concern a policy (None: none, or an unknown policy)."""
    if policy_id is None:
        return None
    try:
        return policies.by_id(policy_id).region_code
    except KeyError:
        return None


async def closed_region(
    session: AsyncSession, policies: PolicySet, policy_id: str | None, year: int
) -> str | None:
    """The policy region code when ``year`` is closed for it (§9.5), else None."""
    region = closing_region(policies, policy_id)
    if region is None:
        return None
    closed = await session.scalar(
        select(models.SettlementYearClosing.region_code).where(
            models.SettlementYearClosing.region_code == region,
            models.SettlementYearClosing.year == year,
        )
    )
    return None if closed is None else region


# -- writing ----------------------------------------------------------------------------------


@dataclass
class Writer:
    """Stores settlement events and ledgers for one transaction, on behalf of one caller."""

    session: AsyncSession
    principal: Principal
    policies: PolicySet
    events: list[models.Settlement] = field(default_factory=list)
    lines: dict[int, list[models.SettlementLine]] = field(default_factory=dict)
    recoveries: list[dict[str, Any]] = field(default_factory=list)
    """Each recovery created, changed or withdrawn, for the audit record of the news."""
    claim_numbers: dict[int, str] = field(default_factory=dict)
    """The claim number of each event stored (by event id)."""
    changed_recoveries: dict[int, tuple[models.Recovery, str]] = field(default_factory=dict)
    """Each recovery created, changed or withdrawn, with its claim number (by recovery id)."""
    records: list[models.Identity | models.MonitoringFlag] | None = None
    """The person's identities and flags when already read by this transaction and unchanged
    since (:meth:`discover` does not read them again); None: read them."""
    alert: tuple[models.HighCostAlert | None] | None = None
    """The year's alert (or None) when already read, locked, by this transaction (for the one
    :meth:`discover` of that year); None: read it."""
    reviewed: set[int] = field(default_factory=set)
    """The years whose alert :meth:`discover` reviewed (a later review of the person's alerts
    need not look at them again)."""

    def consequences(self) -> Consequences:
        """What this transaction's re-runs stored: the ADJUSTMENT events and the recoveries."""
        return Consequences(
            adjustments=[
                (self.claim_numbers[e.id], e, self.lines[e.id])
                for e in self.events
                if e.kind == "ADJUSTMENT"
            ],
            recoveries=list(self.changed_recoveries.values()),
        )

    async def event(
        self,
        claim: models.Claim,
        kind: str,
        payments: Mapping[Payer, Decimal],
        out_of_pocket: Decimal,
        *,
        policy: str,
        category: str | None,
        explanation: Explanation | None = None,
        reason: str | None = None,
    ) -> models.Settlement:
        """Store one settlement event of ``claim`` with its lines and run the hooks."""
        event = models.Settlement(
            claim_id=claim.id,
            beneficiary_id=claim.beneficiary_id,
            year=claim.year,
            kind=kind,
            policy=policy,
            category=category,
            out_of_pocket=out_of_pocket,
            reason=reason,
            explanation={} if explanation is None else explanation.stored(),
            department=self.principal.department,
            org=self.principal.org,
        )
        self.session.add(event)
        await self.session.flush()
        lines = [
            models.SettlementLine(
                settlement_id=event.id,
                payer=p.value,
                amount=payments.get(p, ZERO),
                beneficiary_id=event.beneficiary_id,
                year=event.year,
            )
            for p in PAYERS
        ]
        self.session.add_all(lines)
        await self.stored(claim, event, lines, payments)
        return event

    async def stored(
        self,
        claim: models.Claim,
        event: models.Settlement,
        lines: list[models.SettlementLine],
        payments: Mapping[Payer, Decimal],
        *,
        posted: bool = False,
    ) -> None:
        """What follows an event written (by :meth:`event`, or with its claim in one statement
        by :func:`resolvers.original.insert_original`, which also wrote its outbox event and
        fund entries: ``posted``): note it, and run the hooks (outbox, cube, fund entries)."""
        kind, out_of_pocket, category = event.kind, event.out_of_pocket, event.category
        self.lines[event.id] = lines
        self.events.append(event)
        self.claim_numbers[event.id] = claim.claim_number
        if not posted:
            await outbox.claim_changed(self.session, claim, kind=kind)
        cube.record(self.session, claim, kind, payments, out_of_pocket, category)
        if not posted:
            await funds.post_settlement(self.session, self.policies, claim, event, lines)

    async def store_ledger(
        self,
        row: models.Ledger,
        ledger: Ledger,
        paid: Mapping[Payer, Decimal],
        *,
        visits: int,
        total_cost: Decimal,
    ) -> None:
        """The engine's running state, and the year's money columns as actually paid (pending
        recoveries are still paid, so these may exceed the engine's figures)."""
        for key, value in ledger_values(ledger, paid, visits=visits, total_cost=total_cost).items():
            setattr(row, key, value)
        await self.session.flush()

    async def recount_ledger(self, row: models.Ledger, ledger: Ledger) -> None:
        """:meth:`store_ledger` with the money columns summed again from every settlement line
        of the person-year (after a re-run, whose events touch many claims)."""
        await self.session.flush()
        found = (
            await self.session.execute(RECOUNT, {"person": row.beneficiary_id, "year": row.year})
        ).one()
        visits, total_cost = found[0], found[1]
        sums = dict(zip((p.value for p in PAYERS), found[2:], strict=True))
        paid = {payer: Decimal(sums.get(payer.value) or ZERO) for payer in PAYERS}
        await self.store_ledger(
            row, ledger, paid, visits=int(visits), total_cost=Decimal(total_cost)
        )

    async def discover(
        self, person: models.Beneficiary, row: models.Ledger, insured: bool, cause: str
    ) -> None:
        """主动发现 after the person-year's ledger changed: raise, update or close its alert
        (resolvers/alerts.py; 攀枝花 第十八条, 鲁医保发 四(一))."""
        year = alerts.Year(
            person.id, person.region_code, row.year, row.out_of_pocket, row.visits, insured
        )
        await alerts.review(
            self.session, self.principal, self.policies, year, cause, self.records, self.alert
        )
        self.reviewed.add(row.year)

    @asynccontextmanager
    async def adjustments(self, person: models.Beneficiary, reason: str) -> AsyncIterator[Events]:
        """The ADJUSTMENT events of a re-run of ``person``'s year, stored as they are added
        (:class:`Events`); what is left is stored when the block ends without an error. With
        one, the block ends once the statement in flight (if any) has ended."""
        events = Events(self, person, "ADJUSTMENT", reason)
        async with events.pipeline:
            yield events
            await events.close()

    async def insert_events(
        self, person: models.Beneficiary, kind: str, reason: str, events: Sequence[Pending]
    ) -> dict[int, tuple[int, datetime]]:
        """:data:`STORE_EVENTS` for ``events``: each event's id and time, by claim id."""
        written = await self.session.execute(
            STORE_EVENTS,
            {
                "person": person.id,
                "kind": kind,
                "reason": reason,
                "department": self.principal.department,
                "org": self.principal.org,
                "claims": [item.claim.id for item in events],
                "years": [item.claim.year for item in events],
                "policies": [item.policy for item in events],
                "categories": [item.category for item in events],
                "oops": [item.out_of_pocket for item in events],
                "explanations": [item.explanation.stored_json() for item in events],
                "line_claims": [item.claim.id for item in events for _ in PAYERS],
                "payers": [p.value for _ in events for p in PAYERS],
                "amounts": [item.payments.get(p, ZERO) for item in events for p in PAYERS],
                "numbers": [item.claim.claim_number for item in events],
                "detail": json.dumps({"kind": kind}),
                "channel": CHANNEL,
            },
        )
        return {row.claim_id: (row.id, row.created_at) for row in written.all()}

    def note_events(
        self,
        kind: str,
        reason: str,
        events: Sequence[Pending],
        made: Mapping[int, tuple[int, datetime]],
    ) -> list[tuple[models.Claim, models.Settlement, list[models.SettlementLine]]]:
        """What :meth:`insert_events` wrote (``made``), noted as :meth:`stored` notes an event
        (but the fund entries): model objects holding what was written (not in the session;
        without the explanations, which the payloads do not show), and the cube."""
        stored: list[tuple[models.Claim, models.Settlement, list[models.SettlementLine]]] = []
        department, org = self.principal.department, self.principal.org
        for item in events:
            claim = item.claim
            event_id, at = made[claim.id]
            row = as_written(
                models.Settlement,
                id=event_id, claim_id=claim.id, beneficiary_id=claim.beneficiary_id,
                year=claim.year, kind=kind, policy=item.policy, category=item.category,
                out_of_pocket=item.out_of_pocket, reason=reason, department=department, org=org,
                created_at=at,
            )  # fmt: skip
            lines = [
                as_written(
                    models.SettlementLine,
                    settlement_id=event_id,
                    payer=p.value,
                    amount=item.payments.get(p, ZERO),
                    beneficiary_id=claim.beneficiary_id,
                    year=claim.year,
                )
                for p in PAYERS
            ]
            self.lines[event_id] = lines
            self.events.append(row)
            self.claim_numbers[event_id] = claim.claim_number
            cube.record(self.session, claim, kind, item.payments, item.out_of_pocket, item.category)
            stored.append((claim, row, lines))
        return stored


EVENTS_PER_STATEMENT = 25
"""How many events :class:`Events` sends in one :data:`STORE_EVENTS`. The engine settles 25
claims in about the time the database stores 25 adjustments (5–6 ms each on the bench
machine), so each statement runs while the engine settles the next claims: a re-run of 100
claims took 60–78 ms against 81–93 ms with every adjustment sent after the loop (in process,
measured in turn on 2026-12-02). 20 and 34 measured alike; fewer would add statements."""


@dataclass
class Events:
    """Events of one kind of a person's claims (a re-run's adjustments, at most one per claim),
    stored set-based whatever their number, while they are computed: every
    :data:`EVENTS_PER_STATEMENT` events added go in one statement (:data:`STORE_EVENTS`: the
    events, their lines, their outbox events), sent on a :class:`~resolvers.pipeline.Pipeline`
    so that it runs while the caller computes the next ones; their fund entries in a few more
    statements at the end (:func:`resolvers.funds.post_many`); the cube as for any event.

    Used through :meth:`Writer.adjustments`. Between :meth:`add` and the end of its block, the
    caller uses the session only after :meth:`wait`."""

    writer: Writer
    person: models.Beneficiary
    kind: str
    reason: str
    pipeline: Pipeline = field(default_factory=Pipeline)
    waiting: list[Pending] = field(default_factory=list)
    stored: list[tuple[models.Claim, models.Settlement, list[models.SettlementLine]]] = field(
        default_factory=list
    )
    sent: bool = False

    async def add(self, item: Pending) -> None:
        """One more event; a statement is sent when :data:`EVENTS_PER_STATEMENT` are waiting."""
        self.waiting.append(item)
        if len(self.waiting) >= EVENTS_PER_STATEMENT:
            await self._send()

    async def wait(self) -> None:
        """Wait for the statement in flight: the session may be used."""
        await self.pipeline.wait()

    async def close(self) -> None:
        """Store what is waiting, wait for it, and write every event's fund entries."""
        if self.waiting:
            await self._send()
        await self.pipeline.wait()
        writer = self.writer
        if self.stored:
            counted: list[models.Settlement | models.SettlementLine] = []
            for _, row, lines in self.stored:
                counted += [row, *lines]
            metrics.written(writer.session.sync_session, counted)  # counted when it commits
            await funds.post_many(
                writer.session, writer.policies, self.person.region_code, self.stored
            )
        if self.sent:
            await writer.session.execute(PLANS_AS_BEFORE)

    async def _send(self) -> None:
        items, self.waiting = self.waiting, []
        writer = self.writer
        if not self.sent:  # nothing in flight yet: the session is free
            await writer.session.execute(GENERIC_PLANS)
            self.sent = True

        def noted(made: dict[int, tuple[int, datetime]]) -> None:
            self.stored += writer.note_events(self.kind, self.reason, items, made)

        await self.pipeline.send(
            lambda: writer.insert_events(self.person, self.kind, self.reason, items), noted
        )


GENERIC_PLANS = text("SET LOCAL plan_cache_mode = force_generic_plan")
"""Set before :class:`Events`' writes: each event, line and fund entry they store is
checked against its claim or event by a foreign key into a table partitioned by year (migration
0019), one query per row, which PostgreSQL plans again for each row under the default plan
cache mode (pruning makes a custom plan look cheaper); with generic plans (pruning at run
time) the checks of a re-run of 100 claims take about a third of the time. Only around those
writes: a generic plan cannot use an index for a bound LIKE pattern (the row rules' region
prefixes)."""
PLANS_AS_BEFORE = text("SET LOCAL plan_cache_mode = DEFAULT")
""":data:`GENERIC_PLANS` undone, for the rest of the transaction."""


STORE_EVENTS = text(
    """
WITH e AS (
  INSERT INTO settlements (claim_id, beneficiary_id, year, kind, policy, category, out_of_pocket,
                           reason, explanation, department, org)
  SELECT t.claim_id, :person, t.year, :kind, t.policy, t.category, t.oop, :reason,
         t.explanation::jsonb, :department, :org
  FROM unnest(CAST(:claims AS bigint[]), CAST(:years AS smallint[]), CAST(:policies AS text[]),
              CAST(:categories AS text[]), CAST(:oops AS numeric[]),
              CAST(:explanations AS text[]))
       WITH ORDINALITY AS t(claim_id, year, policy, category, oop, explanation, n)
  ORDER BY t.n
  RETURNING id, claim_id, year, created_at
),
l AS (
  INSERT INTO settlement_lines (settlement_id, payer, amount, beneficiary_id, year)
  SELECT e.id, x.payer, x.amount, :person, e.year
  FROM e JOIN unnest(CAST(:line_claims AS bigint[]), CAST(:payers AS text[]),
                     CAST(:amounts AS numeric[])) AS x(claim_id, payer, amount) USING (claim_id)
  ORDER BY e.id, x.payer
),
o AS (
  INSERT INTO outbox_events (type, beneficiary_id, subject, detail)
  SELECT 'CLAIM_CHANGED', :person, t.subject, CAST(:detail AS jsonb)
  FROM unnest(CAST(:numbers AS text[])) WITH ORDINALITY AS t(subject, n) ORDER BY t.n
  RETURNING id
)
SELECT e.id, e.claim_id, e.created_at,
       (SELECT pg_notify(:channel, '') FROM (SELECT FROM o LIMIT 1) AS w) AS notified
FROM e ORDER BY e.id
"""
)
""":meth:`Writer.insert_events`' statement: the events (parameters per event: ``claims``,
``years``, ``policies``, ``categories``, ``oops``, ``explanations`` as JSON text), the lines
(``line_claims``, ``payers``, ``amounts``: one row per event and payer) and one CLAIM_CHANGED
outbox event per claim (``numbers``, ``detail``) with the wake-up; returns each event's id,
claim id and time."""


@dataclass(frozen=True)
class Pending:
    """An event to store with others (:class:`Events`): its claim, payments and
    out-of-pocket, and how it was settled."""

    claim: models.Claim
    payments: Mapping[Payer, Decimal]
    out_of_pocket: Decimal
    policy: str
    category: str | None
    explanation: Explanation


RECOUNT = text(
    "SELECT (SELECT count(*) FROM claims c WHERE c.beneficiary_id = :person "
    "AND c.year = :year AND c.reversed_at IS NULL), "
    "(SELECT coalesce(sum(c.total_cost), 0) FROM claims c WHERE c.beneficiary_id = :person "
    "AND c.year = :year AND c.reversed_at IS NULL), "
    + ", ".join(f"sum(l.amount) FILTER (WHERE l.payer = '{p.value}')" for p in PAYERS)
    + " FROM settlement_lines l JOIN settlements s ON s.id = l.settlement_id "
    "AND l.year = s.year AND l.beneficiary_id = s.beneficiary_id "
    "WHERE s.beneficiary_id = :person AND s.year = :year"
)
"""What :meth:`Writer.recount_ledger` sums, in one statement: the year's claims not reversed,
their total cost, and each payer's lines (null: none)."""


def ledger_values(
    ledger: Ledger, paid: Mapping[Payer, Decimal], *, visits: int, total_cost: Decimal
) -> dict[str, Any]:
    """The ledger row's columns that :meth:`Writer.store_ledger` writes."""
    return {
        "state": ledger.to_dict(),
        **{payer.field_name: paid.get(payer, ZERO) for payer in Payer},
        "out_of_pocket": ledger.out_of_pocket,
        "visits": visits,
        "total_cost": total_cost,
        "updated_at": datetime.now(UTC),
    }


def _payments(result: VisitSettlement) -> dict[Payer, Decimal]:
    return {p: result.payments[p] for p in PAYERS}


async def settle(ctx: Context, data: ClaimInput) -> ClaimState:
    """Settle one claim (idempotent on the claim number). A hospital (row rule ``hospital``)
    submits claims of its own hospital code only: any other code, or none, is FORBIDDEN naming
    ``hospitalCode`` and the value sent, before anything is read or stored."""
    claim_input = check_claim(data, ctx.settings.today())
    if not ctx.rows.own_hospital(claim_input.hospital_code):
        code = claim_input.hospital_code
        raise Forbidden(
            f"hospitalCode = {code or '(none)'}: a hospital submits claims of its own hospital "
            "code only",
            field="hospitalCode",
            value=code,
        )
    digest = claim_input.content_hash()
    try:
        async with ctx.db.transaction() as session:
            return await _settle(session, ctx, claim_input, digest)
    except IntegrityError:
        # The same claim number committed by a concurrent request for another person.
        async with ctx.db.transaction() as session:
            return await _existing(session, claim_input, digest)


async def _existing(session: AsyncSession, data: ClaimInput, digest: str) -> ClaimState:
    """The stored claim of the same number, when it is this person's and this content.

    A claim number used by another person's claim (in any region) is one answer, whatever that
    claim is: nothing about it (its person, region, state or reversal) is told.
    """
    claim, owner = (
        await session.execute(
            select(models.Claim, models.Beneficiary.id_number)
            .join(models.Beneficiary, models.Beneficiary.id == models.Claim.beneficiary_id)
            .where(models.Claim.claim_number == data.visit.id)
        )
    ).one()
    if owner != data.id_number:
        raise Conflict(
            f"claimNumber = {data.visit.id}: already used by another person's claim",
            field="claimNumber",
        )
    if claim.reversed_at is not None:
        raise Conflict(
            f"claimNumber = {data.visit.id}: {_reversed(claim)}; a corrected claim gets a new "
            "claim number",
            field="claimNumber",
        )
    if claim.content_hash != digest:
        raise Conflict(
            f"claimNumber = {data.visit.id}: already settled with other content",
            field="claimNumber",
        )
    [state] = await claim_states(session, [claim])
    return state


def _reversed(claim: models.Claim) -> str:
    assert claim.reversed_at is not None
    when = claim.reversed_at.isoformat(timespec="seconds")
    return f"reversed at {when} ({claim.reversal_reason})"


def _insured(
    person: models.Beneficiary, data: ClaimInput, year: int, enrollment: models.Enrollment | None
) -> models.Enrollment | None:
    """§9.1: insured when an enrollment of the year is recorded; uninsured only when the claim
    says ``insured: false``; neither is PRECONDITION_FAILED."""
    if enrollment is not None:
        if data.insured is False:
            raise Conflict(
                f"insured = false: the person is enrolled for {year} "
                f"({enrollment.scheme.lower()} scheme)",
                field="insured",
            )
        if (
            enrollment.scheme == "EMPLOYEE"
            and data.visit.reported_amount(Payer.BASIC_INSURANCE) is None
        ):
            raise InvalidInput(
                "reported.basicInsurance",
                None,
                f"is required: the {year} enrollment is in the employee scheme (职工医保), whose "
                "basic payment the core system computes",
            )
        return enrollment
    if data.insured is False:
        return None
    raise PreconditionFailed(
        f"idNumber = {person.id_number}: no enrollment recorded for {year}: record it, or "
        "settle with insured: false",
        field="idNumber",
        year=year,
    )


async def _settle(session: AsyncSession, ctx: Context, data: ClaimInput, digest: str) -> ClaimState:
    person = await lock_person(session, ctx.rows, data.id_number)
    visit = data.visit
    year = visit.settlement_year
    try:
        region: str | None = ctx.policies.in_force(person.region_code, visit.admission_date).id
        region = closing_region(ctx.policies, region)
    except LookupError:
        region = None
    state = await person_year.read(session, person, year, visit.id, region)
    if state.known_claim is not None:
        return await _existing(session, data, digest)
    policy = ctx.policies.in_force(person.region_code, visit.admission_date)
    if state.closed:
        raise Conflict(
            f"admissionDate = {visit.admission_date.isoformat()}: settlement year {year} is "
            f"closed for {policy.region_code}",
            field="admissionDate",
        )
    enrollment = _insured(person, data, year, state.enrollment)
    subject = Person(
        region_code=person.region_code,
        birth_date=person.birth_date,
        insured=enrollment is not None,
        inclusive_commercial=bool(enrollment and enrollment.inclusive_commercial),
        categories=tuple(record_of(r) for r in state.records),
    )
    # The year's first claim: its ledger is inserted by the claim's statement (no other writer
    # can meanwhile: each locks the person first).
    row = state.ledger or models.Ledger(
        beneficiary_id=person.id,
        year=year,
        state=Ledger.empty(year).to_dict(),
        visits=0,
        total_cost=ZERO,
        **{payer.field_name: ZERO for payer in Payer},
    )
    try:
        result, ledger = settle_visit(
            ctx.policies, subject, visit, Ledger.from_dict(row.state), field="input"
        )
    except InvalidInput as exc:
        raise _input_field(exc) from None
    writer = Writer(
        session, ctx.principal, ctx.policies, records=state.records, alert=(state.alert,)
    )
    payments = _payments(result)
    # One claim more: its payments add to what the year has paid (no re-summing on this path);
    # the ledger is written in the statement that writes the claim (Writer.store_ledger's
    # columns).
    before = row.paid()
    stored_ledger = ledger_values(
        ledger,
        {p: before[p] + result.payments[p] for p in PAYERS},
        visits=row.visits + 1,
        total_cost=row.total_cost + visit.total_cost,
    )
    claim, event, lines = await insert_original(
        session,
        dict(
            claim_number=visit.id,
            beneficiary_id=person.id,
            year=year,
            type=visit.type.value,
            hospital_level=visit.hospital_level.value if visit.hospital_level else None,
            hospital_code=data.hospital_code,
            admission_date=visit.admission_date,
            discharge_date=visit.discharge_date,
            total_cost=visit.total_cost,
            policy_scope_cost=visit.policy_scope_cost,
            referral_compliant=visit.referral_compliant,
            in_province=visit.in_province,
            diagnosis=visit.diagnosis,
            special_treatment_hospital=visit.special_treatment_hospital,
            carrier=data.carrier,
            insured=subject.insured,
            # Enrolled in the plan of the claim's region (one where there is none pays nothing).
            inclusive_commercial=subject.inclusive_commercial
            and policy.inclusive_commercial is not None,
            reported=None if visit.reported is None else visit.reported.to_dict(),
            policy=result.policy_id,
            content_hash=digest,
        ),
        dict(
            beneficiary_id=person.id,
            year=year,
            kind="ORIGINAL",
            policy=result.policy_id,
            category=result.category.value if result.category else None,
            out_of_pocket=result.out_of_pocket,
            reason=None,
            explanation=result.explanation.stored(),
            department=ctx.principal.department,
            org=ctx.principal.org,
        ),
        [(p.value, payments.get(p, ZERO)) for p in PAYERS],
        (row, stored_ledger, state.ledger is None),
        Posting(
            funds.rules().settlement_entries(
                "ORIGINAL",
                payments,
                Parties(
                    person.region_code,
                    carrier=data.carrier,
                    hospital=data.hospital_code,
                    person=str(person.id),
                ),
            ),
            funds.policy_region(ctx.policies, result.policy_id),
            visit.discharge_date,
            {"kind": "ORIGINAL"},
        ),
    )
    await writer.stored(claim, event, lines, payments, posted=True)
    await writer.discover(person, row, subject.insured, "settleClaim")
    await audit.append(
        session,
        ctx.principal,
        action="WRITE",
        operation="settleClaim",
        beneficiary_ids=[person.id],
        detail={
            "claimNumber": claim.claim_number,
            "year": year,
            "payments": {p.value: str(a) for p, a in _payments(result).items()},
        },
    )
    return ClaimState(claim, [event], {event.id: writer.lines[event.id]})


# -- late news: re-running assistance (§9.4) ---------------------------------------------------

ASSISTANCE_PAYERS = (Payer.ASSISTANCE, Payer.SECONDARY_ASSISTANCE)
INSURANCE_PAYERS = tuple(p for p in PAYERS if p not in ASSISTANCE_PAYERS)


@dataclass(frozen=True)
class Change:
    """What a re-run changes (or would change, in a closed year) on one claim and payer."""

    claim_number: str
    payer: Payer
    amount: Decimal

    def to_dict(self) -> dict[str, str]:
        return {
            "claimNumber": self.claim_number,
            "payer": self.payer.value,
            "amount": str(self.amount),
        }


def visit_as_settled(claim: models.Claim, paid: Mapping[Payer, Decimal]) -> Visit:
    """The claim's visit with its insurance payments reported as what was paid (§9.3: insurance
    payments are final at settlement; a re-run only moves assistance)."""
    reported = None
    if claim.insured:
        covered = VisitType(claim.type) in INSURANCE_VISIT_TYPES
        reported = Reported(
            basic_insurance=paid[Payer.BASIC_INSURANCE],
            critical_illness=paid[Payer.CRITICAL_ILLNESS] if covered else None,
            inclusive_commercial=paid[Payer.INCLUSIVE_COMMERCIAL]
            if covered and claim.inclusive_commercial
            else None,
        )
    return _visit_of(claim, reported)


NO_EVENT = "-"
"""The latest category of a claim without any settlement event (:func:`settled_so_far`)."""
_SETTLED = text(
    "SELECT s.claim_id, (array_agg(s.category ORDER BY s.id DESC))[1], "
    + ", ".join(
        f"coalesce(sum(l.amount) FILTER (WHERE l.payer = '{payer.value}'), 0)" for payer in PAYERS
    )
    # The person and year (the claims' own, which their events and lines carry): the year's
    # partitions only (migration 0019).
    + " FROM settlements s LEFT JOIN settlement_lines l ON l.settlement_id = s.id "
    "AND l.year = s.year AND l.beneficiary_id = s.beneficiary_id "
    "WHERE s.beneficiary_id = :person AND s.year = :year AND s.claim_id = ANY(:ids) "
    "GROUP BY s.claim_id"
)


async def settled_so_far(
    session: AsyncSession, claims: Sequence[models.Claim]
) -> dict[int, tuple[dict[Payer, Decimal], str | None]]:
    """What each claim with settlement events has been paid by each payer (the sum of its
    events' lines, as :attr:`ClaimState.payments`) and the category of its latest event, by
    claim id, in one statement (neither the events nor their explanations are loaded). The
    claims are of one person and year."""
    if not claims:
        return {}
    [(person, year)] = {(c.beneficiary_id, c.year) for c in claims}
    found = await session.execute(
        _SETTLED, {"ids": [c.id for c in claims], "person": person, "year": year}
    )
    return {
        int(row[0]): (
            {
                payer: Decimal(amount).quantize(CENT)
                for payer, amount in zip(PAYERS, row[2:], strict=True)
            },
            row[1],
        )
        for row in found.all()
    }


async def pending_and_waived(
    session: AsyncSession, claims: Sequence[models.Claim]
) -> tuple[dict[int, models.Recovery], dict[int, Decimal]]:
    """Each claim's pending recovery (if any) and the total ever waived on it (W of §9.4)."""
    rows = (
        await session.scalars(
            select(models.Recovery)
            .where(
                models.Recovery.claim_id.in_([c.id for c in claims]),
                models.Recovery.status.in_(("PENDING", "WAIVED")),
            )
            .with_for_update()
        )
    ).all()
    pending = {r.claim_id: r for r in rows if r.status == "PENDING"}
    waived: dict[int, Decimal] = {}
    for r in rows:
        if r.status == "WAIVED":
            waived[r.claim_id] = waived.get(r.claim_id, ZERO) + r.amount
    return pending, waived


def recovery_split(
    paid: Mapping[Payer, Decimal], target: Mapping[Payer, Decimal], amount: Decimal | int
) -> dict[Payer, Decimal]:
    """How a recovery of ``amount`` falls on the two assistance payers: each payer's excess
    (paid − target; one may be negative); what is not asked back (waived before) is taken off
    the payers in payment order.

    >>> A, S = Payer.ASSISTANCE, Payer.SECONDARY_ASSISTANCE
    >>> def shown(split): return [str(split[A]), str(split[S])]
    >>> shown(recovery_split({A: Decimal(100), S: Decimal(50)}, {A: Decimal(80), S: ZERO}, 70))
    ['20.00', '50.00']
    >>> shown(recovery_split({A: Decimal(100), S: Decimal(50)}, {A: Decimal(80), S: ZERO}, 30))
    ['0.00', '30.00']
    """
    split = {p: paid[p] - target[p] for p in ASSISTANCE_PAYERS}
    excess = sum(split.values(), ZERO) - amount
    for payer in ASSISTANCE_PAYERS:
        cut = min(excess, max(split[payer], ZERO))
        split[payer] -= cut
        excess -= cut
    return {payer: amount.quantize(CENT) for payer, amount in split.items()}


async def rerun_year(
    writer: Writer,
    person: models.Beneficiary,
    year: int,
    cause: str,
    *,
    apply: bool = True,
    known: Sequence[models.Claim] | None = None,
) -> list[Change]:
    """Re-run the year's assistance (§9.4) with full knowledge and insurance as paid; with
    ``apply`` store adjustments (E ≥ P) and pending recoveries (E < P), else only say what would
    change (a closed year, §9.5). ``known``: the person's claims not reversed, when this
    transaction has read them already (the year's are taken from them, not read again). The
    person's identities and flags are read once per writer (:attr:`Writer.records`, which its
    alert reviews use too)."""
    session = writer.session
    row = await lock_ledger(session, person.id, year) if apply else None
    if known is not None:
        claims: Sequence[models.Claim] = sorted(
            (c for c in known if c.year == year and c.reversed_at is None), key=lambda c: c.id
        )
    else:
        claims = (
            await session.scalars(
                select(models.Claim)
                .where(
                    models.Claim.beneficiary_id == person.id,
                    models.Claim.year == year,
                    models.Claim.reversed_at.is_(None),
                )
                .order_by(models.Claim.id)
            )
        ).all()
    if writer.records is None:
        writer.records = await person_records(session, person)
    records = tuple(record_of(r) for r in writer.records)
    states = await settled_so_far(session, claims)
    pending, waived = await pending_and_waived(session, claims)
    ledger = Ledger.empty(year)
    changes: list[Change] = []
    any_insured = False
    # The adjustments are stored as they are computed (Events: each statement runs while the
    # engine settles the next claims); stored, all of them, when the block ends.
    async with writer.adjustments(person, cause) as adjustments:
        for claim in claims:
            paid, latest = states.get(claim.id, (dict.fromkeys(PAYERS, ZERO), NO_EVENT))
            subject = Person(
                person.region_code,
                person.birth_date,
                insured=claim.insured,
                inclusive_commercial=claim.inclusive_commercial,
                categories=records,
            )
            any_insured = any_insured or claim.insured
            result, ledger = settle_visit(
                writer.policies, subject, visit_as_settled(claim, paid), ledger
            )
            target = _payments(result)
            expected = sum((target[p] for p in ASSISTANCE_PAYERS), ZERO)
            so_far = sum((paid[p] for p in ASSISTANCE_PAYERS), ZERO)
            delta = {p: target[p] - paid[p] for p in ASSISTANCE_PAYERS}
            changes += [Change(claim.claim_number, p, a) for p, a in delta.items() if a]
            if not apply:
                continue
            category = result.category.value if result.category else None
            same_category = latest is not NO_EVENT and latest == category
            recovery = pending.get(claim.id)
            if expected >= so_far:
                if any(delta.values()) or not same_category:
                    await adjustments.add(
                        Pending(
                            claim,
                            delta,
                            -sum(delta.values(), ZERO),
                            result.policy_id,
                            category,
                            result.explanation,
                        )
                    )
                if recovery is not None:
                    await adjustments.wait()  # the session is free
                    await _set_recovery(writer, claim, recovery, None, cause)
            else:
                amount = max(ZERO, so_far - expected - waived.get(claim.id, ZERO))
                split = recovery_split(paid, target, amount)
                await adjustments.wait()  # the session is free
                await _set_recovery(
                    writer, claim, recovery, (amount, split) if amount else None, cause,
                    policy=result.policy_id,
                )  # fmt: skip
    if apply and row is not None:
        await writer.recount_ledger(row, ledger)
        await writer.discover(person, row, any_insured, cause)
    return changes


async def _set_recovery(
    writer: Writer,
    claim: models.Claim,
    current: models.Recovery | None,
    wanted: tuple[Decimal, Mapping[Payer, Decimal]] | None,
    cause: str,
    *,
    policy: str | None = None,
) -> None:
    """Create, change or withdraw the claim's one pending recovery; note it for the audit."""
    now = datetime.now(UTC)
    before = None if current is None else str(current.amount)
    if wanted is None:
        if current is None:
            return
        current.status = "WITHDRAWN"
        current.updated_at = now
        current.cause = cause[:500]
        after = None
    else:
        amount, split = wanted
        if current is None:
            current = models.Recovery(
                claim_id=claim.id,
                beneficiary_id=claim.beneficiary_id,
                year=claim.year,
                policy=policy or claim.policy or "",
                status="PENDING",
                amount=amount,
                assistance=split[Payer.ASSISTANCE],
                secondary_assistance=split[Payer.SECONDARY_ASSISTANCE],
                cause=cause[:500],
            )
            writer.session.add(current)
        elif current.amount == amount and current.assistance == split[Payer.ASSISTANCE]:
            return
        else:
            current.amount = amount
            current.assistance = split[Payer.ASSISTANCE]
            current.secondary_assistance = split[Payer.SECONDARY_ASSISTANCE]
            current.updated_at = now
            current.cause = cause[:500]
        after = str(amount)
    await writer.session.flush()
    writer.recoveries.append({"claimNumber": claim.claim_number, "before": before, "after": after})
    writer.changed_recoveries[current.id] = (current, claim.claim_number)


def touched_years(
    policies: PolicySet,
    person: models.Beneficiary,
    claims: Sequence[models.Claim],
    before: CategoryRecord | None,
    after: CategoryRecord | None,
) -> list[int]:
    """The settlement years in which the changed record's effect (after §4.2 and §4.3) reaches a
    claim's stay: for some claim it counts differently before and after the change."""
    years: set[int] = set()
    for claim in claims:
        try:
            policy = policies.in_force(person.region_code, claim.admission_date)
        except LookupError:
            continue
        stay = (claim.admission_date, claim.discharge_date)
        old = (False, False) if before is None else counts(policy, before, *stay)
        new = (False, False) if after is None else counts(policy, after, *stay)
        if old != new:
            years.add(claim.year)
    return sorted(years)


async def late_news(
    writer: Writer,
    person: models.Beneficiary,
    years: Iterable[int],
    operation: str,
    cause: str,
    known: Sequence[models.Claim] | None = None,
) -> dict[str, Any]:
    """Re-run every open year of ``years``; for a closed one record what would have changed
    (§9.5). Returns what to say in the audit record. ``known``: the person's claims not
    reversed, as :func:`claims_of` read them in this transaction (None: read them)."""
    session = writer.session
    adjustments_before = len(writer.events)
    closed_years: list[int] = []
    for year in sorted(set(years)):
        policy_id = next((c.policy for c in known or () if c.year == year), None)
        if policy_id is None:
            policy_id = await session.scalar(
                select(models.Claim.policy)
                .where(models.Claim.beneficiary_id == person.id, models.Claim.year == year)
                .limit(1)
            )
        region = await closed_region(session, writer.policies, policy_id, year)
        if region is None:
            await rerun_year(writer, person, year, cause, known=known)
            continue
        changes = await rerun_year(writer, person, year, cause, apply=False, known=known)
        session.add(
            models.LateNews(
                beneficiary_id=person.id,
                year=year,
                region_code=region,
                operation=operation,
                changes=[c.to_dict() for c in changes],
                department=writer.principal.department,
                org=writer.principal.org,
            )
        )
        closed_years.append(year)
    await session.flush()
    detail: dict[str, Any] = {}
    if len(writer.events) > adjustments_before:
        detail["adjustments"] = len(writer.events) - adjustments_before
    if writer.recoveries:
        detail["recoveries"] = list(writer.recoveries)
    if closed_years:
        detail["closedYears"] = closed_years
    return detail


async def claims_of(session: AsyncSession, person: models.Beneficiary) -> list[models.Claim]:
    """The person's claims that are not reversed."""
    rows = await session.scalars(
        select(models.Claim).where(
            models.Claim.beneficiary_id == person.id, models.Claim.reversed_at.is_(None)
        )
    )
    return list(rows.all())


def _visit_of(claim: models.Claim, reported: Reported | None = None) -> Visit:
    return Visit(
        id=claim.claim_number,
        type=VisitType(claim.type),
        hospital_level=HospitalLevel(claim.hospital_level) if claim.hospital_level else None,
        admission_date=claim.admission_date,
        discharge_date=claim.discharge_date,
        total_cost=claim.total_cost,
        policy_scope_cost=claim.policy_scope_cost,
        referral_compliant=claim.referral_compliant,
        in_province=claim.in_province,
        diagnosis=claim.diagnosis,
        special_treatment_hospital=claim.special_treatment_hospital,
        reported=reported,
    )


async def reverse(ctx: Context, claim_number: str, reason: str) -> tuple[ClaimState, Consequences]:
    """Cancel a claim's settlement (refund, 追回) and re-run the rest of its year (§9.6); the
    claim's state afterwards and what the re-run stored on the other claims."""
    reason_text = check_text(reason, "reason", 500, required=True) or ""
    number = check_text(claim_number, "claimNumber", 64, required=True) or ""
    async with ctx.db.transaction() as session:
        found = (
            await session.scalars(
                select(models.Claim)
                .join(models.Beneficiary, models.Beneficiary.id == models.Claim.beneficiary_id)
                .where(models.Claim.claim_number == number, *ctx.rows.persons())
            )
        ).one_or_none()
        if found is None:
            raise NotFound(f"claimNumber = {number}: no such claim", field="claimNumber")
        person = await lock_person(session, ctx.rows, await id_number_of(session, found))
        claim = (
            await session.scalars(
                select(models.Claim)
                .where(models.Claim.id == found.id, models.Claim.year == found.year)
                .execution_options(populate_existing=True)
            )
        ).one()
        if claim.reversed_at is not None:
            raise Conflict(
                f"claimNumber = {number}: already {_reversed(claim)}", field="claimNumber"
            )
        if await closed_region(session, ctx.policies, claim.policy, claim.year):
            raise Conflict(
                f"claimNumber = {number}: settlement year {claim.year} is closed",
                field="claimNumber",
            )
        [state] = await claim_states(session, [claim])
        writer = Writer(session, ctx.principal, ctx.policies)
        pending, _ = await pending_and_waived(session, [claim])
        if claim.id in pending:
            await _set_recovery(writer, claim, pending[claim.id], None, f"reversal of {number}")
        latest = state.latest
        await writer.event(
            claim,
            "REVERSAL",
            {p: -state.payments[p] for p in PAYERS},
            -state.out_of_pocket,
            policy=latest.policy if latest else "",
            category=latest.category if latest else None,
            reason=reason_text,
        )
        claim.reversed_at = datetime.now(UTC)
        claim.reversal_reason = reason_text
        await session.flush()
        detail = await late_news(
            writer, person, [claim.year], "reverseSettlement", f"reversal of {claim.claim_number}"
        )
        await audit.append(
            session,
            ctx.principal,
            action="WRITE",
            operation="reverseSettlement",
            beneficiary_ids=[person.id],
            detail={"claimNumber": claim.claim_number, "reason": reason_text, **detail},
        )
        [state] = await claim_states(session, [claim])
        return state, writer.consequences()


async def id_number_of(session: AsyncSession, claim: models.Claim) -> str:
    number = await session.scalar(
        select(models.Beneficiary.id_number).where(models.Beneficiary.id == claim.beneficiary_id)
    )
    return str(number)
