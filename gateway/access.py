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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg  # type: ignore[import-untyped]
import graphql
from cachetools import LRUCache
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.extensions import AddValidationRules, SchemaExtension
from strawberry.types.graphql import OperationType

from gateway.errors import FORBIDDEN, INTERNAL
from gateway.middleware import JSON_BODY
from gateway.storage import audit
from gateway.storage.audit import ReadTrail
from gateway.storage.database import COMMITS, HELD, Database, Held
from policies.access.policy import AccessPolicies, DepartmentPolicy
from policies.access.walker import forbidden_paths

if TYPE_CHECKING:
    from resolvers.context import Context

log = logging.getLogger("medgw.access")


def looks_up_personal(
    policy: DepartmentPolicy, access: AccessPolicies, type_name: str, field: str, argument: str
) -> bool:
    """Does ``argument`` of ``type_name.field`` find persons by personal data
    (``beneficiary(idNumber:)``)? Such a lookup is a personal read: it needs the purpose and
    is audited even when it returns only an id, or nothing (ACCESS.md, behaviour)."""
    targets = policy.filters.get((type_name, field, argument), ())
    return any(access.is_personal(*target) for target in targets)


@dataclass(frozen=True)
class _Personal:
    """Grants everything but personal fields and personal lookups: the walk then lists the
    personal paths."""

    access: AccessPolicies
    policy: DepartmentPolicy

    def can_use(self, type_name: str, field: str) -> bool:
        return not self.access.is_personal(type_name, field)

    def can_use_argument(self, type_name: str, field: str, argument: str) -> bool:
        return not looks_up_personal(self.policy, self.access, type_name, field, argument)


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
        personal = forbidden_paths(document, schema, _Personal(access, policy), operation_name)
        if personal:
            wanted = " or ".join(sorted(policy.purposes_for_personal))
            return graphql.GraphQLError(
                f"personal data ({', '.join(personal)}) needs a token with purpose {wanted}",
                extensions={"code": FORBIDDEN, "forbidden": personal},
            )
    return None


CURRENT_TRAIL: ContextVar[ReadTrail | None] = ContextVar("medgw_read_trail", default=None)
"""The personal data the running operation has returned so far (set per operation)."""


_OPERATION_LENGTH = 120  # the audit_log.operation column


def _applies(
    condition: graphql.NamedTypeNode | None, typename: str | None, schema: graphql.GraphQLSchema
) -> bool:
    """Whether a fragment with type ``condition`` applies to an object of type ``typename``."""
    if condition is None or typename is None or condition.name.value == typename:
        return True
    wanted, runtime = schema.get_type(condition.name.value), schema.get_type(typename)
    return (
        graphql.is_abstract_type(wanted)
        and isinstance(runtime, graphql.GraphQLObjectType)
        and schema.is_sub_type(wanted, runtime)
    )


def _fields_of(
    selection_set: graphql.SelectionSetNode,
    typename: str | None,
    info: graphql.GraphQLResolveInfo[Any],
) -> Iterator[graphql.FieldNode]:
    """The fields a selection set selects on an object of type ``typename``, through fragments."""
    for selection in selection_set.selections:
        if isinstance(selection, graphql.FieldNode):
            yield selection
        elif isinstance(selection, graphql.InlineFragmentNode):
            if _applies(selection.type_condition, typename, info.schema):
                yield from _fields_of(selection.selection_set, typename, info)
        elif isinstance(selection, graphql.FragmentSpreadNode):
            fragment = info.fragments[selection.name.value]
            if _applies(fragment.type_condition, typename, info.schema):
                yield from _fields_of(fragment.selection_set, typename, info)


def _field_path(info: graphql.GraphQLResolveInfo[Any], known: dict[Any, str]) -> str:
    """The path of the resolving field in the schema's field names, list indices left out:
    ``{ b: beneficiary { n: name } }`` reads ``beneficiary.name`` whatever the aliases
    (ACCESS.md). ``known`` remembers the answers by response path (all list items share one)."""
    segments: list[tuple[str, str | None]] = []
    path: graphql.pyutils.Path | None = info.path
    while path is not None:
        if isinstance(path.key, str):
            segments.append((path.key, path.typename))
        path = path.prev
    segments.reverse()
    key = tuple(segments)
    found = known.get(key)
    if found is None:
        names: list[str] = []
        selections = [info.operation.selection_set]
        for response_key, typename in segments[:-1]:
            nodes = [
                node
                for selection_set in selections
                for node in _fields_of(selection_set, typename, info)
                if (node.alias or node.name).value == response_key
            ]
            names.append(nodes[0].name.value)
            selections = [node.selection_set for node in nodes if node.selection_set]
        found = known[key] = ".".join([*names, info.field_name])
    return found


