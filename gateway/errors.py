"""Errors that reach GraphQL clients, each with a stable ``extensions.code``.

Resolvers raise these (or :class:`policies.errors.InvalidInput`, which is ``BAD_INPUT``); the
:class:`ErrorCodes` extension gives every other error a code too: ``UNAVAILABLE`` for a database
that cannot be reached or has no free connection (retryable: HTTP 503 with ``Retry-After`` when
nothing could be answered), ``field``/``value`` on validation and variable errors, and, in
production, no schema suggestions ("Did you mean …?") and a generic message carrying the request
id instead of an unexpected error (the details go to the log).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any, ClassVar

import graphql
from graphql import GraphQLError
from sqlalchemy import exc as sa
from strawberry.extensions import SchemaExtension

from policies.errors import InvalidInput, NoPolicyInForce

log = logging.getLogger("medgw.errors")

BAD_INPUT = "BAD_INPUT"
NOT_FOUND = "NOT_FOUND"
CONFLICT = "CONFLICT"
PRECONDITION_FAILED = "PRECONDITION_FAILED"
FORBIDDEN = "FORBIDDEN"
UNAUTHENTICATED = "UNAUTHENTICATED"
UNAVAILABLE = "UNAVAILABLE"
INTERNAL = "INTERNAL"

# SQLSTATE classes of a server that is gone, overloaded or shutting down (not the request's fault):
# 08 connection exception, 53 insufficient resources, 57P0x operator intervention (shutdown).
# Connection exceptions, insufficient resources, operator intervention (shutdown), and a busy
# database: statement timeout (57014), lock not available (55P03), serialization failure and
# deadlock (40001, 40P01): the request may succeed when retried.
_TRANSIENT_SQLSTATES = ("08", "53", "57P", "57014", "55P03", "40001", "40P01")
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


class GatewayError(Exception):
    code: ClassVar[str] = INTERNAL

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.extensions: dict[str, Any] = {"code": self.code, **details}


class BadInput(GatewayError):
    code = BAD_INPUT

    @classmethod
    def of(cls, error: InvalidInput) -> BadInput:
        return cls(str(error), field=error.field, value=_jsonable(error.value))


class NotFound(GatewayError):
    code = NOT_FOUND


class Conflict(GatewayError):
    code = CONFLICT


class Forbidden(GatewayError):
    code = FORBIDDEN


class PreconditionFailed(GatewayError):
    """The request is well formed but something it depends on is not recorded yet (e.g. the
    enrollment of the settlement year, SETTLEMENT.md §9.1)."""

    code = PRECONDITION_FAILED


def _jsonable(value: object) -> object:
    return value if isinstance(value, str | int | float | bool | None) else str(value)


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) says the database is unreachable or busy: a pool
    timeout, a lost or refused connection, a server shutting down or out of connections.

    >>> is_transient(ConnectionRefusedError(111, "Connect call failed"))
    True
    >>> is_transient(ValueError("x"))
    False
    """
    for current in causes(error):
        if isinstance(current, sa.TimeoutError | OSError):
            return True
        if isinstance(current, sa.DBAPIError) and current.connection_invalidated:
            return True
        sqlstate = getattr(current, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_TRANSIENT_SQLSTATES):
            return True
    return False


