"""What a settlement reads about a locked person and a year, in one statement (issue 15, a lean
settlement path): whether the claim number is known already, whether the year is closed for the
policy region, the year's enrollment, the person's identities and monitoring flags, and the
year's ledger and high-cost alert, locked (``FOR UPDATE``) as
:func:`resolvers.settlement.lock_ledger` and :func:`resolvers.alerts.review` lock them.

The person must be locked first (``lock_person``): every writer locks the person, then the
ledger, so this statement's snapshot, taken after the person's lock was granted, sees every
change the previous holder committed. The statement runs on the transaction's asyncpg
connection, compiled once (:func:`gateway.storage.database.fetch_compiled`). The enrollment,
identities, flags and the ledger come back as *transient* model objects (not in the session):
copies of the rows; the settlement's own statement writes the ledger. The alert, which the
review after the settlement may change, is a session object (read by its key when there is one).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import Select, Table, bindparam, func, literal, select, true
from sqlalchemy.dialects.postgresql import JSON, aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.storage import models
from gateway.storage.database import fetch_compiled
from resolvers.original import as_written, column_keys, values_at

Row = TypeVar("Row", models.Identity, models.MonitoringFlag, models.Enrollment)


@dataclass
class PersonYear:
    """A locked person's year as a settlement needs it."""

    known_claim: int | None
    """The id of a stored claim of the same number (any person's), if any."""
    closed: bool
    """The year is closed for the policy region asked about."""
    enrollment: models.Enrollment | None
    identities: list[models.Identity]
    flags: list[models.MonitoringFlag]
    ledger: models.Ledger | None
    """The year's ledger, locked; None when the year has none yet (the settlement's statement
    inserts it: :func:`resolvers.original.insert_original`)."""
    alert: models.HighCostAlert | None
    """The year's high-cost alert, locked (as ``alerts.review`` locks it), or None."""

    @property
    def records(self) -> list[models.Identity | models.MonitoringFlag]:
        """Identities, then flags, each in id order (as ``category_records`` reads them)."""
        return [*self.identities, *self.flags]


def _rows(model: type[Row], where: Any) -> Any:
    """A scalar subquery: the model's rows (whole, as JSON objects) in id order, or null."""
    table = model.__table__
    assert isinstance(table, Table)
    return (
        select(
            func.json_agg(
                aggregate_order_by(func.row_to_json(table.table_valued()), table.c.id),
                type_=JSON,
            )
        )
        .select_from(table)
        .where(where)
        .scalar_subquery()
    )


def _copy(model: type[Row], found: Mapping[str, Any]) -> Row:
    """A transient ``model`` holding a row read as JSON, its values in their Python types."""
    table = model.__table__
    assert isinstance(table, Table)
    values: dict[str, Any] = {}
    for column in table.columns:
        value = found.get(column.name)
        if value is not None:
            kind = column.type.python_type
            if kind is date:
                value = date.fromisoformat(value)
            elif kind is datetime:
                value = datetime.fromisoformat(value)
            elif kind is uuid.UUID:
                value = uuid.UUID(value)
            elif kind is Decimal:  # JSON numbers come as floats: exact below 15 digits
                scale = getattr(column.type, "scale", None)
                value = Decimal(str(value))
                if scale is not None:
                    value = value.quantize(Decimal(1).scaleb(-scale))
        values[column.key] = value
    return model(**values)


_LEDGER = column_keys(models.Ledger)
_ALERT = column_keys(models.HighCostAlert)
_ALERT_ID = _ALERT.index("id")
"""The attributes of the ledger's and the alert's columns, in the order the statement returns
them."""


@cache
def _statement() -> Select[Any]:
    """:func:`read`'s statement, built once (parameters ``person``, ``year``, ``number``,
    ``region``)."""
    Number, Closing = models.ClaimNumber, models.SettlementYearClosing
    Identity, Flag, Enrollment = models.Identity, models.MonitoringFlag, models.Enrollment
    person = bindparam("person", type_=models.Ledger.beneficiary_id.type)
    year = bindparam("year", type_=models.Ledger.year.type)
    locked = (
        select(models.Ledger)
        .where(models.Ledger.beneficiary_id == person, models.Ledger.year == year)
        .with_for_update()
        .subquery("ledger")
    )
    Alert = models.HighCostAlert
    locked_alert = (
        select(Alert)
        .where(Alert.beneficiary_id == person, Alert.year == year)
        .with_for_update()
        .subquery("alert")
    )
    one = select(literal(1).label("one")).subquery("one")
    number = bindparam("number", type_=Number.claim_number.type)
    region = bindparam("region", type_=Closing.region_code.type)
    return (
        select(
            *locked.c,
            *locked_alert.c,
            # The register of claim numbers: one index probe (``claims`` is partitioned by year).
            select(Number.claim_id).where(Number.claim_number == number).scalar_subquery(),
            select(Closing.region_code)
            .where(Closing.region_code == region, Closing.year == year)
            .exists(),
            _rows(Enrollment, (Enrollment.beneficiary_id == person) & (Enrollment.year == year)),
            _rows(Identity, Identity.beneficiary_id == person),
            _rows(Flag, Flag.beneficiary_id == person),
        )
        .select_from(one)
        .outerjoin(locked, true())
        .outerjoin(locked_alert, true())
    )


async def read(
    session: AsyncSession,
    person: models.Beneficiary,
    year: int,
    claim_number: str,
    closing_region: str | None,
) -> PersonYear:
    """One statement: see the module's docstring. ``closing_region``: the policy region whose
    closing of ``year`` to look up (None: not looked up, ``closed`` is False)."""
    # On the transaction's asyncpg connection (begun by the person's lock), compiled once:
    # plain values, no ORM entities.
    params = {"person": person.id, "year": year, "number": claim_number, "region": closing_region}
    [found] = await fetch_compiled(session, _statement(), params)
    ledger = values_at(_LEDGER, found, 0)
    alert_id = found[len(_LEDGER) + _ALERT_ID]
    known, closed, enrolled, identities, flags = found[len(_LEDGER) + len(_ALERT) :]
    row = None if ledger["beneficiary_id"] is None else as_written(models.Ledger, **ledger)
    # The alert is written by the review that follows (a session object): read by its key, in
    # the year that has one (its row is locked already).
    the_alert = None if alert_id is None else await session.get(models.HighCostAlert, alert_id)
    if enrolled and len(enrolled) > 1:
        raise RuntimeError(f"more than one enrollment of {person.id} for {year}")
    return PersonYear(
        known_claim=known,
        closed=bool(closed) and closing_region is not None,
        enrollment=_copy(models.Enrollment, enrolled[0]) if enrolled else None,
        identities=[_copy(models.Identity, r) for r in identities or ()],
        flags=[_copy(models.MonitoringFlag, r) for r in flags or ()],
        ledger=row,
        alert=the_alert,
    )
