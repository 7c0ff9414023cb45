"""A new claim, its ORIGINAL settlement event, the event's lines, the year's ledger, the claim's
outbox event (and its wake-up) and the event's fund entries, written in one statement (issue 15,
a lean settlement path): ``INSERT … RETURNING`` of each in a chain of CTEs, read back as plain
rows and held as transient model objects (:func:`as_written`): the values given and what the
database made (ids, times). The claim's insert registers its
number (the trigger ``claims_register_number``, migration 0019): a claim number already
registered fails the statement (``IntegrityError``: the register's primary key), as the unique
claim number of unpartitioned ``claims`` did.

The fund entries are posted as :func:`resolvers.funds.post_at_once` posts them: the accounts
missing opened, nothing posted when the year is closed for the policy region (the statement says
so: the caller refuses and rolls back), nor when an account was opened by a transaction that
committed while the statement ran (then the caller posts step by step)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Numeric,
    Select,
    String,
    bindparam,
    column,
    exists,
    func,
    insert,
    literal,
    literal_column,
    null,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import manager_of_class, set_committed_value

from gateway import metrics
from gateway.storage import models
from gateway.storage.database import fetch_compiled
from gateway.storage.outbox import CHANNEL, OutboxEvent
from policies.funds import Entry
from resolvers import fund_months, funds


def _bound(model: type[Any], prefix: str, key: str) -> Any:
    """A parameter named ``prefix`` + ``key`` of the type of the model's column ``key``."""
    return bindparam(prefix + key, type_=model.__table__.c[key].type)


_WANT = (
    "unnest(CAST(:f_n AS int[]), CAST(:f_kinds AS text[]), CAST(:f_regions AS text[]), "
    "CAST(:f_parties AS text[]), CAST(:f_flows AS text[]), CAST(:f_sides AS text[]), "
    "CAST(:f_amounts AS numeric[])) AS want(n, kind, region_code, party, flow, side, amount)"
)
_SHUT = "SELECT FROM settlement_year_closings WHERE region_code = :f_region AND year = :f_year"
_OPENED = f"""
INSERT INTO fund_accounts (kind, region_code, party)
SELECT DISTINCT kind, region_code, party FROM {_WANT}
WHERE NOT EXISTS ({_SHUT}) ORDER BY 1, 2, 3
ON CONFLICT DO NOTHING RETURNING id, kind, region_code, party"""
_POSTED = f"""
INSERT INTO fund_entries (account_id, settlement_id, kind, flow, side, amount, year, booked_on)
SELECT e.account_id, s.id, s.kind, e.flow, e.side, e.amount, s.year, :f_booked_on
FROM s, (
  SELECT want.*, account.id AS account_id, count(*) OVER () AS found
  FROM {_WANT} JOIN (
    SELECT id, kind, region_code, party FROM opened
    UNION ALL
    SELECT a.id, a.kind, a.region_code, a.party FROM fund_accounts a
    WHERE (a.kind, a.region_code, a.party) IN (SELECT kind, region_code, party FROM {_WANT})
  ) account USING (kind, region_code, party)
) e
WHERE NOT EXISTS ({_SHUT}) AND e.found = :f_count
ORDER BY e.n
RETURNING account_id, flow, side, amount"""


def column_keys(model: type[models.Base]) -> tuple[str, ...]:
    """The attributes of ``model``'s columns, in the table's order (as ``*table.c`` selects)."""
    return tuple(c.key for c in model.__table__.columns)


_CLAIM = column_keys(models.Claim)
_EVENT = column_keys(models.Settlement)
_LINE = column_keys(models.SettlementLine)
"""The attributes of each table's columns, in the order the statement returns them."""

_Row = TypeVar("_Row", bound=models.Base)


def as_written(model: type[_Row], **values: Any) -> _Row:
    """A transient ``model`` object holding ``values`` as one read from its table holds them:
    set without attribute events, several times cheaper than the constructor (a re-run holds
    hundreds of events and lines). For rows written by a statement; never added to a session.
    Attributes not given read None, as a constructed object's do."""
    row: _Row = manager_of_class(model).new_instance()
    row.__dict__.update(values)
    return row


