"""A new claim, its ORIGINAL settlement event, the event's lines and the year's ledger, written
in one statement
(issue 15, a lean settlement path): ``INSERT … RETURNING`` of each in a chain of CTEs, read back
as model objects of the session (persistent, as if added and flushed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Numeric, String, func, insert, literal, select, true, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value

from gateway import metrics
from gateway.storage import models


async def insert_original(
    session: AsyncSession,
    claim: Mapping[str, Any],
    event: Mapping[str, Any],
    lines: Sequence[tuple[str, Decimal]],
    ledger: tuple[models.Ledger, Mapping[str, Any]],
) -> tuple[models.Claim, models.Settlement, list[models.SettlementLine]]:
    """Write the claim (``claim``: its column values), the event (its values but ``claim_id``),
    the lines (payer, amount; kept in this order) and the year's ledger (the row, locked, and
    the values of the columns that change) at once; the first three as model objects, and the
    ledger row holding its new values."""
    year_row, changes = ledger
    updated = (
        update(models.Ledger)
        .where(
            models.Ledger.beneficiary_id == year_row.beneficiary_id,
            models.Ledger.year == year_row.year,
        )
        .values(**changes)
        .returning(models.Ledger.year)
        .cte("ledger")
    )
    claims = insert(models.Claim).values(**claim).returning(*models.Claim.__table__.c).cte("c")
    event_columns = [models.Settlement.claim_id, *(getattr(models.Settlement, k) for k in event)]
    events = (
        insert(models.Settlement)
        .from_select(
            [c.key for c in event_columns],
            select(
                claims.c.id,
                *(literal(v, getattr(models.Settlement, k).type) for k, v in event.items()),
            ),
        )
        .returning(*models.Settlement.__table__.c)
        .cte("s")
    )
    given = (
        func.unnest(
            literal([p for p, _ in lines], ARRAY(String)),
            literal([a for _, a in lines], ARRAY(Numeric(14, 2))),
        )
        .table_valued("payer", "amount")
        .render_derived(name="given")
    )
    written = (
        insert(models.SettlementLine)
        .from_select(
            ["settlement_id", "payer", "amount"],
            select(events.c.id, given.c.payer, given.c.amount)
            .select_from(events)
            .join(given, true()),
        )
        .returning(*models.SettlementLine.__table__.c)
        .cte("l")
    )
    claim_row, event_row, line_row = (
        aliased(models.Claim, claims),
        aliased(models.Settlement, events),
        aliased(models.SettlementLine, written),
    )
    found = (
        await session.execute(
            select(claim_row, event_row, line_row)
            .select_from(written)
            .join(events, events.c.id == written.c.settlement_id)
            .join(claims, claims.c.id == events.c.claim_id)
            .add_cte(updated)
        )
    ).all()
    order = {payer: n for n, (payer, _) in enumerate(lines)}
    stored = sorted((r[2] for r in found), key=lambda line: order[line.payer])
    new_claim, new_event = found[0][0], found[0][1]
    # The objects hold the values given, as objects added and flushed do (not their text read
    # back: JSONB reorders keys); only what the database made (ids, times) comes from it.
    for row, values in ((new_claim, claim), (new_event, event)):
        for key, value in values.items():
            set_committed_value(row, key, value)
    for line, (_, amount) in zip(stored, lines, strict=True):
        set_committed_value(line, "amount", amount)
    for key, value in changes.items():
        set_committed_value(year_row, key, value)
    metrics.written(session.sync_session, [new_event, *stored])
    return new_claim, new_event, stored
