"""Group commit: items submitted by concurrent tasks written together, each caller released only
once the write that holds its item has finished.

One :class:`GroupCommit` per process (and event loop) and kind of item. ``submit`` queues the
item and waits; a drain task, started when the queue was idle, hands everything queued so far to
``write`` in one call, then whatever queued meanwhile, until the queue is empty. While one write
runs (typically a transaction and its commit), the next group gathers, so the more callers wait,
the more items each write carries; an idle process writes one item at once, with no delay.

When ``write`` raises for a group of several items and ``alone`` says the failure may be one
item's (a record the database refuses, not a database out of reach), each item is written again
alone, so that one bad item fails its own caller only; otherwise, and for an item whose own write
raises, every caller concerned gets the exception.

The drain task runs in a context of its own: a caller's cancellation (a client gone) never
interrupts the write of the others' items, and context variables of the first caller (e.g.
:data:`gateway.storage.database.COMMITS`) are not touched by the group's transaction.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Write = Callable[[Sequence[T]], Awaitable[Sequence[R]]]
"""Writes a group of items (oldest first) and returns one result per item, in the same order;
returns only once the write is durable (committed)."""


class GroupCommit(Generic[T, R]):
    """Queue of items waiting for ``write``; at most ``most`` items per write; ``alone(exc)``:
    whether the items of a group whose write raised ``exc`` are written again one by one.

    >>> async def write(items): return [i * 10 for i in items]
    >>> async def main():
    ...     group = GroupCommit(write)
    ...     return await asyncio.gather(*(group.submit(i) for i in range(3))), group.writes
    >>> asyncio.run(main())
    ([0, 10, 20], 1)
    """

    def __init__(
        self,
        write: Write[T, R],
        most: int = 500,
        alone: Callable[[Exception], bool] = lambda exc: True,
    ) -> None:
        self._write = write
        self.most = most
        self._alone = alone
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
                await self._write_group(group)
            except BaseException:  # cancelled: nothing queued will be written
                _fail([*group, *self._queue], RuntimeError("write cancelled"))
                self._queue = []
                raise
            finally:
                self.writing = 0

    async def _write_group(self, group: list[tuple[T, asyncio.Future[R]]]) -> None:
        """Write ``group`` in one call and settle each caller's future; when that write raises
        and ``alone`` says the failure may be one item's, write each item alone (a group of one:
        its caller gets the exception). A write that returned the wrong number of results is
        not retried (it may have written them): every caller gets the error."""
        try:
            results = await self._write([item for item, _ in group])
        except Exception as exc:
            if len(group) > 1 and self._alone(exc):
                for one in group:
                    self.writes += 1
                    self.writing = 1
                    await self._write_group([one])
            else:
                _fail(group, exc)
            return
        if len(results) != len(group):
            _fail(group, RuntimeError(f"{len(results)} results for {len(group)} items"))
            return
        for (_, done), result in zip(group, results, strict=True):
            if not done.done():
                done.set_result(result)


def _fail(group: Sequence[tuple[object, asyncio.Future[Any]]], exc: BaseException) -> None:
    """Give every caller of ``group`` still waiting the exception ``exc``."""
    for _, done in group:
        if not done.done():
            done.set_exception(exc)
