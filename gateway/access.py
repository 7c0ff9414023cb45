"""Access control at request time: refuse forbidden fields before anything runs, mask masked
fields, require the purpose, and collect what personal data a response carried for the audit.

The rules themselves are data (policies/access/*.yaml, read by :mod:`policies.access.policy`); this
module applies them to GraphQL requests.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import graphql
from cachetools import LRUCache
from strawberry.extensions import SchemaExtension

from gateway.errors import FORBIDDEN, INTERNAL
from gateway.storage import audit
from gateway.storage.audit import ReadTrail
from policies.access.policy import AccessPolicies, DepartmentPolicy
from policies.access.walker import forbidden_paths

log = logging.getLogger("medgw.access")


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


RefusalKey = tuple[bytes, str | None, str | None]


def _entry_size(value: graphql.GraphQLError | None) -> int:
    """Bytes an entry holds: the key (a 32-byte digest and two short names) and the error."""
    return 200 + (0 if value is None else sys.getsizeof(value.message) * 2)


class RefusalCache:
    """Whether a query may run for one department, remembered by the SHA-256 of its text (not
    the text itself), least recently used first out, bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self._cache: LRUCache[RefusalKey, graphql.GraphQLError | None] = LRUCache(
            maxsize=max_bytes, getsizeof=_entry_size
        )

    def __len__(self) -> int:
        return len(self._cache)

    @property
    def size(self) -> int:
        """Bytes held, as :func:`_entry_size` counts them."""
        return int(self._cache.currsize)

    def get(
        self,
        query: str,
        operation_name: str | None,
        purpose: str | None,
        compute: Callable[[], graphql.GraphQLError | None],
    ) -> graphql.GraphQLError | None:
        key = (hashlib.sha256(query.encode()).digest(), operation_name, purpose)
        try:
            return self._cache[key]
        except KeyError:
            value = compute()
            self._cache[key] = value
            return value


class Refusal(SchemaExtension):
    """Refuses a request that selects what the department may not use, before validation and
    before anything runs, listing every forbidden path (ACCESS.md).

    The department schema has no forbidden field at all; the check runs on the full schema so
    that the answer is FORBIDDEN with the paths, not "Cannot query field".
    """

    def __init__(
        self,
        *,
        full_schema: graphql.GraphQLSchema,
        access: AccessPolicies,
        policy: DepartmentPolicy,
        cache: RefusalCache,
    ) -> None:
        self.full_schema = full_schema
        self.access = access
        self.policy = policy
        self.cache = cache

    def on_validate(self) -> Any:
        context = self.execution_context
        query = context.query
        if query:
            purpose = context.context.principal.purpose
            denied = self.cache.get(
                query,
                context.operation_name,
                purpose,
                lambda: refusal(
                    query,
                    context.operation_name,
                    self.full_schema,
                    self.access,
                    self.policy,
                    purpose,
                ),
            )
            if denied is not None:
                # Strawberry skips its own validation when an extension has already failed it.
                context.pre_execution_errors = [denied]
        yield


class ReadAudit(SchemaExtension):
    """Writes the read audit record of the personal data an operation returned, before the
    response leaves: no record, no data (ACCESS.md).

    Each operation (of a batch too) has its own trail, a context variable that
    :class:`FieldAccess` fills while the resolvers run.
    """

    async def on_operation(self) -> AsyncIterator[None]:
        trail = ReadTrail()
        token = CURRENT_TRAIL.set(trail)
        try:
            yield
        finally:
            CURRENT_TRAIL.reset(token)
        result = self.execution_context.result
        if not trail or result is None or result.data is None:
            return
        context = self.execution_context.context
        # Give the read connection back first: a request does not hold two connections, so a
        # burst of requests cannot exhaust the pool waiting for their audit writes.
        await context.close()
        try:
            async with context.db.transaction() as session:
                await audit.append(
                    session,
                    context.principal,
                    action="READ",
                    operation=self.execution_context.operation_name
                    or _operation_of(self.execution_context.graphql_document),
                    query=self.execution_context.query,
                    beneficiary_ids=trail.beneficiary_ids,
                    field_paths=trail.field_paths,
                )
        except Exception as exc:
            log.exception("request %s: audit record not written", context.request_id)
            message = f"audit unavailable (request id {context.request_id})"
            result.data = None
            error = graphql.GraphQLError(message, original_error=exc, extensions={"code": INTERNAL})
            result.errors = [error]


def _operation_of(document: graphql.DocumentNode | None) -> str | None:
    """The name of the (first) operation, or of its first top-level field when anonymous."""
    if document is None:
        return None
    for definition in document.definitions:
        if isinstance(definition, graphql.OperationDefinitionNode):
            if definition.name is not None:
                return definition.name.value
            for selection in definition.selection_set.selections:
                if isinstance(selection, graphql.FieldNode):
                    return selection.name.value
    return None
