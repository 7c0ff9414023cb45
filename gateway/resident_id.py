"""The 18-character resident identity number (公民身份号码, GB 11643-1999).

Six digits of region, eight of birth date, three of sequence (odd for men, even for women) and
an ISO 7064 MOD 11-2 check character (0-9 or X).
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from datetime import date

from policies.errors import InvalidInput

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_SHAPE = re.compile(r"\A[0-9]{17}[0-9X]\Z")


@dataclass(frozen=True)
class ResidentId:
    number: str
    region_code: str
    birth_date: date
    gender: str  # MALE | FEMALE


def check_character(first17: str) -> str:
    """Example:

    >>> check_character("11010519491231002")
    'X'
    """
    if len(first17) != len(_WEIGHTS):
        raise ValueError(f"expected 17 digits, got {first17!r}")
    if first17.isascii() and first17.isdigit():
        # The weights are 2^17 … 2^1 mod 11 and 13 ≡ 2 (mod 11): the weighted sum is 2 × the
        # digits read in base 13, one C call (list imports check a million of these).
        return _CHECK[int(first17, 13) * 2 % 11]
    return _CHECK[sum(map(operator.mul, map(int, first17), _WEIGHTS)) % 11]


def parse(number: str, field: str = "idNumber") -> ResidentId:
    """Validate shape, birth date and check character.

    >>> parse("11010519491231002X").birth_date
    datetime.date(1949, 12, 31)
    >>> parse("110105194912310021")
    Traceback (most recent call last):
    ...
    policies.errors.InvalidInput: idNumber = 110105194912310021: check character should be X
    """
    text = number.strip().upper()
    if not _SHAPE.match(text):
        raise InvalidInput(field, number, "expected 17 digits and a check digit or X")
    try:
        born = date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        raise InvalidInput(field, number, f"no such birth date {text[6:14]}") from None
    if born.year < 1900:
        raise InvalidInput(field, number, f"birth date {born.isoformat()} before 1900")
    expected = check_character(text[:17])
    if text[17] != expected:
        raise InvalidInput(field, number, f"check character should be {expected}")
    gender = "MALE" if int(text[16]) % 2 else "FEMALE"
    return ResidentId(text, text[:6], born, gender)