def _operation(info: graphql.GraphQLResolveInfo[Any]) -> str:
    """The operation that runs, from the document: its type and name (``query People``), or
    for an anonymous one its type and root fields (``query beneficiary,claims``)."""
    operation = info.operation
    if operation.name is not None:
        name = operation.name.value
    else:
        root = info.schema.get_root_type(operation.operation)
        fields = _fields_of(operation.selection_set, root.name if root else None, info)
        name = ",".join(dict.fromkeys(node.name.value for node in fields))
    label = f"{operation.operation.value} {name}"
    if len(label) > _OPERATION_LENGTH:
        label = label[: _OPERATION_LENGTH - 1] + "…"
    return label


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
        trail = CURRENT_TRAIL.get()
        if kwargs and trail is not None:
            lookups = [
                f"{_field_path(info, trail.paths)}({name})"
                for name, value in kwargs.items()
                if value is not None and looks_up_personal(context.policy, access, *key, name)
            ]
            if lookups:
                result = _note_found(result, trail, lookups)
                trail.operation = trail.operation or _operation(info)
        if not (masked or personal):
            return result
        if personal and trail is not None:
            trail.note(getattr(root, "beneficiary_id", None), _field_path(info, trail.paths))
            trail.operation = trail.operation or _operation(info)
        if not masked:
            return result
        if inspect.isawaitable(result):
            return _mask_later(result, access, key)
        return None if result is None else access.mask(*key, str(result))


async def _note_found(result: Any, trail: ReadTrail, paths: list[str]) -> Any:
    """Notes a lookup by personal data with the person it found (if any) once it resolves."""
    value = await result if inspect.isawaitable(result) else result
    for path in paths:
        trail.note(getattr(value, "beneficiary_id", None), path)
    return value


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
        if query and context.pre_execution_errors is None:  # not refused already (limits)
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


def in_batch(context: Context) -> bool:
    """Whether the request is a batch (a JSON array of operations), whose operations share one
    context: a point read's record there goes through the group commit, not the request's
    connection, whose lock a mutation of the same batch needs to commit (the record could wait
    for the shard that mutation's held transaction holds, under that lock)."""
    request = getattr(context, "request", None)
    return request is not None and isinstance(request.scope.get(JSON_BODY), list)


async def record_read(context: Context, trail: ReadTrail, query: str | None) -> Exception | None:
    """Append the READ record of a query's ``trail`` (whose personal data its answer carries)
    and commit it, before the answer leaves: None once committed, else the error (logged here;
    the answer must then carry no data). Closes the request's read session.

    A point read (``trail.on_read_connection``) outside a batch (:func:`in_batch`) appends on
    the read's own connection: by one statement on its bare connection when it read without a
    session (:meth:`resolvers.context.Context.read`), else on its session, inside the read's
    transaction when one is open. Any other read gives its connection back first (a request
    does not hold two connections, so a burst of requests cannot exhaust the pool waiting for
    their audit writes) and appends in a group commit with the concurrent requests' records
    (:func:`gateway.storage.audit.append`)."""

    async def write(target: AsyncSession | Database | asyncpg.Connection) -> None:
        await audit.append(
            target,
            context.principal,
            action="READ",
            operation=trail.operation,
            query=query,
            beneficiary_ids=trail.beneficiary_ids,
            field_paths=trail.field_paths,
            committed=True,
        )

    try:
        if trail.on_read_connection and not in_batch(context):
            try:
                # Under the session's lock: a concurrent operation of a batch never meets an
                # aborted transaction (a failure rolls back before the lock is released).
                await context.read(write, write)  # on a bare connection when no session
                commits = COMMITS.get()
                if commits is not None:  # gateway/reconnection.py: never run again once stored
                    commits.count += 1
            finally:
                await context.close()  # rolls back what was not committed
        else:
            await context.close()
            await write(context.db)  # returns once its group commit committed
    except Exception as exc:
        log.exception("request %s: audit record not written", context.request_id)
        return exc
    return None


