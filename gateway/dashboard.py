"""The dashboard page (issue 14) at ``GET /dashboard``, its assets at ``/dashboard/static``.

The page holds no data: it asks ``POST /graphql`` with the token the user enters (kept in the
tab's sessionStorage), so a department sees exactly what its policy grants. Everything it loads
comes from the gateway (ECharts vendored from npm: ``static/dashboard/VENDOR.md``); the
Content-Security-Policy forbids any other origin.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

ASSETS = Path(__file__).resolve().parent / "static" / "dashboard"
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
"""Only the gateway: a page that tried another host would be refused by the browser."""


async def page(request: Request) -> Response:
    html = (ASSETS / "index.html").read_text(encoding="utf-8")
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": POLICY,
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
        },
    )


def routes() -> list[BaseRoute]:
    """``/dashboard`` and its assets, for the app's route list."""
    return [
        Route("/dashboard", page, methods=["GET"]),
        Mount("/dashboard/static", app=StaticFiles(directory=ASSETS), name="dashboard"),
    ]
