"""The dashboard rollup (issue 14): kept in the transaction of every settlement event.

Two tables (gateway/storage/models.py):

* ``dashboard_person_cells``: per person, year, dimension and value, the person's sums
  (claims, total cost, out-of-scope cost, out-of-pocket, each payer's amount);
* ``dashboard_cube``: per year, region code, dimension and value, the same sums and the persons
  behind them (those whose person cell is not all zero).

Distinct persons do not add up across months, categories or payers, which is why each dimension
has its own cells and the person cells say when someone enters or leaves one; they do add up
across region codes (a person has one region), so a region prefix is a sum over the cube's rows.

Dimensions and values: ``year`` (``-``: the whole year), ``month`` (``01``–``12``, of the
discharge date), ``category`` (as the event was settled, ``NONE`` without one), ``visit_type``,
``hospital_level`` (``NONE`` when not given), ``payer`` (one row per payer that paid the person,
only that payer's column filled), ``assisted`` (``-``: assistance or secondary assistance paid)
and, in the cube only, ``band`` (the person's yearly out-of-pocket band, by its lower bound in
yuan, :data:`BANDS`).

The cube is maintained by :func:`record` (the deltas of a transaction's events, written by one
SQL statement when it commits) and can be built again
from the settlement events by :func:`rebuild` (the migration's backfill; a test checks that
both agree). A person's region is taken from ``beneficiaries`` at each event: a person who moves
keeps the old region's rows until :func:`rebuild`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gateway.storage import models
from policies.vocabulary import PAYERS, Payer
from resolvers import pending

ZERO = Decimal("0.00")
BANDS: tuple[int, ...] = (0, 1_000, 3_000, 5_000, 10_000, 30_000, 50_000)
"""Lower bounds (yuan) of the yearly out-of-pocket bands; below 1,000 includes negatives."""

SUMS = (
    "claims",
    "total_cost",
    "out_of_scope",
    "out_of_pocket",
    *(payer.field_name for payer in PAYERS),
)
"""The additive columns of a cell, in order."""
MONEY = SUMS[1:]
ASSISTANCE = (Payer.ASSISTANCE, Payer.SECONDARY_ASSISTANCE)


def band_sql(column: str) -> str:
    """The band of ``column`` (yuan) as SQL: ``CASE WHEN c >= 50000 THEN '50000' … ELSE '0'``."""
    whens = " ".join(f"WHEN {column} >= {low} THEN '{low}'" for low in reversed(BANDS[1:]))
    return f"(CASE {whens} ELSE '0' END)"


def active_sql(alias: str) -> str:
    """Whether a person cell counts its person: anything in it is not zero."""
    return "(" + " OR ".join(f"{alias}.{c} <> 0" for c in SUMS) + ")"


_COLUMNS = ", ".join(SUMS)
_ADD = ", ".join(f"{c} = t.{c} + excluded.{c}" for c in SUMS)
_TYPES = {"beneficiary_id": "uuid", "year": "int", "dim": "text", "value": "text", "claims": "int"}
_KEYS = ("beneficiary_id", "year", "dim", "value")
_UNNEST = ", ".join(f"CAST(:{c} AS {_TYPES.get(c, 'numeric')}[])" for c in (*_KEYS, *SUMS))
_OLD_BAND = ", ".join("-o.out_of_pocket" if c == "out_of_pocket" else "0" for c in SUMS)
_NEW_BAND = ", ".join("n.out_of_pocket" if c == "out_of_pocket" else "0" for c in SUMS)

_RECORD_CTES = (
    f"""d AS (SELECT * FROM unnest({_UNNEST}) AS d({", ".join(_KEYS)}, {_COLUMNS})),
