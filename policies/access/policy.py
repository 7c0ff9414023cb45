"""Department access policies (spec/ACCESS.md): who may read, read masked or write which field.

Rules are data. ``policies/access/<department>.yaml`` grants fields of the GraphQL schema to one
department (default deny) and names its row rules, required purpose and introspection switch;
``policies/access/_fields.yaml`` says which fields are personal data and which mask a maskable
field uses. :func:`load_access` reads and validates them against the schema's :data:`Catalog`
and refuses to start on any problem, naming the file, the key and the line.
:func:`forbidden_paths` (from :mod:`policies.access.walker`) checks a query document against one
department's grants before anything executes.

Everything here is pure: no database, no request, no GraphQL execution.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType

import yaml

from policies.access.catalog import Arguments, Catalog, arguments_of, catalog_of
from policies.access.masks import MASK_KINDS, mask_id_number, mask_name
from policies.access.reader import Entry, NodeReader, is_word, join_key
from policies.access.walker import forbidden_paths
from policies.errors import PolicyFileError
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

ROW_RULES: frozenset[str] = frozenset({"region", "carrier", "carried_persons"})
"""Row rules the resolvers know how to enforce in SQL: ``region`` (only rows whose region code
starts with one of the token's region prefixes), ``carrier`` (only claims whose carrier is the
token's organisation), ``carried_persons`` (only persons of those claims)."""

# Which mutations record (and end) which kind of category, keyed by Category.is_monitoring_flag.
_CATEGORY_MUTATIONS: Mapping[bool, tuple[str, str]] = {
    False: ("recordIdentity", "endIdentity"),
    True: ("recordMonitoringFlag", "endMonitoringFlag"),
}
_PURPOSE = re.compile(r"\A[a-z][a-z0-9_]*\Z")


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


# --- loading ---------------------------------------------------------------------------------


def load_access(
    catalog: Catalog, directory: Path | None = None, arguments: Arguments | None = None
) -> AccessPolicies:
    """Read and validate ``_fields.yaml`` and every ``<department>.yaml`` of ``directory``
    (default: the bundled ``policies/access/``) against ``catalog``.

    Raises :class:`PolicyFileError` naming the file, the key and its line on the first problem.
    """
    folder = directory if directory is not None else ACCESS_DIRECTORY
    fields_path = folder / FIELDS_FILE
    if not fields_path.is_file():
        raise PolicyFileError(FIELDS_FILE, "<file>", f"missing from {folder}")
    personal, masks, filters = _read_fields(fields_path, catalog, arguments)
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
    read: dict[str, _Department] = {}

    def department_of(name: str, chain: tuple[str, ...]) -> _Department:
        """A department file, with the department it ``extends`` read first (no cycles)."""
        if name not in read:
            read[name] = _read_department(paths[name], catalog, masks, paths, chain, department_of)
        return read[name]

    departments: dict[str, DepartmentPolicy] = {}
    for name in paths:
        policy = department_of(name, ()).policy
        departments[policy.department] = replace(policy, filters=filters)
    if not departments:
        raise PolicyFileError(str(folder), "<directory>", "holds no department policy file")
    return AccessPolicies(MappingProxyType(departments), frozenset(personal), masks)


Filters = Mapping[tuple[str, str, str], tuple[tuple[str, str], ...]]


def _read_fields(
    path: Path, catalog: Catalog, arguments: Arguments | None
) -> tuple[set[tuple[str, str]], Mapping[tuple[str, str], str], Filters]:
    reader = NodeReader(path.name)
    top = reader.mapping(
        reader.load(path), "", required=("personal",), optional=("masks", "filters")
    )
    personal: set[tuple[str, str]] = set()
    for entry in reader.entries(top["personal"].value, "personal"):
        key = join_key("personal", entry.name)
        fields = _known_type(reader, catalog, entry, key)
        if is_word(entry.value, "all"):
            chosen = set(fields)
        elif isinstance(entry.value, yaml.SequenceNode):
            chosen = _known_fields(reader, entry.name, fields, entry.value, key)
        elif isinstance(entry.value, yaml.MappingNode):
            spec = reader.mapping(entry.value, key, required=("all_except",))
            except_key = join_key(key, "all_except")
            chosen = set(fields) - _known_fields(
                reader, entry.name, fields, spec["all_except"].value, except_key
            )
        else:
            reader.fail(key, entry.value, "must be `all`, a list of fields or {all_except: [...]}")
        personal.update((entry.name, name) for name in chosen)
    masks: dict[tuple[str, str], str] = {}
    if "masks" in top:
        for type_entry in reader.entries(top["masks"].value, "masks"):
            type_key = join_key("masks", type_entry.name)
            fields = _known_type(reader, catalog, type_entry, type_key)
            for field_entry in reader.entries(type_entry.value, type_key):
                key = join_key(type_key, field_entry.name)
                _known_field(reader, type_entry.name, fields, field_entry.name, field_entry, key)
                kind = reader.text(field_entry.value, key)
                if kind not in MASK_KINDS:
                    known = ", ".join(sorted(MASK_KINDS))
                    reader.fail(
                        key, field_entry.value, f"unknown mask kind {kind!r}; known: {known}"
                    )
                if (type_entry.name, field_entry.name) not in personal:
                    reader.fail(key, field_entry.key_node, "only a personal field can be masked")
                masks[(type_entry.name, field_entry.name)] = kind
    filters = _read_filters(reader, top.get("filters"), catalog, arguments)
    return personal, MappingProxyType(masks), filters


def _read_filters(
    reader: NodeReader, entry: Entry | None, catalog: Catalog, arguments: Arguments | None
) -> Filters:
    """``filters: {Type: {field: {argument: [Type.field, …]}}}``: what each filtering argument
    reveals, so that a department may pass it only if it may read all of that."""
    filters: dict[tuple[str, str, str], tuple[tuple[str, str], ...]] = {}
    if entry is None:
        return MappingProxyType(filters)
    for type_entry in reader.entries(entry.value, "filters"):
        type_key = join_key("filters", type_entry.name)
        fields = _known_type(reader, catalog, type_entry, type_key)
        for field_entry in reader.entries(type_entry.value, type_key):
            field_key = join_key(type_key, field_entry.name)
            _known_field(reader, type_entry.name, fields, field_entry.name, field_entry, field_key)
            known_args = (
                None if arguments is None else arguments[(type_entry.name, field_entry.name)]
            )
            for arg_entry in reader.entries(field_entry.value, field_key):
                key = join_key(field_key, arg_entry.name)
                if known_args is not None and arg_entry.name not in known_args:
                    reason = (
                        f"{type_entry.name}.{field_entry.name} has no argument {arg_entry.name!r}"
                    )
                    reader.fail(key, arg_entry.key_node, reason)
                revealed: list[tuple[str, str]] = []
                for target, node in reader.names(arg_entry.value, key):
                    type_name, _, field_name = target.partition(".")
                    if field_name not in catalog.get(type_name, {}):
                        reader.fail(key, node, f"unknown field {target!r} (write Type.field)")
                    revealed.append((type_name, field_name))
                filters[(type_entry.name, field_entry.name, arg_entry.name)] = tuple(revealed)
    return MappingProxyType(filters)


@dataclass(frozen=True)
class _Department:
    """A department as read, with the nodes of its grants (for line numbers in later checks)."""

    policy: DepartmentPolicy
    grant_nodes: Mapping[tuple[str, str], yaml.Node]
    categories: Mapping[Category, yaml.Node]


REVOKED = "forbidden"
"""In a file that ``extends`` another: a grant of the other department taken away."""


def _read_department(
    path: Path,
    catalog: Catalog,
    masks: Mapping[tuple[str, str], str],
    paths: Mapping[str, Path],
    chain: tuple[str, ...],
    department_of: Callable[[str, tuple[str, ...]], _Department],
) -> _Department:
    """One department file. With ``extends: <department>`` it starts from that department's
    rows, purpose, introspection, write_categories and grants, and says only what differs: any
    top-level key replaces the other's, and its ``grants`` add to or change the other's
    (``forbidden`` takes a grant away)."""
    reader = NodeReader(path.name)
    root = reader.load(path)
    keys = ("description", "purpose", "write_categories", "rows", "introspection", "grants")
    probe = reader.mapping(root, "", required=("department", "title"), optional=(*keys, "extends"))
    base: _Department | None = None
    if "extends" in probe:
        parent = reader.text(probe["extends"].value, "extends")
        if parent not in paths:
            known = ", ".join(sorted(paths))
            reader.fail("extends", probe["extends"].value, f"no department {parent!r} ({known})")
        if parent in (*chain, path.stem):
            cycle = " -> ".join((*chain, path.stem, parent))
            reader.fail("extends", probe["extends"].value, f"extends itself: {cycle}")
        base = department_of(parent, (*chain, path.stem))
        top = probe
    else:
        top = reader.mapping(
            root,
            "",
            required=("department", "title", "rows", "introspection", "grants"),
            optional=("description", "purpose", "write_categories"),
        )
    department = reader.text(top["department"].value, "department")
    if department != path.stem:
        reason = f"must equal the file name {path.stem!r}, got {department!r}"
        reader.fail("department", top["department"].value, reason)
    title = reader.text(top["title"].value, "title")
    inherited = None if base is None else base.policy
    description = top.get("description")
    rows = _read_rows(reader, top["rows"].value) if "rows" in top else _given(inherited).rows
    purposes = (
        _read_purposes(reader, top.get("purpose"))
        if "purpose" in top or inherited is None
        else inherited.purposes_for_personal
    )
    introspection = (
        reader.boolean(top["introspection"].value, "introspection")
        if "introspection" in top
        else _given(inherited).introspection
    )
    categories = (
        _read_categories(reader, top.get("write_categories"))
        if "write_categories" in top or base is None
        else dict(base.categories)
    )
    grants: dict[tuple[str, str], Mode] = {} if inherited is None else dict(inherited.grants)
    # An inherited grant is pointed at by this file's `extends` line, not the other file's.
    grant_nodes: dict[tuple[str, str], yaml.Node] = (
        {} if base is None else dict.fromkeys(base.grant_nodes, probe["extends"].value)
    )
    if "grants" in top:
        own, own_nodes, revoked = _read_grants(
            reader, top["grants"].value, catalog, masks, may_revoke=base is not None
        )
        grants.update(own)
        grant_nodes.update(own_nodes)
        for cell, node in revoked.items():
            if cell not in grants:
                key = f"grants.{cell[0]}.{cell[1]}"
                reader.fail(
                    key, node, f"`{REVOKED}`, but {probe['extends'].value.value} does not grant it"
                )
            del grants[cell]
            del grant_nodes[cell]
    _check_categories_match_grants(reader, categories, grants, grant_nodes)
    _check_no_dead_ends(reader, department, catalog, grants, grant_nodes)
    policy = DepartmentPolicy(
        department=department,
        title=title,
        grants=MappingProxyType(grants),
        rows=rows,
        write_categories=frozenset(categories),
        purposes_for_personal=purposes,
        introspection=introspection,
        description="" if description is None else reader.text(description.value, "description"),
    )
    return _Department(policy, grant_nodes, categories)


def _given(policy: DepartmentPolicy | None) -> DepartmentPolicy:
    assert policy is not None, "required keys are checked when nothing is extended"
    return policy


def _read_rows(reader: NodeReader, node: yaml.Node) -> frozenset[str]:
    rows = reader.names(node, "rows")
    for index, (name, item) in enumerate(rows):
        if name not in ROW_RULES:
            known = ", ".join(sorted(ROW_RULES))
            reader.fail(f"rows[{index}]", item, f"unknown row rule {name!r}; known: {known}")
    names = {name for name, _ in rows}
    if "region" not in names:
        reader.fail("rows", node, "must include `region`: every department is limited by region")
    if "carried_persons" in names and "carrier" not in names:
        reader.fail("rows", node, "`carried_persons` needs `carrier` (persons of carried claims)")
    return frozenset(names)


def _read_purposes(reader: NodeReader, entry: Entry | None) -> frozenset[str]:
    if entry is None:
        return frozenset()
    spec = reader.mapping(entry.value, "purpose", required=("required_for_personal",))
    key = "purpose.required_for_personal"
    node = spec["required_for_personal"].value
    purposes = reader.names(node, key)
    if not purposes:
        reader.fail(key, node, "must name at least one purpose (or leave `purpose` out)")
    for index, (name, item) in enumerate(purposes):
        if not _PURPOSE.match(name):
            reader.fail(
                f"{key}[{index}]", item, f"{name!r} is not a purpose word like claim_handling"
            )
    return frozenset(name for name, _ in purposes)


def _read_categories(reader: NodeReader, entry: Entry | None) -> dict[Category, yaml.Node]:
    if entry is None:
        return {}
    categories: dict[Category, yaml.Node] = {}
    for index, (name, item) in enumerate(reader.names(entry.value, "write_categories")):
        try:
            categories[Category(name)] = item
        except ValueError:
            hint = _did_you_mean(name, [c.value for c in Category])
            reader.fail(f"write_categories[{index}]", item, f"unknown category {name!r}{hint}")
    return categories


def _read_grants(
    reader: NodeReader,
    node: yaml.Node,
    catalog: Catalog,
    masks: Mapping[tuple[str, str], str],
    *,
    may_revoke: bool = False,
) -> tuple[
    dict[tuple[str, str], Mode], dict[tuple[str, str], yaml.Node], dict[tuple[str, str], yaml.Node]
]:
    """The grants of a file (and, where it extends another, the grants it takes away)."""
    grants: dict[tuple[str, str], Mode] = {}
    nodes: dict[tuple[str, str], yaml.Node] = {}
    revoked: dict[tuple[str, str], yaml.Node] = {}
    modes = ", ".join(mode.value for mode in Mode)
    for type_entry in reader.entries(node, "grants"):
        type_name = type_entry.name
        type_key = join_key("grants", type_name)
        fields = _known_type(reader, catalog, type_entry, type_key)
        field_entries = reader.entries(type_entry.value, type_key)
        if not field_entries:
            reader.fail(type_key, type_entry.value, "grants nothing: grant a field or remove it")
        for field_entry in field_entries:
            name = field_entry.name
            key = join_key(type_key, name)
            _known_field(reader, type_name, fields, name, field_entry, key)
            text = reader.text(field_entry.value, key)
            if may_revoke and text == REVOKED:
                revoked[(type_name, name)] = field_entry.value
                continue
            if text not in {mode.value for mode in Mode}:
                reader.fail(key, field_entry.value, f"unknown mode {text!r}; one of {modes}")
            mode = Mode(text)
            if type_name == MUTATION and mode is not Mode.WRITE:
                reader.fail(key, field_entry.value, f"a {MUTATION} field can only be `write`")
            if type_name != MUTATION and mode is Mode.WRITE:
                reader.fail(key, field_entry.value, "`write` is only for Mutation fields")
            if mode is Mode.MASKED and (type_name, name) not in masks:
                reason = f"`masked` needs a mask kind for {type_name}.{name} in {FIELDS_FILE}"
                reader.fail(key, field_entry.value, reason)
            grants[(type_name, name)] = mode
            nodes[(type_name, name)] = field_entry.key_node
    return grants, nodes, revoked


def _check_categories_match_grants(
    reader: NodeReader,
    categories: Mapping[Category, yaml.Node],
    grants: Mapping[tuple[str, str], Mode],
    grant_nodes: Mapping[tuple[str, str], yaml.Node],
) -> None:
    """Identity categories need ``recordIdentity``, monitoring flags ``recordMonitoringFlag``; and
    granting those mutations without a category of that kind is a mistake too."""
    listed = list(categories)
    for is_flag, mutations in _CATEGORY_MUTATIONS.items():
        record = mutations[0]
        kind = "monitoring flag" if is_flag else "identity category"
        of_kind = [category for category in listed if category.is_monitoring_flag == is_flag]
        if of_kind and (MUTATION, record) not in grants:
            category = of_kind[0]
            key = f"write_categories[{listed.index(category)}]"
            reason = f"{kind} {category} needs {MUTATION}.{record}, which is not granted"
            reader.fail(key, categories[category], reason)
        if not of_kind:
            for mutation in mutations:
                if (MUTATION, mutation) in grants:
                    key = f"grants.{MUTATION}.{mutation}"
                    reason = f"granted, but write_categories lists no {kind} to write"
                    reader.fail(key, grant_nodes[(MUTATION, mutation)], reason)


def _check_no_dead_ends(
    reader: NodeReader,
    department: str,
    catalog: Catalog,
    grants: Mapping[tuple[str, str], Mode],
    grant_nodes: Mapping[tuple[str, str], yaml.Node],
) -> None:
    """A granted field that returns an object type must lead to at least one granted field."""
    readable_types = {type_name for type_name, _ in grants}
    for type_name, name in grants:
        target = catalog[type_name][name]
        if target is not None and target not in readable_types:
            reason = (
                f"returns {target}, of which {department} may read no field (a dead end): "
                f"grant some of {target}'s fields or remove this grant"
            )
            reader.fail(f"grants.{type_name}.{name}", grant_nodes[(type_name, name)], reason)


def _known_type(
    reader: NodeReader, catalog: Catalog, entry: Entry, key: str
) -> Mapping[str, str | None]:
    fields = catalog.get(entry.name)
    if fields is None:
        hint = _did_you_mean(entry.name, catalog)
        reader.fail(key, entry.key_node, f"unknown type {entry.name!r}{hint}")
    return fields


def _known_field(
    reader: NodeReader,
    type_name: str,
    fields: Mapping[str, str | None],
    name: str,
    entry: Entry | yaml.Node,
    key: str,
) -> None:
    if name not in fields:
        node = entry.key_node if isinstance(entry, Entry) else entry
        hint = _did_you_mean(name, fields)
        reader.fail(key, node, f"unknown field {name!r} of {type_name}{hint}")


def _known_fields(
    reader: NodeReader,
    type_name: str,
    fields: Mapping[str, str | None],
    node: yaml.Node,
    key: str,
) -> set[str]:
    chosen: set[str] = set()
    for index, (name, item) in enumerate(reader.names(node, key)):
        _known_field(reader, type_name, fields, name, item, f"{key}[{index}]")
        chosen.add(name)
    return chosen


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """``_did_you_mean("nmae", ["name", "id"])`` → ``" (did you mean 'name'?)"``."""
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
