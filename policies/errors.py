"""Errors raised by the pure parts (policies, engine, case files).

The gateway maps them to GraphQL errors with a stable ``extensions.code``; the CLI prints them.
They always name the field (or file and key) and the offending value.
"""

from __future__ import annotations

from datetime import date


class InvalidInput(ValueError):
    """Input that breaks a rule: names the field, the value and the rule.

    >>> str(InvalidInput("visits[0].totalCost", "-1", "must not be negative"))
    'visits[0].totalCost = -1: must not be negative'
    """

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field} = {value}: {reason}")


class PolicyFileError(ValueError):
    """A benefit or access policy file that does not validate; names the file, the key and,
    where known, its line (``key`` then ends in it, as the message shows it).

    >>> error = PolicyFileError("510400-2023.yaml", "basic.yearly_cap", "missing", line=52)
    >>> error.key, str(error)
    ('basic.yearly_cap (line 52)', '510400-2023.yaml: basic.yearly_cap (line 52): missing')
    """

    def __init__(self, file: str, key: str, reason: str, line: int | None = None) -> None:
        self.file = file
        self.key = key if line is None else f"{key} (line {line})"
        self.reason = reason
        self.line = line
        super().__init__(f"{file}: {self.key}: {reason}")


class NoPolicyInForce(LookupError):
    """No benefit policy covers this region on this date (never silently 0)."""

    def __init__(self, region_code: str, on: date, what: str = "benefit policy") -> None:
        self.region_code = region_code
        self.on = on
        super().__init__(f"no {what} in force for region {region_code} on {on.isoformat()}")