def values_at(keys: Sequence[str], row: Sequence[Any], start: int) -> dict[str, Any]:
    """The values of ``row`` from position ``start`` on, by the attributes ``keys``."""
    return dict(zip(keys, row[start : start + len(keys)], strict=True))


@cache
def _statement(
    claim_keys: tuple[str, ...],
    event_keys: tuple[str, ...],
    ledger_keys: tuple[str, ...],
    new_ledger: bool,
) -> Select[Any]:
    """:func:`insert_original`'s statement for these columns, built once (parameters ``c_…``
    of the claim, ``e_…`` of the event, ``l_…`` of the ledger, ``payers`` and ``amounts``, ``o_…``
    of the outbox event, ``f_…`` of the fund entries); the ledger updated, or inserted when
    ``new_ledger``."""
    Ledger, Claim, Settlement, Line = (
        models.Ledger,
        models.Claim,
        models.Settlement,
        models.SettlementLine,
    )
    person = bindparam("l_beneficiary", type_=Ledger.beneficiary_id.type)
    year = bindparam("l_year", type_=Ledger.year.type)
    values = {k: _bound(Ledger, "l_", k) for k in ledger_keys}
    updated = (
        (
            pg_insert(Ledger)
            .values(beneficiary_id=person, year=year, **values)
            .on_conflict_do_nothing()
            .returning(Ledger.year)
        )
        if new_ledger
        else (
            update(Ledger)
            .where(Ledger.beneficiary_id == person, Ledger.year == year)
            .values(values)
            .returning(Ledger.year)
        )
    ).cte("ledger")
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
        # not the explanation back (kilobytes of JSON decoded for nothing: the object gets the
        # value given)
        .returning(
            *(null().label(c.key) if c.key == "explanation" else c for c in Settlement.__table__.c)
        )
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
            ["settlement_id", "payer", "amount", "beneficiary_id", "year"],
            select(
                events.c.id, given.c.payer, given.c.amount, events.c.beneficiary_id, events.c.year
            )
            .select_from(events)
            .join(given, true()),
        )
        .returning(*Line.__table__.c)
        .cte("l")
    )
    told = (
        insert(OutboxEvent)
        .from_select(
            ["type", "beneficiary_id", "subject", "detail"],
            select(
                literal("CLAIM_CHANGED"),
                claims.c.beneficiary_id,
                claims.c.claim_number,
                bindparam("o_detail", type_=OutboxEvent.detail.type),
            ),
        )
        .returning(OutboxEvent.id)
        .cte("o")
    )
    opened = (
        text(_OPENED)
        .columns(
            column("id", BigInteger),
            column("kind", String),
            column("region_code", String),
            column("party", String),
        )
        .cte("opened")
    )
    posted = (
        text(_POSTED)
        .columns(
            column("account_id", BigInteger),
            column("flow", String),
            column("side", String),
            column("amount", Numeric),
        )
        .cte("posted")
    )
    Closing = models.SettlementYearClosing
    # The columns after the entities are one-time subqueries (init plans); they name the CTEs
    # that follow ``c``, ``s`` and ``l`` (which reference them) in the order written.
    return (
        select(
            *claims.c,
            *events.c,
            *written.c,
            select(func.pg_notify(CHANNEL, "")).select_from(told).scalar_subquery(),
            select(func.count()).select_from(opened).scalar_subquery(),
            select(func.count()).select_from(updated).scalar_subquery().label("ledgers"),
            exists()
            .where(
                Closing.region_code == bindparam("f_region", type_=String),
                Closing.year == bindparam("f_year", type_=Closing.year.type),
            )
            .label("shut"),
            select(
                func.json_agg(
                    literal_column(
                        "json_build_array(posted.account_id, posted.flow, posted.side, "
                        "posted.amount::text)"
                    )
                )
            )
            .select_from(events.join(posted, true()))  # ``s`` first: ``posted`` reads it
            .scalar_subquery()
            .label("posted"),
        )
        .select_from(written)
        .join(events, events.c.id == written.c.settlement_id)
        .join(claims, claims.c.id == events.c.claim_id)
        .add_cte(updated)
    )


