"""The YAML side of policy files: a strict loader and a typed reader that names every key.

Used by :mod:`policies.benefits.loader`; every problem raises :class:`PolicyFileError` with the file
and the dotted key (``assistance.schedules.MONITORED.ratio.value``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import yaml

from policies.benefits.model import Fund, Param, Segment, Unit, Value
from policies.errors import PolicyFileError
from policies.vocabulary import Category, VisitType

T = TypeVar("T")
Converter = Callable[[object, str], T]

_DATE = re.compile(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


class DuplicateKey(Exception):
    def __init__(self, key: object) -> None:
        self.key = key


class YamlLoader(yaml.SafeLoader):
    """Safe YAML without implicit dates (we parse them ourselves, naming the key), with exact
    decimals instead of binary floats, and refusing duplicate keys."""


YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        return Decimal(text)
    except InvalidOperation:
        return text


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise DuplicateKey(key)
        result[key] = loader.construct_object(value_node, deep=True)
    return result


YamlLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
YamlLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def join_key(key: str, child: object) -> str:
    return f"{key}.{child}" if key else str(child)


class PolicyReader:
    """Typed access to the parsed YAML of one file, with the dotted key of every value."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.policy_id = "?"
        self.start = date.min
        self.end: date | None = None
        self.uses_pcdi: list[str] = []
        self.uses_monitoring_standard: list[str] = []

    def fail(self, key: str, reason: str) -> NoReturn:
        raise PolicyFileError(self.file, key or "<file>", reason)

    def mapping(
        self, node: object, key: str, required: Sequence[str], optional: Sequence[str] = ()
    ) -> dict[str, object]:
        if not isinstance(node, dict):
            self.fail(key, f"must be a mapping, got {node!r}")
        for child in node:
            if child not in required and child not in optional:
                self.fail(join_key(key, child), "unknown key")
        for child in required:
            if child not in node:
                self.fail(join_key(key, child), "missing required key")
        return node

    def text(self, node: object, key: str) -> str:
        if not isinstance(node, str) or not node.strip():
            self.fail(key, f"must be a non-empty string, got {node!r}")
        return node

    def day(self, node: object, key: str) -> date:
        if not isinstance(node, str) or not _DATE.match(node):
            self.fail(key, f"must be a date YYYY-MM-DD, got {node!r}")
        try:
            return date.fromisoformat(node)
        except ValueError:
            self.fail(key, f"is not a valid date: {node!r}")

    def decimal(self, node: object, key: str) -> Decimal:
        if isinstance(node, bool) or not isinstance(node, int | Decimal):
            self.fail(key, f"must be a number, got {node!r}")
        value = Decimal(node)
        if not value.is_finite():
            self.fail(key, f"must be a finite number, got {node!r}")
        return value

    def amount(self, node: object, key: str) -> Decimal:
        value = self.decimal(node, key)
        if value < 0:
            self.fail(key, f"must not be negative, got {value}")
        return value

    def ratio(self, node: object, key: str) -> Decimal:
        value = self.decimal(node, key)
        if not Decimal(0) <= value <= Decimal(1):
            self.fail(key, f"ratio must be within [0, 1], got {value}")
        return value

    def cap(self, node: object, key: str) -> Decimal | None:
        return None if node is None else self.amount(node, key)

    def flag(self, node: object, key: str) -> bool:
        if not isinstance(node, bool):
            self.fail(key, f"must be true or false, got {node!r}")
        return node

    def age(self, node: object, key: str) -> int:
        if isinstance(node, bool) or not isinstance(node, int) or node < 0:
            self.fail(key, f"must be a whole number of years ≥ 0, got {node!r}")
        return node

    def category(self, node: object, key: str) -> Category:
        try:
            return Category(str(node))
        except ValueError:
            self.fail(key, f"unknown category {node!r}")

    def fund(self, node: object, key: str) -> Fund:
        try:
            return Fund(str(node))
        except ValueError:
            self.fail(key, f"unknown fund {node!r} (assistanceFund or finance)")

    def items(self, node: object, key: str, item: Converter[T]) -> tuple[T, ...]:
        if not isinstance(node, list) or not node:
            self.fail(key, f"must be a non-empty list, got {node!r}")
        values = tuple(item(x, f"{key}[{i}]") for i, x in enumerate(node))
        if len(set(values)) != len(values):
            self.fail(key, "lists an entry twice")
        return values

    def categories(self, node: object, key: str) -> tuple[Category, ...]:
        return self.items(node, key, self.category)

    def visit_types(self, node: object, key: str) -> tuple[VisitType, ...]:
        def one(x: object, k: str) -> VisitType:
            try:
                return VisitType(str(x))
            except ValueError:
                self.fail(k, f"unknown visit type {x!r}")

        return self.items(node, key, one)

    def codes(self, node: object, key: str) -> tuple[str, ...]:
        return self.items(node, key, lambda x, k: self.text(x, k).strip().upper())

    def segments(self, node: object, key: str) -> tuple[Segment, ...]:
        if not isinstance(node, list) or not node:
            self.fail(key, "must be a non-empty list of {up_to, ratio}")
        result: list[Segment] = []
        previous = Decimal(0)
        for i, raw in enumerate(node):
            k = f"{key}[{i}]"
            entry = self.mapping(raw, k, ("up_to", "ratio"))
            ratio = self.ratio(entry["ratio"], f"{k}.ratio")
            last = i == len(node) - 1
            if entry["up_to"] is None:
                if not last:
                    self.fail(f"{k}.up_to", "only the last segment may be open (null)")
                result.append(Segment(None, ratio))
                break
            if last:
                self.fail(f"{k}.up_to", "the last segment must be open (up_to: null)")
            up_to = self.amount(entry["up_to"], f"{k}.up_to")
            if up_to <= previous:
                self.fail(f"{k}.up_to", "segment bounds must increase")
            previous = up_to
            result.append(Segment(up_to, ratio))
        return tuple(result)

    # -- parameters --------------------------------------------------------------------------

    def param(
        self, node: object, key: str, converters: Mapping[Unit | None, Converter[T]]
    ) -> Param[T]:
        """A parameter: one {value, since, clause | assumed} mapping, or a list of them."""
        raw_versions = node if isinstance(node, list) else [node]
        if not raw_versions:
            self.fail(key, "must be a parameter {value, since, clause | assumed: true}")
        versions: list[Value[T]] = []
        for i, raw in enumerate(raw_versions):
            k = key if not isinstance(node, list) else f"{key}[{i}]"
            versions.append(self._value(raw, k, key, converters))
            if i and versions[-1].since <= versions[-2].since:
                self.fail(f"{k}.since", "versions must be in increasing order of since")
        return Param(self.policy_id, key, tuple(versions))

    def _value(
        self, node: object, k: str, key: str, converters: Mapping[Unit | None, Converter[T]]
    ) -> Value[T]:
        if not isinstance(node, dict) or "value" not in node:
            self.fail(k, "must be a parameter {value, since, clause | assumed: true}")
        allowed = [u for u in converters if u is not None]
        entry = self.mapping(
            node,
            k,
            ("value", "since"),
            ("clause", "assumed", "note", *(["unit"] if allowed else [])),
        )
        unit: Unit | None = allowed[0] if allowed else None
        if "unit" in entry:
            if entry["unit"] not in [u.value for u in allowed]:
                shown = ", ".join(u.value for u in allowed)
                self.fail(f"{k}.unit", f"unknown unit {entry['unit']!r} (allowed: {shown})")
            unit = Unit(str(entry["unit"]))
        value = converters[unit](entry["value"], f"{k}.value")
        since = self.day(entry["since"], f"{k}.since")
        if since < self.start or (self.end is not None and since > self.end):
            self.fail(f"{k}.since", f"{since} is outside the policy's effective interval")
        clause = self.source(entry, k)
        note = None if entry.get("note") is None else self.text(entry["note"], f"{k}.note")
        if unit is Unit.SHARE_OF_PCDI:
            self.uses_pcdi.append(k)
        if unit is Unit.SHARE_OF_MONITORING_STANDARD:
            self.uses_monitoring_standard.append(k)
        return Value(self.policy_id, key, value, since, clause, unit, note)

    def source(self, entry: Mapping[str, object], k: str) -> str | None:
        has_clause = entry.get("clause") is not None
        assumed = entry.get("assumed", False)
        if not isinstance(assumed, bool):
            self.fail(f"{k}.assumed", f"must be true or false, got {assumed!r}")
        if has_clause and assumed:
            self.fail(k, "give either clause or assumed: true, not both")
        if not has_clause and not assumed:
            self.fail(k, "needs a clause reference or assumed: true")
        return self.text(entry["clause"], f"{k}.clause") if has_clause else None

    def amount_param(self, node: object, key: str) -> Param[Decimal]:
        return self.param(node, key, {None: self.amount})

    def ratio_param(self, node: object, key: str) -> Param[Decimal]:
        return self.param(node, key, {None: self.ratio})

    def cap_param(self, node: object, key: str) -> Param[Decimal | None]:
        return self.param(node, key, {None: self.cap})

    def flag_param(self, node: object, key: str) -> Param[bool]:
        return self.param(node, key, {None: self.flag})

    def categories_param(self, node: object, key: str) -> Param[tuple[Category, ...]]:
        return self.param(node, key, {None: self.categories})

    def visit_types_param(self, node: object, key: str) -> Param[tuple[VisitType, ...]]:
        return self.param(node, key, {None: self.visit_types})


