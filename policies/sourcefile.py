"""Rule files in YAML, validated by pydantic models, with errors that name the file, key and line.

:class:`SourceFile` parses a file strictly (no implicit dates, floats as exact decimals, a key
given twice refused) and keeps the composed node tree, so that any problem can be reported as a
:class:`~policies.errors.PolicyFileError` with the dotted key (``assistance.schedules.MONITORED.
ratio.value``) and the line it is on. A pydantic ``ValidationError`` is mapped the same way
(:meth:`SourceFile.validate`); a model validator names a key below its model with
:func:`refuse`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from policies.errors import PolicyFileError

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]
"""A position in the parsed data: mapping keys and list indices, as in pydantic's ``loc``."""

_RULE = "file_rule"


def refuse(reason: str, *at: str | int) -> PydanticCustomError:
    """An error for a model validator to raise, about the key ``at`` below the model's own.

    >>> refuse("give either ratio or segments, not both", "segments").context["at"]
    ('segments',)
    """
    return PydanticCustomError(_RULE, "{reason}", {"reason": reason, "at": at})


class _Loader(yaml.SafeLoader):
    """Safe YAML without implicit dates (the models parse them, naming the key), with exact
    decimals instead of binary floats."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        return Decimal(text)
    except InvalidOperation:
        return text


_Loader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


def _no_duplicate_keys(name: str, node: yaml.Node, key: str = "") -> None:
    """Refuse a key given twice in one mapping, at the line of its second occurrence."""
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _no_duplicate_keys(name, item, f"{key}[{index}]")
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            text, line = str(key_node.value), key_node.start_mark.line + 1
            inner = f"{key}.{text}" if key else text
            if text in first:
                reason = f"duplicate key: given twice, first on line {first[text]}"
                raise PolicyFileError(name, inner, reason, line)
            first[text] = line
            _no_duplicate_keys(name, value_node, inner)


@dataclass(frozen=True)
class SourceFile:
    """One parsed rule file: its name, the composed node tree (with lines) and the data."""

    name: str
    root: yaml.Node | None
    data: object

    @classmethod
    def read(cls, path: Path) -> SourceFile:
        """Parse ``path``; invalid YAML (key ``<file>``) and a key given twice are refused."""
        try:
            return cls.parse(path.name, path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as error:
            raise PolicyFileError(path.name, "<file>", f"cannot be read: {error}") from error

    @classmethod
    def parse(cls, name: str, text: str) -> SourceFile:
        r"""Parse ``text`` as the file ``name``.

        >>> SourceFile.parse("x.yaml", "a: 0.1\nb: 2023-01-01\n").data
        {'a': Decimal('0.1'), 'b': '2023-01-01'}
        """
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
            if root is not None:
                _no_duplicate_keys(name, root)
            data = None if root is None else loader.construct_document(root)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            line = mark.line + 1 if mark is not None else None
            raise PolicyFileError(
                name, "<file>", f"not valid YAML: {error.problem}", line
            ) from None
        except yaml.YAMLError as error:
            raise PolicyFileError(name, "<file>", f"not valid YAML: {error}") from None
        finally:
            loader.dispose()
        return cls(name, root, data)

    def where(self, loc: Loc) -> tuple[str, int | None]:
        r"""The dotted key and the 1-based line of ``loc``: of its deepest part that exists (a
        missing key: the line of the mapping that lacks it). Shorthands read as their long form:
        an index into a value that is not a list is left out (a parameter given as one mapping
        reads as a list of one), and so is a key into a list (``[id]`` for ``{only: [id]}``).

        >>> file = SourceFile.parse("x.yaml", "a:\n  b:\n    - x: 1\n    - y: 2\n  c: {v: 1}\n")
        >>> file.where(("a", "b", 1, "y")), file.where(("a", "c", 0, "v")), file.where(("a", "d"))
        (('a.b[1].y', 4), ('a.c.v', 5), ('a.d', 1))
        >>> file.where(("a", "b", "only", 1))
        ('a.b[1]', 4)
        """
        key, node = "", self.root
        line = None if node is None else node.start_mark.line + 1
        for part in loc:
            if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                key += f"[{part}]"
                node = node.value[part] if part < len(node.value) else None
                if node is not None:
                    line = node.start_mark.line + 1
                continue
            found = None
            if isinstance(node, yaml.MappingNode):
                found = next(((k, v) for k, v in node.value if str(k.value) == str(part)), None)
            if (
                part == "[key]"
                or (part == 0 and found is None)
                or isinstance(node, yaml.SequenceNode)
            ):
                continue
            key = f"{key}.{part}" if key else str(part)
            if found is None:
                node = None
            else:
                line, node = found[0].start_mark.line + 1, found[1]
        return key or "<file>", line

    def fail(self, loc: Loc, reason: str) -> PolicyFileError:
        """The error for ``reason`` at ``loc``, with the dotted key and the line."""
        key, line = self.where(loc)
        return PolicyFileError(self.name, key, reason, line)

    def validate(self, model: type[M], context: Mapping[str, object] | None = None) -> M:
        """The data as ``model``; the first validation error (an unknown key if there is one)
        becomes a :class:`PolicyFileError`."""
        try:
            return model.model_validate(self.data, context=dict(context or {}))
        except ValidationError as error:
            # An unknown key first: it is often a misspelling of the key reported missing.
            first = min(error.errors(), key=lambda e: e["type"] != "extra_forbidden")
            at: Sequence[str | int] = first.get("ctx", {}).get("at", ())
            raise self.fail((*first["loc"], *at), _reason(first)) from None


def _reason(error: ErrorDetails) -> str:
    """A validation error in the words of the rule files (``unknown key``, ``missing required
    key``, ``unknown value 'X'`` …), naming the offending value."""
    kind, ctx, got = error["type"], error.get("ctx", {}), error.get("input")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "missing required key"
    if kind == _RULE:
        return str(ctx["reason"])
    if kind in ("value_error", "assertion_error"):
        return str(ctx["error"])
    if kind in ("enum", "literal_error"):
        return f"unknown value {got!r} (one of {ctx['expected']})"
    message = _PHRASES.get(kind, error["msg"])
    return f"{message[:1].lower()}{message[1:]}, got {got!r}"


_PHRASES = {
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "too_short": "must not be empty",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "string_too_short": "must not be empty",
}
