"""Relay-style connections with opaque keyset cursors."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import strawberry

from policies.errors import InvalidInput

T = TypeVar("T")
R = TypeVar("R")

_ROW_ID = re.compile(r"\A[1-9][0-9]{0,17}\Z")  # a BIGINT identity (below 2**63)
_UUID = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
KEYS = {"beneficiary": _UUID}
"""The key of each kind of cursor, when it is not a row id."""


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo


def connection(
    rows: Sequence[R], first: int, kind: str, node: Callable[[R], T], key: Callable[[R], object]
) -> Connection[T]:
    """A page from ``first + 1`` keyset-ordered rows (the extra row only says there is more)."""
    edges = [Edge(cursor=encode_cursor(kind, key(r)), node=node(r)) for r in rows[:first]]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=len(rows) > first, end_cursor=edges[-1].cursor if edges else None
        ),
    )


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
    try:
        found, _, key = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
    except (binascii.Error, UnicodeError, ValueError):
        found, key = "", ""
    if found != kind or not KEYS.get(kind, _ROW_ID).match(key):
        raise InvalidInput(field, cursor, f"not a {kind} cursor of this API")
    return key


def check_first(first: int, maximum: int, field: str = "first") -> int:
    if first < 1 or first > maximum:
        raise InvalidInput(field, first, f"must be between 1 and {maximum}")
    return first
