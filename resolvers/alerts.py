"""High-cost alerts (主动发现): listing and resolving, under the row rules."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from gateway.errors import Conflict, NotFound
from gateway.storage import audit, models
from policies.errors import InvalidInput
from resolvers.context import Context
from resolvers.inputs import check_text
from resolvers.pages import Key, Order, Page, fetch_page

_ALERT = models.HighCostAlert
ORDERS = {
    "ID": Order((_ALERT.id,)),
    "OUT_OF_POCKET_DESC": Order((_ALERT.out_of_pocket, _ALERT.id), descending=True),
    "OUT_OF_POCKET_ASC": Order((_ALERT.out_of_pocket, _ALERT.id)),
}
"""The sort orders of the highCostAlerts field, by the names of the GraphQL enum AlertOrder."""


async def page(
    ctx: Context,
    *,
    status: str | None,
    year: int | None,
    order: Order,
    first: int,
    after: Key | None,
) -> Page[models.HighCostAlert]:
    """``first + 1`` alerts of the caller's rows after ``after`` in ``order``, and their count."""
    stmt = select(models.HighCostAlert).where(
        ctx.rows.person_of(models.HighCostAlert.beneficiary_id)
    )
    if status is not None:
        stmt = stmt.where(models.HighCostAlert.status == status)
    if year is not None:
        stmt = stmt.where(models.HighCostAlert.year == year)
    return await fetch_page(ctx.all, stmt, order, after, first)


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
