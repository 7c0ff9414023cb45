"""The HTTP protocol the gateway is served with (gateway/transport.py): a response's head and
body leave in one write of the socket, and nothing else about the connection changes."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as UvicornHttpTools

from gateway.transport import HELD_BYTES, Coalescing, HttpToolsProtocol
from tests.conftest import serving


class Counted:
    """A real transport whose writes are counted (and their bytes kept, in order)."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


WRITES: list[list[bytes]] = []
"""The writes of each connection the counting servers accepted, in order."""


class CountedOurs(HttpToolsProtocol):
    """The gateway's protocol, with its socket's writes counted beneath the coalescing."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        counted = Counted(transport)
        WRITES.append(counted.writes)
        super().connection_made(cast(asyncio.Transport, counted))


class CountedUvicorn(UvicornHttpTools):
    """uvicorn's own protocol, counted alike: what the gateway's is compared with."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        counted = Counted(transport)
        WRITES.append(counted.writes)
        super().connection_made(cast(asyncio.Transport, counted))


async def small(request: Request) -> JSONResponse:
    return JSONResponse({"answer": 42})


async def stream(request: Request) -> StreamingResponse:
    """1 MiB made without giving the event loop a turn between chunks."""

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(64):
            yield bytes([65 + i % 26]) * 16384

    return StreamingResponse(chunks(), media_type="application/octet-stream")


PRODUCED: list[int] = []
"""Bytes the endless stream had made when the test looked (one entry per request)."""
CHUNK = 65536


async def endless(request: Request) -> StreamingResponse:
    """Up to 256 MiB, each chunk made as soon as the server's ``send`` returns."""
    PRODUCED.append(0)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4096):
            PRODUCED[-1] += CHUNK
            yield b"x" * CHUNK

    return StreamingResponse(chunks(), media_type="application/octet-stream")


APP = Starlette(
    routes=[Route("/small", small), Route("/stream", stream), Route("/endless", endless)]
)


@pytest.fixture(scope="module")
def ours() -> Iterator[str]:
    with serving(APP, http=CountedOurs) as url:
        yield url


@pytest.fixture(scope="module")
def uvicorns() -> Iterator[str]:
    with serving(APP, http=CountedUvicorn) as url:
        yield url


def _get(url: str, path: str) -> bytes:
    """One request on a fresh connection (the connection's writes are the last counted)."""
    with httpx.Client(base_url=url) as client:
        response = client.get(path)
        assert response.status_code == 200
        return response.content


def test_a_response_leaves_in_one_write(ours: str, uvicorns: str) -> None:
    assert _get(ours, "/small") == b'{"answer":42}'
    [write] = WRITES[-1]
    assert write.startswith(b"HTTP/1.1 200 OK\r\n")
    assert write.endswith(b'\r\n\r\n{"answer":42}')
    # uvicorn's own protocol writes the head and the body apart: what the change saves.
    assert _get(uvicorns, "/small") == b'{"answer":42}'
    head, body = WRITES[-1]
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert body == b'{"answer":42}'


def test_responses_on_one_connection_each_leave_in_one_write(ours: str) -> None:
    with httpx.Client(base_url=ours) as client:
        for _ in range(3):
            assert client.get("/small").json() == {"answer": 42}
    writes = WRITES[-1]
    assert len(writes) == 3
    assert all(w.endswith(b'{"answer":42}') for w in writes)


def test_a_stream_made_in_memory_is_sent_as_it_grows(ours: str, uvicorns: str) -> None:
    expected = b"".join(bytes([65 + i % 26]) * 16384 for i in range(64))
    assert _get(ours, "/stream") == expected
    writes = WRITES[-1]
    # Never more than HELD_BYTES and one chunk's framing held: the socket's own buffer limits
    # (and uvicorn's back-pressure) see the stream as it is made.
    assert max(len(w) for w in writes) < HELD_BYTES + 16384 + 64
    assert len(writes) >= (64 * 16384) // (HELD_BYTES + 16384 + 64)
    assert _get(uvicorns, "/stream") == expected


