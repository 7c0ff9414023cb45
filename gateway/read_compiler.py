"""The read compiler in the request pipeline (issue 15.1): after parsing, the limits, the access
check (:class:`gateway.access.Refusal`) and validation, a read the compiler covers
(:mod:`resolvers.compiler`) is answered from its compiled statements and graphql-core's
execution is skipped; anything else runs through the resolvers as before.

The compiled answer fills the read trail that :class:`gateway.access.ReadAudit` writes before the
response leaves, exactly as :class:`gateway.access.FieldAccess` would have (same operation label,
beneficiary ids and field paths), and the argument values pass :func:`gateway.arguments.
check_value` first, as :class:`gateway.arguments.ArgumentCheck` checks them for the resolvers.
``MEDGW_READ_COMPILER=off`` turns it off; so does ``MEDGW_OTEL=true`` (its spans are per
resolver). A compiled read that fails is logged (the error's class, never its message, which may
quote a value) and answered by the resolvers.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import graphql
from cachetools import LRUCache
from strawberry.extensions import SchemaExtension

from gateway import limits
from gateway.access import CURRENT_TRAIL, record_read
from gateway.arguments import check_value, graphql_name
from gateway.config import Settings
from gateway.query_cache import PlanCache, QueryCache
from gateway.reconnection import busy_database, lost_connection, running_again
from gateway.storage.audit import ReadTrail
from policies.access.policy import AccessPolicies, DepartmentPolicy
from resolvers import compiler
from resolvers.context import Context

log = logging.getLogger("medgw.compiler")


POINT_ROOTS = frozenset({"beneficiary", "claim"})
"""Root fields that return one object: a read of only these appends its record on its own read
connection; pages keep the group commit (concurrent ones share one transaction)."""


def _check(name: str, value: object) -> None:
    check_value(graphql_name(name), value)


PreparedKey = tuple[bytes, str | None, str | None]
"""A read's SHA-256 of the query text, operation name and the token's purpose."""


@dataclass(frozen=True)
class Prepared:
    """A read the whole pipeline answered from the compiler: its parsed document and plan,
    and its limits to check again with each request's variables."""

    document: graphql.DocumentNode
    plan: compiler.Plan
    limits: limits.Rechecked


