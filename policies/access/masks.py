"""Masks for fields a department may read only masked (ACCESS.md: 张**, 510402********1234)."""

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
    """Keep the region code (first 6) and the last 4, hide the birth date and sequence between.
    A value too short to hide anything that way (10 characters or fewer) is hidden entirely.

    >>> mask_id_number("510402197001011234")
    '510402********1234'
    >>> mask_id_number("510402700101123"), mask_id_number("51040219"), mask_id_number("")
    ('510402*****1123', '********', '')
    """
    if len(value) <= 10:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


MASK_KINDS: Mapping[str, Callable[[str], str]] = MappingProxyType(
    {"name": mask_name, "id_number": mask_id_number}
)
