"""uvicorn's HTTP protocol (httptools) with a response's writes sent together.

uvicorn writes a response's status line and headers when the application sends
``http.response.start``, and its body when it sends ``http.response.body``: two ``write`` calls
on the socket, each a system call (and, on a loopback or a LAN, a segment of its own, which the
client is woken for). uvloop sends each write at once. :class:`HttpToolsProtocol` gives uvicorn's
protocol a transport that holds what is written until the event loop's current callbacks have
run (``call_soon``): the head and the body that Starlette sends one after the other go out in
one system call. Nothing waits longer than the callbacks already scheduled, nor once
:data:`HELD_BYTES` are held; closing the connection sends what is held first, aborting it drops
it, as the socket's own buffer would be.

Used by ``medgw serve`` (``make run``), the bench and the tests' servers; on the command line:
``uvicorn gateway.main:app --http gateway.transport:HttpToolsProtocol``.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _HttpToolsProtocol

__all__ = ["HELD_BYTES", "UVICORN_HTTP", "Coalescing", "HttpToolsProtocol"]

UVICORN_HTTP = "gateway.transport:HttpToolsProtocol"
"""uvicorn's ``--http`` for :class:`HttpToolsProtocol`."""

HELD_BYTES = 64 * 1024
"""Bytes held at most: a write that reaches them sends what is held at once."""


class Coalescing(asyncio.Transport):
    """A transport that sends the bytes written during one pass of the event loop's callbacks
    in one write of ``transport``; everything else is ``transport``'s own."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(bytes(data))
        self._size += len(data)
        if self._size >= HELD_BYTES:
            # A producer that writes without giving the loop a turn (a stream made in memory)
            # meets the socket's own buffer limits, and uvicorn's back-pressure, as before.
            self.flush()

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        """Send what is held (nothing when the connection was aborted meanwhile)."""
        if not self._held:
            return
        held, self._held, self._size = self._held, [], 0
        if self._transport.is_closing():
            return
        self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held, self._size = [], 0
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._size + self._transport.get_write_buffer_size()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()


class HttpToolsProtocol(_HttpToolsProtocol):
    """uvicorn's httptools protocol on a :class:`Coalescing` transport."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports have asyncio.Transport's methods without deriving from it.
        super().connection_made(Coalescing(cast(asyncio.Transport, transport), self.loop))