_KEY_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def line_of(text: str, key: str) -> int | None:
    r"""The 1-based line of the dotted ``key`` (``a.b.value[1].ratio``) in a YAML text: of the
    deepest part of it that exists (a missing key: the mapping that lacks it).

    >>> line_of("a:\n  b:\n    - x: 1\n    - y: 2\n", "a.b[1].y")
    4
    >>> line_of("a:\n  b: 1\n", "a.c")
    1
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    if node is None:
        return None
    line = node.start_mark.line + 1
    for name, index in _KEY_PART.findall(key):
        found: yaml.Node | None = None
        if name and isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if str(k.value) == name), None)
            key_node = next((k for k, v in node.value if str(k.value) == name), None)
            if key_node is not None:
                line = key_node.start_mark.line + 1
        elif index and isinstance(node, yaml.SequenceNode) and int(index) < len(node.value):
            found = node.value[int(index)]
            line = found.start_mark.line + 1
        if found is None:
            break
        node = found
    return line


def load_yaml(path: Path, reader: PolicyReader) -> object:
    """Parse a policy file strictly (no implicit dates, exact decimals, no duplicate keys)."""
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=YamlLoader)
    except DuplicateKey as duplicate:
        reader.fail(str(duplicate.key), "key appears twice")
    except yaml.YAMLError as error:
        reader.fail("<yaml>", f"not valid YAML: {error}")
