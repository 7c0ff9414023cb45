"""Which selected fields of a GraphQL document a department may not use (ACCESS.md: "a request
that selects a forbidden field is refused before anything executes … and lists every forbidden
field path").

The walk runs on the document and the full schema, before execution and independent of data:

>>> schema = graphql.build_schema("type Query { me: P } type P { name: String, secret: String }")
>>> class OnlyName:
...     def can_use(self, type_name: str, field: str) -> bool:
...         return (type_name, field) in {("Query", "me"), ("P", "name")}
...     def can_use_argument(self, type_name: str, field: str, argument: str) -> bool:
...         return True
>>> forbidden_paths(graphql.parse("{ me { name secret } }"), schema, OnlyName())
['me.secret']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import graphql

Paths = frozenset[tuple[str, ...]]


class Grants(Protocol):
    """What the walk needs of a policy (a :class:`policies.access.DepartmentPolicy` fits)."""

    def can_use(self, type_name: str, field: str) -> bool: ...

    def can_use_argument(self, type_name: str, field: str, argument: str) -> bool: ...


def forbidden_paths(
    document: graphql.DocumentNode,
    schema: graphql.GraphQLSchema,
    policy: Grants,
    operation_name: str | None = None,
) -> list[str]:
    """Every selected field ``policy`` does not grant, as a dotted path of field names (aliases
    ignored), sorted and without duplicates: ``["beneficiaries.edges.node.name"]``; an argument
    it may not pass is listed as ``"beneficiaries(category)"``.

    Walks the operation named ``operation_name``, or the only one; when it cannot tell which one
    will run (no such name, or several operations and no name), it walks them all. Inline
    fragments and fragment spreads are expanded (a fragment cycle is cut). Below a forbidden field
    nothing more is listed: its children are forbidden by implication. ``__typename`` and the
    introspection fields (``__schema``, ``__type``) are not this function's business, and fields
    the schema does not know are left to GraphQL validation.
    """
    operations = [d for d in document.definitions if isinstance(d, graphql.OperationDefinitionNode)]
    fragments = {
        d.name.value: d
        for d in document.definitions
        if isinstance(d, graphql.FragmentDefinitionNode)
    }
    walk = _Walk(schema, policy, fragments)
    found: set[tuple[str, ...]] = set()
    for operation in _chosen(operations, operation_name):
        root = schema.get_root_type(operation.operation)
        if root is not None:
            found.update(walk.selections(operation.selection_set, root, frozenset()))
    return sorted(".".join(path) for path in found)


def _chosen(
    operations: Sequence[graphql.OperationDefinitionNode], operation_name: str | None
) -> Sequence[graphql.OperationDefinitionNode]:
    if operation_name is not None:
        named = [op for op in operations if op.name is not None and op.name.value == operation_name]
        if named:
            return named
    return operations


class _Walk:
    """One walk over one document. A named fragment is walked once and its result reused
    wherever it is spread, so even a document that spreads fragments many times (or in a cycle)
    costs no more than its size. A cycle is cut where it closes; such a document is invalid
    GraphQL (NoFragmentCyclesRule) and never executes, so only its termination matters."""

    def __init__(
        self,
        schema: graphql.GraphQLSchema,
        policy: Grants,
        fragments: Mapping[str, graphql.FragmentDefinitionNode],
    ) -> None:
        self.schema = schema
        self.policy = policy
        self.fragments = fragments
        self.memo: dict[str, Paths] = {}

    def selections(
        self,
        selection_set: graphql.SelectionSetNode,
        parent: graphql.GraphQLNamedType,
        active: frozenset[str],
    ) -> Paths:
        """The forbidden paths below ``selection_set``, relative to it; ``active`` holds the
        fragments being expanded."""
        found: set[tuple[str, ...]] = set()
        for selection in selection_set.selections:
            if isinstance(selection, graphql.FieldNode):
                paths = self.field(selection, parent, active)
            elif isinstance(selection, graphql.InlineFragmentNode):
                target = self.condition(selection.type_condition, parent)
                if target is None:
                    continue
                paths = self.selections(selection.selection_set, target, active)
            elif isinstance(selection, graphql.FragmentSpreadNode):
                paths = self.spread(selection.name.value, active)
            else:  # pragma: no cover - graphql-core has no other selection kind
                continue
            found.update(paths)
        return frozenset(found)

    def field(
        self,
        node: graphql.FieldNode,
        parent: graphql.GraphQLNamedType,
        active: frozenset[str],
    ) -> Paths:
        name = node.name.value
        if name.startswith("__") or not isinstance(
            parent, graphql.GraphQLObjectType | graphql.GraphQLInterfaceType
        ):
            return frozenset()
        definition = parent.fields.get(name)
        if definition is None:
            return frozenset()
        if not self.allowed(parent, name):
            return frozenset({(name,)})
        refused = {
            (f"{name}({argument.name.value})",)
            for argument in node.arguments or ()
            if not self.policy.can_use_argument(parent.name, name, argument.name.value)
        }
        if node.selection_set is None:
            return frozenset(refused)
        paths = self.selections(node.selection_set, graphql.get_named_type(definition.type), active)
        return frozenset(refused | {(name, *path) for path in paths})

    def spread(self, name: str, active: frozenset[str]) -> Paths:
        if name in active:
            return frozenset()
        if name not in self.memo:
            fragment = self.fragments.get(name)
            target = None if fragment is None else self.condition(fragment.type_condition, None)
            paths: Paths = frozenset()
            if fragment is not None and target is not None:
                paths = self.selections(fragment.selection_set, target, active | {name})
            self.memo[name] = paths
        return self.memo[name]

    def condition(
        self,
        condition: graphql.NamedTypeNode | None,
        parent: graphql.GraphQLNamedType | None,
    ) -> graphql.GraphQLNamedType | None:
        """The type a fragment applies to: its type condition, else the enclosing type."""
        if condition is None:
            return parent
        return self.schema.get_type(condition.name.value)

    def allowed(
        self,
        parent: graphql.GraphQLObjectType | graphql.GraphQLInterfaceType,
        name: str,
    ) -> bool:
        """Grants are per object type; a field selected on an interface is allowed only if every
        object type that may stand behind it grants the field."""
        if isinstance(parent, graphql.GraphQLObjectType):
            return self.policy.can_use(parent.name, name)
        possible = self.schema.get_possible_types(parent)
        return bool(possible) and all(self.policy.can_use(t.name, name) for t in possible)