@dataclass(frozen=True)
class Posting:
    """What the statement posts besides the claim: the event's fund entries (by the posting
    rules), the policy region whose closing of the claim's year refuses them, their booking day,
    and the outbox event's detail."""

    entries: Sequence[Entry]
    region: str | None
    booked_on: date
    detail: Mapping[str, Any]


async def insert_original(
    session: AsyncSession,
    claim: Mapping[str, Any],
    event: Mapping[str, Any],
    lines: Sequence[tuple[str, Decimal]],
    ledger: tuple[models.Ledger, Mapping[str, Any], bool],
    posting: Posting,
) -> tuple[models.Claim, models.Settlement, list[models.SettlementLine]]:
    """Write the claim (``claim``: its column values), the event (its values but ``claim_id``),
    the lines (payer, amount; kept in this order), the year's ledger (the row as read, locked,
    the values of the columns that change, and whether it is new: the year's first claim, the
    ledger is inserted), the outbox event and the fund entries at once; the first three as transient
    model objects, and the ledger row holding its new values. CONFLICT (from
    :mod:`resolvers.funds`) when the claim's year is closed for ``posting.region``."""
    year_row, changes, new_ledger = ledger
    statement = _statement(tuple(claim), tuple(event), tuple(changes), new_ledger)
    entries = posting.entries
    params = {
        **{f"c_{k}": v for k, v in claim.items()},
        **{f"e_{k}": v for k, v in event.items()},
        **{f"l_{k}": v for k, v in changes.items()},
        "l_beneficiary": year_row.beneficiary_id,
        "l_year": year_row.year,
        "payers": [p for p, _ in lines],
        "amounts": [a for _, a in lines],
        "o_detail": dict(posting.detail),
        **{f"f_{k}": v for k, v in funds.entry_params(entries).items()},
        "f_region": posting.region,
        "f_year": claim["year"],
        "f_booked_on": posting.booked_on,
    }
    # On the transaction's asyncpg connection (begun by the person's lock), the statement
    # compiled once: plain rows, not ORM entities; the objects are made from the values given
    # and what the database made (ids, times).
    found = await fetch_compiled(session, statement, params)
    first = found[0]
    extra = len(_CLAIM) + len(_EVENT) + len(_LINE)
    if first[extra + 2] != 1:  # the ledgers updated: the person's lock keeps every other writer
        raise RuntimeError(f"the ledger of {year_row.beneficiary_id} for {year_row.year} changed")
    if first[extra + 3] and posting.region is not None:  # the year is closed
        raise funds.refuse_closed(int(claim["year"]), posting.region)
    # The objects hold the values given, as objects added and flushed do (not their text read
    # back: JSONB reorders keys); only what the database made (ids, times) comes from it.
    new_claim = as_written(models.Claim, **{**values_at(_CLAIM, first, 0), **claim})
    new_event = as_written(models.Settlement, **{**values_at(_EVENT, first, len(_CLAIM)), **event})
    given = dict(lines)
    stored = [
        as_written(models.SettlementLine, **{**written, "amount": given[written["payer"]]})
        for written in (values_at(_LINE, row, len(_CLAIM) + len(_EVENT)) for row in found)
    ]
    order = {payer: n for n, (payer, _) in enumerate(lines)}
    stored.sort(key=lambda line: order[line.payer])
    for key, value in changes.items():
        set_committed_value(year_row, key, value)
    metrics.written(session.sync_session, [new_event, *stored])
    year, kind = int(claim["year"]), str(event["kind"])
    posted: list[list[Any]] = first[extra + 4] or []  # [account id, flow, side, amount]
    fund_months.add(
        session, ((a, year, posting.booked_on, kind, f, s, Decimal(m)) for a, f, s, m in posted)
    )
    if entries and not posted:  # an account opened by a concurrent transaction meanwhile
        await funds.store(session, entries, settlement_id=new_event.id, kind=kind, year=year,
                          booked_on=posting.booked_on)  # fmt: skip
    return new_claim, new_event, stored
