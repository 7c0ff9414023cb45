"""Errors that reach GraphQL clients, each with a stable ``extensions.code``.

Resolvers raise these (or :class:`policies.errors.InvalidInput`, which is ``BAD_INPUT``); the
:class:`ErrorCodes` extension gives every other error a code too and, in production, replaces
unexpected errors by a generic message carrying the request id (the details go to the log).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, ClassVar

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from policies.errors import InvalidInput, NoPolicyInForce

log = logging.getLogger("medgw.errors")

BAD_INPUT = "BAD_INPUT"
NOT_FOUND = "NOT_FOUND"
CONFLICT = "CONFLICT"
PRECONDITION_FAILED = "PRECONDITION_FAILED"
FORBIDDEN = "FORBIDDEN"
UNAUTHENTICATED = "UNAUTHENTICATED"
INTERNAL = "INTERNAL"


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


def code_of(error: GraphQLError) -> str:
    """The stable code for any error of a GraphQL result."""
    original = error.original_error
    if isinstance(original, GatewayError):
        return original.code
    if isinstance(original, InvalidInput | NoPolicyInForce):
        return BAD_INPUT
    if original is None or error.path is None or isinstance(original, GraphQLError):
        # Parse and validation errors, and variables that do not coerce: the request is bad.
        return str((error.extensions or {}).get("code", BAD_INPUT))
    return INTERNAL


class ErrorCodes(SchemaExtension):
    """Give every error an ``extensions.code``; mask unexpected ones when asked to."""

    mask_unexpected: ClassVar[bool] = False

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        request_id = getattr(self.execution_context.context, "request_id", None)
        result.errors = [self._classify(error, request_id) for error in result.errors]

    def _classify(self, error: GraphQLError, request_id: str | None) -> GraphQLError:
        code = code_of(error)
        original = error.original_error
        extensions = dict(error.extensions or {})
        if isinstance(original, InvalidInput):
            extensions.update(field=original.field, value=_jsonable(original.value))
        extensions["code"] = code
        message = error.message
        if code == INTERNAL:
            log.error("request %s: unexpected error", request_id, exc_info=original)
            if self.mask_unexpected:
                message = f"Unexpected error (request id {request_id})"
                extensions = {"code": INTERNAL, "requestId": request_id}
        return GraphQLError(
            message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=original,
            extensions=extensions,
        )


def production_errors() -> type[ErrorCodes]:
    """The extension class that masks unexpected errors (for ``MEDGW_ENV=production``)."""
    return type("MaskedErrorCodes", (ErrorCodes,), {"mask_unexpected": True})
