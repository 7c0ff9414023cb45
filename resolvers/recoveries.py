"""Recoveries (追回) of assistance paid above what a re-run gives (SETTLEMENT.md §9.4): listing,
and medical insurance's decision to recover or waive.

Nothing is taken back automatically: a re-run that lowers a claim's assistance sets the claim's
one pending recovery; ``RECOVER`` stores a RECOVERY event of negative lines (a receivable from the
person), ``WAIVE`` lets the payment stand (the amount is never asked back).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select

from gateway.errors import Conflict, NotFound
from gateway.storage import audit, models
from policies.errors import InvalidInput
from policies.money import ZERO
from policies.settlement.ledger import Ledger
from policies.vocabulary import Payer
from resolvers import settlement
from resolvers.beneficiaries import lock_person
from resolvers.context import Context
from resolvers.inputs import check_text
from resolvers.pages import Key, Order, Page, fetch_page

BY_ID = Order((models.Recovery.id,))

STATUSES = ("PENDING", "RECOVERED", "WAIVED", "WITHDRAWN")
DECISIONS = ("RECOVER", "WAIVE")


async def page(
    ctx: Context,
    *,
    status: str | None,
    year: int | None,
    claim_number: str | None,
    first: int,
    after: Key | None,
) -> Page[models.Recovery]:
    """Recoveries of the caller's rows, oldest first, filtered by status, year and claim."""
    stmt = select(models.Recovery).where(ctx.rows.person_of(models.Recovery.beneficiary_id))
    if status is not None:
        stmt = stmt.where(models.Recovery.status == status)
    if year is not None:
        stmt = stmt.where(models.Recovery.year == year)
    if claim_number is not None:
        stmt = stmt.where(
            models.Recovery.claim_id.in_(
                select(models.Claim.id).where(models.Claim.claim_number == claim_number)
            )
        )
    return await fetch_page(ctx.all, stmt, BY_ID, after, first)


async def claim_numbers(ctx: Context, rows: Sequence[models.Recovery]) -> dict[int, str]:
    found = await ctx.all(
        select(models.Claim).where(
            models.Claim.id.in_([r.claim_id for r in rows]),
            models.Claim.year.in_({r.year for r in rows}),  # their partitions only
        )
    )
    return {claim.id: claim.claim_number for claim in found}


async def decide(
    ctx: Context, recovery_id: str, decision: str, reason: str | None
) -> models.Recovery:
    """RECOVER or WAIVE a pending recovery (medical insurance; the access policy grants it).

    Raises BAD_INPUT for an unknown id or decision or a WAIVE without reason, NOT_FOUND outside
    the caller's rows, CONFLICT when the recovery is no longer pending.
    """
    if decision not in DECISIONS:
        raise InvalidInput("decision", decision, f"one of {', '.join(DECISIONS)}")
    text = check_text(reason, "reason", 500, required=decision == "WAIVE")
    try:
        key = int(recovery_id)
    except ValueError:
        raise InvalidInput("id", recovery_id, "not a recovery id of this API") from None
    async with ctx.db.transaction() as session:
        found = (
            await session.scalars(
                select(models.Recovery).where(
                    models.Recovery.id == key, ctx.rows.person_of(models.Recovery.beneficiary_id)
                )
            )
        ).one_or_none()
        if found is None:
            raise NotFound(f"id = {recovery_id}: no such recovery", field="id")
        # The claim's key (migration 0019): its person, year and id, as the recovery holds them.
        claim = await session.get_one(
            models.Claim, (found.beneficiary_id, found.year, found.claim_id)
        )
        person = await lock_person(session, ctx.rows, await settlement.id_number_of(session, claim))
        recovery = (
            await session.scalars(
                select(models.Recovery)
                .where(models.Recovery.id == key)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).one()
        if recovery.status != "PENDING":
            raise Conflict(
                f"id = {recovery_id}: not pending ({recovery.status.lower()})", field="id"
            )
        writer = settlement.Writer(session, ctx.principal, ctx.policies)
        recovery.decided_by = f"{ctx.principal.department}/{ctx.principal.org}"
        recovery.decided_at = datetime.now(UTC)
        recovery.decision_reason = text
        recovery.updated_at = recovery.decided_at
        if decision == "WAIVE":
            recovery.status = "WAIVED"
        else:
            lines = {
                Payer.ASSISTANCE: -recovery.assistance,
                Payer.SECONDARY_ASSISTANCE: -recovery.secondary_assistance,
            }
            [state] = await settlement.claim_states(session, [claim])
            latest = state.latest
            event = await writer.event(
                claim,
                "RECOVERY",
                lines,
                recovery.amount,
                policy=recovery.policy,
                category=latest.category if latest else None,
                reason=text or recovery.cause,
            )
            recovery.status = "RECOVERED"
            recovery.settlement_id = event.id
            row = await settlement.lock_ledger(session, person.id, claim.year)
            before = row.paid()
            await writer.store_ledger(
                row,
                Ledger.from_dict(row.state),
                {payer: before[payer] + lines.get(payer, ZERO) for payer in before},
                visits=row.visits,
                total_cost=row.total_cost,
            )
            await writer.discover(person, row, claim.insured, "decideRecovery")
        await session.flush()
        await audit.append(
            session,
            ctx.principal,
            action="WRITE",
            operation="decideRecovery",
            beneficiary_ids=[person.id],
            detail={
                "recovery": recovery.id,
                "claimNumber": claim.claim_number,
                "decision": decision,
                "amount": str(recovery.amount),
            },
        )
        return recovery
