"""The media types of GraphQL over HTTP (graphql-http spec, "Response"): which one a client
accepts, and how a result is answered in ``application/graphql-response+json``.

With ``application/json`` (the legacy type, and the default) every GraphQL result is a 200. With
``application/graphql-response+json`` the status tells a *request error* (the document did not
parse or validate, a variable did not coerce, the access check or a limit refused it: nothing
executed) from a result: the answer has no ``data`` entry and a 4xx status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

GRAPHQL_RESPONSE = "application/graphql-response+json"
STATUS_OF_CODE = {"FORBIDDEN": 403, "UNAUTHENTICATED": 401, "UNAVAILABLE": 503}


def accepts_graphql_response(accept: str | None) -> bool:
    """Whether an ``Accept`` header lists ``application/graphql-response+json`` (q > 0).

    >>> accepts_graphql_response("application/graphql-response+json, application/json;q=0.9")
    True
    >>> accepts_graphql_response("application/json"), accepts_graphql_response(None)
    (False, False)
    >>> accepts_graphql_response("application/graphql-response+json;q=0")
    False
    """
    for part in (accept or "").split(","):
        media, *parameters = (piece.strip() for piece in part.split(";"))
        if media.lower() != GRAPHQL_RESPONSE:
            continue
        quality = next((p[2:] for p in parameters if p.lower().startswith("q=")), "1")
        try:
            return float(quality) > 0
        except ValueError:
            return False
    return False


def as_graphql_response(
    body: Mapping[str, Any], status: int | None
) -> tuple[dict[str, Any], int | None]:
    """``body`` and ``status`` under ``application/graphql-response+json``: a request error
    (``data`` null and no error with a ``path``) loses its ``data`` entry and gets 400, or the
    status its code implies (403, 401, 503); anything else is unchanged (``status`` None: 200).

    >>> as_graphql_response({"data": None, "errors": [{"message": "Syntax Error"}]}, None)
    ({'errors': [{'message': 'Syntax Error'}]}, 400)
    >>> refused = {"data": None, "errors": [{"message": "x", "extensions": {"code": "FORBIDDEN"}}]}
    >>> as_graphql_response(refused, None)[1]
    403
    >>> as_graphql_response({"data": None, "errors": [{"message": "x", "path": ["a"]}]}, None)
    ({'data': None, 'errors': [{'message': 'x', 'path': ['a']}]}, None)
    """
    errors = body.get("errors") or []
    if body.get("data") is not None or not errors or any(e.get("path") for e in errors):
        return dict(body), status
    codes = [(e.get("extensions") or {}).get("code") for e in errors]
    implied = next((STATUS_OF_CODE[c] for c in codes if c in STATUS_OF_CODE), 400)
    return {k: v for k, v in body.items() if k != "data"}, status or implied
