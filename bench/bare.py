"""The raw point lookup behind uvicorn, with no gateway: the HTTP floor of ``make bench``.

The point lookup's raw side (:func:`bench.suite.raw_point`) runs in the bench process, with no
HTTP at all. This ASGI app answers the same request body (``{"query": …, "variables": {"n": …}}``)
over HTTP with exactly that function on a plain asyncpg pool, and does nothing else: no routing
beyond the path, no authentication, no limits, no logging. Served by uvicorn with the gateway's
workers, loop and HTTP parser, its rate is what any Python gateway on this server can reach at
best for this request; ``make bench`` prints it beside the gateway's.

Configuration (environment): ``MEDGW_BENCH_ASYNCPG``, the asyncpg connection options as JSON
(:func:`bench.settle.asyncpg_options`); ``MEDGW_BENCH_POOL``, connections per worker (4).
``make bench`` serves it itself; to try it by hand against a database the gateway migrated::

    .venv/bin/python -m bench.bare --database-url postgresql://… [--port 8001] [--workers 2]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Annotated, Any

import asyncpg  # type: ignore[import-untyped]
import typer

from bench.settle import asyncpg_options
from bench.suite import raw_point
from gateway.transport import UVICORN_HTTP

Scope = dict[str, Any]
_pool: Any = None


async def _lifespan(receive: Any, send: Any) -> None:
    global _pool
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            size = int(os.environ.get("MEDGW_BENCH_POOL", "4"))
            options = json.loads(os.environ["MEDGW_BENCH_ASYNCPG"])
            _pool = await asyncpg.create_pool(min_size=size, max_size=size, **options)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if _pool is not None:
                await _pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _respond(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Any, send: Any) -> None:
    """``GET /readyz``: 200 once the pool is open; ``POST /graphql``: the raw point lookup of
    ``variables.n``; anything else 404."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["method"] == "GET" and scope["path"] == "/readyz":
        await _respond(send, 200 if _pool is not None else 503, b"{}")
        return
    if scope["method"] != "POST" or scope["path"] != "/graphql":
        await _respond(send, 404, b"{}")
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    number = json.loads(body)["variables"]["n"]
    async with _pool.acquire() as conn:
        await _respond(send, 200, await raw_point(conn, number))


def main(
    database_url: Annotated[str, typer.Option(help="The database (SQLAlchemy URL).")],
    port: Annotated[int, typer.Option(help="The port to serve on.")] = 8001,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn workers.")] = 2,
) -> None:
    """Serve the raw point lookup behind uvicorn, with no gateway (the bench's HTTP floor)."""
    env = {**os.environ, "MEDGW_BENCH_ASYNCPG": json.dumps(asyncpg_options(database_url))}
    command = [sys.executable, "-m", "uvicorn", "bench.bare:app", "--port", str(port)]
    command += ["--workers", str(workers), "--no-access-log", "--http", UVICORN_HTTP]
    command += ["--no-proxy-headers"]
    raise SystemExit(subprocess.call(command, env=env))


if __name__ == "__main__":
    typer.run(main)
