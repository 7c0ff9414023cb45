"""Reading claims directly (health, insurers, medical insurance) and the carrier's
acknowledgement, always under the row rules of claims and of their persons."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from gateway.errors import NotFound
from gateway.storage import audit, models
from resolvers import outbox
from resolvers.context import Context
from resolvers.inputs import check_text
from resolvers.pages import Key, Order, Page, fetch_page

BY_ID = Order((models.Claim.id,))
ORDERS = {
    "ID": BY_ID,
    "ADMISSION_DATE_ASC": Order((models.Claim.admission_date, models.Claim.id)),
    "ADMISSION_DATE_DESC": Order((models.Claim.admission_date, models.Claim.id), descending=True),
}
"""The sort orders of the claims field, by the names of the GraphQL enum ClaimOrder."""


async def find(ctx: Context, claim_number: str) -> models.Claim | None:
    found: models.Claim | None = await ctx.one_or_none(
        select(models.Claim).where(
            models.Claim.claim_number == claim_number.strip(), *ctx.rows.claims_with_persons()
        )
    )
    return found


async def page(
    ctx: Context, *, year: int | None, order: Order, first: int, after: Key | None
) -> Page[models.Claim]:
    """``first + 1`` claims of the caller's rows after ``after`` in ``order``, and their count."""
    stmt = select(models.Claim).where(*ctx.rows.claims_with_persons())
    if year is not None:
        stmt = stmt.where(models.Claim.year == year)
    return await fetch_page(ctx.all, stmt, order, after, first)


async def acknowledge(ctx: Context, claim_number: str) -> models.Claim:
    """The carrier confirms receipt of a claim (idempotent)."""
    number = check_text(claim_number, "claimNumber", 64, required=True) or ""
    async with ctx.db.transaction() as session:
        claim = (
            await session.scalars(
                select(models.Claim)
                .where(models.Claim.claim_number == number, *ctx.rows.claims_with_persons())
                .with_for_update()
            )
        ).one_or_none()
        if claim is None:
            raise NotFound(f"claimNumber = {number}: no such claim", field="claimNumber")
        if claim.acknowledged_at is None:
            claim.acknowledged_at = datetime.now(UTC)
            claim.acknowledged_by = ctx.principal.org
            await session.flush()
            await audit.append(
                session,
                ctx.principal,
                action="WRITE",
                operation="acknowledgeClaim",
                beneficiary_ids=[claim.beneficiary_id],
                detail={"claimNumber": claim.claim_number},
            )
            await outbox.claim_changed(session, claim, acknowledged=True)
        return claim