r AS (
  SELECT id AS beneficiary_id, region_code FROM beneficiaries
  WHERE id IN (SELECT beneficiary_id FROM d)
),
o AS (
  SELECT * FROM dashboard_person_cells
  WHERE (beneficiary_id, year) IN (SELECT beneficiary_id, year FROM d)
),
n AS (
  INSERT INTO dashboard_person_cells AS t ({", ".join(_KEYS)}, region_code, {_COLUMNS})
  SELECT {", ".join(f"d.{c}" for c in _KEYS)}, r.region_code, {", ".join(f"d.{c}" for c in SUMS)}
  FROM d JOIN r USING (beneficiary_id) ORDER BY {", ".join(f"d.{c}" for c in _KEYS)}
  ON CONFLICT ({", ".join(_KEYS)}) DO UPDATE
  SET region_code = excluded.region_code, {_ADD}
  RETURNING t.*
),
c AS (
  SELECT n.year, n.region_code, n.dim, n.value,
         {active_sql("n")}::int - coalesce({active_sql("o")}::int, 0) AS persons,
         {", ".join(f"d.{c}" for c in SUMS)}
  FROM n JOIN d USING ({", ".join(_KEYS)}) LEFT JOIN o USING ({", ".join(_KEYS)})
  UNION ALL
  SELECT o.year, o.region_code, 'band', {band_sql("o.out_of_pocket")}, -1, {_OLD_BAND}
  FROM o WHERE o.dim = 'year' AND {active_sql("o")}
  UNION ALL
  SELECT n.year, n.region_code, 'band', {band_sql("n.out_of_pocket")}, 1, {_NEW_BAND}
  FROM n WHERE n.dim = 'year' AND {active_sql("n")}
)""",
)
_RECORD_FINAL = f"""
INSERT INTO dashboard_cube AS t (year, region_code, dim, value, persons, {_COLUMNS})
SELECT c.year, c.region_code, c.dim, c.value, sum(c.persons), {
    ", ".join(f"sum(c.{c})" for c in SUMS)
}
FROM c GROUP BY c.year, c.region_code, c.dim, c.value
ORDER BY c.year, c.region_code, c.dim, c.value
ON CONFLICT (year, region_code, dim, value) DO UPDATE
SET persons = t.persons + excluded.persons, {_ADD}
"""
RECORD = text("WITH " + _RECORD_CTES[0] + _RECORD_FINAL)
"""A transaction's events into the person cells and the cube, in one statement: the persons' old
cells (the statement's snapshot, under the ledger locks of their person-years) against the new
ones say who enters or leaves a cell and a band. Both tables' rows are written in key order,
once per transaction, so concurrent transactions cannot deadlock on them."""


def deltas(
    claim: models.Claim,
    kind: str,
    payments: Mapping[Payer, Decimal],
    out_of_pocket: Decimal,
    category: str | None,
) -> list[tuple[str, str, tuple[int | Decimal, ...]]]:
    """The rows an event adds: ``(dim, value, sums)`` in the order of :data:`SUMS`.

    An ORIGINAL counts the claim and its costs, a REVERSAL takes them back; every event adds its
    payments and out-of-pocket (adjustments and recoveries are differences)."""
    sign = {"ORIGINAL": 1, "REVERSAL": -1}.get(kind, 0)
    paid = [payments.get(payer, ZERO) for payer in PAYERS]
    costs: tuple[int | Decimal, ...] = (
        sign,
        sign * claim.total_cost,
        sign * (claim.total_cost - claim.policy_scope_cost),
        out_of_pocket,
    )
    everything = (*costs, *paid)
    rows = [
        ("year", "-", everything),
        ("month", f"{claim.discharge_date.month:02d}", everything),
        ("category", category or "NONE", everything),
        ("visit_type", claim.type, everything),
        ("hospital_level", claim.hospital_level or "NONE", everything),
    ]
    nothing: tuple[int | Decimal, ...] = (0, ZERO, ZERO, ZERO)
    for i, payer in enumerate(PAYERS):
        if paid[i] != 0:
            only = [ZERO] * len(PAYERS)
            only[i] = paid[i]
            rows.append(("payer", payer.value, (*nothing, *only)))
    assisted = [paid[i] if payer in ASSISTANCE else ZERO for i, payer in enumerate(PAYERS)]
    if any(assisted):
        rows.append(("assisted", "-", (*nothing, *assisted)))
    return rows


PENDING = "dashboard_cube"
"""The key of a session's ``info`` under which its transaction's deltas wait for the commit."""
Key = tuple[uuid.UUID, int, str, str]


def record(
    session: AsyncSession,
    claim: models.Claim,
    kind: str,
    payments: Mapping[Payer, Decimal],
    out_of_pocket: Decimal,
    category: str | None,
) -> None:
    """Add one settlement event to the rollup of the caller's transaction (called at the end of
    ``resolvers.settlement.Writer.event``): summed in memory per person cell, written by one
    statement just before the transaction commits (:func:`write_pending`), dropped if it rolls
    back."""
    cells: dict[Key, list[int | Decimal]] = session.info.setdefault(PENDING, {})
    for dim, value, sums in deltas(claim, kind, payments, out_of_pocket, category):
        key = (claim.beneficiary_id, claim.year, dim, value)
        cell = cells.setdefault(key, [0, *([ZERO] * (len(SUMS) - 1))])
        for i, amount in enumerate(sums):
            cell[i] += amount


def write_pending(cells: dict[Key, list[int | Decimal]]) -> pending.Part:
    """:data:`RECORD` of the deltas the session's transaction recorded, as its part of the
    statement run just before it commits (:mod:`resolvers.pending`)."""
    keys = sorted(cells)
    params: dict[str, object] = {c: [k[i] for k in keys] for i, c in enumerate(_KEYS)}
    for i, column in enumerate(SUMS):
        params[column] = [cells[k][i] for k in keys]
    return pending.Part(_RECORD_CTES, _RECORD_FINAL, params)


pending.register(PENDING, write_pending)


_LINES = ", ".join(
    f"sum(amount) FILTER (WHERE payer = '{payer.value}') AS {payer.field_name}" for payer in PAYERS
)
_VALUES = ",\n    ".join(
    [
        f"('{dim}', {value}, {_COLUMNS})"
        for dim, value in (
            ("year", "'-'"),
            ("month", "to_char(e.discharge_date, 'MM')"),
            ("category", "coalesce(e.category, 'NONE')"),
            ("visit_type", "e.type"),
            ("hospital_level", "coalesce(e.hospital_level, 'NONE')"),
        )
    ]
    + [
        "('payer', '{}', 0, 0, 0, 0, {})".format(
            payer.value,
            ", ".join(p.field_name if p == payer else "0" for p in PAYERS),
        )
        for payer in PAYERS
    ]
    + [
        "('assisted', '-', 0, 0, 0, 0, {})".format(
            ", ".join(p.field_name if p in ASSISTANCE else "0" for p in PAYERS)
        )
    ]
)
REBUILD_PERSONS = f"""
INSERT INTO dashboard_person_cells (beneficiary_id, year, dim, value, region_code, {_COLUMNS})
SELECT e.beneficiary_id, e.year, x.dim, x.value, min(e.region_code),
       {", ".join(f"sum(x.{c})" for c in SUMS)}
