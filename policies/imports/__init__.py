"""The columns of department list files (``columns.yaml``): which headers name which field of
an import row, which fields each kind reads, and the category, yes/no and scheme words a file
may use. Data, not code: a new synonym is a line in the YAML file.

>>> columns = load_columns()
>>> columns.field_of("身份证号"), columns.field_of("IDNUMBER"), columns.field_of("备注")
('idNumber', 'idNumber', None)
>>> columns.category("低保"), columns.category("MINIMUM_LIVING"), columns.category("?")
('MINIMUM_LIVING', 'MINIMUM_LIVING', None)
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from policies.sourcefile import SourceFile, refuse
from policies.vocabulary import Category

COLUMNS_FILE = Path(__file__).with_name("columns.yaml")
KINDS = ("persons", "identities", "flags", "enrollments")


class KindColumns(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def fields(self) -> tuple[str, ...]:
        return self.required + self.optional


class Columns(BaseModel):
    """The parsed ``columns.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: Mapping[str, tuple[str, ...]]
    kinds: Mapping[Literal["persons", "identities", "flags", "enrollments"], KindColumns]
    categories: Mapping[str, Category]
    booleans: Mapping[Literal["true", "false"], tuple[str, ...]]
    schemes: Mapping[str, Literal["RESIDENT", "EMPLOYEE"]]

    @model_validator(mode="after")
    def _consistent(self) -> Columns:
        seen: dict[str, str] = {}
        for field, headers in self.fields.items():
            for header in headers:
                key = header.strip().lower()
                if key in seen:
                    raise refuse(f"header {header!r} names both {seen[key]} and {field}", "fields")
                seen[key] = field
        for kind, columns in self.kinds.items():
            for field in columns.fields:
                if field not in self.fields:
                    raise refuse(f"unknown field {field!r} (not under fields)", "kinds", kind)
        if set(self.kinds) != set(KINDS):
            raise refuse(f"expected the kinds {', '.join(KINDS)}", "kinds")
        return self

    @functools.cached_property
    def _headers(self) -> dict[str, str]:
        return {h.strip().lower(): f for f, hs in self.fields.items() for h in hs}

    @functools.cached_property
    def _booleans(self) -> dict[str, bool]:
        return {w.strip().lower(): key == "true" for key, ws in self.booleans.items() for w in ws}

    def field_of(self, header: str) -> str | None:
        """The field a header names (``None`` when unknown)."""
        return self._headers.get(header.strip().lstrip("\ufeff").lower())

    def category(self, word: str) -> str | None:
        """The category code a file's word means (a code, or a name under ``categories``)."""
        text = word.strip()
        if text in Category.__members__:
            return text
        code = self.categories.get(text)
        return None if code is None else code.value

    def boolean(self, word: str) -> bool | None:
        return self._booleans.get(word.strip().lower())

    def scheme(self, word: str) -> str:
        text = word.strip()
        return self.schemes.get(text, text.upper() or "RESIDENT")


@functools.cache
def load_columns(path: Path = COLUMNS_FILE) -> Columns:
    """The column file, validated (a bad key raises :class:`PolicyFileError` naming it)."""
    return SourceFile.read(path).validate(Columns)
