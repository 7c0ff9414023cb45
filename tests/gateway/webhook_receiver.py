"""A real local HTTP receiver for webhook tests: records what arrives, answers 503 while
``down``, hangs while ``hanging``; and an independent Standard Webhooks verifier."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.conftest import serving

SECRET = "whsec_" + base64.b64encode(b"receiver-secret-of-32-bytes-long").decode()


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance_s: int = 300) -> bool:
    """Standard Webhooks verification, written from the specification (not the gateway's code):
    key = base64 after ``whsec_``; signed content ``id.timestamp.body``; any ``v1,`` signature
    of the space-separated list may match; the timestamp within ``tolerance_s``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    message_id, stamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(stamp)) > tolerance_s:
        return False
    expected = base64.b64encode(
        hmac.new(key, f"{message_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    for signature in headers["webhook-signature"].split(" "):
        version, _, value = signature.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True
    return False


@dataclass
class Receiver:
    url: str = ""
    down: bool = False
    hanging: bool = False
    accepted: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    refused: int = 0
    redirecting: bool = False
    """Answer 307 to /elsewhere (which counts its visits in ``elsewhere``)."""
    endless: bool = False
    """Answer 200 with a body that never ends, as fast as it can."""
    trickling: bool = False
    """Answer 200 and then a byte a second."""
    elsewhere: int = 0

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.accepted]

    def ids(self) -> list[str]:
        return [headers["webhook-id"] for headers, _ in self.accepted]

    async def wait_for(self, count: int, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while len(self.accepted) < count:
            assert time.monotonic() < deadline, f"{len(self.accepted)} of {count} arrived"
            await asyncio.sleep(0.05)


@contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()

    async def hook(request: Request) -> Response:
        body = await request.body()
        if receiver.hanging:
            await asyncio.sleep(3600)
        if receiver.down:
            receiver.refused += 1
            return Response(status_code=503)
        if receiver.redirecting:
            return RedirectResponse(f"{receiver.url.removesuffix('/hook')}/elsewhere", 307)
        receiver.accepted.append((dict(request.headers), body))
        if receiver.endless or receiver.trickling:
            return StreamingResponse(forever(receiver.trickling))
        return Response(status_code=204)

    async def forever(slowly: bool) -> AsyncIterator[bytes]:
        while True:
            yield b"x" if slowly else b"x" * 65536
            await asyncio.sleep(1 if slowly else 0)

    async def elsewhere(request: Request) -> Response:
        receiver.elsewhere += 1
        return Response(status_code=204)

    routes = [
        Route("/hook", hook, methods=["POST"]),
        Route("/elsewhere", elsewhere, methods=["POST", "GET"]),
    ]
    with serving(Starlette(routes=routes)) as url:
        receiver.url = f"{url}/hook"
        yield receiver
