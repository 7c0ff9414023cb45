"""What of the GraphQL schema the access policies are checked against: its object types and
fields (the catalog), and the arguments of each field."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import graphql

Catalog = Mapping[str, Mapping[str, str | None]]
"""Type name → field name → the object type the field returns (through lists and non-null), or
``None`` for scalars and enums: ``{"Beneficiary": {"name": None, "identities": "Identity"}}``."""


def catalog_of(schema: graphql.GraphQLSchema) -> Catalog:
    """The object types of ``schema`` (introspection types left out), each field mapped to the
    object type it returns, or ``None`` for scalars, enums and other non-object types.

    >>> schema = graphql.build_schema("type Query { me: P } type P { name: String, pals: [P!]! }")
    >>> dict(catalog_of(schema)["P"])
    {'name': None, 'pals': 'P'}
    """
    catalog: dict[str, Mapping[str, str | None]] = {}
    for name, named_type in schema.type_map.items():
        if name.startswith("__") or not isinstance(named_type, graphql.GraphQLObjectType):
            continue
        catalog[name] = MappingProxyType(
            {
                field_name: _object_type_name(field_def.type)
                for field_name, field_def in named_type.fields.items()
            }
        )
    return MappingProxyType(catalog)


def _object_type_name(output: graphql.GraphQLOutputType) -> str | None:
    named = graphql.get_named_type(output)
    return named.name if isinstance(named, graphql.GraphQLObjectType) else None


Arguments = Mapping[tuple[str, str], frozenset[str]]
"""(type, field) → the names of its arguments, to check the filters of ``_fields.yaml``."""


def arguments_of(schema: graphql.GraphQLSchema) -> Arguments:
    """The arguments of every field of the object types of ``schema``.

    >>> schema = graphql.build_schema("type Query { people(first: Int, region: String): Int }")
    >>> sorted(arguments_of(schema)[("Query", "people")])
    ['first', 'region']
    """
    return MappingProxyType(
        {
            (name, field_name): frozenset(field_def.args)
            for name, named_type in schema.type_map.items()
            if not name.startswith("__") and isinstance(named_type, graphql.GraphQLObjectType)
            for field_name, field_def in named_type.fields.items()
        }
    )