def test_a_client_that_does_not_read_holds_the_stream_back(ours: str) -> None:
    """uvicorn's back-pressure still works: while the client reads nothing, the application's
    stream waits once the socket's buffers are full, instead of piling up in memory; then the
    whole stream arrives."""
    host, port = ours.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        client.sendall(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + 5
        while not PRODUCED and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(1.0)  # the server has had all the time it needs to run ahead
        held = PRODUCED[-1]
        assert held < 32 * 1024 * 1024, f"{held:,} bytes made for a client that read none"
        received = 0
        client.settimeout(30)
        while True:
            data = client.recv(1 << 20)
            if not data:
                break
            received += len(data)
            if data.endswith(b"0\r\n\r\n"):
                break
        assert PRODUCED[-1] == 4096 * CHUNK
        assert received > 4096 * CHUNK  # the body, with its chunked framing and the head


class Peer(asyncio.Protocol):
    def __init__(self) -> None:
        self.received = bytearray()
        self.closed = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.received += data

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def _pair() -> tuple[Coalescing, Counted, Peer]:
    """A coalescing transport over a counted real one, connected to a peer by a socket pair."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
    peer = Peer()
    await loop.connect_accepted_socket(lambda: peer, theirs)
    counted = Counted(transport)
    return Coalescing(cast(asyncio.Transport, counted), loop), counted, peer


async def _until(predicate: Any) -> None:
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("not reached")


async def test_writes_of_one_pass_are_one_write_after_it() -> None:
    coalescing, counted, peer = await _pair()
    coalescing.write(b"head ")
    coalescing.write(bytearray(b"body"))
    coalescing.write(b"")
    assert counted.writes == []
    assert coalescing.get_write_buffer_size() == 9
    await asyncio.sleep(0)
    assert counted.writes == [b"head body"]
    coalescing.writelines([b"a", b"b"])
    await _until(lambda: bytes(peer.received) == b"head bodyab")
    assert counted.writes == [b"head body", b"ab"]
    coalescing.close()
    await asyncio.wait_for(peer.closed, 5)


async def test_held_bytes_go_at_once() -> None:
    coalescing, counted, peer = await _pair()
    coalescing.write(b"x" * (HELD_BYTES - 1))
    assert counted.writes == []
    coalescing.write(b"y")
    assert [len(w) for w in counted.writes] == [HELD_BYTES]
    coalescing.close()
    await asyncio.wait_for(peer.closed, 5)
    assert len(peer.received) == HELD_BYTES


async def test_close_sends_what_is_held_and_abort_drops_it() -> None:
    coalescing, counted, peer = await _pair()
    coalescing.write(b"last words")
    coalescing.close()  # before the loop's turn
    await asyncio.wait_for(peer.closed, 5)
    assert bytes(peer.received) == b"last words"
    assert coalescing.is_closing()

    coalescing, counted, peer = await _pair()
    coalescing.write(b"never sent")
    coalescing.abort()
    await asyncio.wait_for(peer.closed, 5)
    await asyncio.sleep(0)  # the flush that was scheduled finds nothing
    assert counted.writes == []
    assert peer.received == b""


async def test_the_rest_is_the_transports() -> None:
    coalescing, counted, peer = await _pair()
    assert coalescing.get_extra_info("socket") is counted.get_extra_info("socket")
    assert coalescing.is_reading()
    coalescing.pause_reading()
    assert not coalescing.is_reading()
    coalescing.resume_reading()
    assert coalescing.is_reading()
    coalescing.set_write_buffer_limits(high=1024)
    assert coalescing.get_write_buffer_limits()[1] == 1024
    assert coalescing.can_write_eof()
    coalescing.write(b"bye")
    coalescing.write_eof()
    assert counted.writes == [b"bye"]
    coalescing.close()
    await asyncio.wait_for(peer.closed, 5)
