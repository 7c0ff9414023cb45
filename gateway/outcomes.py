"""What each HTTP request came to: who asked (department, organisation), which GraphQL
operations ran (name, type, outcome code), the HTTP status and how long it took; recorded once
per request as a log line (:mod:`gateway.logs`) and in the metrics (:mod:`gateway.metrics`).

:class:`OperationOutcome` (a schema extension, first of every department's pipeline) notes each
operation in the request's scope; :class:`Outcomes` (ASGI, the outermost of the gateway's
middlewares) gives the request its id, times it, reads the status, and records. Nothing
recorded is a personal value:
operation names are GraphQL names of the document (never the client's unchecked
``operationName``), codes and types are closed sets.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import graphql
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from gateway import logs, metrics
from gateway.errors import (
    BAD_INPUT,
    FORBIDDEN,
    INTERNAL,
    NOT_FOUND,
    UNAUTHENTICATED,
    UNAVAILABLE,
    code_of,
)
from gateway.middleware import REQUEST_ID

REQUEST_ID_HEADER = b"x-request-id"
OPERATIONS = "medgw.operations"
"""The scope key of the list of :class:`Operation` a request ran."""
OK = "OK"
NONE = "none"
MAX_NAME = 100
"""Longer operation names are cut (a log line stays a line)."""

STATUS_CODES = {401: UNAUTHENTICATED, 403: FORBIDDEN, 404: NOT_FOUND, 503: UNAVAILABLE}
"""The outcome code of an HTTP status when no GraphQL operation ran (else: 4xx ``BAD_INPUT``,
5xx ``INTERNAL``, others ``OK``)."""


@dataclass(frozen=True)
class Operation:
    """One executed GraphQL operation: its name in the document (or ``None``), its type
    (``query``, ``mutation``, ``subscription`` or ``none`` when the document did not parse)
    and its outcome code (``OK`` or the first error's ``extensions.code``)."""

    name: str | None
    type: str
    code: str


def operation_of(context: ExecutionContext) -> graphql.OperationDefinitionNode | None:
    """The operation of the document that runs: the one named by ``operationName`` or the only
    one; ``None`` when there is none (the document did not parse, the name is not in it).
    Its name is a name of the document, never one the client made up."""
    document = context.graphql_document
    return graphql.get_operation_ast(document, context.operation_name) if document else None


class OperationOutcome(SchemaExtension):
    """Notes the :class:`Operation` of each execution in the HTTP request's scope."""

    def on_operation(self) -> Iterator[None]:
        yield
        ec = self.execution_context
        request = getattr(ec.context, "request", None)
        if request is None:
            return
        errors = ec.result.errors if ec.result is not None else None
        note(request.scope, operation_of(ec), code_of(errors[0]) if errors else OK)


def note(scope: Scope, definition: graphql.OperationDefinitionNode | None, code: str) -> None:
    """Note in the request's ``scope`` that the operation ``definition`` ran (``None``: none
    did) with the outcome ``code``."""
    scope.setdefault(OPERATIONS, []).append(
        Operation(
            name=definition.name.value[:MAX_NAME] if definition and definition.name else None,
            type=definition.operation.value if definition else NONE,
            code=code,
        )
    )


def status_code(status: int) -> str:
    """The outcome code of a response no GraphQL operation answered.

    >>> status_code(200), status_code(413), status_code(401), status_code(502)
    ('OK', 'BAD_INPUT', 'UNAUTHENTICATED', 'INTERNAL')
    """
    if status in STATUS_CODES:
        return STATUS_CODES[status]
    return BAD_INPUT if 400 <= status < 500 else INTERNAL if status >= 500 else OK


class Outcomes:
    """Gives every HTTP request an id (``scope["medgw.request_id"]``, for logs and for users
    reporting a problem) and every response the ``X-Request-Id`` header; records every request
    once it is answered: one log line, and (``count``) the request metrics. The outermost of the
    gateway's middlewares (Starlette's error middleware is outside it): one layer and one
    ``send`` wrapper for the id and the outcome."""

    def __init__(self, app: ASGIApp, count: bool = True) -> None:
        self.app = app
        self.count = count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = uuid.uuid4().hex
        scope[REQUEST_ID] = request_id
        header = (REQUEST_ID_HEADER, request_id.encode())
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", [])
                message["headers"] = [*(h for h in headers if h[0] != REQUEST_ID_HEADER), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.record(scope, status, time.perf_counter() - start)

    def record(self, scope: Scope, status: int, seconds: float) -> None:
        operations: list[Operation] = scope.get(OPERATIONS, [])
        codes = [op.code for op in operations if op.code != OK]
        code = codes[0] if codes else status_code(status) if not operations else OK
        types = sorted({op.type for op in operations}) or [NONE]
        user = scope.get("user")
        principal = getattr(user, "principal", None)
        department = principal.department if principal else NONE
        operation_type = ",".join(types)
        names = [op.name for op in operations]
        path = scope["path"] if "endpoint" in scope else "-"
        logs.log_request(
            request_id=scope.get(REQUEST_ID),
            method=scope["method"],
            path=path,
            department=department,
            org=principal.org if principal else None,
            operation=",".join(n or "-" for n in names) if any(names) else None,
            operation_type=operation_type,
            status=status,
            code=code,
            duration_ms=round(seconds * 1000, 1),
        )
        if self.count and path not in logs.QUIET_PATHS:
            metrics.count_request(department, operation_type, code, seconds)
