"""The HTTP service: ``POST /graphql``, ``GET /healthz``, ``GET /readyz``.

Every request gets a request id (:class:`~gateway.outcomes.Outcomes`). A ``/graphql``
request then passes, in order: GraphiQL, method and content-type checks (JSON only, which also
stops cross-site form posts), the body-size limit, the bearer token (401 otherwise), and is
executed by the schema of the caller's department, whose extensions refuse what it may not use,
mask, and write the read audit record (:mod:`gateway.access`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import graphql
from cross_web import HTTPException
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.extensions import MaxTokensLimiter
from strawberry.http import GraphQLHTTPResponse
from strawberry.schema import Schema
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionResult

from gateway import dashboard, events, logs, metrics
from gateway.access import FieldAccess, IntrospectionForbidden, ReadAudit, Refusal, RefusalCache
from gateway.arguments import ArgumentCheck
from gateway.config import Settings
from gateway.cors import cors
from gateway.documents import ClaimDocuments
from gateway.errors import BAD_INPUT, NOT_FOUND, ErrorCodes, production_errors
from gateway.exports import Exports
from gateway.imports import import_routes
from gateway.limits import QueryLimits, Sized, limited_encoder
from gateway.media import GRAPHQL_RESPONSE, accepts_graphql_response, as_graphql_response
from gateway.middleware import (
    JSON_BODY,
    REQUEST_ID,
    BearerTokens,
    BodyLimit,
    JsonBody,
    json_error,
    unauthenticated,
)
from gateway.outcomes import OK, OperationOutcome, Outcomes, note
from gateway.query_cache import cached_documents
from gateway.read_compiler import PreparedReads, answer, read_compiler
from gateway.reconnection import at_most_twice
from gateway.storage import audit
from gateway.storage.database import Database, resolve_url
from gateway.tracing import tracing
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
GRAPHIQL = Path(__file__).resolve().parent / "static" / "graphiql"
"""GraphiQL and its assets, vendored (``VENDOR.md``): served at ``/graphiql/static``."""
GRAPHIQL_PAGE = GRAPHIQL / "index.html"


class WithoutQueryString(logging.Filter):
    """Drops the query string from uvicorn's access log lines: a GraphQL GET carries the query
    and its variables there, ID numbers included (ACCESS.md: no personal data in logs).

    >>> record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0,
    ...     '%s - "%s %s HTTP/%s" %d', ("1.2.3.4:5", "GET", "/graphql?query=x", "1.1", 200), None)
    >>> WithoutQueryString().filter(record), record.getMessage()
    (True, '1.2.3.4:5 - "GET /graphql?… HTTP/1.1" 200')
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > 2 and isinstance(args[2], str):
            path, query = args[2].partition("?")[::2]
            if query:
                record.args = (*args[:2], f"{path}?…", *args[3:])
        return True


