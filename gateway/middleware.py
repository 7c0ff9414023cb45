"""The HTTP edge, in small ASGI pieces: a request id on every response, the body-size limit,
bearer-token authentication (Starlette's authentication middleware with our backend), and JSON
that parses (not too deep, text that is Unicode) before GraphQL sees it.

Errors are JSON in the GraphQL shape (``{"data": null, "errors": [{message, extensions.code}]}``)
and carry the request id.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from urllib.parse import parse_qs

from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
)
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.auth import MAX_REGIONS, Principal, TokenCache, Unauthenticated
from gateway.errors import BAD_INPUT, UNAUTHENTICATED

REQUEST_ID = "medgw.request_id"
"""The scope key of the request id (also sent back as ``X-Request-Id``)."""


def json_error(
    status: int, code: str, message: str, scope: Scope, **details: object
) -> JSONResponse:
    """An error response in the GraphQL shape: ``extensions.code`` and ``requestId`` (also in
    the ``X-Request-Id`` header), and any ``details`` (``field``, ``value``, ``forbidden``)."""
    request_id = str(scope.get(REQUEST_ID, ""))
    extensions = {**details, "code": code, "requestId": request_id}
    return JSONResponse(
        {"data": None, "errors": [{"message": message, "extensions": extensions}]},
        status_code=status,
        headers={"X-Request-Id": request_id},
    )


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
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        try:
            if declared.isdigit() and int(declared) > limit:
                raise BodyTooLarge
            body = await _read_body(receive, limit)
        except BodyTooLarge:
            too_large = json_error(413, BAD_INPUT, f"body over {limit} bytes", scope)
            await too_large(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then whatever ``receive`` gives."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


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


_SURROGATE = re.compile(r"[\ud800-\udfff]")


class JsonBody:
    """Refuses, with 400 ``BAD_INPUT`` in the GraphQL shape, a POST body (or the ``variables``
    and ``extensions`` of a GET) that is not JSON, nests arrays and objects deeper than
    ``max_depth``, or holds text that is not Unicode (lone surrogates) or NaN/Infinity.
    Behind :class:`BodyLimit`, so the body is small; the app gets it replayed."""

    def __init__(self, app: ASGIApp, max_depth: Callable[[Scope], int]) -> None:
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        post = scope["method"] == "POST"
        if post:
            body = await _read_body(receive, limit=2**63)
            texts: list[str | bytes] = [body]
            receive = _replay(body, receive)
        else:
            params = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            texts = [params[name][0] for name in ("variables", "extensions") if name in params]
        for text in texts:
            value, problem = parse_json(text, self.max_depth(scope))
            if problem is None and post:
                problem = _nul_in_documents(value)
            if problem is not None:
                await json_error(400, BAD_INPUT, problem, scope)(scope, receive, send)
                return
            if post:
                scope[JSON_BODY] = value
        if not post:
            problem = _nul_in_documents({k: v[0] for k, v in params.items()})
            if problem is not None:
                await json_error(400, BAD_INPUT, problem, scope)(scope, receive, send)
                return
        await self.app(scope, receive, send)


DOCUMENT_MEMBERS = ("query", "operationName")
"""The members of a request whose text is kept as it is (the query text in the audit record)."""


def _nul_in_documents(value: object) -> str | None:
    """What is wrong with the ``query`` or ``operationName`` of a request (or of each request of
    a batch): U+0000, which PostgreSQL's text cannot hold, so that no audit record could keep
    the query. Variables are checked with the arguments (a NUL there is refused per field).

    >>> _nul_in_documents({"query": "{ a } # " + chr(0)})
    'query holds U+0000 (NUL), which cannot be stored: remove it'
    >>> _nul_in_documents([{"query": "{ a }"}]) is None
    True
    """
    for request in value if isinstance(value, list) else [value]:
        if isinstance(request, dict):
            for member in DOCUMENT_MEMBERS:
                text = request.get(member)
                if isinstance(text, str) and "\x00" in text:
                    return f"{member} holds U+0000 (NUL), which cannot be stored: remove it"
    return None


JSON_BODY = "medgw.json_body"
"""The scope key of a POST body's JSON value, once :class:`JsonBody` checked it."""


def json_problem(text: str | bytes, max_depth: int) -> str | None:
    """What is wrong with ``text`` as the JSON of a request, or ``None``.

    >>> json_problem(b"[" * 90_000, 32)
    'JSON nested deeper than 32 levels'
    >>> json_problem('{"query": "{ a }"}', 32) is None
    True
    """
    return parse_json(text, max_depth)[1]


def parse_json(text: str | bytes, max_depth: int) -> tuple[object, str | None]:
    """(the JSON value of ``text``, None), or (None, what is wrong with it as the JSON of a
    request: :func:`json_problem`)."""
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        return None, f"JSON nested deeper than {max_depth} levels"
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN
        return None, f"body is not JSON: {exc}"
    problem = _problem_in(value, max_depth)
    return (None, problem) if problem is not None else (value, None)


def _problem_in(value: object, max_depth: int) -> str | None:
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list) and depth > max_depth:
            return f"JSON nested deeper than {max_depth} levels"
        if isinstance(item, dict):
            pending += [(key, depth) for key in item]
            pending += [(child, depth + 1) for child in item.values()]
        elif isinstance(item, list):
            pending += [(child, depth + 1) for child in item]
        elif isinstance(item, str) and _SURROGATE.search(item):
            return "body is not JSON: text with a lone surrogate (\\ud800–\\udfff) is not Unicode"
    return None


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


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

    def __init__(
        self,
        secret: Callable[[], str],
        departments: Callable[[], Collection[str]],
        max_regions: Callable[[], int] = lambda: MAX_REGIONS,
    ):
        self.secret = secret
        self.departments = departments
        self.max_regions = max_regions
        self.tokens = TokenCache()

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser]:
        try:
            principal = self.tokens.authenticate(
                conn.headers.get("authorization"),
                self.secret(),
                self.departments(),
                self.max_regions(),
            )
        except Unauthenticated as exc:
            raise AuthenticationError(str(exc)) from exc
        return AuthCredentials([principal.department]), Caller(principal)


def unauthenticated(conn: HTTPConnection, exc: AuthenticationError) -> JSONResponse:
    """The 401 of a refused token (RFC 6750: with the scheme to use)."""
    response = json_error(401, UNAUTHENTICATED, str(exc), conn.scope)
    response.headers["WWW-Authenticate"] = 'Bearer realm="medgw"'
    return response
