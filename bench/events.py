"""Delivery latency of change notifications, commit → subscriber, at rest and under settlement
load (gateway/events.py, resolvers/outbox.py).

Run on demand (not part of the test suite)::

    .venv/bin/python -m bench.events [--probes 100] [--clients 8] [--claims 400] [--workers 1]

What it does:

1. A throwaway PostgreSQL and one ``uvicorn gateway.main:app`` process, as ``bench/settle.py``.
2. Set-up through the API: persons (registered, enrolled, 低保) and one settled claim per probe.
3. A subscriber: medical insurance, ``claimChanged`` over graphql-transport-ws.
4. A probe is one transaction, on a plain asyncpg connection, that writes the CLAIM_CHANGED row
   of a settled claim and calls ``pg_notify`` exactly as ``resolvers.outbox.claim_changed``
   does; the clock starts when its COMMIT returns and stops when the subscriber receives the
   change (the gateway reads it below the horizon, loads the claim under the subscriber's rows,
   writes the batch's read audit record, sends it).
5. ``--probes`` probes at rest, 20 ms apart; then the same while ``--clients`` clients settle
   ``--claims`` claims over HTTP (each settlement writes its own events, which the subscriber
   receives too and which are not counted).
6. Prints medians and p95 of both, the settlement rate during the loaded run, and the load
   average (``os.getloadavg``) before and after.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import asyncpg  # type: ignore[import-untyped]
import typer
import websockets
from rich.console import Console
from rich.progress import Progress

from bench.settle import (
    MI,
    claims_for,
    id_number,
    scratch_database,
    serve,
    set_up,
    settle_http,
    token,
)
from gateway import migrate
from gateway.storage.outbox import CHANNEL

console = Console()
SUBSCRIPTION = "subscription { claimChanged { claim { claimNumber } } }"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered)) - 1))]


class Subscriber:
    """One graphql-transport-ws subscription; notes when each claim number arrives."""

    def __init__(self, url: str) -> None:
        self.url = url.replace("http://", "ws://") + "/graphql"
        self.arrived: dict[str, float] = {}
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        ready = asyncio.Event()
        self.task = asyncio.create_task(self.listen(ready))
        await asyncio.wait_for(ready.wait(), 30)

    async def listen(self, ready: asyncio.Event) -> None:
        async with websockets.connect(self.url, subprotocols=["graphql-transport-ws"]) as ws:
            auth = {"Authorization": f"Bearer {token(**MI)}"}
            await ws.send(json.dumps({"type": "connection_init", "payload": auth}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            message = {"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}}
            await ws.send(json.dumps(message))
            await asyncio.sleep(1.0)  # the subscription has taken its start position
            ready.set()
            async for raw in ws:
                payload = json.loads(raw)
                if payload["type"] == "next":
                    number = payload["payload"]["data"]["claimChanged"]["claim"]["claimNumber"]
                    self.arrived.setdefault(number, time.perf_counter())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await self.task


async def probe(conn: Any, number: str, person: uuid.UUID, subscriber: Subscriber) -> float:
    """Seconds from the COMMIT of one CLAIM_CHANGED event to its arrival at the subscriber."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO outbox_events (type, beneficiary_id, subject, detail) "
            "VALUES ('CLAIM_CHANGED', $1, $2, '{\"kind\": \"PROBE\"}')",
            person,
            number,
        )
        await conn.execute("SELECT pg_notify($1, '')", CHANNEL)
    committed = time.perf_counter()
    deadline = committed + 30
    while number not in subscriber.arrived:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"probe {number} never arrived")
        await asyncio.sleep(0.0005)
    arrived = subscriber.arrived.pop(number)
    return arrived - committed


async def probes(
    conn: Any, claims: list[tuple[str, uuid.UUID]], subscriber: Subscriber
) -> list[float]:
    found = []
    for number, person in claims:
        found.append(await probe(conn, number, person, subscriber))
        await asyncio.sleep(0.02)
    return found


async def run(url: str, server: str, probes_n: int, clients: int, claims_n: int) -> None:
    progress = Progress(console=console)
    people = [id_number(i) for i in range(50)]
    with progress:
        task = progress.add_task("set-up persons", total=len(people))
        await set_up(server, people, 4, progress, task)
        probe_claims = claims_for("P", probes_n, people)
        task = progress.add_task("probe claims", total=len(probe_claims))
        await settle_http([server], probe_claims, 4, progress, task)
    dsn = url.replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(dsn)
    rows = await conn.fetch(
        "SELECT claim_number, beneficiary_id FROM claims WHERE claim_number LIKE 'P-%' "
        "ORDER BY claim_number"
    )
    targets = [(r["claim_number"], r["beneficiary_id"]) for r in rows]
    subscriber = Subscriber(server)
    await subscriber.start()
    load_before = os.getloadavg()
    at_rest = await probes(conn, targets, subscriber)
    load_rest = os.getloadavg()
    with Progress(console=console) as progress:
        task = progress.add_task("settlement load", total=claims_n)
        load = asyncio.create_task(
            settle_http([server], claims_for("L", claims_n, people), clients, progress, task)
        )
        await asyncio.sleep(1.0)  # the load is running
        loaded: list[float] = []
        while not load.done():
            loaded += await probes(conn, targets[: max(1, probes_n // 4)], subscriber)
        settled = await load
    load_after = os.getloadavg()
    await subscriber.stop()
    await conn.close()
    for name, values in (("at rest", at_rest), ("under load", loaded)):
        ms = [v * 1000 for v in values]
        console.print(
            f"commit → subscriber, {name}: n={len(ms)} median {statistics.median(ms):.1f} ms, "
            f"p95 {percentile(ms, 0.95):.1f} ms, max {max(ms):.1f} ms"
        )
    console.print(
        f"load: {settled.count} settlements in {settled.seconds:.1f} s "
        f"({settled.rate:.1f}/s, {clients} clients, {len(settled.errors)} errors); "
        f"load average {load_before[0]:.2f} → {load_rest[0]:.2f} (rest) → {load_after[0]:.2f} "
        f"(after load), {os.cpu_count()} CPUs"
    )


def main(
    probes: Annotated[int, typer.Option(min=4, help="Probes at rest.")] = 100,
    clients: Annotated[int, typer.Option(min=1, help="Settling clients of the load.")] = 8,
    claims: Annotated[int, typer.Option(min=1, help="Settlements of the load.")] = 400,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn workers.")] = 1,
) -> None:
    """Commit → subscriber latency of change notifications, at rest and under load."""
    with scratch_database() as (url, where), tempfile.TemporaryDirectory() as data:
        console.print(where)
        migrate.upgrade(url)
        with serve(url, Path(data), 1, workers) as urls:
            asyncio.run(run(url, urls[0], probes, clients, claims))


if __name__ == "__main__":
    typer.run(main)