FROM (
  SELECT s.beneficiary_id, s.year, b.region_code, s.category, c.type, c.hospital_level,
         c.discharge_date,
         CASE s.kind WHEN 'ORIGINAL' THEN 1 WHEN 'REVERSAL' THEN -1 ELSE 0 END AS claims,
         CASE s.kind WHEN 'ORIGINAL' THEN 1 WHEN 'REVERSAL' THEN -1 ELSE 0 END
           * c.total_cost AS total_cost,
         CASE s.kind WHEN 'ORIGINAL' THEN 1 WHEN 'REVERSAL' THEN -1 ELSE 0 END
           * (c.total_cost - c.policy_scope_cost) AS out_of_scope,
         s.out_of_pocket,
         {", ".join(f"coalesce(l.{p.field_name}, 0) AS {p.field_name}" for p in PAYERS)}
  FROM settlements s
  JOIN claims c ON c.id = s.claim_id
  JOIN beneficiaries b ON b.id = s.beneficiary_id
  LEFT JOIN (SELECT settlement_id, {_LINES} FROM settlement_lines GROUP BY settlement_id) l
    ON l.settlement_id = s.id
) e
CROSS JOIN LATERAL (VALUES
    {_VALUES}
) AS x(dim, value, {_COLUMNS})
WHERE x.dim NOT IN ('payer', 'assisted') OR {active_sql("x")}
GROUP BY e.beneficiary_id, e.year, x.dim, x.value
"""
REBUILD_CUBE = f"""
INSERT INTO dashboard_cube (year, region_code, dim, value, persons, {_COLUMNS})
SELECT year, region_code, dim, value, count(*) FILTER (WHERE {active_sql("p")}),
       {", ".join(f"sum({c})" for c in SUMS)}
FROM dashboard_person_cells p GROUP BY year, region_code, dim, value
UNION ALL
SELECT year, region_code, 'band', {band_sql("out_of_pocket")}, count(*),
       {", ".join("sum(out_of_pocket)" if c == "out_of_pocket" else "0" for c in SUMS)}
FROM dashboard_person_cells p WHERE dim = 'year' AND {active_sql("p")}
GROUP BY year, region_code, 4
"""
REBUILD = (
    "DELETE FROM dashboard_cube",
    "DELETE FROM dashboard_person_cells",
    REBUILD_PERSONS,
    REBUILD_CUBE,
)
"""The statements that build the rollup again from every settlement event."""


async def rebuild(connection: AsyncConnection | AsyncSession) -> None:
    """Build both tables again from the settlement events (after changing :data:`BANDS`, after
    persons moved region, or to backfill): in the caller's transaction."""
    for statement in REBUILD:
        await connection.execute(text(statement))
