"""The HTTP edge, in small ASGI pieces: a request id on every response, the body-size limit, and
bearer-token authentication (Starlette's authentication middleware with our backend).

Errors are JSON in the GraphQL shape (``{"data": null, "errors": [{message, extensions.code}]}``)
and carry the request id.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection

from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
)
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.auth import Principal, Unauthenticated, authenticate
from gateway.errors import BAD_INPUT, UNAUTHENTICATED

REQUEST_ID = "medgw.request_id"
"""The scope key of the request id (also sent back as ``X-Request-Id``)."""


def json_error(status: int, code: str, message: str, scope: Scope) -> JSONResponse:
    """An error response in the GraphQL shape, with the request id."""
    return JSONResponse(
        {"data": None, "errors": [{"message": message, "extensions": {"code": code}}]},
        status_code=status,
        headers={"X-Request-Id": str(scope.get(REQUEST_ID, ""))},
    )


class RequestId:
    """Gives every HTTP request an id (``scope["medgw.request_id"]``) and every response the
    ``X-Request-Id`` header, for logs and for users reporting a problem."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope[REQUEST_ID] = request_id
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != header[0]]
                message["headers"] = [*headers, header]
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuses a request body over ``max_bytes`` with 413 before the app reads it: by its
    declared Content-Length, or while it streams in; the app gets the body replayed."""

    def __init__(self, app: ASGIApp, max_bytes: Callable[[Scope], int]) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_bytes(scope)
        too_large = json_error(413, BAD_INPUT, f"body over {limit} bytes", scope)
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await too_large(scope, receive, send)
            return
        try:
            body = await _read_body(receive, limit)
        except BodyTooLarge:
            await too_large(scope, receive, send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


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


class Caller(BaseUser):
    """The authenticated caller (``request.user``), carrying the token's principal."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return f"{self.principal.department}/{self.principal.org}"


class BearerTokens(AuthenticationBackend):
    """``Authorization: Bearer <JWT>``: a missing, malformed, badly signed or expired token, or
    one of an unknown department, is refused (401 with the reason, never the token)."""

    def __init__(self, secret: Callable[[], str], departments: Callable[[], Collection[str]]):
        self.secret = secret
        self.departments = departments

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser]:
        try:
            principal = authenticate(
                conn.headers.get("authorization"), self.secret(), self.departments()
            )
        except Unauthenticated as exc:
            raise AuthenticationError(str(exc)) from exc
        return AuthCredentials([principal.department]), Caller(principal)


def unauthenticated(conn: HTTPConnection, exc: AuthenticationError) -> JSONResponse:
    """The 401 of a refused token (RFC 6750: with the scheme to use)."""
    response = json_error(401, UNAUTHENTICATED, str(exc), conn.scope)
    response.headers["WWW-Authenticate"] = 'Bearer realm="medgw"'
    return response
