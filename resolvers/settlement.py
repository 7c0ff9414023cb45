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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import audit, models, resident_id
from gateway.auth import Principal
from gateway.context import Context
from gateway.errors import Conflict, NotFound
from policies.benefits import PolicySet
from policies.engine import (
    CategoryRecord,
    Ledger,
    Person,
    Visit,
    VisitSettlement,
    settle_visit,
    validate_visit,
)
from policies.errors import InvalidInput
from policies.vocabulary import PAYERS, Category, HospitalLevel, Payer, VisitType
from resolvers.beneficiaries import lock_person
from resolvers.inputs import check_money, check_text

ZERO = Decimal("0.00")
CENT = Decimal("0.01")


@dataclass(frozen=True)
class ClaimInput:
    """A claim as billed: the visit (its id is the claim number) and who and where."""

    id_number: str
    visit: Visit
    carrier: str | None = None
    hospital_code: str | None = None

    def content_hash(self) -> str:
        """Identifies the billed content: the same claim number must always carry it."""
        body = {
            **{k: _jsonable(v) for k, v in dataclasses.asdict(self.visit).items()},
            "idNumber": self.id_number,
            "carrier": self.carrier,
            "hospitalCode": self.hospital_code,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _jsonable(value: object) -> object:
    """Dates as ISO text, amounts and enums as their text, the rest as it is."""
    if value is None or isinstance(value, bool | int):
        return value
    return value.isoformat() if isinstance(value, date) else str(value)


def check_claim(data: ClaimInput) -> ClaimInput:
    """Normalise and validate a claim; InvalidInput names the input field and its value."""
    visit = data.visit
    checked = ClaimInput(
        id_number=resident_id.parse(data.id_number).number,
        visit=dataclasses.replace(
            visit,
            id=check_text(visit.id, "claimNumber", 64, required=True) or "",
            total_cost=check_money("totalCost", visit.total_cost),
            policy_scope_cost=check_money("policyScopeCost", visit.policy_scope_cost),
            diagnosis=(check_text(visit.diagnosis, "diagnosis", 20) or "").upper() or None,
        ),
        carrier=check_text(data.carrier, "carrier", 120),
        hospital_code=check_text(data.hospital_code, "hospitalCode", 40),
    )
    try:
        validate_visit(checked.visit, field="input")
    except InvalidInput as exc:
        # The engine names "input.<field>"; the API names the input field itself.
        raise InvalidInput(exc.field.removeprefix("input."), exc.value, exc.reason) from None
    return checked


def stored_explanation(result: VisitSettlement) -> dict[str, Any]:
    """The explanation kept with a settlement event (JSON, with the rendered text)."""
    return result.explanation.to_dict()


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


async def engine_person(session: AsyncSession, person: models.Beneficiary, year: int) -> Person:
    """The person as the engine sees them for a settlement year: categories, flags, enrollment."""
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
    rows: list[models.Identity | models.MonitoringFlag] = [*identities.all(), *flags.all()]
    records = [CategoryRecord(Category(r.category), r.valid_from, r.valid_to) for r in rows]
    enrollment = (
        await session.scalars(
            select(models.Enrollment).where(
                models.Enrollment.beneficiary_id == person.id, models.Enrollment.year == year
            )
        )
    ).one_or_none()
    return Person(
        region_code=person.region_code,
        birth_date=person.birth_date,
        insured=enrollment is not None,
        inclusive_commercial=bool(enrollment and enrollment.inclusive_commercial),
        categories=tuple(records),
    )


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
    events = (
        await session.scalars(
            select(models.Settlement)
            .where(models.Settlement.claim_id.in_(ids))
            .order_by(models.Settlement.id)
        )
    ).all()
    lines = (
        await session.scalars(
            select(models.SettlementLine).where(
                models.SettlementLine.settlement_id.in_([e.id for e in events])
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


# -- writing ----------------------------------------------------------------------------------


@dataclass
class Writer:
    """Stores settlement events and ledgers for one transaction, on behalf of one caller."""

    session: AsyncSession
    principal: Principal
    policies: PolicySet
    events: list[models.Settlement] = field(default_factory=list)
    lines: dict[int, list[models.SettlementLine]] = field(default_factory=dict)

    async def event(
        self,
        claim: models.Claim,
        kind: str,
        payments: dict[Payer, Decimal],
        out_of_pocket: Decimal,
        *,
        policy: str,
        category: str | None,
        explanation: dict[str, Any],
        reason: str | None = None,
    ) -> models.Settlement:
        event = models.Settlement(
            claim_id=claim.id,
            beneficiary_id=claim.beneficiary_id,
            year=claim.year,
            kind=kind,
            policy=policy,
            category=category,
            out_of_pocket=out_of_pocket,
            reason=reason,
            explanation=explanation,
            department=self.principal.department,
            org=self.principal.org,
        )
        self.session.add(event)
        await self.session.flush()
        lines = [
            models.SettlementLine(settlement_id=event.id, payer=p.value, amount=payments[p])
            for p in PAYERS
        ]
        self.session.add_all(lines)
        self.lines[event.id] = lines
        self.events.append(event)
        return event

    async def store_ledger(
        self, row: models.Ledger, ledger: Ledger, total_cost: Decimal, visits: int
    ) -> None:
        paid = ledger.paid_by_payer
        row.state = ledger.to_dict()
        row.basic_insurance = paid[Payer.BASIC_INSURANCE]
        row.critical_illness = paid[Payer.CRITICAL_ILLNESS]
        row.inclusive_commercial = paid[Payer.INCLUSIVE_COMMERCIAL]
        row.assistance = paid[Payer.ASSISTANCE]
        row.secondary_assistance = paid[Payer.SECONDARY_ASSISTANCE]
        row.out_of_pocket = ledger.out_of_pocket
        row.total_cost = total_cost
        row.visits = visits
        row.updated_at = datetime.now(UTC)
        await self.session.flush()

    async def discover(self, person: models.Beneficiary, row: models.Ledger, insured: bool) -> None:
        """主动发现: open an alert when an insured person's yearly out-of-pocket passes the
        policy's threshold (攀枝花 第十八条); keep an open alert's figure current."""
        if not insured or row.visits == 0:
            return
        try:
            policy = self.policies.in_force(person.region_code, date(row.year, 12, 31))
        except LookupError:
            return
        threshold = policy.discovery_threshold(row.year)
        if threshold is None or row.out_of_pocket <= threshold:
            return
        stmt = pg_insert(models.HighCostAlert).values(
            beneficiary_id=person.id,
            year=row.year,
            out_of_pocket=row.out_of_pocket,
            threshold=threshold,
            status="OPEN",
        )
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["beneficiary_id", "year"],
                set_={"out_of_pocket": stmt.excluded.out_of_pocket},
                where=models.HighCostAlert.status == "OPEN",
            )
        )


def _payments(result: VisitSettlement) -> dict[Payer, Decimal]:
    return {p: result.payments[p] for p in PAYERS}


async def settle(ctx: Context, data: ClaimInput) -> ClaimState:
    """Settle one claim (idempotent on the claim number)."""
    claim_input = check_claim(data)
    digest = claim_input.content_hash()
    try:
        async with ctx.db.transaction() as session:
            return await _settle(session, ctx, claim_input, digest)
    except IntegrityError:
        # The same claim number committed by a concurrent request for another person.
        async with ctx.db.transaction() as session:
            return await _existing(session, claim_input, digest)


async def _existing(session: AsyncSession, data: ClaimInput, digest: str) -> ClaimState:
    claim = (
        await session.scalars(
            select(models.Claim).where(models.Claim.claim_number == data.visit.id)
        )
    ).one()
    if claim.content_hash != digest:
        raise Conflict(
            f"claimNumber = {data.visit.id}: already settled with other content",
            field="claimNumber",
        )
    [state] = await claim_states(session, [claim])
    return state


async def _settle(session: AsyncSession, ctx: Context, data: ClaimInput, digest: str) -> ClaimState:
    person = await lock_person(session, ctx.rows, data.id_number)
    known = await session.scalar(
        select(models.Claim.id).where(models.Claim.claim_number == data.visit.id)
    )
    if known is not None:
        return await _existing(session, data, digest)
    visit = data.visit
    year = visit.settlement_year
    subject = await engine_person(session, person, year)
    row = await lock_ledger(session, person.id, year)
    result, ledger = settle_visit(ctx.policies, subject, visit, Ledger.from_dict(row.state))
    claim = models.Claim(
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
        content_hash=digest,
    )
    session.add(claim)
    await session.flush()
    writer = Writer(session, ctx.principal, ctx.policies)
    event = await writer.event(
        claim,
        "ORIGINAL",
        _payments(result),
        result.out_of_pocket,
        policy=result.policy_id,
        category=result.category.value if result.category else None,
        explanation=stored_explanation(result),
    )
    await writer.store_ledger(row, ledger, row.total_cost + visit.total_cost, row.visits + 1)
    await writer.discover(person, row, subject.insured)
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


async def resettle(
    writer: Writer, person: models.Beneficiary, years: Iterable[int], reason: str
) -> list[models.Settlement]:
    """Re-run each year with full knowledge; store an adjustment for every claim whose amounts
    (or category) differ from the sum of its events. Returns the adjustments made."""
    session = writer.session
    made: list[models.Settlement] = []
    for year in sorted(set(years)):
        row = await lock_ledger(session, person.id, year)
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
        subject = await engine_person(session, person, year)
        ledger = Ledger.empty(year)
        states = await claim_states(session, claims)
        for state in states:
            result, ledger = settle_visit(writer.policies, subject, _visit_of(state.claim), ledger)
            target = _payments(result)
            delta = {p: target[p] - state.payments[p] for p in PAYERS}
            category = result.category.value if result.category else None
            latest = state.latest
            same_category = latest is not None and latest.category == category
            if any(delta.values()) or not same_category:
                made.append(
                    await writer.event(
                        state.claim,
                        "ADJUSTMENT",
                        delta,
                        result.out_of_pocket - state.out_of_pocket,
                        policy=result.policy_id,
                        category=category,
                        explanation=stored_explanation(result),
                        reason=reason,
                    )
                )
        total = sum((c.total_cost for c in claims), ZERO)
        await writer.store_ledger(row, ledger, total, len(claims))
        await writer.discover(person, row, subject.insured)
    return made


def _visit_of(claim: models.Claim) -> Visit:
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
    )


async def years_with_claims(session: AsyncSession, person: models.Beneficiary) -> list[int]:
    rows = await session.scalars(
        select(models.Claim.year).where(models.Claim.beneficiary_id == person.id).distinct()
    )
    return sorted(rows.all())


async def reverse(ctx: Context, claim_number: str, reason: str) -> ClaimState:
    """Cancel a claim's settlement (refund, 追回) and re-settle the rest of its year."""
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
        person = await lock_person(session, ctx.rows, await _id_number(session, found))
        claim = (
            await session.scalars(
                select(models.Claim)
                .where(models.Claim.id == found.id)
                .execution_options(populate_existing=True)
            )
        ).one()
        if claim.reversed_at is not None:
            [state] = await claim_states(session, [claim])
            return state
        [state] = await claim_states(session, [claim])
        writer = Writer(session, ctx.principal, ctx.policies)
        latest = state.latest
        await writer.event(
            claim,
            "REVERSAL",
            {p: -state.payments[p] for p in PAYERS},
            -state.out_of_pocket,
            policy=latest.policy if latest else "",
            category=latest.category if latest else None,
            explanation={},
            reason=reason_text,
        )
        claim.reversed_at = datetime.now(UTC)
        claim.reversal_reason = reason_text
        await session.flush()
        adjustments = await resettle(
            writer, person, [claim.year], f"re-settled after reversal of {claim.claim_number}"
        )
        await audit.append(
            session,
            ctx.principal,
            action="WRITE",
            operation="reverseSettlement",
            beneficiary_ids=[person.id],
            detail={
                "claimNumber": claim.claim_number,
                "reason": reason_text,
                "adjustedClaims": len(adjustments),
            },
        )
        [state] = await claim_states(session, [claim])
        return state


async def _id_number(session: AsyncSession, claim: models.Claim) -> str:
    number = await session.scalar(
        select(models.Beneficiary.id_number).where(models.Beneficiary.id == claim.beneficiary_id)
    )
    return str(number)
