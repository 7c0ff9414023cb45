"""Statements sent on a session while the caller goes on computing: at most one in flight.

A late re-settlement alternates two kinds of work that need not wait for each other: the
engine settles the year's claims one by one (Python), and PostgreSQL stores the adjustments
already computed (a multi-row statement whose inserts and foreign-key checks take about as long
as the engine). Sent in turn, their times add up; with a :class:`Pipeline` the statement for the
first claims runs on the database server while the engine settles the next ones.

The session is still used by one operation at a time: the statement in flight is the only one,
and :meth:`Pipeline.wait` (or :meth:`Pipeline.send` of the next statement) waits for it before
the caller uses the session again. A pipeline is an async context manager: leaving it waits for
the statement in flight, on success (its error is raised) and on failure (the caller's error
is raised; the statement's, if it also failed, is dropped), so that the transaction is never
ended while a statement of it runs. Waiting is shielded from the caller's cancellation: the
statement runs to its end (the server cancels it at the statement timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Self

Then = Callable[[Any], None]
"""What to do with a statement's result once it is in (runs in the caller, while the next
statement, if any, is in flight)."""


class Pipeline:
    """At most one statement in flight (see the module); ``then`` of each runs in order."""

    def __init__(self) -> None:
        self._flight: tuple[asyncio.Task[Any], Then] | None = None

    async def send(self, statement: Callable[[], Coroutine[Any, Any, Any]], then: Then) -> None:
        """Wait for the statement in flight, start ``statement()`` and let it reach the server,
        then run the previous statement's ``then`` (while this one runs)."""
        previous = await self._land()
        self._flight = (asyncio.create_task(statement()), then)
        await asyncio.sleep(0)  # its first step: sent on the connection (a prepared statement)
        if previous is not None:
            previous()

    async def wait(self) -> None:
        """Wait for the statement in flight (if any) and run its ``then``: the session is free."""
        previous = await self._land()
        if previous is not None:
            previous()

    async def _land(self) -> Callable[[], None] | None:
        """The statement in flight awaited (its error raised), as its ``then`` to run."""
        if self._flight is None:
            return None
        flight, then = self._flight
        try:
            result = await asyncio.shield(flight)
        except BaseException:
            if flight.done():  # it failed; else the caller was cancelled, and it still runs
                self._flight = None
            raise
        self._flight = None
        return lambda: then(result)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is None:
            await self.wait()
            return
        if self._flight is not None:
            flight = self._flight[0]
            self._flight = None
            while not flight.done():  # cancelled again meanwhile: still wait for it
                with contextlib.suppress(BaseException):
                    await asyncio.shield(flight)