def _quiet_access_log() -> None:
    """Install :class:`WithoutQueryString` on uvicorn's access logger (once per process; uvicorn
    configures its loggers before it loads the app, so this stays)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, WithoutQueryString) for f in access.filters):
        access.addFilter(WithoutQueryString())


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
    """The GraphQL endpoint of one department (its schema carries the access extensions)."""

    def __init__(self, gateway: Gateway, prepared: PreparedReads, **kwargs: Any) -> None:
        self.gateway = gateway
        self.prepared = prepared
        self.encode = limited_encoder(lambda: gateway.settings.max_response_bytes)
        super().__init__(**kwargs)
        self.graphql_schema: graphql.GraphQLSchema = cast(Schema, self.schema)._schema

    def encode_json(self, data: object) -> bytes:
        # Names and references are Chinese: UTF-8, not \uXXXX escapes; at most the size cap.
        return self.encode(data)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """strawberry's, with its HTTP-level refusals (a GET mutation, a batch or a body without
        a query) in the JSON error shape instead of plain text."""
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        if await self.answer_prepared(scope, receive, send):
            return
        try:
            response = await self.run(Request(scope=scope, receive=receive))
        except HTTPException as e:
            code = NOT_FOUND if e.status_code == 404 else BAD_INPUT
            response = json_error(e.status_code, code, e.reason, scope)
        await response(scope, receive, send)

    async def answer_prepared(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer a POST of one of the department's prepared reads (:class:`gateway.
        read_compiler.PreparedReads`) without strawberry's pipeline: the same answer, audit
        record and noted outcome, in the media type the client accepts. False when the request
        takes the whole pipeline instead: a read not prepared (for the token's purpose), a body
        with other members, or what :func:`gateway.read_compiler.answer` leaves to it."""
        settings = self.gateway.settings
        body = scope.get(JSON_BODY)
        if (
            not settings.read_compiler
            or settings.otel
            or not isinstance(body, dict)
            or not body.keys() <= {"query", "variables", "operationName"}
        ):
            return False
        query, variables, name = body.get("query"), body.get("variables"), body.get("operationName")
        if (
            not isinstance(query, str)
            or not isinstance(variables, dict | None)
            or not isinstance(name, str | None)
        ):
            return False
        prepared = self.prepared.get(
            PreparedReads.key(query, name, scope["user"].principal.purpose)
        )
        if prepared is None:
            return False
        request = Request(scope, receive)
        sub_response = await self.get_sub_response(
            request
        )  # its media type (Accept), as strawberry
        context = await self.get_context(request, sub_response)
        found = await answer(prepared, context, self.graphql_schema, query, name, variables)
        if found is None:
            await context.close()  # the pipeline makes a context of its own
            return False
        note(scope, prepared.plan.operation, OK)
        response = Sized({"data": found.data}, found.text_size)
        await self.create_response(cast(GraphQLHTTPResponse, response), sub_response)(
            scope, receive, send
        )
        return True

    async def execute_single(
        self,
        request: Any,
        request_adapter: Any,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: Any,
    ) -> ExecutionResult:
        """strawberry's, run once more when it lost its database connection having committed
        nothing (:mod:`gateway.reconnection`)."""
        run = super().execute_single
        return await at_most_twice(
            lambda ctx: run(request, request_adapter, sub_response, ctx, root_value, request_data),
            context,
            sub_response,
        )

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        if accepts_graphql_response(request.headers.get("accept")):
            sub_response.headers["content-type"] = GRAPHQL_RESPONSE
        return sub_response

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Response
    ) -> Response:
        """As strawberry's; for a client that accepts ``application/graphql-response+json``
        in that type, a request error without ``data`` and 4xx (:mod:`gateway.media`)."""
        if sub_response.headers.get("content-type") != GRAPHQL_RESPONSE or isinstance(
            response_data, list
        ):
            return super().create_response(response_data, sub_response)
        body, status = as_graphql_response(response_data, sub_response.status_code)
        sub_response.status_code = status  # type: ignore[assignment]
        response = super().create_response(cast(GraphQLHTTPResponse, body), sub_response)
        response.headers["content-type"] = f"{GRAPHQL_RESPONSE}; charset=utf-8"
        return response

    async def get_context(self, request: Any, response: Any) -> Context:
        gw = self.gateway
        context = Context(
            request=request,
            response=response,
            request_id=request.scope[REQUEST_ID],
            principal=request.scope["user"].principal,
            settings=gw.settings,
            db=gw.db,
            policies=gw.policies,
            access=gw.access,
        )
        request.scope["medgw.context"] = context
        return context


GatewayOf = Callable[[Scope], Gateway]


