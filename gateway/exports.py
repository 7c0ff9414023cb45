"""``GET /exports/{kind}.csv`` and ``.xlsx``: an export (:mod:`resolvers.exports`) streamed
over HTTP with the caller's bearer token (:mod:`gateway.tables` writes the bytes).

Query parameters: ``year`` (required), ``region`` (a prefix within the token's regions; default
all of them), ``month`` and ``hospital`` (settlements), ``fund`` (subsidies), ``quarter``
(statements), ``columns``
(comma-separated column names; default every column the department may read). Everything is
checked, the access policy applied and the audit record written before the response starts, so
a refusal is a JSON error in the gateway's one shape: 400 ``BAD_INPUT`` naming the parameter and
the value, 403 ``FORBIDDEN`` (``forbidden`` lists the columns), 401 without a valid token (from
the authentication middleware in front), 503 ``UNAVAILABLE`` when the database cannot be
reached. Then the rows stream as they are read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import graphql
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.config import Settings
from gateway.errors import BAD_INPUT, FORBIDDEN, UNAVAILABLE, Forbidden, is_transient
from gateway.middleware import json_error
from gateway.storage.database import Database
from gateway.tables import Format, stream_table
from policies.access.policy import AccessPolicies
from policies.errors import InvalidInput
from resolvers.exports import Export, ExportRequest, plan

PARAMETERS = ("year", "region", "month", "quarter", "hospital", "fund", "columns")


class Serving(Protocol):
    """What an export needs of the running gateway (:class:`gateway.app.Gateway`)."""

    settings: Settings
    db: Database
    access: AccessPolicies
    full_schema: graphql.GraphQLSchema


def _number(request: Request, name: str, required: bool = False) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        if required:
            raise InvalidInput(name, text or "", "required")
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 6:
        raise InvalidInput(name, text, "expected a whole number")
    return int(text)


def export_request(request: Request) -> tuple[ExportRequest, Format]:
    """The export and format a request asks for.

    :raises InvalidInput: naming the parameter (or ``format``) and its value.
    """
    for name in request.query_params:
        if name not in PARAMETERS:
            known = ", ".join(PARAMETERS)
            raise InvalidInput(name, request.query_params[name], f"unknown parameter ({known})")
    params = request.query_params
    shape = request.path_params["format"]
    if shape not in set(Format):
        raise InvalidInput("format", shape, f"expected one of {', '.join(Format)}")
    columns = params.get("columns")
    wanted = ExportRequest(
        kind=request.path_params["kind"],
        year=_number(request, "year", required=True) or 0,
        region=params.get("region") or None,
        month=_number(request, "month"),
        quarter=_number(request, "quarter"),
        hospital=params.get("hospital"),
        fund=params.get("fund") or None,
        columns=None if columns is None else [c.strip() for c in columns.split(",") if c.strip()],
    )
    return wanted, Format(shape)


class Exports:
    """The ASGI endpoint, behind the bearer-token authentication."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.respond(Request(scope, receive))
        await response(scope, receive, send)

    async def respond(self, request: Request) -> Response:
        gateway: Serving = request.app.state.gateway
        principal = request.user.principal
        scope = request.scope
        try:
            wanted, shape = export_request(request)
            planned = plan(wanted, principal, gateway.access, gateway.full_schema)
            export = await Export.open(gateway.db, principal, planned)
        except InvalidInput as exc:
            value = exc.value if isinstance(exc.value, str | int) else str(exc.value)
            return json_error(400, BAD_INPUT, str(exc), scope, field=exc.field, value=value)
        except Forbidden as exc:
            details = {k: v for k, v in exc.extensions.items() if k != "code"}
            return json_error(403, FORBIDDEN, str(exc), scope, **details)
        except Exception as exc:
            if not is_transient(exc):
                raise
            retry = gateway.settings.retry_after_s
            response = json_error(
                503,
                UNAVAILABLE,
                f"database unavailable or busy: retry after {retry} s",
                scope,
                retryAfter=retry,
            )
            response.headers["Retry-After"] = str(retry)
            return response

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in stream_table(planned.columns, export.rows(), shape):
                    yield chunk
            finally:
                await export.close()

        name = "-".join(
            str(part) for part in (wanted.kind, wanted.year, wanted.month, wanted.region) if part
        )
        return StreamingResponse(
            body(),
            media_type=shape.media_type,
            headers={"Content-Disposition": f'attachment; filename="{name}.{shape}"'},
        )
