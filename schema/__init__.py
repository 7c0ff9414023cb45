"""The GraphQL schema of the gateway: the full schema, and one schema per department.

A department's schema holds only the fields its access policy grants (Hasura-style per-role
schemas): introspection and GraphiQL show a department exactly what it may use. Requests are
checked against the full schema first so that a forbidden field is reported as FORBIDDEN, with
every forbidden path, rather than as an unknown field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.field import StrawberryField

from gateway.errors import log_errors
from schema.change import Subscription
from schema.mutation import Mutation
from schema.query import Query

if TYPE_CHECKING:
    from policies.access.policy import DepartmentPolicy

Extension = type[SchemaExtension] | Callable[[], SchemaExtension]


class DepartmentSchema(strawberry.Schema):
    """The schema as one department sees it: fields it may not use do not exist."""

    def __init__(self, policy: DepartmentPolicy, **kwargs: object) -> None:
        self.policy = policy
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Instead of strawberry's (every error at ERROR, with its traceback and message):
        :func:`gateway.errors.log_errors`."""
        context = None if execution_context is None else execution_context.context
        log_errors(errors, getattr(context, "request_id", None))

    def get_fields(self, type_definition: StrawberryObjectDefinition) -> list[StrawberryField]:
        if type_definition.is_input:
            return type_definition.fields  # inputs belong to the fields that take them
        names = self.config.name_converter
        type_name = names.from_object(type_definition)
        return [
            f
            for f in type_definition.fields
            if self.policy.can_use(type_name, names.get_graphql_name(f))
        ]


def build_schema(
    extensions: Sequence[Extension] = (),
    policy: DepartmentPolicy | None = None,
    config: StrawberryConfig | None = None,
) -> strawberry.Schema:
    """The full schema, or (with ``policy``) the schema of one department."""
    if policy is None:
        return strawberry.Schema(
            query=Query,
            mutation=Mutation,
            subscription=Subscription,
            extensions=list(extensions),
            config=config,
        )
    writes = any(type_name == "Mutation" for type_name, _ in policy.grants)
    follows = any(type_name == "Subscription" for type_name, _ in policy.grants)
    return DepartmentSchema(
        policy,
        query=Query,
        mutation=Mutation if writes else None,
        subscription=Subscription if follows else None,
        extensions=list(extensions),
        config=config,
    )
