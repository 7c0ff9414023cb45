"""CORS for browser dashboards on other origins (Starlette's ``CORSMiddleware``).

Only the origins of ``MEDGW_CORS_ORIGINS`` get ``Access-Control-Allow-*`` headers; with none
configured there is no CORS at all (browsers keep other sites out). A preflight ``OPTIONS`` is
answered before authentication (browsers send it without the token). No cookies are used (the
token is a header), so credentials are not allowed; ``X-Request-Id`` is readable by the page.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from gateway.config import Settings

PREFLIGHT_SECONDS = 600


def cors(settings: Settings) -> list[Middleware]:
    """The CORS middleware of the configured origins, or none.

    >>> cors(Settings())
    []
    >>> [m.cls.__name__ for m in cors(Settings(MEDGW_CORS_ORIGINS="https://dash.example.cn"))]
    ['CORSMiddleware']
    """
    if not settings.cors_origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["X-Request-Id"],
            allow_credentials=False,
            max_age=PREFLIGHT_SECONDS,
        )
    ]
