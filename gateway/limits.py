"""The limits of a query document: how many fields it selects once its fragments are expanded,
how deep it nests, how many aliases it uses and what it costs to run (list sizes multiplied
through the nesting); and the size cap of the response that leaves.

Everything is measured in one walk of the document in which each named fragment is measured
once and reused wherever it is spread, so the walk is linear in the document's size even when
the expanded query is astronomically large (a fragment spreading the previous one twice, twenty
times over, is a million fields in 800 bytes):

>>> schema = graphql.build_schema("type Query { a: Int, items(first: Int = 20): [Query!]! }")
>>> bomb = "fragment F0 on Query { a } " + " ".join(
...     f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, 21)
... )
>>> measure(graphql.parse(bomb + " { ...F20 }"), schema).fields
1048576
>>> measure(graphql.parse("{ items(first: 100) { items { a } } }"), schema)
Measure(fields=3, aliases=0, depth=2, cost=2101)

A query is refused (``BAD_INPUT``, before the access check, graphql-core's validation and
anything else runs) when a measure exceeds its setting, and the error names the setting and the
value it computed: "query cost 50,402 exceeds MEDGW_MAX_QUERY_COST=50000".
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import graphql
from strawberry.extensions import SchemaExtension

from gateway.config import Settings
from gateway.errors import BAD_INPUT

PAGE_ARGUMENTS = ("first", "last")
META_FIELDS = {"__schema": graphql.SchemaMetaFieldDef, "__type": graphql.TypeMetaFieldDef}


@dataclass(frozen=True)
class Measure:
    """What a selection costs, resolved once.

    ``fields``: field selections with fragments expanded; ``aliases``: those of them with an
    alias; ``depth``: levels of fields below the top ones (``{ a { b } }`` is 1; introspection
    fields are not counted, as GraphiQL's own query nests ``ofType`` a dozen deep); ``cost``:
    how many fields the execution may resolve, each list counted as its page size (``first`` or
    ``last``, else the argument's default, at most ``MEDGW_MAX_PAGE_SIZE``), an introspection
    list as its mean length in the schema, and any other list as ``MEDGW_ASSUMED_LIST_SIZE``.
    """

    fields: int = 0
    aliases: int = 0
    depth: int = 0
    cost: int = 0

    def __add__(self, other: Measure) -> Measure:
        """Selections side by side: counts add up, the depth is the deeper one."""
        return Measure(
            self.fields + other.fields,
            self.aliases + other.aliases,
            max(self.depth, other.depth),
            self.cost + other.cost,
        )


NOTHING = Measure()


LIMITS = (
    # (setting, what it limits, the Measure attribute)
    ("max_fields", "field count", "fields"),
    ("max_query_depth", "query depth", "depth"),
    ("max_aliases", "alias count", "aliases"),
    ("max_query_cost", "query cost", "cost"),
)


SHOWN_UP_TO = 10**15
"""Larger values are reported as this (the exact ones may have hundreds of digits)."""


def refusal(measure: Measure, settings: Settings) -> graphql.GraphQLError | None:
    """The ``BAD_INPUT`` error naming every limit ``measure`` exceeds, with the value computed
    (also in ``extensions.limits``: ``{"MEDGW_MAX_QUERY_COST": 50402}``), or None."""
    exceeded = [
        (setting_name(setting), what, min(value, SHOWN_UP_TO), maximum)
        for setting, what, attribute in LIMITS
        if (value := getattr(measure, attribute)) > (maximum := getattr(settings, setting))
    ]
    if not exceeded:
        return None
    message = "; ".join(
        f"{what} {'over ' if value == SHOWN_UP_TO else ''}{value:,} exceeds {name}={maximum}"
        for name, what, value, maximum in exceeded
    )
    limits = {name: value for name, _, value, _ in exceeded}
    return graphql.GraphQLError(message, extensions={"code": BAD_INPUT, "limits": limits})


def setting_name(name: str) -> str:
    """The environment variable of a :class:`Settings` field: ``"MEDGW_MAX_QUERY_COST"``."""
    alias = Settings.model_fields[name].validation_alias
    return alias if isinstance(alias, str) else name.upper()


@dataclass(frozen=True)
class ListSizes:
    """How long the lists of one schema count for the cost.

    ``connections`` are the types paged fields return: their lists (``edges``) are already
    counted by the page size. ``introspection`` maps ``(type, field)`` of the introspection
    lists to their mean length in the schema (``("__Schema", "types")`` to all of them).
    """

    connections: frozenset[str]
    introspection: Mapping[tuple[str, str], int]


@lru_cache(maxsize=64)
def list_sizes(schema: graphql.GraphQLSchema) -> ListSizes:
    """The :class:`ListSizes` of ``schema`` (computed once per schema). An introspection list
    of types counts as its mean over all types (``__schema { types { fields } }`` then counts
    exactly the schema's fields), ``args`` as its mean over all fields."""
    types = list(schema.type_map.values())
    composite = [
        t for t in types if isinstance(t, graphql.GraphQLObjectType | graphql.GraphQLInterfaceType)
    ]
    fields = [f for t in composite for f in t.fields.values()]
    connections = frozenset(
        graphql.get_named_type(f.type).name
        for f in fields
        if any(name in f.args for name in PAGE_ARGUMENTS)
    )

    def mean(total: int, count: int) -> int:
        return max(1, math.ceil(total / max(count, 1)))

    def per_type(length: Callable[[graphql.GraphQLNamedType], int]) -> int:
        return mean(sum(length(t) for t in types), len(types))

    args = mean(
        sum(len(f.args) for f in fields) + sum(len(d.args) for d in schema.directives),
        len(fields) + len(schema.directives),
    )
    introspection = {
        ("__Schema", "types"): len(types),
        ("__Schema", "directives"): len(schema.directives),
        ("__Type", "fields"): per_type(lambda t: len(t.fields) if t in composite else 0),
        ("__Type", "interfaces"): per_type(lambda t: len(t.interfaces) if t in composite else 0),
        ("__Type", "possibleTypes"): per_type(
            lambda t: len(schema.get_possible_types(t)) if graphql.is_abstract_type(t) else 0
        ),
        ("__Type", "enumValues"): per_type(
            lambda t: len(t.values) if isinstance(t, graphql.GraphQLEnumType) else 0
        ),
        ("__Type", "inputFields"): per_type(
            lambda t: len(t.fields) if isinstance(t, graphql.GraphQLInputObjectType) else 0
        ),
        ("__Field", "args"): args,
        ("__Directive", "args"): args,
    }
    return ListSizes(connections, introspection)


@dataclass
class _Walk:
    """One measuring walk over one document; ``memo`` holds each named fragment's measure."""

    schema: graphql.GraphQLSchema
    settings: Settings
    variables: dict[str, Any]
    fragments: Mapping[str, graphql.FragmentDefinitionNode]
    sizes: ListSizes
    memo: dict[str, Measure] = field(default_factory=dict)
    variable_sizes: bool = False
    """Whether a page size was written as a variable (the measure depends on its value)."""

    def selections(
        self,
        selection_set: graphql.SelectionSetNode,
        parent: graphql.GraphQLNamedType | None,
        active: frozenset[str],
    ) -> Measure:
        """The measure of ``selection_set`` on ``parent``; ``active`` holds the fragments being
        expanded (a cycle is cut where it closes: GraphQL validation refuses it later)."""
        total = NOTHING
        for selection in selection_set.selections:
            if isinstance(selection, graphql.FieldNode):
                total += self.field(selection, parent, active)
            elif isinstance(selection, graphql.InlineFragmentNode):
                target = self.condition(selection.type_condition, parent)
                total += self.selections(selection.selection_set, target, active)
            elif isinstance(selection, graphql.FragmentSpreadNode):
                total += self.spread(selection.name.value, active)
        return total

    def field(
        self,
        node: graphql.FieldNode,
        parent: graphql.GraphQLNamedType | None,
        active: frozenset[str],
    ) -> Measure:
        definition = None
        if isinstance(parent, graphql.GraphQLObjectType | graphql.GraphQLInterfaceType):
            definition = parent.fields.get(node.name.value)
        if definition is None:
            definition = META_FIELDS.get(node.name.value)
        aliases = 1 if node.alias is not None else 0
        if node.selection_set is None:
            return Measure(1, aliases, 0, 1)
        child_type = None if definition is None else graphql.get_named_type(definition.type)
        below = self.selections(node.selection_set, child_type, active)
        size = self.size(node, parent, definition)
        depth = 0 if node.name.value.startswith("__") else below.depth + 1
        return Measure(1 + below.fields, aliases + below.aliases, depth, 1 + size * below.cost)

    def spread(self, name: str, active: frozenset[str]) -> Measure:
        if name in active:
            return NOTHING
        if name not in self.memo:
            fragment = self.fragments.get(name)
            self.memo[name] = (
                NOTHING
                if fragment is None
                else self.selections(
                    fragment.selection_set,
                    self.condition(fragment.type_condition, None),
                    active | {name},
                )
            )
        return self.memo[name]

    def condition(
        self, condition: graphql.NamedTypeNode | None, parent: graphql.GraphQLNamedType | None
    ) -> graphql.GraphQLNamedType | None:
        """The type a fragment applies to: its type condition, else the enclosing type."""
        return parent if condition is None else self.schema.get_type(condition.name.value)

    def size(
        self,
        node: graphql.FieldNode,
        parent: graphql.GraphQLNamedType | None,
        definition: graphql.GraphQLField | None,
    ) -> int:
        """How many times the selection below ``node`` runs per ``node``."""
        if definition is None:
            return 1
        pages = [
            self.page(node, definition, name) for name in PAGE_ARGUMENTS if name in definition.args
        ]
        if pages:
            return max(pages)
        if not isinstance(graphql.get_nullable_type(definition.type), graphql.GraphQLList):
            return 1
        parent_name = "" if parent is None else parent.name
        if parent_name in self.sizes.connections:
            return 1
        introspected = self.sizes.introspection.get((parent_name, node.name.value))
        if introspected is not None:
            return introspected
        return self.settings.assumed_list_size

    def page(self, node: graphql.FieldNode, definition: graphql.GraphQLField, name: str) -> int:
        """The page size ``name`` (``first``/``last``) asks for, within 1 … max page size (the
        resolver refuses any other value); the maximum when it is not a number."""
        declared = definition.args[name]
        written = next((a.value for a in node.arguments or () if a.name.value == name), None)
        if written is None and declared.ast_node is not None:  # a schema built from SDL
            written = declared.ast_node.default_value
        if isinstance(written, graphql.VariableNode):  # an Int: a variable or a literal
            self.variable_sizes = True
        value = (
            declared.default_value
            if written is None
            else graphql.value_from_ast_untyped(written, self.variables)
        )
        if not isinstance(value, int) or isinstance(value, bool):
            return self.settings.max_page_size
        return min(max(value, 1), self.settings.max_page_size)


def measure(
    document: graphql.DocumentNode,
    schema: graphql.GraphQLSchema,
    operation_name: str | None = None,
    variables: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> Measure:
    """The :class:`Measure` of the operation ``operation_name`` of ``document`` (of every
    operation together when it cannot tell which one runs), in time linear in its size."""
    return measured(document, schema, operation_name, variables, settings)[0]


def measured(
    document: graphql.DocumentNode,
    schema: graphql.GraphQLSchema,
    operation_name: str | None = None,
    variables: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> tuple[Measure, bool]:
    """:func:`measure`, and whether it depends on the values of ``variables`` (a page size
    given by a variable); when not, it is the measure with any variables.

    >>> schema = graphql.build_schema("type Query { items(first: Int = 20): [Query!]! }")
    >>> measured(graphql.parse("query($n: Int) { items(first: $n) { __typename } }"), schema)
    (Measure(fields=2, aliases=0, depth=1, cost=101), True)
    >>> measured(graphql.parse("{ items(first: 3) { __typename } }"), schema)[1]
    False
    """
    definitions = document.definitions
    fragments = {
        d.name.value: d for d in definitions if isinstance(d, graphql.FragmentDefinitionNode)
    }
    chosen = graphql.get_operation_ast(document, operation_name)
    operations = (
        [chosen]
        if chosen is not None
        else [d for d in definitions if isinstance(d, graphql.OperationDefinitionNode)]
    )
    sizes = list_sizes(schema)
    walk = _Walk(schema, settings or Settings(), variables or {}, fragments, sizes)
    total = NOTHING
    for operation in operations:
        root = schema.get_root_type(operation.operation)
        total += walk.selections(operation.selection_set, root, frozenset())
    return total, walk.variable_sizes


class QueryLimits(SchemaExtension):
    """Refuses a document over its limits before anything else looks at it: registered before
    the access check, it leaves ``pre_execution_errors`` set, so that the check and
    graphql-core's validation (whose rules may expand fragments) are skipped."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.pre_execution_errors is None:
            error = check(
                document,
                context.schema._schema,
                context.operation_name,
                context.variables,
                self.settings,
            )
            if error is not None:
                context.pre_execution_errors = [error]
        yield


def check(
    document: graphql.DocumentNode,
    schema: graphql.GraphQLSchema,
    operation_name: str | None,
    variables: dict[str, Any] | None,
    settings: Settings,
) -> graphql.GraphQLError | None:
    """The ``BAD_INPUT`` error of the operation ``operation_name`` of ``document`` with
    ``variables`` over the limits of ``settings`` (:func:`measure`, :func:`refusal`), or None:
    what :class:`QueryLimits` refuses, and what a prepared read checks again with each request's
    variables (gateway/read_compiler.py)."""
    try:
        return refusal(measure(document, schema, operation_name, variables, settings), settings)
    except RecursionError:
        return _too_deep(settings)


def _too_deep(settings: Settings) -> graphql.GraphQLError:
    """The refusal of fragments nested hundreds deep (the parser stops fields)."""
    name = setting_name("max_query_depth")
    return graphql.GraphQLError(
        "fragments nested too deeply to measure: query depth exceeds "
        f"{name}={settings.max_query_depth}",
        extensions={"code": BAD_INPUT, "limits": {name: None}},
    )


class Rechecked:
    """The limits of one document, checked again with each request's variables (a prepared
    read: gateway/read_compiler.py), as :func:`check` checks them; a measure that does not
    depend on the variables (:func:`measured`) is kept and not walked again for the same
    schema, settings and operation."""

    def __init__(self, document: graphql.DocumentNode) -> None:
        self.document = document
        self._kept: tuple[graphql.GraphQLSchema, Settings, str | None, Measure] | None = None

    def check(
        self,
        schema: graphql.GraphQLSchema,
        operation_name: str | None,
        variables: dict[str, Any] | None,
        settings: Settings,
    ) -> graphql.GraphQLError | None:
        """:func:`check` of the document."""
        kept = self._kept
        if (
            kept is not None
            and kept[0] is schema
            and kept[1] is settings
            and kept[2] == operation_name
        ):
            return refusal(kept[3], settings)
        try:
            found, variable = measured(self.document, schema, operation_name, variables, settings)
        except RecursionError:
            return _too_deep(settings)
        if not variable:
            self._kept = (schema, settings, operation_name, found)
        return refusal(found, settings)


_ENCODE = json.JSONEncoder(ensure_ascii=False).encode
"""The standard library's JSON encoder in C (one call per piece)."""
PIECE_DEPTH = 4
"""Containers this deep are encoded in one piece: an edge of a page (``data`` → connection →
``edges`` → edge), a few kilobytes at most."""


def json_pieces(value: object, depth: int = 0) -> Iterator[str]:
    """The text of ``json.dumps(value, ensure_ascii=False)``, in pieces: containers down to
    :data:`PIECE_DEPTH` item by item, each deeper value in one call of the C encoder (the
    pure-Python ``iterencode`` costs about ten times more).

    >>> value = {"data": {"a": [1, {"b": None, "c": "张"}], "d": 1.5, "e": {}}, 2: [True]}
    >>> "".join(json_pieces(value)) == json.dumps(value, ensure_ascii=False)
    True
    """
    if depth >= PIECE_DEPTH:
        yield _ENCODE(value)
    elif isinstance(value, dict) and value and all(type(k) is str for k in value):
        yield "{"
        for n, (key, item) in enumerate(value.items()):
            yield f"{', ' if n else ''}{_ENCODE(key)}: "
            yield from json_pieces(item, depth + 1)
        yield "}"
    elif isinstance(value, list | tuple) and value:
        yield "["
        for n, item in enumerate(value):
            if n:
                yield ", "
            yield from json_pieces(item, depth + 1)
        yield "]"
    else:
        yield _ENCODE(value)


class Sized(dict[str, Any]):
    """A response (``{"data": …}``) whose JSON is known to be about ``size`` characters: a
    compiled read's, built from the JSON text PostgreSQL returned (``resolvers.compiler.Answer.
    text_size``). :func:`limited_encoder` encodes it in one call when that is well within the
    limit."""

    def __init__(self, response: dict[str, Any], size: int) -> None:
        super().__init__(response)
        self.size = size


def limited_encoder(max_bytes: Callable[[], int]) -> Callable[[object], bytes]:
    """A JSON encoder (UTF-8, no ``\\uXXXX`` escapes) of GraphQL responses that answers a
    ``BAD_INPUT`` error naming ``MEDGW_MAX_RESPONSE_BYTES`` instead of a response over
    ``max_bytes()`` bytes. It encodes piece by piece and stops at the limit, so it never holds
    more than about the limit (a character is at least one byte); a :class:`Sized` response
    of at most half the limit in one call of the C encoder (the same text, several times
    faster for a small one), then checked against the limit."""

    def encode(data: object) -> bytes:
        limit = max_bytes()
        if isinstance(data, Sized) and data.size * 2 <= limit:
            encoded = _ENCODE(data).encode()
            return encoded if len(encoded) <= limit else too_large(data, limit)
        pieces: list[str] = []
        length = 0
        for piece in json_pieces(data):
            length += len(piece)
            if length > limit:
                return too_large(data, limit)
            pieces.append(piece)
        encoded = "".join(pieces).encode()
        return encoded if len(encoded) <= limit else too_large(data, limit)

    return encode


def too_large(data: object, limit: int) -> bytes:
    """The answer in place of a response over ``limit`` bytes (one per operation of a batch)."""
    name = setting_name("max_response_bytes")
    error = {
        "message": f"response over {limit:,} bytes exceeds {name}={limit}: "
        "select fewer fields or smaller pages (first)",
        "extensions": {"code": BAD_INPUT, "limits": {name: limit}},
    }
    body = {"data": None, "errors": [error]}
    answer = [body] * len(data) if isinstance(data, list) else body
    return json.dumps(answer, ensure_ascii=False).encode()
