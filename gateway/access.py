"""Access control at request time: refuse forbidden fields before anything runs, mask masked
fields, require the purpose, and collect what personal data a response carried for the audit.

The rules themselves are data (policies/access/*.yaml, read by :mod:`policies.access.policy`); this
module applies them to GraphQL requests.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import graphql
from strawberry.extensions import SchemaExtension

from gateway.errors import FORBIDDEN
from gateway.storage.audit import ReadTrail
from policies.access.policy import AccessPolicies, DepartmentPolicy
from policies.access.walker import forbidden_paths


@dataclass(frozen=True)
class _Personal:
    """Grants everything but personal fields: the walk then lists the personal paths."""

    access: AccessPolicies

    def can_use(self, type_name: str, field: str) -> bool:
        return not self.access.is_personal(type_name, field)

    def can_use_argument(self, type_name: str, field: str, argument: str) -> bool:
        return True


def refusal(
    query: str | None,
    operation_name: str | None,
    schema: graphql.GraphQLSchema,
    access: AccessPolicies,
    policy: DepartmentPolicy,
    purpose: str | None,
) -> graphql.GraphQLError | None:
    """The FORBIDDEN error for a request, or None when it may run.

    Unparsable queries pass through: GraphQL reports them with its usual errors.
    """
    if not query:
        return None
    try:
        document = graphql.parse(query)
    except graphql.GraphQLError:
        return None
    forbidden = forbidden_paths(document, schema, policy, operation_name)
    if forbidden:
        return graphql.GraphQLError(
            f"{policy.department} may not use: {', '.join(forbidden)}",
            extensions={"code": FORBIDDEN, "forbidden": forbidden},
        )
    if policy.needs_purpose(purpose):
        personal = forbidden_paths(document, schema, _Personal(access), operation_name)
        if personal:
            wanted = " or ".join(sorted(policy.purposes_for_personal))
            return graphql.GraphQLError(
                f"personal data ({', '.join(personal)}) needs a token with purpose {wanted}",
                extensions={"code": FORBIDDEN, "forbidden": personal},
            )
    return None


CURRENT_TRAIL: ContextVar[ReadTrail | None] = ContextVar("medgw_read_trail", default=None)
"""The personal data the running operation has returned so far (set per operation)."""


def _response_path(info: graphql.GraphQLResolveInfo[Any]) -> str:
    return ".".join(str(key) for key in info.path.as_list() if isinstance(key, str))


class FieldAccess(SchemaExtension):
    """Around every resolver: masks masked fields and notes personal data for the audit.

    Forbidden fields never get here (they were refused before execution); what is left is to
    change what a masked field returns and to remember which beneficiaries' personal fields went
    into the response.
    """

    def resolve(
        self,
        _next: Callable[..., Any],
        root: Any,
        info: graphql.GraphQLResolveInfo[Any],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        context = info.context
        key = (info.parent_type.name, info.field_name)
        access: AccessPolicies = context.access
        masked = context.policy.mode(*key) == "masked"
        personal = access.is_personal(*key)
        result = _next(root, info, *args, **kwargs)
        if not (masked or personal):
            return result
        trail = CURRENT_TRAIL.get()
        if personal and trail is not None:
            trail.note(getattr(root, "beneficiary_id", None), _response_path(info))
        if not masked:
            return result
        if inspect.isawaitable(result):
            return _mask_later(result, access, key)
        return None if result is None else access.mask(*key, str(result))


async def _mask_later(
    result: Awaitable[Any], access: AccessPolicies, key: tuple[str, str]
) -> str | None:
    value = await result
    return None if value is None else access.mask(*key, str(value))
