"""A real local HTTP receiver for webhook tests: records what arrives, answers 503 while
``down``, hangs while ``hanging``; and an independent Standard Webhooks verifier."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
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
        receiver.accepted.append((dict(request.headers), body))
        return Response(status_code=204)

    with serving(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as url:
        receiver.url = f"{url}/hook"
        yield receiver