class ReadAudit(SchemaExtension):
    """Writes the read audit record of the personal data an operation returned, before the
    response leaves: no record, no data (ACCESS.md).

    Each operation (of a batch too) has its own trail, a context variable that
    :class:`FieldAccess` fills while the resolvers run. The record names the operation as the
    document has it (type and name, never the request's word alone), the field paths by the
    schema's names (aliases cannot rename what was read), and keeps the query text.

    A mutation's record is appended in the mutation's own (last) transaction, held open until
    its payload is resolved (:class:`gateway.storage.database.Held`): both commit together, or
    neither (a write that failed records no read; a record that cannot be written rolls the
    write back, and the answer carries no data).
    """

    held: Held | None = None
    """The mutation's held transaction (set while it executes), None for other operations."""

    def on_execute(self) -> Iterator[None]:
        token = None
        if self.execution_context.operation_type is OperationType.MUTATION:
            self.held = Held()
            token = HELD.set(self.held)
        try:
            yield
        finally:
            if token is not None:
                HELD.reset(token)

    async def on_operation(self) -> AsyncIterator[None]:
        trail = ReadTrail()
        token = CURRENT_TRAIL.set(trail)
        try:
            yield
        except BaseException as failed:
            if self.held is not None:  # the mutation's write does not outlive a failure
                await self.held.rollback(failed)
            raise
        finally:
            CURRENT_TRAIL.reset(token)
        result = self.execution_context.result
        if self.held is not None and await self._mutation(trail, self.held):
            return
        if not trail or result is None or result.data is None:
            return
        if self.execution_context.operation_type is OperationType.SUBSCRIPTION:
            return  # audited per delivered batch, before it leaves (resolvers/outbox.follow)
        context = self.execution_context.context
        error = await record_read(context, trail, self.execution_context.query)
        if error is not None:
            message = f"audit unavailable (request id {context.request_id})"
            result.data = None
            result.errors = [
                graphql.GraphQLError(message, original_error=error, extensions={"code": INTERNAL})
            ]

    async def _mutation(self, trail: ReadTrail, held: Held) -> bool:
        """Append the READ record (if the payload carried personal data) in the mutation's held
        transaction and commit it; True when done, False when no transaction is held (the write
        failed, or there was none): the record is then written as a query's. When either step
        fails the transaction is rolled back and the answer carries no data."""
        result = self.execution_context.result
        context = self.execution_context.context
        if held.session is None:
            return False
        await context.close()  # the read connection first, as for a query
        step = "audit unavailable"
        try:
            if trail and result is not None and result.data is not None:
                await audit.append(
                    held.session,
                    context.principal,
                    action="READ",
                    operation=trail.operation,
                    query=self.execution_context.query,
                    beneficiary_ids=trail.beneficiary_ids,
                    field_paths=trail.field_paths,
                )
            step = "not stored: the transaction did not commit"
            await held.commit()
        except Exception as exc:
            await held.rollback(exc)
            log.exception("request %s: mutation rolled back (%s)", context.request_id, step)
            if result is not None:
                message = f"{step} (request id {context.request_id})"
                result.data = None
                error = graphql.GraphQLError(
                    message, original_error=exc, extensions={"code": INTERNAL}
                )
                result.errors = [error]
        return True


class _IntrospectionRule(graphql.NoSchemaIntrospectionCustomRule):
    """graphql-core's rule, its errors coded ``FORBIDDEN`` (a department's policy, not bad
    input)."""

    def report_error(self, error: graphql.GraphQLError) -> None:
        error.extensions = {**(error.extensions or {}), "code": FORBIDDEN}
        super().report_error(error)


class IntrospectionForbidden(AddValidationRules):
    """Introspection off for a department whose policy does not allow it in production:
    ``__schema``/``__type`` are refused ``FORBIDDEN`` before execution."""

    def __init__(self) -> None:
        super().__init__([_IntrospectionRule])