class PreparedReads:
    """One department's prepared reads (issue 15.1): the documents whose last answer through
    the whole request pipeline came from the read compiler, by :meth:`key`, least recently
    used first out, at most ``size``.

    Such a document has passed everything that depends on the document alone (parsing, the
    token limit, validation, introspection, and the access check for that purpose), so a later
    POST of it is answered by :func:`answer` without graphql-core and strawberry's extension
    pipeline: only what depends on the request is done again (the limits with its variables,
    the values' checks and the compiled statements with the caller's rows, and the audit
    record)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: LRUCache[PreparedKey, Prepared] = LRUCache(maxsize=max(size, 1))

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def key(query: str, operation_name: str | None, purpose: str | None) -> PreparedKey:
        return hashlib.sha256(query.encode()).digest(), operation_name, purpose

    def get(self, key: PreparedKey) -> Prepared | None:
        return self._entries.get(key)

    def put(self, key: PreparedKey, prepared: Prepared) -> None:
        if self.size:
            self._entries[key] = prepared


async def _run(
    plan: compiler.Plan,
    context: Context,
    schema: graphql.GraphQLSchema,
    variables: Mapping[str, Any] | None,
) -> compiler.Answer | None:
    """:func:`resolvers.compiler.run`, or None when it fails (logged: the error's class and
    SQLSTATE only, as a message may quote a bound value such as an ID number, and no personal
    data goes to the logs (ACCESS.md); the resolvers then answer and report what fails). A lost
    connection is logged as :mod:`gateway.reconnection` logs it: the request runs again, on
    another connection (the dead one is dropped when the context gives it back). A busy
    database (:func:`gateway.reconnection.busy_database`) raises: the resolvers would wait as
    long again, so the answer is UNAVAILABLE (:func:`busy`)."""
    try:
        return await compiler.run(plan, context, schema, variables, _check)
    except Exception as exc:
        if lost_connection(exc):
            running_again(context.request_id)
            return None
        if busy_database(exc):
            raise  # answered UNAVAILABLE
        log.error(
            "compiled read failed (%s %s); the resolvers answer",
            type(exc).__name__,
            getattr(exc, "sqlstate", ""),
            extra={"request_id": context.request_id},
        )
        return None


BUSY = "medgw.database_busy"
"""The scope key of the error a prepared read met on a busy database, for the pipeline that
answers the request next (:class:`ReadCompiler`): answered UNAVAILABLE without a second wait."""


def busy(exc: Exception) -> graphql.ExecutionResult:
    """The result of an operation that met a busy database: its error, which
    :class:`gateway.errors.ErrorCodes` answers UNAVAILABLE (HTTP 503 with Retry-After)."""
    return graphql.ExecutionResult(
        data=None, errors=[graphql.GraphQLError("database busy", original_error=exc)]
    )


def _trail_of(plan: compiler.Plan, answer: compiler.Answer, trail: ReadTrail) -> None:
    """Fill ``trail`` as :class:`gateway.access.FieldAccess` would have. A point read (one
    person, one claim) has its record appended on the read's connection, saving a connection
    checkout and a group commit (:func:`gateway.access.record_read`)."""
    trail.beneficiary_ids |= answer.beneficiary_ids
    trail.field_paths |= answer.field_paths
    trail.operation = trail.operation or answer.operation
    trail.on_read_connection = all(r.name in POINT_ROOTS for r in plan.roots)


async def answer(
    prepared: Prepared,
    context: Context,
    schema: graphql.GraphQLSchema,
    query: str,
    operation_name: str | None,
    variables: dict[str, Any] | None,
) -> compiler.Answer | None:
    """A prepared read's answer (its ``data``, and the size of its JSON), its READ record
    committed; None when the whole pipeline must answer instead (the variables exceed a limit,
    the compiler does not cover their values, or the record was not written: then nothing was
    committed and the pipeline reads, and tries the record, again; after a busy database, the
    pipeline answers UNAVAILABLE at once, :data:`BUSY`)."""
    # Measured as the pipeline measures it: the operation that runs (the document's first
    # when the request names none).
    operation = prepared.plan.operation
    named = operation.name.value if operation.name else operation_name
    if prepared.limits.check(schema, named, variables, context.settings) is not None:
        return None
    try:
        found = await _run(prepared.plan, context, schema, variables)
    except Exception as exc:  # a busy database: the pipeline answers it (BUSY)
        context.request.scope[BUSY] = exc
        return None
    if found is None:
        return None
    trail = ReadTrail()
    _trail_of(prepared.plan, found, trail)
    failed = await record_read(context, trail, query) if trail else None
    if failed is not None:
        if busy_database(failed):  # the record waited in vain: not the read and record again
            context.request.scope[BUSY] = failed
        return None
    return found


class ReadCompiler(SchemaExtension):
    """Answers a covered read from one SQL statement per root field (see the module), and
    keeps it among the department's :class:`PreparedReads`."""

    def __init__(
        self,
        *,
        plans: PlanCache[compiler.Plan],
        prepared: PreparedReads,
        policy: DepartmentPolicy,
        access: AccessPolicies,
    ) -> None:
        self.plans = plans
        self.prepared = prepared
        self.policy = policy
        self.access = access

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context: Context = execution.context
        document = execution.graphql_document
        if (
            context.settings.read_compiler
            and not context.settings.otel  # spans per resolver need the resolvers
            and document is not None
            and execution.query
            and not execution.pre_execution_errors
            and execution.result is None
        ):
            schema = execution.schema._schema
            met = context.request.scope.pop(BUSY, None) if context.request is not None else None
            key = (
                QueryCache.key(execution.query, execution.parse_options),
                execution.operation_name,
            )
            plan = self.plans.get(
                key,
                lambda: compiler.compile_plan(
                    document, execution.operation_name, schema, self.policy, self.access
                ),
            )
            try:
                if met is not None:  # the prepared read met a busy database: no second wait
                    raise met
                found = (
                    None if plan is None else await _run(plan, context, schema, execution.variables)
                )
            except Exception as exc:  # a busy database
                execution.result = busy(exc)
                yield
                return
            if plan is not None and found is not None:
                trail = CURRENT_TRAIL.get()
                if trail is not None and found.field_paths:
                    _trail_of(plan, found, trail)
                execution.result = graphql.ExecutionResult(data=found.data)
                # Under the operation name the request gave (None when it gave none, where
                # ``operation_name`` is the document's first operation's).
                given = getattr(execution, "_provided_operation_name", execution.operation_name)
                self.prepared.put(
                    PreparedReads.key(execution.query, given, context.principal.purpose),
                    Prepared(document, plan, limits.Rechecked(document)),
                )
        yield


def read_compiler(
    settings: Settings, policy: DepartmentPolicy, access: AccessPolicies, prepared: PreparedReads
) -> Callable[[], ReadCompiler]:
    """The extension factory of one department schema: one plan cache of
    ``settings.plan_cache_size`` plans for all its requests, and its prepared reads."""
    plans: PlanCache[compiler.Plan] = PlanCache(settings.plan_cache_size)
    return lambda: ReadCompiler(plans=plans, prepared=prepared, policy=policy, access=access)
