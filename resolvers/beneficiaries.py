"""Reading persons: point lookups and region/category lists, always under the row rules."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from typing import TypeVar, overload

from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import resident_id
from gateway.errors import BadInput, NotFound
from gateway.storage import models
from policies.errors import InvalidInput
from policies.vocabulary import Category
from resolvers.context import Context
from resolvers.inputs import check_in_token, check_region_prefix
from resolvers.pages import Order, Page, fetch_page
from resolvers.rows import RowRules

T = TypeVar("T")


def parse_id(value: str, field: str = "id") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput(field, value, "not a beneficiary id of this API") from None


def lookup(id: str | None, id_number: str | None) -> tuple[str, uuid.UUID | str]:
    """The column of ``beneficiaries`` and the value that ``beneficiary(id:|idNumber:)`` looks
    a person up by: ``("id", UUID)`` or ``("id_number", the number stripped, upper case)``.

    :raises BadInput: unless exactly one of them is given.
    :raises InvalidInput: for an id that is not one of this API.
    """
    if (id is None) == (id_number is None):
        raise BadInput("give exactly one of id and idNumber", field="id")
    if id is not None:
        return "id", parse_id(id)
    return "id_number", (id_number or "").strip().upper()


Read = Callable[[str, "uuid.UUID | str"], Awaitable[T]]
"""Reads the person whose ``column`` equals ``value`` under the row rules, its own way."""


@overload
async def find(
    ctx: Context, id: str | None = None, id_number: str | None = None
) -> models.Beneficiary | None: ...


@overload
async def find(
    ctx: Context, id: str | None = None, id_number: str | None = None, *, read: Read[T]
) -> T: ...


async def find(
    ctx: Context,
    id: str | None = None,
    id_number: str | None = None,
    *,
    read: Read[T] | None = None,
) -> models.Beneficiary | T | None:
    """One person by id or ID number; ``None`` when missing *or* outside the caller's rows.

    ``read`` is the read compiler's (resolvers/compiler.py): the same lookup (:func:`lookup`),
    the row read as JSON built in SQL under the same row rules instead of as an ORM entity.
    """
    column, value = lookup(id, id_number)
    if read is not None:
        return await read(column, value)
    condition = (
        models.Beneficiary.id == value if column == "id" else models.Beneficiary.id_number == value
    )
    found: models.Beneficiary | None = await ctx.one_or_none(
        select(models.Beneficiary).where(condition, *ctx.rows.persons())
    )
    return found


def holds_category(category: Category, on: date) -> ColumnElement[bool]:
    """SQL: the person holds ``category`` on ``on`` (an identity or a monitoring flag)."""
    model = models.MonitoringFlag if category.is_monitoring_flag else models.Identity
    return exists().where(
        model.beneficiary_id == models.Beneficiary.id,
        model.category == category.value,
        model.valid_from <= on,
        or_(model.valid_to.is_(None), model.valid_to >= on),
    )


async def page(
    ctx: Context,
    *,
    region_prefix: str | None,
    category: Category | None,
    first: int,
    after: uuid.UUID | None,
) -> Page[models.Beneficiary]:
    """``first + 1`` persons in id order after ``after``, under the row rules and filters;
    FORBIDDEN for a region prefix disjoint from the token's regions."""
    stmt = select(models.Beneficiary).where(*ctx.rows.persons())
    if region_prefix is not None:
        check_in_token(ctx.principal, "regionPrefix", check_region_prefix(region_prefix))
        stmt = stmt.where(models.Beneficiary.region_code.like(f"{region_prefix}%"))
    if category is not None:
        stmt = stmt.where(holds_category(category, ctx.settings.today()))
    return await fetch_page(
        ctx.all, stmt, Order((models.Beneficiary.id,)), None if after is None else (after,), first
    )


async def lock_person(session: AsyncSession, rows: RowRules, id_number: str) -> models.Beneficiary:
    """The person a write is about, locked until the transaction ends; NOT_FOUND when missing
    or outside the caller's rows (:meth:`RowRules.admissible`: a hospital names any person of
    its regions).

    FOR NO KEY UPDATE serialises writes about one person (settlement, identities, enrollment)
    while inserts that merely reference the person proceed; every write locks the person
    first and the year's ledger second, so writers never deadlock.
    """
    number = resident_id.parse(id_number).number
    person = (
        await session.scalars(
            select(models.Beneficiary)
            .where(models.Beneficiary.id_number == number, *rows.admissible())
            .with_for_update(key_share=True)
        )
    ).one_or_none()
    if person is None:
        raise NotFound(f"idNumber = {number}: no such beneficiary", field="idNumber")
    return person
