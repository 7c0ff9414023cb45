"""High-cost alerts (主动发现): listing and resolving, under the row rules."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select

from gateway.errors import Conflict, NotFound
from gateway.storage import audit, models
from policies.errors import InvalidInput
from resolvers.context import Context
from resolvers.inputs import check_text
from resolvers.pages import keyset


async def page(
    ctx: Context, *, status: str | None, year: int | None, first: int, after: int | None
) -> Sequence[models.HighCostAlert]:
    stmt = select(models.HighCostAlert).where(
        ctx.rows.person_of(models.HighCostAlert.beneficiary_id)
    )
    if status is not None:
        stmt = stmt.where(models.HighCostAlert.status == status)
    if year is not None:
        stmt = stmt.where(models.HighCostAlert.year == year)
    return await ctx.all(keyset(stmt, models.HighCostAlert.id, after, first))


async def resolve(ctx: Context, alert_id: str, resolution: str) -> models.HighCostAlert:
    """Close an open alert with what was done (assistance granted, not eligible, …)."""
    text = check_text(resolution, "resolution", 500, required=True) or ""
    try:
        key = int(alert_id)
    except ValueError:
        raise InvalidInput("id", alert_id, "not an alert id of this API") from None
    async with ctx.db.transaction() as session:
        alert = (
            await session.scalars(
                select(models.HighCostAlert)
                .where(
                    models.HighCostAlert.id == key,
                    ctx.rows.person_of(models.HighCostAlert.beneficiary_id),
                )
                .with_for_update()
            )
        ).one_or_none()
        if alert is None:
            raise NotFound(f"id = {alert_id}: no such alert", field="id")
        if alert.status == "RESOLVED":
            if alert.resolution == text:
                return alert
            raise Conflict(f"id = {alert_id}: already resolved", field="id")
        alert.status = "RESOLVED"
        alert.resolution = text
        alert.resolved_by = f"{ctx.principal.department}/{ctx.principal.org}"
        alert.resolved_at = datetime.now(UTC)
        await session.flush()
        await audit.append(
            session,
            ctx.principal,
            action="WRITE",
            operation="resolveAlert",
            beneficiary_ids=[alert.beneficiary_id],
            detail={"alert": alert.id, "year": alert.year},
        )
        return alert
