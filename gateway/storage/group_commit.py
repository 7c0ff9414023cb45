"""Group commit: items submitted by concurrent tasks written together, each caller released only
once the write that holds its item has finished.

One :class:`GroupCommit` per process (and event loop) and kind of item. ``submit`` queues the
item and waits; a drain task, started when the queue was idle, hands everything queued so far to
``write`` in one call, then whatever queued meanwhile, until the queue is empty. While one write
runs (typically a transaction and its commit), the next group gathers, so the more callers wait,
the more items each write carries; an idle process writes one item at once, with no delay.

When ``write`` raises, every item of its group gets that exception and nothing else is written
for them. The drain task runs in a context of its own: a caller's cancellation (a client gone)
never interrupts the write of the others' items, and context variables of the first caller
(e.g. :data:`gateway.storage.database.COMMITS`) are not touched by the group's transaction.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Write = Callable[[Sequence[T]], Awaitable[Sequence[R]]]
"""Writes a group of items (oldest first) and returns one result per item, in the same order;
returns only once the write is durable (committed)."""


class GroupCommit(Generic[T, R]):
    """Queue of items waiting for ``write``; at most ``most`` items per write.

    >>> async def write(items): return [i * 10 for i in items]
    >>> async def main():
    ...     group = GroupCommit(write)
    ...     return await asyncio.gather(*(group.submit(i) for i in range(3))), group.writes
    >>> asyncio.run(main())
    ([0, 10, 20], 1)
    """

    def __init__(self, write: Write[T, R], most: int = 500) -> None:
        self._write = write
        self.most = most
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._drain: asyncio.Task[None] | None = None
        self.writes = 0
        """Calls of ``write`` so far (how many groups)."""
        self.writing = 0
        """Items in the write under way (0 when none is)."""

    @property
    def waiting(self) -> int:
        """Items queued for the next write."""
        return len(self._queue)

    async def submit(self, item: T) -> R:
        """``item``'s result once the write that carried it has finished; raises what that
        write raised."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[R] = loop.create_future()
        self._queue.append((item, done))
        if self._drain is None or self._drain.done():
            self._drain = loop.create_task(
                self._draining(), name="group commit", context=contextvars.Context()
            )
        return await done

    async def _draining(self) -> None:
        while self._queue:
            group, self._queue = self._queue[: self.most], self._queue[self.most :]
            self.writes += 1
            self.writing = len(group)
            try:
                results = await self._write([item for item, _ in group])
                if len(results) != len(group):
                    raise RuntimeError(f"{len(results)} results for {len(group)} items")
            except BaseException as exc:
                self.writing = 0
                failure = exc if isinstance(exc, Exception) else RuntimeError("write cancelled")
                for _, done in group:
                    if not done.done():
                        done.set_exception(failure)
                if not isinstance(exc, Exception):
                    for _, done in self._queue:
                        if not done.done():
                            done.set_exception(failure)
                    self._queue = []
                    raise
                continue
            self.writing = 0
            for (_, done), result in zip(group, results, strict=True):
                if not done.done():
                    done.set_result(result)
