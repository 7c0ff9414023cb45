"""Department access policies (spec/ACCESS.md): who may read, read masked or write which field.

Rules are data. ``policies/access/<department>.yaml`` grants fields of the GraphQL schema to one
department (default deny) and names its row rules, required purpose and introspection switch;
``policies/access/_fields.yaml`` says which fields are personal data and which mask a maskable
field uses. :func:`load_access` reads them as pydantic models (through
:mod:`policies.sourcefile`) and checks them against the schema's :data:`Catalog`
and refuses to start on any problem, naming the file, the key and the line.
:func:`forbidden_paths` (from :mod:`policies.access.walker`) checks a query document against one
department's grants before anything executes.

Everything here is pure: no database, no request, no GraphQL execution.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)

from policies.access.catalog import Arguments, Catalog, arguments_of, catalog_of
from policies.access.masks import MASK_KINDS, mask_id_number, mask_name
from policies.access.walker import forbidden_paths
from policies.errors import PolicyFileError
from policies.sourcefile import Loc, SourceFile, refuse
from policies.vocabulary import Category

__all__ = [
    "ACCESS_DIRECTORY",
    "MASK_KINDS",
    "MUTATION",
    "ROW_RULES",
    "AccessPolicies",
    "Catalog",
    "DepartmentPolicy",
    "Mode",
    "arguments_of",
    "catalog_of",
    "forbidden_paths",
    "load_access",
    "mask_id_number",
    "mask_name",
]

ACCESS_DIRECTORY = Path(__file__).parent
FIELDS_FILE = "_fields.yaml"
MUTATION = "Mutation"

ROW_RULES: frozenset[str] = frozenset({"region", "carrier", "carried_persons", "hospital"})
"""Row rules the resolvers know how to enforce in SQL: ``region`` (only rows whose region code
starts with one of the token's region prefixes), ``carrier`` (only claims whose carrier is the
token's organisation), ``carried_persons`` (only persons of those claims), ``hospital`` (only
claims whose hospital code is the token's organisation, and the persons of those claims)."""

# Which mutations record (and end) which kind of category, keyed by Category.is_monitoring_flag.
_CATEGORY_MUTATIONS: Mapping[bool, tuple[str, str]] = {
    False: ("recordIdentity", "endIdentity"),
    True: ("recordMonitoringFlag", "endMonitoringFlag"),
}
_PURPOSE = re.compile(r"\A[a-z][a-z0-9_]*\Z")
REVOKED = "forbidden"
"""In a file that ``extends`` another: a grant of the other department taken away."""
T = TypeVar("T")


class Mode(StrEnum):
    """How a department may use a field: ``read`` it, read it ``masked``, or ``write`` (call a
    mutation)."""

    READ = "read"
    MASKED = "masked"
    WRITE = "write"


# --- the policies ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DepartmentPolicy:
    """What one department may do. Anything not in ``grants`` is forbidden."""

    department: str
    title: str
    grants: Mapping[tuple[str, str], Mode]
    rows: frozenset[str]
    write_categories: frozenset[Category]
    purposes_for_personal: frozenset[str]
    introspection: bool
    description: str = ""
    filters: Mapping[tuple[str, str, str], tuple[tuple[str, str], ...]] = field(
        default_factory=dict
    )
    """``(type, field, argument)`` → the fields that argument filters on (from _fields.yaml)."""

    def mode(self, type_name: str, field: str) -> Mode | None:
        """The granted mode of ``type_name.field``, or ``None`` when it is forbidden."""
        return self.grants.get((type_name, field))

    def can_use(self, type_name: str, field: str) -> bool:
        """May this department select ``type_name.field`` at all (read, masked or write)?"""
        return (type_name, field) in self.grants

    def can_use_argument(self, type_name: str, field: str, argument: str) -> bool:
        """May this department pass ``argument`` to ``type_name.field``? A filter on data it
        cannot read is refused: ``beneficiaries(category: …)`` needs read on identities and
        flags, or an insurer could learn who is 低保 by filtering."""
        revealed = self.filters.get((type_name, field, argument), ())
        return all(self.can_use(*target) for target in revealed)

    def may_write_category(self, category: Category) -> bool:
        """May this department record or end ``category`` (its own categories only)?"""
        return category in self.write_categories

    def needs_purpose(self, purpose: str | None) -> bool:
        """True when this department's personal fields need a purpose the token lacks.

        An insurer (``required_for_personal: [claim_handling]``) gives ``needs_purpose(None)`` →
        True and ``needs_purpose("claim_handling")`` → False; a department without a ``purpose``
        section always gives False.
        """
        return bool(self.purposes_for_personal) and purpose not in self.purposes_for_personal


@dataclass(frozen=True)
class AccessPolicies:
    """All department policies and the field facts shared by them (``_fields.yaml``)."""

    departments: Mapping[str, DepartmentPolicy]
    personal: frozenset[tuple[str, str]]
    masks: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def is_personal(self, type_name: str, field: str) -> bool:
        """Is ``type_name.field`` personal data (its return writes an audit record)?"""
        return (type_name, field) in self.personal

    def mask(self, type_name: str, field: str, value: str) -> str:
        """The masked form of ``value`` for a maskable field.

        ``mask("Beneficiary", "name", "张三丰")`` → ``"张**"``. A field without a mask kind raises
        ``KeyError`` rather than returning the value unmasked.
        """
        kind = self.masks.get((type_name, field))
        if kind is None:
            raise KeyError(f"{type_name}.{field} has no mask kind in {FIELDS_FILE}")
        return MASK_KINDS[kind](value)

    def unreadable(self, catalog: Catalog) -> list[str]:
        """Fields of ``catalog`` that no department may use (the dead-schema report), as
        ``Type.field``, sorted."""
        return sorted(
            f"{type_name}.{name}"
            for type_name, fields in catalog.items()
            for name in fields
            if not any(policy.can_use(type_name, name) for policy in self.departments.values())
        )


# --- the files ---------------------------------------------------------------------------------


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """``_did_you_mean("nmae", ["name", "id"])`` → ``" (did you mean 'name'?)"``."""
    close = difflib.get_close_matches(name, [str(c) for c in candidates], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _one_of(what: str, known: Iterable[str]) -> BeforeValidator:
    """A check that a value is one of ``known``: ``unknown mode 'raed' (did you mean 'read'?);
    one of read, masked, write``."""
    words = tuple(known)

    def check(value: object) -> object:
        if value not in words:
            hint = _did_you_mean(value, words) if isinstance(value, str) else ""
            raise ValueError(f"unknown {what} {value!r}{hint}; one of {', '.join(words)}")
        return value

    return BeforeValidator(check)


def _distinct(items: tuple[T, ...]) -> tuple[T, ...]:
    for index, item in enumerate(items):
        if item in items[:index]:
            raise refuse(f"{str(item)!r} is listed twice", index)
    return items


def _rows(rows: tuple[str, ...]) -> tuple[str, ...]:
    if "region" not in rows:
        raise ValueError("must include `region`: every department is limited by region")
    if "carried_persons" in rows and "carrier" not in rows:
        raise ValueError("`carried_persons` needs `carrier` (persons of carried claims)")
    return rows


def _purpose(word: str) -> str:
    if not _PURPOSE.match(word):
        raise ValueError(f"{word!r} is not a purpose word like claim_handling")
    return word


def _personal(spec: object) -> object:
    """The long form of a ``personal`` entry: ``all`` → ``{all_except: []}``, ``[a, b]`` →
    ``{only: [a, b], all_except: []}``."""
    if spec == "all":
        return {"all_except": []}
    if isinstance(spec, list):
        return {"only": spec, "all_except": []}
    if isinstance(spec, dict) and "only" not in spec:
        return spec
    raise ValueError("must be `all`, a list of fields or {all_except: [...]}")


Name = Annotated[str, StringConstraints(strict=True, strip_whitespace=True, min_length=1)]
Names = Annotated[tuple[Name, ...], AfterValidator(_distinct)]
Rows = Annotated[
    tuple[Annotated[Name, _one_of("row rule", sorted(ROW_RULES))], ...],
    AfterValidator(_distinct),
    AfterValidator(_rows),
]
Categories = Annotated[
    tuple[Annotated[Category, _one_of("category", Category)], ...], AfterValidator(_distinct)
]
Grants = dict[
    Name,
    Annotated[dict[Name, Annotated[str, _one_of("mode", (*Mode, REVOKED))]], Field(min_length=1)],
]
"""``{type: {field: mode}}``; ``forbidden`` (in a file that extends another) takes a grant away."""


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Purpose(_File):
    required_for_personal: Annotated[
        tuple[Annotated[Name, AfterValidator(_purpose)], ...],
        Field(min_length=1),
        AfterValidator(_distinct),
    ]


class _DepartmentFile(_File):
    """One ``<department>.yaml``. Without ``extends``, ``rows``, ``introspection`` and
    ``grants`` are required; with it, any key given replaces the other department's."""

    department: Name
    title: Name
    description: Name = ""
    extends: Name | None = None
    rows: Rows | None = None
    purpose: _Purpose | None = None
    introspection: StrictBool | None = None
    write_categories: Categories | None = None
    grants: Grants | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must not be null (leave the key out)")
        return value

    @model_validator(mode="after")
    def _complete(self) -> Self:
        for key in ("rows", "introspection", "grants"):
            if self.extends is None and getattr(self, key) is None:
                raise refuse("missing required key", key)
        for type_name, modes in (self.grants or {}).items():
            for name, mode in modes.items():
                at = ("grants", type_name, name)
                if mode == REVOKED and self.extends is None:
                    raise refuse(
                        f"`{REVOKED}` takes away an extended grant; nothing is extended", *at
                    )
                if type_name == MUTATION and mode not in (Mode.WRITE, REVOKED):
                    raise refuse(f"a {MUTATION} field can only be `write`", *at)
                if type_name != MUTATION and mode == Mode.WRITE:
                    raise refuse("`write` is only for Mutation fields", *at)
        return self


class _Personal(_File):
    """Which fields of a type are personal: ``only`` those, or all but ``all_except``."""

    only: Names | None = None
    all_except: Names


class _FieldsFile(_File):
    """``_fields.yaml``: ``personal`` ({type: all | [field, …] | {all_except: [field, …]}}),
    ``masks`` ({type: {field: mask kind}}) and ``filters`` ({type: {field: {argument:
    [Type.field, …]}}}, what each filtering argument reveals)."""

    personal: dict[Name, Annotated[_Personal, BeforeValidator(_personal)]]
    masks: dict[Name, dict[Name, Annotated[str, _one_of("mask kind", sorted(MASK_KINDS))]]] = {}
    filters: dict[Name, dict[Name, dict[Name, Names]]] = {}


# --- loading -----------------------------------------------------------------------------------


def load_access(
    catalog: Catalog, directory: Path | None = None, arguments: Arguments | None = None
) -> AccessPolicies:
    """Read and validate ``_fields.yaml`` and every ``<department>.yaml`` of ``directory``
    (default: the bundled ``policies/access/``) against ``catalog`` (and, if given, the fields'
    ``arguments``).

    Raises :class:`PolicyFileError` naming the file, the key and its line on the first problem.
    """
    folder = directory if directory is not None else ACCESS_DIRECTORY
    fields_path = folder / FIELDS_FILE
    if not fields_path.is_file():
        raise PolicyFileError(FIELDS_FILE, "<file>", f"missing from {folder}")
    personal, masks, filters = _read_fields(SourceFile.read(fields_path), catalog, arguments)
    paths: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".yml":
            raise PolicyFileError(path.name, "<file>", "access policy files end in .yaml")
        if path.suffix != ".yaml" or path.name == FIELDS_FILE:
            continue
        if path.name.startswith("_"):
            reason = f"unknown shared file; the only shared file is {FIELDS_FILE}"
            raise PolicyFileError(path.name, "<file>", reason)
        paths[path.stem] = path
    read: dict[str, _DepartmentFile] = {}

    def department_of(name: str, chain: tuple[str, ...]) -> _DepartmentFile:
        """A department file, with the department it ``extends`` read first (no cycles)."""
        if name not in read:
            file = SourceFile.read(paths[name])
            own = file.validate(_DepartmentFile)
            base = None
            if own.extends is not None:
                if own.extends not in paths:
                    known = ", ".join(sorted(paths))
                    raise file.fail(("extends",), f"no department {own.extends!r} ({known})")
                if own.extends in (*chain, name):
                    cycle = " -> ".join((*chain, name, own.extends))
                    raise file.fail(("extends",), f"extends itself: {cycle}")
                base = department_of(own.extends, (*chain, name))
            read[name] = _department(file, own, base, catalog, masks)
        return read[name]

    departments = {name: _policy(department_of(name, ()), filters) for name in paths}
    if not departments:
        raise PolicyFileError(str(folder), "<directory>", "holds no department policy file")
    return AccessPolicies(MappingProxyType(departments), frozenset(personal), masks)


Filters = Mapping[tuple[str, str, str], tuple[tuple[str, str], ...]]


def _read_fields(
    file: SourceFile, catalog: Catalog, arguments: Arguments | None
) -> tuple[set[tuple[str, str]], Mapping[tuple[str, str], str], Filters]:
    """Which fields are personal, their mask kinds, and what each filtering argument reveals
    (so that a department may pass it only if it may read all of that)."""
    fields = file.validate(_FieldsFile)
    personal: set[tuple[str, str]] = set()
    for type_name, spec in fields.personal.items():
        part = "all_except" if spec.only is None else "only"
        names = spec.only or spec.all_except
        listed: dict[Loc, str] = {(part, i): name for i, name in enumerate(names)}
        known = _known(file, catalog, ("personal", type_name), listed)
        chosen = set(known) - set(spec.all_except) if spec.only is None else set(spec.only)
        personal.update((type_name, name) for name in chosen)
    masks: dict[tuple[str, str], str] = {}
    for type_name, kinds in fields.masks.items():
        _known(file, catalog, ("masks", type_name), {(name,): name for name in kinds})
        for name, kind in kinds.items():
            if (type_name, name) not in personal:
                raise file.fail(("masks", type_name, name), "only a personal field can be masked")
            masks[(type_name, name)] = kind
    filters: dict[tuple[str, str, str], tuple[tuple[str, str], ...]] = {}
    for type_name, by_field in fields.filters.items():
        _known(file, catalog, ("filters", type_name), {(name,): name for name in by_field})
        for name, by_argument in by_field.items():
            for argument, targets in by_argument.items():
                at = ("filters", type_name, name, argument)
                if arguments is not None and argument not in arguments[(type_name, name)]:
                    raise file.fail(at, f"{type_name}.{name} has no argument {argument!r}")
                revealed = tuple((t, f) for t, _, f in (x.partition(".") for x in targets))
                for index, (target, field_name) in enumerate(revealed):
                    if field_name not in catalog.get(target, {}):
                        reason = f"unknown field {targets[index]!r} (write Type.field)"
                        raise file.fail((*at, index), reason)
                filters[(type_name, name, argument)] = revealed
    return personal, MappingProxyType(masks), MappingProxyType(filters)


def _department(
    file: SourceFile,
    own: _DepartmentFile,
    base: _DepartmentFile | None,
    catalog: Catalog,
    masks: Mapping[tuple[str, str], str],
) -> _DepartmentFile:
    """A department file checked against the schema and, if it extends ``base``, completed by
    it: any top-level key replaces the other's, and its ``grants`` add to or change the other's
    (``forbidden`` takes a grant away). An error about what it inherits points at ``extends``."""
    stem = file.name.removesuffix(".yaml")
    if own.department != stem:
        reason = f"must equal the file name {stem!r}, got {own.department!r}"
        raise file.fail(("department",), reason)
    for type_name, modes in (own.grants or {}).items():
        _known(file, catalog, ("grants", type_name), {(name,): name for name in modes})
        for name, mode in modes.items():
            if mode == Mode.MASKED and (type_name, name) not in masks:
                reason = f"`masked` needs a mask kind for {type_name}.{name} in {FIELDS_FILE}"
                raise file.fail(("grants", type_name, name), reason)
    grants = {t: dict(m) for t, m in ((base and base.grants) or {}).items()}
    for type_name, modes in (own.grants or {}).items():
        for name, mode in modes.items():
            if mode != REVOKED:
                grants.setdefault(type_name, {})[name] = mode
            elif grants.get(type_name, {}).pop(name, None) is None:
                reason = f"`{REVOKED}`, but {own.extends} does not grant it"
                raise file.fail(("grants", type_name, name), reason)
    keys = ("rows", "purpose", "introspection", "write_categories")
    inherited = {key: getattr(base, key) for key in keys if base and getattr(own, key) is None}
    department = own.model_copy(update={**inherited, "grants": grants})
    granted = {(t, name) for t, modes in grants.items() for name in modes}

    def fail(loc: Loc, reason: str) -> PolicyFileError:
        """At ``loc`` if this file says it, else (inherited) at the line of ``extends``."""
        key, line = file.where(loc)
        own_grants = (own.grants or {}).get(str(loc[1]), {}) if loc[0] == "grants" else {}
        if loc[0] in inherited or (loc[0] == "grants" and loc[2] not in own_grants):
            line = file.where(("extends",))[1]
        return PolicyFileError(file.name, key, reason, line)

    listed = list(department.write_categories or ())
    for is_flag, mutations in _CATEGORY_MUTATIONS.items():
        kind = "monitoring flag" if is_flag else "identity category"
        of_kind = [category for category in listed if category.is_monitoring_flag == is_flag]
        if of_kind and (MUTATION, mutations[0]) not in granted:
            reason = f"{kind} {of_kind[0]} needs {MUTATION}.{mutations[0]}, which is not granted"
            at = () if "write_categories" in inherited else (listed.index(of_kind[0]),)
            raise fail(("write_categories", *at), reason)
        for mutation in () if of_kind else mutations:
            if (MUTATION, mutation) in granted:
                reason = f"granted, but write_categories lists no {kind} to write"
                raise fail(("grants", MUTATION, mutation), reason)
    readable = {type_name for type_name, _ in granted}
    for type_name, name in granted:
        target = catalog[type_name][name]
        if target is not None and target not in readable:
            reason = (
                f"returns {target}, of which {own.department} may read no field (a dead end): "
                f"grant some of {target}'s fields or remove this grant"
            )
            raise fail(("grants", type_name, name), reason)
    return department


def _policy(department: _DepartmentFile, filters: Filters) -> DepartmentPolicy:
    grants = department.grants or {}
    purpose = department.purpose
    return DepartmentPolicy(
        department=department.department,
        title=department.title,
        grants=MappingProxyType(
            {(t, f): Mode(m) for t, modes in grants.items() for f, m in modes.items()}
        ),
        rows=frozenset(department.rows or ()),
        write_categories=frozenset(department.write_categories or ()),
        purposes_for_personal=frozenset(purpose.required_for_personal if purpose else ()),
        introspection=bool(department.introspection),
        description=department.description,
        filters=filters,
    )


def _known(
    file: SourceFile, catalog: Catalog, at: Loc, fields: Mapping[Loc, str]
) -> Mapping[str, str | None]:
    """The fields of the type named at ``at`` (``("grants", "Claim")``), having checked that
    each of ``fields`` (where below ``at`` → a field name) is one of them; an unknown type or
    field is refused, with a "did you mean"."""
    type_name = str(at[-1])
    known = catalog.get(type_name)
    if known is None:
        raise file.fail(at, f"unknown type {type_name!r}{_did_you_mean(type_name, catalog)}")
    for below, name in fields.items():
        if name not in known:
            hint = _did_you_mean(name, known)
            raise file.fail((*at, *below), f"unknown field {name!r} of {type_name}{hint}")
    return known