def causes(error: BaseException | None) -> Iterator[BaseException]:
    """``error`` and what caused it: its causes, contexts and wrapped driver errors, each once.

    >>> [type(e).__name__ for e in causes(ValueError("x"))]
    ['ValueError']
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [current.__cause__, current.__context__, getattr(current, "orig", None)]


def code_of(error: GraphQLError) -> str:
    """The stable code for any error of a GraphQL result."""
    original = error.original_error
    if isinstance(original, GatewayError):
        return original.code
    if isinstance(original, InvalidInput | NoPolicyInForce):
        return BAD_INPUT
    if original is not None and is_transient(original):
        return UNAVAILABLE
    if original is None or error.path is None or isinstance(original, GraphQLError):
        # Parse and validation errors, and variables that do not coerce: the request is bad.
        return str((error.extensions or {}).get("code", BAD_INPUT))
    return INTERNAL


def log_errors(errors: list[GraphQLError], request_id: str | None) -> None:
    """One log line per error of a result, without its message, value or traceback: a refused
    or bad request is the client's business (INFO, its code and where), and messages may quote
    the request's ID numbers (ACCESS.md: no personal data in logs). Unexpected and transient
    errors are logged by :class:`ErrorCodes`, with what is needed to fix them."""
    for error in errors:
        code = code_of(error)
        if code in (INTERNAL, UNAVAILABLE):
            continue
        where = ".".join(str(key) for key in error.path or ()) or "document"
        named = (error.extensions or {}).get("field")
        field = getattr(error.original_error, "field", None) or named
        log.info("request %s: %s at %s%s", request_id, code, where, f" ({field})" if field else "")


class ErrorCodes(SchemaExtension):
    """Give every error an ``extensions.code`` (and ``field``/``value`` where the request names
    them); hide suggestions and mask unexpected errors when asked to (production)."""

    mask_unexpected: ClassVar[bool] = False
    hide_suggestions: ClassVar[bool] = False

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        context = self.execution_context.context
        request_id = getattr(context, "request_id", None)
        result.errors = [self._classify(error, request_id) for error in result.errors]
        unavailable = [e for e in result.errors if (e.extensions or {}).get("code") == UNAVAILABLE]
        response = getattr(context, "response", None)
        nothing = all(value is None for value in (result.data or {}).values())
        if unavailable and response is not None and nothing:
            # Nothing could be answered: a retryable 503 (RFC 9110 §15.6.4), not a 200.
            response.status_code = 503
            response.headers["Retry-After"] = str((unavailable[0].extensions or {})["retryAfter"])

    def _classify(self, error: GraphQLError, request_id: str | None) -> GraphQLError:
        code = code_of(error)
        original = error.original_error
        extensions = dict(error.extensions or {})
        if isinstance(original, InvalidInput):
            extensions.update(field=original.field, value=_jsonable(original.value))
        elif code == BAD_INPUT and "field" not in extensions:
            extensions.update(self._named_input(error))
        extensions["code"] = code
        message = error.message
        if self.hide_suggestions:
            message = _SUGGESTION.sub("", message)
        if code == UNAVAILABLE:
            log.warning("request %s: database unavailable: %r", request_id, original)
            settings = getattr(self.execution_context.context, "settings", None)
            retry = getattr(settings, "retry_after_s", 5)
            message = f"database unavailable or busy: retry after {retry} s (request {request_id})"
            extensions = {"code": UNAVAILABLE, "requestId": request_id, "retryAfter": retry}
        elif code == INTERNAL:
            log.error("request %s: unexpected error", request_id, exc_info=original)
            if self.mask_unexpected:
                message = f"Unexpected error (request id {request_id})"
                extensions = {"code": INTERNAL, "requestId": request_id}
        if request_id is not None:
            extensions["requestId"] = request_id
        return GraphQLError(
            message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=original,
            extensions=extensions,
        )

    def _named_input(self, error: GraphQLError) -> dict[str, object]:
        """``field`` and ``value`` of a validation or variable error, from the node it names."""
        node: graphql.Node | None = error.nodes[0] if error.nodes else None
        if isinstance(node, graphql.ValueNode):
            node = _parent_of(self.execution_context.graphql_document, node)
        if isinstance(node, graphql.ArgumentNode | graphql.ObjectFieldNode):
            return {"field": node.name.value, "value": graphql.print_ast(node.value)}
        if isinstance(node, graphql.VariableDefinitionNode):
            name = node.variable.name.value
            path = _VARIABLE_PATH.match(error.message)
            keys = _PATH_KEY.findall(path.group(1)) if path else []
            value = _at(self.execution_context.variables or {}, [name, *keys])
            return {"field": ".".join([name, *keys]), "value": _jsonable(value)}
        if isinstance(node, graphql.FieldNode):
            return {"field": node.name.value}
        return {}


_VARIABLE_PATH = re.compile(r"\AVariable '\$\w+' has invalid value at ((?:\.\w+|\[\d+\])+)")
_PATH_KEY = re.compile(r"\w+")


def _at(value: object, keys: list[str]) -> object:
    """The part of a JSON value at a path of keys and list indexes, or ``None``."""
    for key in keys:
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return None
    return value if isinstance(value, str | int | float | bool) else None


def _parent_of(
    document: graphql.DocumentNode | None, target: graphql.Node
) -> graphql.ArgumentNode | graphql.ObjectFieldNode | None:
    """The argument or input-object field whose value is ``target`` (a literal of the document)."""

    class Finder(graphql.Visitor):
        found: graphql.ArgumentNode | graphql.ObjectFieldNode | None = None

        def enter_argument(self, node: graphql.ArgumentNode, *_: object) -> None:
            if node.value is target:
                self.found = node

        def enter_object_field(self, node: graphql.ObjectFieldNode, *_: object) -> None:
            if node.value is target:
                self.found = node

    if document is None:
        return None
    finder = Finder()
    graphql.visit(document, finder)
    return finder.found


def production_errors() -> type[ErrorCodes]:
    """The extension class that masks unexpected errors and hides schema suggestions (for
    ``MEDGW_ENV=production``)."""
    return type(
        "MaskedErrorCodes", (ErrorCodes,), {"mask_unexpected": True, "hide_suggestions": True}
    )
