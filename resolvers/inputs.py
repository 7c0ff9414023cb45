"""Checks shared by every write: amounts, region codes, free text. Each names field and value."""

from __future__ import annotations

import re
from decimal import Decimal

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