class GraphQLRequests:
    """``/graphql``: GraphiQL on a GET without a query (development only), then GET or POST
    with ``application/json`` (no form posts, so no CSRF) on to ``app``."""

    def __init__(self, gateway_of: GatewayOf, app: ASGIApp) -> None:
        self.gateway_of = gateway_of
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway = self.gateway_of(scope)
        request = Request(scope, receive)
        method = request.method
        response: Response | None = None
        if method == "GET" and "query" not in request.query_params:
            if gateway.settings.is_production:
                response = json_error(404, NOT_FOUND, "no GraphiQL in production", scope)
            else:
                response = HTMLResponse(GRAPHIQL_PAGE.read_text(encoding="utf-8"))
        elif method not in ("GET", "POST"):
            response = json_error(405, BAD_INPUT, f"method {method} not allowed", scope)
        elif method == "POST":
            content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != "application/json":
                message = f"content-type = {content_type or '(none)'}: send application/json"
                response = json_error(415, BAD_INPUT, message, scope)
        if response is not None:
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class DepartmentDispatch:
    """Runs an authenticated request on the schema of the caller's department."""

    def __init__(self, gateway_of: GatewayOf) -> None:
        self.gateway_of = gateway_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = scope["user"].principal
        try:
            await self.gateway_of(scope).views[principal.department](scope, receive, send)
        finally:
            context: Context | None = scope.get("medgw.context")
            if context is not None:
                try:
                    await context.close()
                except SQLAlchemyError as exc:  # answered already; the pool drops the connection
                    log.warning(
                        "request %s: session not closed cleanly: %r", context.request_id, exc
                    )


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, method not allowed) in the JSON error shape."""
    status = getattr(exc, "status_code", 500)
    code = NOT_FOUND if status == 404 else BAD_INPUT
    return json_error(status, code, str(getattr(exc, "detail", exc)), request.scope)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    if await gateway.db.ping():
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "database unavailable"}, status_code=503)


def department_extensions(
    settings: Settings,
    policy: DepartmentPolicy,
    full_schema: graphql.GraphQLSchema | None = None,
    access: AccessPolicies | None = None,
    prepared: PreparedReads | None = None,
) -> list[Extension]:
    """The request pipeline of a department's schema, in order: error codes, the limits of the
    document (before anything else looks at it), refusal of what the department may not use
    (with the full schema and access policies), masks and the read trail, the read audit
    record, and the rest of the hardening of the OWASP GraphQL cheat sheet."""
    extensions: list[Extension] = [
        OperationOutcome,
        *tracing(settings),
        production_errors() if settings.is_production else ErrorCodes,
        lambda: QueryLimits(settings),
    ]
    if full_schema is not None and access is not None:
        cache = RefusalCache(settings.refusal_cache_bytes)
        extensions.append(
            lambda: Refusal(full_schema=full_schema, access=access, policy=policy, cache=cache)
        )
    extensions.append(cached_documents(settings))
    extensions.append(ArgumentCheck)
    if full_schema is not None and access is not None:
        prepared = prepared if prepared is not None else PreparedReads(settings.plan_cache_size)
        extensions.append(read_compiler(settings, policy, access, prepared))
    extensions += [
        FieldAccess,
        ReadAudit,
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
    ]
    if settings.is_production and not policy.introspection:
        extensions.append(IntrospectionForbidden)
    return extensions


def build_views(gateway: Gateway) -> dict[str, GraphQLView]:
    """One schema and one view per department of the access policies."""
    settings = gateway.settings
    config_args: dict[str, Any] = {"disable_field_suggestions": settings.is_production}
    if settings.max_batch:
        config_args["batching_config"] = {"max_operations": settings.max_batch}
    views: dict[str, GraphQLView] = {}
    for name, policy in gateway.access.departments.items():
        prepared = PreparedReads(settings.plan_cache_size)
        schema = build_schema(
            extensions=department_extensions(
                settings, policy, gateway.full_schema, gateway.access, prepared
            ),
            policy=policy,
            config=StrawberryConfig(**config_args),
        )
        views[name] = GraphQLView(
            gateway,
            prepared,
            schema=schema,
            graphql_ide=None,  # ours, vendored (GRAPHIQL_PAGE), is served by GraphQLRequests
            allow_queries_via_get=True,
        )
    return views


def create_app(
    settings: Settings | None = None,
    db: Database | None = None,
    policies: PolicySet | None = None,
    freeze_heap: bool = False,
) -> Starlette:
    """The ASGI app; without ``db`` it connects at startup (embedded server unless configured).
    ``freeze_heap`` (the served process, ``gateway.main``): once started, what it built is moved
    out of the garbage collector's sight (``gc.freeze``), so that a full collection scans only
    what requests make (one over the whole heap took ~100 ms inside a late re-settlement)."""
    settings = settings or Settings()
    the_policies = policies or load_policies()
    full_schema, access = load_access_for_schema()
    _quiet_access_log()
    logs.configure(settings)
    audit.configure(settings.audit_shards)
    if settings.metrics:
        metrics.observe_settlements()

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
        if freeze_heap:
            gc.collect()
            gc.freeze()
        try:
            async with (
                audit.Checkpointer(
                    database,
                    settings.audit_key,
                    settings.audit_checkpoints,
                    settings.audit_checkpoint_seconds,
                ),
                events.running(gateway),
            ):
                yield
        finally:
            if own:
                await database.dispose()

    def gateway_of(scope: Scope) -> Gateway:
        return scope["app"].state.gateway  # type: ignore[no-any-return]

    tokens = BearerTokens(
        lambda: settings.jwt_secret,
        lambda: access.departments.keys(),
        lambda: settings.max_token_regions,
    )
    graphql_app = GraphQLRequests(
        gateway_of,
        BodyLimit(
            AuthenticationMiddleware(
                JsonBody(
                    DepartmentDispatch(gateway_of),
                    max_depth=lambda scope: gateway_of(scope).settings.max_json_depth,
                ),
                backend=tokens,
                on_error=unauthenticated,
            ),
            max_bytes=lambda scope: gateway_of(scope).settings.max_body_bytes,
        ),
    )
    documents = AuthenticationMiddleware(
        ClaimDocuments(gateway_of), backend=tokens, on_error=unauthenticated
    )
    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/graphql", graphql_app, methods=["GET", "POST"]),
            Route(
                "/exports/{kind}.{format}",
                AuthenticationMiddleware(Exports(), backend=tokens, on_error=unauthenticated),
                methods=["GET"],
            ),
            *import_routes(tokens),
            Mount("/graphiql/static", app=StaticFiles(directory=GRAPHIQL), name="graphiql"),
            Route("/documents/claims/{claim_number}.{kind}", documents, methods=["GET"]),
            *dashboard.routes(),
            *([metrics.route(lambda r: gateway_of(r.scope).db.engine)] if settings.metrics else []),
            WebSocketRoute("/graphql", events.Subscriptions(gateway_of)),
        ],
        middleware=[
            Middleware(Outcomes, count=settings.metrics),
            *cors(settings),
        ],
        exception_handlers={404: http_error, 405: http_error},
        lifespan=lifespan,
    )
