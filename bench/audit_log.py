"""Audit appends per second at 1, 4 and 16 concurrent writers, without GraphQL around them: the
single chain (one shard: every append waits for the one before to commit, as before migration
0017), the sharded chain (each append in its own transaction, a free shard each) and the group
commit of read records (one process's concurrent records in one transaction).

Run on demand (not part of the test suite)::

    .venv/bin/python -m bench.audit_log [--records 400] [--rounds 2]

Each writer runs one append after the other in one process, on one throwaway database
(:func:`bench.settle.scratch_database`); rounds interleave the three ways, medians are printed
with the machine's load, then the whole log is verified (every shard's links).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from bench import settle as s
from gateway import migrate
from gateway.auth import Principal
from gateway.config import Settings
from gateway.storage import audit
from gateway.storage.database import Database

console = Console()
WRITER = Principal("bench", "medical_insurance", "mi-5104", ("5104",), "bench")
CLIENTS = (1, 4, 16)
Append = Callable[[Database], Awaitable[object]]


RECORD: dict[str, Any] = {
    "action": "READ",
    "operation": "query Point",
    "query": "query Point($n: String!) { beneficiary(idNumber: $n) { name } }",
    "field_paths": ["beneficiary(idNumber)", "beneficiary.name"],
}


async def in_transaction(db: Database) -> None:
    """A transaction of its own holding the shard until it commits (as a mutation's record)."""
    async with db.transaction() as session:
        await audit.append(session, WRITER, beneficiary_ids=[uuid.uuid4()], **RECORD)


async def grouped(db: Database) -> None:
    """The group commit (as :class:`gateway.access.ReadAudit`)."""
    await audit.append(db, WRITER, beneficiary_ids=[uuid.uuid4()], **RECORD)


WAYS: dict[str, tuple[int, Append]] = {
    "single chain (1 shard)": (1, in_transaction),
    "16 shards, own transaction": (16, in_transaction),
    "16 shards, group commit": (16, grouped),
}


async def rate(db: Database, append: Append, clients: int, records: int) -> float:
    numbers = iter(range(records))

    async def writer() -> None:
        for _ in numbers:
            await append(db)

    began = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(clients)))
    return records / (time.perf_counter() - began)


async def transactions(db: Database) -> tuple[int, int]:
    async with db.engine.connect() as conn:
        row = (
            await conn.execute(text("SELECT count(*), count(DISTINCT xmin::text) FROM audit_log"))
        ).one()
    return int(row[0]), int(row[1])


async def run(url: str, records: int, rounds: int) -> None:
    db = Database.connect(url, Settings(database_url=url, pool_size=20))
    try:
        for shards, append in WAYS.values():  # warm the pool and the statement caches
            audit.configure(shards)
            await rate(db, append, 4, 40)
        found: dict[tuple[str, int], list[float]] = {}
        groups: list[tuple[int, int]] = []
        for number in range(rounds):
            ways = list(WAYS.items())
            for name, (shards, append) in ways if number % 2 == 0 else reversed(ways):
                audit.configure(shards)
                for clients in CLIENTS:
                    if append is grouped:
                        before = await transactions(db)
                    found.setdefault((name, clients), []).append(
                        await rate(db, append, clients, records)
                    )
                    if append is grouped and clients == 16:
                        after = await transactions(db)
                        groups.append((after[0] - before[0], after[1] - before[1]))
            console.print(f"round {number + 1}: {load()}")
        table = Table(title="audit appends/s (medians over the rounds)")
        table.add_column("way")
        for clients in CLIENTS:
            table.add_column(f"{clients} writer{'s' if clients > 1 else ''}", justify="right")
        table.add_column("16 ÷ 1", justify="right")
        for name in WAYS:
            rates = [statistics.median(found[(name, c)]) for c in CLIENTS]
            table.add_row(name, *(f"{r:.0f}" for r in rates), f"{rates[-1] / rates[0]:.2f}×")
        console.print(table)
        written, committed = groups[-1]
        console.print(
            f"group commit at 16 writers: {written} records in {committed} transactions "
            f"({written / committed:.1f} per transaction)"
        )
        async with db.sessions() as session:
            checked = await audit.verify(session)
        console.print(
            f"verify: {'intact' if checked.ok else 'BROKEN'}, {checked.checked} records in "
            f"{len(checked.shards)} shards"
        )
        if not checked.ok:
            raise typer.Exit(1)
    finally:
        await db.dispose()


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def main(
    records: Annotated[int, typer.Option(min=16, help="Appends per way, writers and round.")] = 400,
    rounds: Annotated[int, typer.Option(min=1, help="Interleaved rounds (medians).")] = 2,
) -> None:
    """Audit appends/s: single chain, shards, group commit, at 1/4/16 concurrent writers."""
    console.print(
        f"audit appends: {records} per run, {rounds} rounds, {os.cpu_count()} CPUs; {load()}"
    )
    with s.scratch_database() as (url, _):
        migrate.upgrade(url)
        asyncio.run(run(url, records, rounds))


if __name__ == "__main__":
    typer.run(main)
