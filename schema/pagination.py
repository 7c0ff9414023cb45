"""Relay-style connections with opaque keyset cursors (https://relay.dev/graphql/connections.htm).

Paging is forward only (``first``/``after``). A cursor encodes its kind (the field and, for a
sort order other than the id, the order) and the row's sort key followed by its id, so that a
page after it is exact in that order; a cursor of another field or order is BAD_INPUT.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import strawberry

from policies.errors import InvalidInput
from resolvers.pages import (
    DATE_AND_ID as DATE_AND_ID,
)
from resolvers.pages import (
    ID_KEY,
    ROW_ID,
    UUID_KEY,
    Key,
    Order,
    Page,
    cursor_parts,
)

T = TypeVar("T")
R = TypeVar("R")

_ID = ID_KEY  # a BIGINT identity (below 2**63)
_ROW_ID = ROW_ID
_UUID = UUID_KEY
AMOUNT_AND_ID = re.compile(rf"\A[0-9]{{1,13}}(\.[0-9]{{1,2}})?,{_ID}\Z")
KEYS = {"beneficiary": _UUID}
"""The key of each kind of cursor, when it is not a row id (sort orders add theirs)."""

FIRST = strawberry.argument(
    description="Page size: 1 to the gateway's maximum (MEDGW_MAX_PAGE_SIZE); BAD_INPUT otherwise."
)
AFTER = strawberry.argument(
    description="Start after this cursor: pageInfo.endCursor (or an edge's cursor) of the same "
    "field, filters and order; BAD_INPUT for any other string."
)


@strawberry.type(
    description="Where a page lies (Relay PageInfo). Paging is forward only, with first and after."
)
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="Whether rows follow this page: ask again with after: endCursor."
    )
    end_cursor: str | None = strawberry.field(
        description="Cursor of the last edge; null when the page is empty."
    )
    has_previous_page: bool = strawberry.field(
        description="Whether this page was asked for after a cursor (after given): rows precede "
        "it. The gateway pages forward only, and the Relay spec lets forward paging answer "
        "this cheaply: no query checks that the rows before the cursor are still there."
    )
    start_cursor: str | None = strawberry.field(
        description="Cursor of the first edge; null when the page is empty."
    )


@strawberry.type(description="One row of a page, with its cursor (Relay Edge).")
class Edge(Generic[T]):
    cursor: str = strawberry.field(
        description="Opaque cursor of this row: pass it as after to continue after it."
    )
    node: T = strawberry.field(description="The row.")


@strawberry.type(
    description="A page of rows in the field's order, under the caller's row rules (Relay "
    "connection)."
)
class Connection(Generic[T]):
    edges: list[Edge[T]] = strawberry.field(description="The rows of this page, in order.")
    page_info: PageInfo = strawberry.field(description="Where the page lies; how to go on.")
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(
        description="How many rows match the field's arguments on all pages together (first "
        "and after aside): a COUNT run only when this field is asked for."
    )
    async def total_count(self) -> int:
        return await self.count()


def connection(
    page: Page[R],
    first: int,
    kind: str,
    node: Callable[[R], T],
    key: Callable[[R], Key],
    after: str | None,
) -> Connection[T]:
    """A page from ``first + 1`` keyset-ordered rows (the extra row only says there is more);
    ``key`` gives a row's sort key (its values end up in the cursor), ``after`` is the
    argument the page was asked with."""
    edges = [
        Edge(cursor=encode_cursor(kind, _text(key(r))), node=node(r)) for r in page.rows[:first]
    ]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=len(page.rows) > first,
            end_cursor=edges[-1].cursor if edges else None,
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
        ),
        count=page.count,
    )


def _text(key: Key) -> str:
    return ",".join(str(value) for value in key)


def after_key(kind: str, order: Order, after: str | None) -> Key | None:
    """The sort key an ``after`` cursor of ``kind`` names, in ``order``'s column types.

    :raises InvalidInput: naming ``after`` when it is not such a cursor of this API.
    """
    if after is None:
        return None
    try:
        return order.parse(decode_cursor(kind, after))
    except ValueError:
        raise InvalidInput("after", after, f"not a {kind} cursor of this API") from None


def encode_cursor(kind: str, key: object) -> str:
    """Example:

    >>> encode_cursor("claim", 42)
    'Y2xhaW06NDI='
    """
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode()


def decode_cursor(kind: str, cursor: str, field: str = "after") -> str:
    """The key of a cursor of ``kind``: a row id (digits, below 2**63) or, for persons, a UUID.

    >>> decode_cursor("claim", "Y2xhaW06NDI=")
    '42'
    >>> decode_cursor("claim", "Y2xhaW06YWJj")  # claim:abc
    Traceback (most recent call last):
    ...
    policies.errors.InvalidInput: after = Y2xhaW06YWJj: not a claim cursor of this API

    :raises InvalidInput: naming ``field`` when the cursor is not one this API gave out.
    """
    found, key = cursor_parts(cursor)
    if found != kind or not KEYS.get(kind, _ROW_ID).match(key):
        raise InvalidInput(field, cursor, f"not a {kind} cursor of this API")
    return key


def check_first(first: int, maximum: int, field: str = "first") -> int:
    if first < 1 or first > maximum:
        raise InvalidInput(field, first, f"must be between 1 and {maximum}")
    return first
