"""Keyset pages: ``first + 1`` rows after a key, in key order (the extra row says "more")."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select


def keyset(stmt: Select[Any], key: Any, after: object | None, first: int) -> Select[Any]:
    """Example:

    >>> from gateway.storage.models import Claim
    >>> from sqlalchemy import select
    >>> print(keyset(select(Claim.id), Claim.id, 7, 20))  # doctest: +NORMALIZE_WHITESPACE
    SELECT claims.id FROM claims WHERE claims.id > :id_1 ORDER BY claims.id LIMIT :param_1
    """
    if after is not None:
        stmt = stmt.where(key > after)
    return stmt.order_by(key).limit(first + 1)
