"""Outbox pruning (resolvers/retention.py) against a raw baseline, in the same run.

Run on demand (not part of the test suite)::

    .venv/bin/python -m bench.retention [--events 200000] [--batch 1000]

A throwaway PostgreSQL (as ``bench/settle.py``), migrated; ``--events`` CLAIM_CHANGED events
40 days old and as many recent ones (one transaction's, so final), written with one
``INSERT … SELECT generate_series``, a
webhook fan-out cursor past all of them and one delivered delivery per old event. Then:

- **baseline**: the same rows again in a copy of the tables (foreign key included), deleted
  by the two plain statements a hand-written clean-up would run (``DELETE`` deliveries of old
  events, ``DELETE`` old events), one transaction;
- **prune**: ``retention.prune(older_than=30 days, batch=--batch)``: the rules (fan-out cursor,
  pending and dead deliveries, first recent event) checked, batch after batch, each its own
  transaction, the watermark kept.

Prints both durations, events per second and the load average before and after.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import text

from bench.settle import scratch_database
from gateway import migrate
from gateway.config import Settings
from gateway.storage.database import Database
from resolvers import retention

console = Console()

SEED = """
WITH person AS (SELECT gen_random_uuid() AS id)
INSERT INTO {events} (id, type, beneficiary_id, subject, detail, at)
SELECT g, 'CLAIM_CHANGED', person.id, 'C-' || g, '{{}}',
       now() - CASE WHEN g <= :n THEN interval '40 days' ELSE interval '1 day' END
FROM person, generate_series(1, 2 * :n) AS g
"""


async def seed(db: Database, n: int) -> None:
    async with db.transaction() as session:
        await session.execute(text("CREATE TABLE bench_events (LIKE outbox_events INCLUDING ALL)"))
        await session.execute(
            text("CREATE TABLE bench_deliveries (LIKE webhook_deliveries INCLUDING ALL)")
        )
        await session.execute(
            text("ALTER TABLE bench_deliveries ADD FOREIGN KEY (event_id) REFERENCES bench_events")
        )
        for events in ("outbox_events", "bench_events"):
            await session.execute(text(SEED.format(events=events)), {"n": n})
        hook = (
            "INSERT INTO webhooks (id, department, org, subject, regions, url, events, secret, "
            "since_txid, since_event) VALUES (gen_random_uuid(), 'medical_insurance', 'mi', "
            "'bench', '{}', 'https://93.184.216.34/', '{CLAIM_CHANGED}', 'x', 0, 0) RETURNING id"
        )
        webhook = await session.scalar(text(hook))
        for deliveries in ("webhook_deliveries", "bench_deliveries"):
            await session.execute(
                text(
                    f"INSERT INTO {deliveries} (webhook_id, event_id, status, attempts) "
                    "SELECT :w, g, 'DELIVERED', 1 FROM generate_series(1, :n) AS g"
                ),
                {"w": webhook, "n": n},
            )
        await session.execute(
            text("INSERT INTO outbox_cursors VALUES ('webhooks', :last, :last)"),
            {"last": 2**63 - 1},
        )
    async with db.engine.connect() as conn:
        await conn.execute(text("COMMIT"))
        await conn.execute(text("VACUUM ANALYZE"))


async def run(url: str, n: int, batch: int) -> None:
    db = Database.connect(url, Settings(database_url=url))
    try:
        await seed(db, n)
        load_before = os.getloadavg()
        started = time.perf_counter()
        async with db.transaction() as session:
            cutoff = "now() - interval '30 days'"
            await session.execute(
                text(
                    "DELETE FROM bench_deliveries WHERE event_id IN "
                    f"(SELECT id FROM bench_events WHERE at < {cutoff})"
                )
            )
            gone = await session.execute(text(f"DELETE FROM bench_events WHERE at < {cutoff}"))
        baseline = time.perf_counter() - started
        started = time.perf_counter()
        pruned = await retention.prune(db, timedelta(days=30), batch=batch)
        pruning = time.perf_counter() - started
        load_after = os.getloadavg()
    finally:
        await db.dispose()
    deleted = int(gone.rowcount)  # type: ignore[attr-defined]
    console.print(f"old events: {n} (and {n} recent kept), batch {batch}")
    console.print(f"baseline, two plain DELETEs: {deleted} in {baseline:.2f} s")
    console.print(f"retention.prune: {pruned} in {pruning:.2f} s ({pruned / pruning:,.0f}/s)")
    console.print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")


def main(
    events: Annotated[int, typer.Option(help="Old events (as many recent ones).")] = 200_000,
    batch: Annotated[int, typer.Option(help="Events per pruning transaction.")] = 1000,
) -> None:
    with scratch_database() as (url, where):
        console.print(where)
        migrate.upgrade(url)
        asyncio.run(run(url, events, batch))


if __name__ == "__main__":
    typer.run(main)
