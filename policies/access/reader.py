"""Reading access policy files node by node, so that every error names the file, the key and the
line.

``yaml.safe_load`` forgets where a value came from; ``yaml.compose`` keeps a position (a *mark*) on
every node. :class:`NodeReader` reads that node tree with the few shapes the access files use
(mappings with known keys, free mappings, strings, booleans, lists of names) and raises
:class:`PolicyFileError` with a key such as ``grants.Beneficiary.nmae (line 23)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, NoReturn

import yaml

from policies.errors import PolicyFileError

_STR = "tag:yaml.org,2002:str"
_BOOL = "tag:yaml.org,2002:bool"


class Entry(NamedTuple):
    """One ``key: value`` of a mapping: the key as text, its node and the value's node."""

    name: str
    key_node: yaml.Node
    value: yaml.Node


def join_key(key: str, child: str) -> str:
    """``join_key("grants", "Beneficiary")`` → ``"grants.Beneficiary"``; ``join_key("", "rows")``
    → ``"rows"``."""
    return f"{key}.{child}" if key else child


def line_of(node: yaml.Node) -> int:
    """The 1-based line where ``node`` starts (marks count from 0)."""
    return node.start_mark.line + 1


class NodeReader:
    """Typed reading of one file's node tree; every failure is a :class:`PolicyFileError`."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, key: str, node: yaml.Node | None, reason: str) -> NoReturn:
        where = f" (line {line_of(node)})" if node is not None else ""
        raise PolicyFileError(self.file, f"{key or '<file>'}{where}", reason)

    def load(self, path: Path) -> yaml.Node:
        """The root node of ``path``; YAML syntax errors and empty files are refused."""
        try:
            root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            line = f" (line {mark.line + 1})" if mark is not None else ""
            reason = f"not valid YAML: {error.problem}"
            raise PolicyFileError(self.file, f"<file>{line}", reason) from error
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise PolicyFileError(self.file, "<file>", f"cannot be read: {error}") from error
        if root is None:
            self.fail("", None, "is empty")
        return root

    def entries(self, node: yaml.Node, key: str) -> list[Entry]:
        """The entries of a mapping with free keys (type names, field names), in file order."""
        if not isinstance(node, yaml.MappingNode):
            self.fail(key, node, f"must be a mapping, got {_shape(node)}")
        result: list[Entry] = []
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
                self.fail(key, key_node, f"keys must be names, got {_shape(key_node)}")
            name = str(key_node.value)
            if name in seen:
                self.fail(join_key(key, name), key_node, "duplicate key")
            seen.add(name)
            result.append(Entry(name, key_node, value_node))
        return result

    def mapping(
        self,
        node: yaml.Node,
        key: str,
        required: tuple[str, ...] = (),
        optional: tuple[str, ...] = (),
    ) -> dict[str, Entry]:
        """A mapping with a fixed set of keys: unknown keys and missing required keys fail."""
        found = {entry.name: entry for entry in self.entries(node, key)}
        for name, entry in found.items():
            if name not in required and name not in optional:
                known = ", ".join((*required, *optional))
                self.fail(join_key(key, name), entry.key_node, f"unknown key; known keys: {known}")
        for name in required:
            if name not in found:
                self.fail(join_key(key, name), node, "missing required key")
        return found

    def text(self, node: yaml.Node, key: str) -> str:
        """A non-empty string scalar."""
        if not isinstance(node, yaml.ScalarNode) or node.tag != _STR or not str(node.value).strip():
            self.fail(key, node, f"must be a non-empty string, got {_shape(node)}")
        return str(node.value).strip()

    def boolean(self, node: yaml.Node, key: str) -> bool:
        """``true`` or ``false``."""
        if not isinstance(node, yaml.ScalarNode) or node.tag != _BOOL:
            self.fail(key, node, f"must be true or false, got {_shape(node)}")
        return str(node.value).lower() in {"true", "yes", "on"}

    def names(self, node: yaml.Node, key: str) -> list[tuple[str, yaml.Node]]:
        """A list of distinct non-empty strings, each with its node: ``[region, carrier]``."""
        if not isinstance(node, yaml.SequenceNode):
            self.fail(key, node, f"must be a list, got {_shape(node)}")
        result: list[tuple[str, yaml.Node]] = []
        for index, item in enumerate(node.value):
            name = self.text(item, f"{key}[{index}]")
            if any(name == earlier for earlier, _ in result):
                self.fail(f"{key}[{index}]", item, f"{name!r} is listed twice")
            result.append((name, item))
        return result


def is_word(node: yaml.Node, word: str) -> bool:
    """Is ``node`` the plain string ``word``?"""
    return isinstance(node, yaml.ScalarNode) and node.tag == _STR and node.value == word


def _shape(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    kind = str(node.tag).rsplit(":", 1)[-1]
    return f"{kind} {node.value!r}"
