"""Argument values, checked once at the edge before any resolver sees them.

GraphQL has already parsed every argument into its type (Int within 32 bits, Decimal, Date…);
what it cannot know is what the database and the rules accept. :class:`ArgumentCheck` walks the
arguments of every field (input objects and lists included) and refuses, as ``BAD_INPUT`` naming
the argument or input field and the value, before any SQL is sent:

- text with control characters (NUL, which PostgreSQL rejects, and the other C0/C1 controls
  except tab and newlines) or lone surrogates (not encodable as UTF-8);
- an amount that is not finite or does not fit the money column (``Numeric(14, 2)``);
- a year, or the year of a date, outside :data:`YEARS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

import graphql
from strawberry.extensions import SchemaExtension

from gateway.storage.models import Money
from policies.errors import InvalidInput

YEARS = range(1900, 2201)
"""Years an argument may name (settlement years, dates of birth, admission, validity)."""
MONEY_LIMIT = Decimal(10) ** ((Money.precision or 14) - (Money.scale or 2))
"""Amounts (yuan) must be below this in absolute value: what ``Numeric(14, 2)`` can hold."""
INT_RANGES: Mapping[str, range] = {"year": YEARS}
"""Integer arguments and input fields with a range narrower than GraphQL's 32 bits, by name."""
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def check_value(field: str, value: object) -> None:
    """Refuse ``value`` (of argument or input field ``field``) unless it can be used as given.

    >>> check_value("totalCost", Decimal("1e20"))
    Traceback (most recent call last):
    ...
    policies.errors.InvalidInput: totalCost = 1E+20: must be below 1000000000000 (yuan)
    >>> check_value("name", {"idNumber": "5104\\x00"})
    Traceback (most recent call last):
    ...
    policies.errors.InvalidInput: idNumber = 5104\\u0000: control characters are not allowed

    :raises InvalidInput: naming the innermost field and the value.
    """
    if isinstance(value, Mapping):
        for key, item in value.items():
            check_value(graphql_name(key), item)
    elif isinstance(value, list | tuple):
        for item in value:
            check_value(field, item)
    elif isinstance(value, str):
        if _CONTROL.search(value):
            shown = _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
            raise InvalidInput(field, shown, "control characters are not allowed")
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidInput(field, str(value), "not a number")
        if abs(value) >= MONEY_LIMIT:
            raise InvalidInput(field, value, f"must be below {MONEY_LIMIT} (yuan)")
    elif isinstance(value, date):
        if value.year not in YEARS:
            raise InvalidInput(field, value.isoformat(), f"year must be in {_span(YEARS)}")
    elif isinstance(value, int) and not isinstance(value, bool) and field in INT_RANGES:
        allowed = INT_RANGES[field]
        if value not in allowed:
            raise InvalidInput(field, value, f"must be in {_span(allowed)}")
    elif hasattr(value, "__dataclass_fields__"):  # a Strawberry input object
        for key, item in vars(value).items():
            check_value(graphql_name(key), item)


def graphql_name(python_name: str) -> str:
    """Example:

    >>> graphql_name("total_cost")
    'totalCost'
    """
    head, *rest = python_name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _span(allowed: range) -> str:
    return f"{allowed.start}–{allowed.stop - 1}"


class ArgumentCheck(SchemaExtension):
    """Around every resolver that takes arguments: :func:`check_value` on each of them."""

    def resolve(
        self,
        _next: Callable[..., Any],
        root: Any,
        info: graphql.GraphQLResolveInfo[Any],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        try:
            for name, value in kwargs.items():
                check_value(graphql_name(name), value)
        except InvalidInput as error:
            # Fail as an awaitable, as a resolver would: raised synchronously, graphql-core
            # leaves the sibling fields it has started unsettled, and their sessions (with their
            # connections) outlive the request.
            return _refuse(error)
        return _next(root, info, *args, **kwargs)


async def _refuse(error: InvalidInput) -> None:
    raise error
