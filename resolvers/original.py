"""A new claim, its ORIGINAL settlement event, the event's lines and the year's ledger, written
in one statement
(issue 15, a lean settlement path): ``INSERT … RETURNING`` of each in a chain of CTEs, read back
as model objects of the session (persistent, as if added and flushed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import (
    Numeric,
    Select,
    String,
    bindparam,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value

from gateway import metrics
from gateway.storage import models


def _bound(model: type[Any], prefix: str, key: str) -> Any:
    """A parameter named ``prefix`` + ``key`` of the type of the model's column ``key``."""
    return bindparam(prefix + key, type_=model.__table__.c[key].type)


@cache
def _statement(
    claim_keys: tuple[str, ...], event_keys: tuple[str, ...], ledger_keys: tuple[str, ...]
) -> Select[models.Claim, models.Settlement, models.SettlementLine]:
    """:func:`insert_original`'s statement for these columns, built once (parameters ``c_…``
    of the claim, ``e_…`` of the event, ``l_…`` of the ledger, ``payers`` and ``amounts``)."""
    Ledger, Claim, Settlement, Line = (
        models.Ledger,
        models.Claim,
        models.Settlement,
        models.SettlementLine,
    )
    updated = (
        update(Ledger)
        .where(
            Ledger.beneficiary_id == bindparam("l_beneficiary", type_=Ledger.beneficiary_id.type),
            Ledger.year == bindparam("l_year", type_=Ledger.year.type),
        )
        .values({k: _bound(Ledger, "l_", k) for k in ledger_keys})
        .returning(Ledger.year)
        .cte("ledger")
    )
    claims = (
        insert(Claim)
        .values({k: _bound(Claim, "c_", k) for k in claim_keys})
        .returning(*Claim.__table__.c)
        .cte("c")
    )
    events = (
        insert(Settlement)
        .from_select(
            ["claim_id", *event_keys],
            select(claims.c.id, *(_bound(Settlement, "e_", k) for k in event_keys)),
        )
        .returning(*Settlement.__table__.c)
        .cte("s")
    )
    given = (
        func.unnest(
            bindparam("payers", type_=ARRAY(String)),
            bindparam("amounts", type_=ARRAY(Numeric(14, 2))),
        )
        .table_valued("payer", "amount")
        .render_derived(name="given")
    )
    written = (
        insert(Line)
        .from_select(
            ["settlement_id", "payer", "amount"],
            select(events.c.id, given.c.payer, given.c.amount)
            .select_from(events)
            .join(given, true()),
        )
        .returning(*Line.__table__.c)
        .cte("l")
    )
    return (
        select(aliased(Claim, claims), aliased(Settlement, events), aliased(Line, written))
        .select_from(written)
        .join(events, events.c.id == written.c.settlement_id)
        .join(claims, claims.c.id == events.c.claim_id)
        .add_cte(updated)
    )


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
    statement = _statement(tuple(claim), tuple(event), tuple(changes))
    params = {
        **{f"c_{k}": v for k, v in claim.items()},
        **{f"e_{k}": v for k, v in event.items()},
        **{f"l_{k}": v for k, v in changes.items()},
        "l_beneficiary": year_row.beneficiary_id,
        "l_year": year_row.year,
        "payers": [p for p, _ in lines],
        "amounts": [a for _, a in lines],
    }
    found = (await session.execute(statement, params)).all()
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
