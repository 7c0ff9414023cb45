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

import logging
from collections.abc import AsyncIterator, Callable

import graphql
from strawberry.extensions import SchemaExtension

from gateway.access import CURRENT_TRAIL
from gateway.arguments import check_value, graphql_name
from gateway.config import Settings
from gateway.query_cache import PlanCache, QueryCache
from policies.access.policy import AccessPolicies, DepartmentPolicy
from resolvers import compiler
from resolvers.context import Context

log = logging.getLogger("medgw.compiler")


POINT_ROOTS = frozenset({"beneficiary", "claim"})
"""Root fields that return one object: a read of only these appends its record on its own read
connection; pages keep the group commit (concurrent ones share one transaction)."""


def _check(name: str, value: object) -> None:
    check_value(graphql_name(name), value)


class ReadCompiler(SchemaExtension):
    """Answers a covered read from one SQL statement per root field (see the module)."""

    def __init__(
        self,
        *,
        plans: PlanCache[compiler.Plan],
        policy: DepartmentPolicy,
        access: AccessPolicies,
    ) -> None:
        self.plans = plans
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
            answer = None
            if plan is not None:
                try:
                    answer = await compiler.run(plan, context, schema, execution.variables, _check)
                except Exception as exc:  # the resolvers answer (and report what fails for them)
                    # The error's class and SQLSTATE only: a message may quote a bound value
                    # (an ID number), and no personal data goes to the logs (ACCESS.md).
                    log.error(
                        "compiled read failed (%s %s); the resolvers answer",
                        type(exc).__name__,
                        getattr(exc, "sqlstate", ""),
                        extra={"request_id": context.request_id},
                    )
                    answer = None
            if answer is not None:
                trail = CURRENT_TRAIL.get()
                if trail is not None and answer.field_paths:
                    trail.beneficiary_ids |= answer.beneficiary_ids
                    trail.field_paths |= answer.field_paths
                    trail.operation = trail.operation or answer.operation
                    # A point read (one person, one claim): its record is appended on the read's
                    # connection (ReadAudit), saving a connection checkout and a group commit.
                    trail.on_read_connection = plan is not None and all(
                        r.name in POINT_ROOTS for r in plan.roots
                    )
                execution.result = graphql.ExecutionResult(data=answer.data)
        yield


def read_compiler(
    settings: Settings, policy: DepartmentPolicy, access: AccessPolicies
) -> Callable[[], ReadCompiler]:
    """The extension factory of one department schema: one plan cache of
    ``settings.plan_cache_size`` plans for all its requests."""
    plans: PlanCache[compiler.Plan] = PlanCache(settings.plan_cache_size)
    return lambda: ReadCompiler(plans=plans, policy=policy, access=access)
