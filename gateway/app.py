"""The HTTP service: ``POST /graphql``, ``GET /healthz``, ``GET /readyz``.

Every ``/graphql`` request passes, in order: method and content-type checks (JSON only, which
also stops cross-site form posts), the body-size limit, the bearer token (401 otherwise), and is
then executed by the schema of the caller's department.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import graphql
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.extensions import (
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)
from strawberry.extensions.query_depth_limiter import IgnoreContext
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionResult

from gateway.access import CURRENT_TRAIL, FieldAccess, refusal
from gateway.auth import Principal, Unauthenticated, authenticate
from gateway.config import Settings
from gateway.errors import INTERNAL, UNAUTHENTICATED, ErrorCodes, production_errors
from gateway.storage import audit
from gateway.storage.audit import ReadTrail
from gateway.storage.database import Database, resolve_url
from policies.access.policy import (
    AccessPolicies,
    DepartmentPolicy,
    arguments_of,
    catalog_of,
    load_access,
)
from policies.benefits import PolicySet, load_policies
from resolvers.context import Context
from schema import Extension, build_schema

log = logging.getLogger("medgw.http")


@dataclass
class Gateway:
    """What the running service holds: settings, database, policies, one view per department."""

    settings: Settings
    db: Database
    policies: PolicySet
    access: AccessPolicies
    full_schema: graphql.GraphQLSchema
    views: dict[str, GraphQLView] = field(default_factory=dict)


def load_access_for_schema() -> tuple[graphql.GraphQLSchema, AccessPolicies]:
    """The full schema and the access policies validated against it (a typo stops here)."""
    full = build_schema()._schema
    return full, load_access(catalog_of(full), arguments=arguments_of(full))


class GraphQLView(GraphQL[Context, None]):
    """The GraphQL endpoint of one department."""

    def __init__(self, gateway: Gateway, policy: DepartmentPolicy, **kwargs: Any) -> None:
        self.gateway = gateway
        self.policy = policy
        # Whether a query text may run for this department depends on nothing else (and the
        # token's purpose): remember the answer for the queries clients send again and again.
        self.refusal = functools.lru_cache(maxsize=512)(self._refusal)
        super().__init__(**kwargs)

    def _refusal(
        self, query: str | None, operation_name: str | None, purpose: str | None
    ) -> graphql.GraphQLError | None:
        gateway = self.gateway
        return refusal(
            query, operation_name, gateway.full_schema, gateway.access, self.policy, purpose
        )

    def encode_json(self, data: object) -> str:
        # Names and references are Chinese: send UTF-8, not \uXXXX escapes.
        return json.dumps(data, ensure_ascii=False)

    async def get_context(self, request: Any, response: Any) -> Context:
        gw = self.gateway
        context = Context(
            request=request,
            response=response,
            request_id=request.scope["medgw.request_id"],
            principal=request.scope["medgw.principal"],
            settings=gw.settings,
            db=gw.db,
            policies=gw.policies,
            access=gw.access,
        )
        request.scope["medgw.context"] = context
        return context

    async def execute_single(
        self,
        request: Any,
        request_adapter: Any,
        sub_response: Any,
        context: Context,
        root_value: None,
        request_data: Any,
    ) -> ExecutionResult:
        """One operation: refused if it selects what the department may not use (before
        anything executes); otherwise run on the department's schema, then write the read audit
        record of the personal data it returned. No record, no data.

        Each operation of a batch has its own trail (a context variable: the operations run as
        concurrent tasks on one request context) and its own audit record.
        """
        query, name = request_data.query, request_data.operation_name
        denied = self.refusal(query, name, context.principal.purpose)
        if denied is not None:
            return ExecutionResult(data=None, errors=[denied])
        trail = ReadTrail()
        token = CURRENT_TRAIL.set(trail)
        try:
            result = await super().execute_single(
                request, request_adapter, sub_response, context, root_value, request_data
            )
        finally:
            CURRENT_TRAIL.reset(token)
        if not trail or result.data is None:
            return result
        # Give the read connection back first: a request does not hold two connections, so a
        # burst of requests cannot exhaust the pool waiting for their audit writes.
        await context.close()
        try:
            async with context.db.transaction() as session:
                await audit.append(
                    session,
                    context.principal,
                    action="READ",
                    operation=name or _operation_of(query),
                    query=query,
                    beneficiary_ids=trail.beneficiary_ids,
                    field_paths=trail.field_paths,
                )
        except Exception:
            log.exception("request %s: audit record not written", context.request_id)
            message = f"audit unavailable (request id {context.request_id})"
            return ExecutionResult(
                data=None,
                errors=[graphql.GraphQLError(message, extensions={"code": INTERNAL})],
            )
        return result


def _operation_of(query: str | None) -> str | None:
    """The name of the (first) operation, or of its first top-level field when anonymous."""
    if not query:
        return None
    try:
        document = graphql.parse(query)
    except graphql.GraphQLError:
        return None
    for definition in document.definitions:
        if isinstance(definition, graphql.OperationDefinitionNode):
            if definition.name is not None:
                return definition.name.value
            for selection in definition.selection_set.selections:
                if isinstance(selection, graphql.FieldNode):
                    return selection.name.value
    return None


def _error(status: int, code: str, message: str, request_id: str) -> JSONResponse:
    return JSONResponse(
        {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]},
        status_code=status,
        headers={"X-Request-Id": request_id},
    )


class BodyTooLarge(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class GraphQLEndpoint:
    """Gatekeeper in front of the per-department GraphQL views."""

    def __init__(self, gateway_of: Any) -> None:
        self._gateway_of = gateway_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway: Gateway = self._gateway_of(scope)
        settings = gateway.settings
        request = Request(scope, receive)
        request_id = uuid.uuid4().hex
        scope["medgw.request_id"] = request_id
        method = request.method
        if method == "GET" and "query" not in request.query_params:
            if settings.is_production:
                response: Response = _error(
                    404, "NOT_FOUND", "no GraphiQL in production", request_id
                )
            else:
                response = await next(iter(gateway.views.values())).render_graphql_ide(request)
            await response(scope, receive, send)
            return
        if method not in ("GET", "POST"):
            await _error(405, "BAD_INPUT", f"method {method} not allowed", request_id)(
                scope, receive, send
            )
            return
        if method == "POST":
            content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != "application/json":
                await _error(
                    415,
                    "BAD_INPUT",
                    f"content-type = {content_type or '(none)'}: send application/json",
                    request_id,
                )(scope, receive, send)
                return
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > settings.max_body_bytes:
            await _error(
                413, "BAD_INPUT", f"body over {settings.max_body_bytes} bytes", request_id
            )(scope, receive, send)
            return
        try:
            body = await _read_body(receive, settings.max_body_bytes)
        except BodyTooLarge:
            await _error(
                413, "BAD_INPUT", f"body over {settings.max_body_bytes} bytes", request_id
            )(scope, receive, send)
            return
        try:
            principal: Principal = authenticate(
                request.headers.get("authorization"), settings.jwt_secret, gateway.views.keys()
            )
        except Unauthenticated as exc:
            await _error(401, UNAUTHENTICATED, str(exc), request_id)(scope, receive, send)
            return
        scope["medgw.principal"] = principal

        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await gateway.views[principal.department](scope, replay, send_with_id)
        finally:
            context: Context | None = scope.get("medgw.context")
            if context is not None:
                await context.close()


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    if await gateway.db.ping():
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "database unavailable"}, status_code=503)


def _introspection(context: IgnoreContext) -> bool:
    return context.field_name.startswith("__")


def department_extensions(settings: Settings, policy: DepartmentPolicy) -> list[Extension]:
    """Hardening of the OWASP GraphQL cheat sheet, and the access extension."""
    extensions: list[Extension] = [
        production_errors() if settings.is_production else ErrorCodes,
        FieldAccess,
        lambda: QueryDepthLimiter(max_depth=settings.max_query_depth, should_ignore=_introspection),
        lambda: MaxAliasesLimiter(max_alias_count=settings.max_aliases),
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
    ]
    if settings.is_production and not policy.introspection:
        extensions.append(DisableIntrospection)
    return extensions


def build_views(gateway: Gateway) -> dict[str, GraphQLView]:
    """One schema and one view per department of the access policies."""
    settings = gateway.settings
    config_args: dict[str, Any] = {"disable_field_suggestions": settings.is_production}
    if settings.max_batch:
        config_args["batching_config"] = {"max_operations": settings.max_batch}
    views: dict[str, GraphQLView] = {}
    for name, policy in gateway.access.departments.items():
        schema = build_schema(
            extensions=department_extensions(settings, policy),
            policy=policy,
            config=StrawberryConfig(**config_args),
        )
        views[name] = GraphQLView(
            gateway,
            policy,
            schema=schema,
            graphql_ide=None if settings.is_production else "graphiql",
            allow_queries_via_get=True,
        )
    return views


def create_app(
    settings: Settings | None = None,
    db: Database | None = None,
    policies: PolicySet | None = None,
) -> Starlette:
    """The ASGI app; without ``db`` it connects at startup (embedded server unless configured)."""
    settings = settings or Settings()
    the_policies = policies or load_policies()
    full_schema, access = load_access_for_schema()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own = db is None
        database = db
        if database is None:
            url = await asyncio.to_thread(resolve_url, settings)
            database = Database.connect(url, settings)
        gateway = Gateway(settings, database, the_policies, access, full_schema)
        gateway.views = build_views(gateway)
        app.state.gateway = gateway
        try:
            yield
        finally:
            if own:
                await database.dispose()

    def gateway_of(scope: Scope) -> Gateway:
        return scope["app"].state.gateway  # type: ignore[no-any-return]

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/graphql", GraphQLEndpoint(gateway_of), methods=["GET", "POST"]),
        ],
        lifespan=lifespan,
    )
