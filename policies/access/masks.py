"""Masks for fields a department may read only masked (ACCESS.md: 张**, 5104**********1234)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType


def mask_name(value: str) -> str:
    """Keep the first character (usually the family name) and hide each of the others.

    >>> mask_name("张三丰"), mask_name("欧阳修"), mask_name("张"), mask_name("")
    ('张**', '欧**', '张', '')
    """
    return value[:1] + "*" * (len(value) - 1)


def mask_id_number(value: str) -> str:
    """Keep the first 4 (province and city) and the last 4 (ACCESS.md), hiding the birth-date
    digits between: a masked reader sees the birth year at most, so the mask must not leave the
    rest of the birth date to read.
    A value too short to hide anything that way (12 characters or fewer) is hidden entirely.

    >>> mask_id_number("510402197001011234")
    '5104**********1234'
    >>> mask_id_number("510402700101123"), mask_id_number("51040219"), mask_id_number("")
    ('5104*******1123', '********', '')
    """
    if len(value) <= 12:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


MASK_KINDS: Mapping[str, Callable[[str], str]] = MappingProxyType(
    {"name": mask_name, "id_number": mask_id_number}
)
