"""Keyset pages: ``first + 1`` rows after a key, in key order (the extra row says "more"), and
a COUNT over the same filtered rows, run only when asked for."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select, tuple_

R = TypeVar("R")

ID_KEY = "[1-9][0-9]{0,17}"
"""A cursor's key that is a BIGINT identity (below 2**63)."""
ROW_ID = re.compile(rf"\A{ID_KEY}\Z")
DATE_AND_ID = re.compile(rf"\A[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}},{ID_KEY}\Z")
"""A cursor's key in a date order: the date and the row's id."""
UUID_KEY = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
"""A cursor's key that is a person's id."""


def cursor_parts(cursor: str) -> tuple[str, str]:
    """The kind and the key a cursor encodes (URL-safe base64 of ``kind:key``), or two empty
    strings when it is not such text (the resolvers and the read compiler read cursors alike).

    >>> cursor_parts("Y2xhaW06NDI="), cursor_parts("%%%")
    (('claim', '42'), ('', ''))
    """
    try:
        found, _, key = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
    except (binascii.Error, UnicodeError, ValueError):
        return "", ""
    return found, key


Key = tuple[Any, ...]
Fetch = Callable[[Select[Any]], Awaitable[Sequence[Any]]]


@dataclass(frozen=True)
class Order:
    """A total keyset order: sort columns, the row id last (ties never reorder), one direction.

    >>> from gateway.storage.models import Claim
    >>> Order((Claim.admission_date, Claim.id)).parse("2025-03-01,42")
    (datetime.date(2025, 3, 1), 42)
    """

    columns: tuple[Any, ...]
    descending: bool = False

    def key(self, row: Any) -> Key:
        """The sort key of an ORM row, one value per column."""
        return tuple(getattr(row, column.key) for column in self.columns)

    def parse(self, text: str) -> Key:
        """The sort key a cursor's text (values joined by commas) names.

        :raises ValueError: when ``text`` is not one value of each column's type.
        """
        parts = text.split(",")
        if len(parts) != len(self.columns):
            raise ValueError(text)
        return tuple(
            _value(c.type.python_type, p) for c, p in zip(self.columns, parts, strict=True)
        )


def _value(python_type: type, text: str) -> Any:
    return date.fromisoformat(text) if python_type is date else python_type(text)


@dataclass(frozen=True)
class Page(Generic[R]):
    """Up to ``first + 1`` rows in order, and how to count every row of the filtered set."""

    rows: Sequence[R]
    count: Callable[[], Awaitable[int]]


def keyset(stmt: Select[Any], order: Order, after: Key | None, first: int) -> Select[Any]:
    """Example:

    >>> from gateway.storage.models import Claim
    >>> from sqlalchemy import select
    >>> print(keyset(select(Claim.id), Order((Claim.id,)), (7,), 20))
    ... # doctest: +NORMALIZE_WHITESPACE
    SELECT claims.id FROM claims WHERE claims.id > :id_1 ORDER BY claims.id LIMIT :param_1
    >>> by_date = Order((Claim.admission_date, Claim.id), descending=True)
    >>> print(keyset(select(Claim.id), by_date, (date(2025, 3, 1), 7), 20))
    ... # doctest: +NORMALIZE_WHITESPACE
    SELECT claims.id FROM claims WHERE (claims.admission_date, claims.id) < (:param_1, :param_2)
    ORDER BY claims.admission_date DESC, claims.id DESC LIMIT :param_3
    """
    columns = order.columns
    if after is not None:
        left = columns[0] if len(columns) == 1 else tuple_(*columns)
        right = after[0] if len(columns) == 1 else tuple_(*after)
        stmt = stmt.where(left < right if order.descending else left > right)
    return stmt.order_by(*(c.desc() if order.descending else c for c in columns)).limit(first + 1)


async def fetch_page(
    fetch: Fetch, stmt: Select[Any], order: Order, after: Key | None, first: int
) -> Page[Any]:
    """The rows of :func:`keyset`, fetched now, and a COUNT of ``stmt``'s rows for later."""

    async def count() -> int:
        found = await fetch(select(func.count()).select_from(stmt.order_by(None).subquery()))
        return int(found[0])

    return Page(await fetch(keyset(stmt, order, after, first)), count)
