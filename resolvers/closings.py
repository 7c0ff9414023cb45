"""Closing a settlement year (SETTLEMENT.md §9.5) and the late news recorded for closed years.

Once medical insurance closes a year for a policy's region, that year's claims are never re-run,
no claim of that year can be settled or reversed, and late news that touches it is recorded here
with what a re-run would have changed, moving no money.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import func, select

from gateway.errors import Conflict
from gateway.storage import audit, models
from policies.benefits import Policy
from policies.errors import InvalidInput
from resolvers import reconciliation
from resolvers.context import Context
from resolvers.inputs import check_in_token, check_region, shares_region
from resolvers.pages import Key, Order, Page, fetch_page

BY_ID = Order((models.LateNews.id,))


def _policies_of(ctx: Context, region_code: str, year: int) -> list[Policy]:
    """The policies of that region code in force at some time in ``year``."""
    found = [
        p
        for p in ctx.policies
        if p.region_code == region_code and p.overlaps(date(year, 1, 1), date(year, 12, 31))
    ]
    if not found:
        raise InvalidInput(
            "regionCode",
            region_code,
            f"is not the region code of a benefit policy in force in {year} "
            f"(e.g. {', '.join(sorted({p.region_code for p in ctx.policies}))})",
        )
    return found


async def close_year(ctx: Context, region_code: str, year: int) -> models.SettlementYearClosing:
    """Close ``year`` for the policy region (idempotent). Refused while a recovery of that year
    is pending (CONFLICT naming how many) or the year's fund ledgers do not reconcile (CONFLICT
    naming the first difference), for a year not yet over (BAD_INPUT), and outside the
    caller's regions (FORBIDDEN)."""
    check_region(region_code)
    today = ctx.settings.today()
    if not 1990 <= year < today.year:
        raise InvalidInput(
            "year", year, f"only a past settlement year can be closed (today is {today})"
        )
    policies = _policies_of(ctx, region_code, year)
    # The whole policy region must be the token's: a 6-digit code is checked as it is.
    check_in_token(ctx.principal, "regionCode", region_code)
    async with ctx.db.transaction() as session:
        existing = await session.get(models.SettlementYearClosing, (region_code, year))
        if existing is not None:
            return existing
        pending = await session.scalar(
            select(func.count()).where(
                models.Recovery.status == "PENDING",
                models.Recovery.year == year,
                models.Recovery.policy.in_([p.id for p in policies]),
            )
        )
        if pending:
            raise Conflict(
                f"year = {year}: {pending} recoveries of {region_code} are still pending; "
                "decide them (decideRecovery) before closing",
                field="year",
            )
        await reconciliation.refuse_differences(session, policies[-1].region_prefix, year)
        closing = models.SettlementYearClosing(
            region_code=region_code,
            year=year,
            policy=policies[-1].id,
            department=ctx.principal.department,
            org=ctx.principal.org,
        )
        session.add(closing)
        await session.flush()
        await audit.append(
            session,
            ctx.principal,
            action="WRITE",
            operation="closeSettlementYear",
            beneficiary_ids=[],
            detail={"regionCode": region_code, "year": year},
        )
        await session.refresh(closing)
        return closing


async def late_news_page(
    ctx: Context, *, region_code: str | None, year: int | None, first: int, after: Key | None
) -> Page[models.LateNews]:
    """Late news recorded for closed years, of the caller's rows, oldest first; ``region_code``
    as for :func:`closed_years`."""
    stmt = select(models.LateNews).where(ctx.rows.person_of(models.LateNews.beneficiary_id))
    if region_code is not None:
        stmt = stmt.where(models.LateNews.region_code == _policy_region(ctx, region_code))
    if year is not None:
        stmt = stmt.where(models.LateNews.year == year)
    return await fetch_page(ctx.all, stmt, BY_ID, after, first)


async def closed_years(
    ctx: Context, region_code: str | None, year: int | None
) -> Sequence[models.SettlementYearClosing]:
    """Closed settlement years of policy regions that share a region with the token, newest
    first. ``region_code`` must be a policy's region code (else BAD_INPUT) whose region prefix
    shares a region with the token (else FORBIDDEN)."""
    stmt = select(models.SettlementYearClosing)
    if region_code is not None:
        stmt = stmt.where(
            models.SettlementYearClosing.region_code == _policy_region(ctx, region_code)
        )
    if year is not None:
        stmt = stmt.where(models.SettlementYearClosing.year == year)
    rows = await ctx.all(
        stmt.order_by(
            models.SettlementYearClosing.year.desc(), models.SettlementYearClosing.region_code
        )
    )
    # A token for 5104 or 510402 sees the closings of 510400; one for 51 every 51xxxx policy.
    prefixes = _prefixes(ctx)
    return [
        r for r in rows if shares_region(ctx.principal, prefixes.get(r.region_code, r.region_code))
    ]


def _prefixes(ctx: Context) -> dict[str, str]:
    """Region prefix by policy region code, e.g. ``{"510400": "5104", "320000": "32"}``."""
    return {p.region_code: p.region_prefix for p in ctx.policies}


def _policy_region(ctx: Context, region_code: str) -> str:
    """``region_code`` when it is a policy's region code (BAD_INPUT naming the codes otherwise)
    whose region prefix shares a region with the token (FORBIDDEN otherwise)."""
    prefixes = _prefixes(ctx)
    prefix = prefixes.get(check_region(region_code))
    if prefix is None:
        raise InvalidInput(
            "regionCode",
            region_code,
            f"is not the region code of a benefit policy (one of {', '.join(sorted(prefixes))})",
        )
    return check_in_token(ctx.principal, "regionCode", region_code, prefix)
