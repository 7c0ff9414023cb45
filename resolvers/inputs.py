"""Checks of request arguments: amounts, region codes and prefixes (their shape, and that they lie
within the token's regions), free text. Each names field and value."""

from __future__ import annotations

import re
from decimal import Decimal

from gateway.auth import Principal
from gateway.errors import Forbidden
from policies.errors import InvalidInput

_REGION = re.compile(r"\A[0-9]{6}\Z")
CENT = Decimal("0.01")


def check_money(field: str, value: Decimal) -> Decimal:
    """A non-negative amount in yuan with at most two decimals.

    >>> check_money("totalCost", Decimal("10.5"))
    Decimal('10.50')
    """
    if not value.is_finite():
        raise InvalidInput(field, value, "not a number")
    if value < 0:
        raise InvalidInput(field, value, "must not be negative")
    if value != value.quantize(CENT):
        raise InvalidInput(field, value, "at most two decimals (fen)")
    return value.quantize(CENT)


def check_region(code: str, field: str = "regionCode") -> str:
    if not _REGION.match(code):
        raise InvalidInput(field, code, "expected a 6-digit region code")
    return code


def check_region_prefix(prefix: str, field: str = "regionPrefix") -> str:
    """1 to 6 digits: a province (32), a city (5104) or a county (510402)."""
    if not (prefix.isascii() and prefix.isdigit()) or not 1 <= len(prefix) <= 6:
        raise InvalidInput(field, prefix, "expected 1 to 6 digits")
    return prefix


def shares_region(principal: Principal, prefix: str) -> bool:
    """Whether a region prefix shares a region with the token: it lies within one of the token's
    prefixes, or is broader than one of them ("51" with a 5104 token). For a 6-digit region
    code this is exactly :meth:`Principal.serves_region`.

    >>> [shares_region(Principal("u", "finance", "o", ("5104",)), p) for p in ("51", "37")]
    [True, False]
    """
    return any(prefix.startswith(p) or p.startswith(prefix) for p in principal.regions)


def check_in_token(principal: Principal, field: str, value: str, prefix: str | None = None) -> str:
    """``value`` when its region prefix (``prefix``, by default ``value`` itself) shares a region
    with the token (:func:`shares_region`; a broader prefix is then narrowed to the token's rows
    by the row rules); FORBIDDEN naming field and value otherwise."""
    if not shares_region(principal, value if prefix is None else prefix):
        raise Forbidden(
            f"{field} = {value}: outside the regions of this token "
            f"({', '.join(principal.regions)})",
            field=field,
            value=value,
        )
    return value


def check_text(value: str | None, field: str, limit: int, required: bool = False) -> str | None:
    """Stripped text of at most ``limit`` characters; ``None`` when blank and optional."""
    if value is None or not value.strip():
        if required:
            raise InvalidInput(field, value, "is required")
        return None
    text = value.strip()
    if len(text) > limit:
        raise InvalidInput(field, value, f"at most {limit} characters")
    return text
