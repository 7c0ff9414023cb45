"""Relay-style connections with opaque keyset cursors."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import strawberry

from policies.errors import InvalidInput

T = TypeVar("T")
R = TypeVar("R")


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
    try:
        found, _, key = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        found, key = "", ""
    if found != kind or not key:
        raise InvalidInput(field, cursor, f"not a {kind} cursor of this API")
    return key


def check_first(first: int, maximum: int, field: str = "first") -> int:
    if first < 1 or first > maximum:
        raise InvalidInput(field, first, f"must be between 1 and {maximum}")
    return first
