"""Identity rows per second through ``medgw import`` (resolvers/imports.py) for a large list,
its peak memory, and the ratio to a plain PostgreSQL COPY of the same rows.

Run on demand (not part of the test suite)::

    .venv/bin/python -m bench.import [--rows 1000000]

What it does, in order:

1. A throwaway PostgreSQL (embedded, or a scratch database on ``DATABASE_URL``), migrated.
2. Writes two CSV files of ``--rows`` rows in a temporary directory: the persons (ID number,
   name, region 510402) and their 低保 identities (ID number, category, validFrom, reference).
3. Imports the persons (set-up; its rate is printed too), then the identities (measured): the
   whole import as a department runs it (read, parse and check every row — the ID check
   digit, category, dates, reference; in the usual forms without pydantic — COPY into staging,
   set-based checks, the merge with one outbox event per person, the audit record), in one
   process, with the resident set size sampled every 50 ms.
4. Baseline: a plain ``COPY … FROM`` of the same identity file into a table of the same columns
   (asyncpg ``copy_to_table``: no parsing in Python, no checks, no indexes).
5. Prints rows/s, the peak RSS during the import against the RSS before it, the baseline and the
   ratio; exits 1 when the rows stored are not the rows of the file.
"""

from __future__ import annotations

import asyncio
import csv
import gc
import os
import resource
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

import asyncpg  # type: ignore[import-untyped]
import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import create_async_engine

from bench.settle import asyncpg_options, scratch_database
from gateway import migrate
from gateway.app import load_access_for_schema
from gateway.auth import Principal
from gateway.config import Settings
from gateway.resident_id import check_character
from gateway.storage.database import Database
from policies.benefits import load_policies
from resolvers.imports import ImportRequest, Summary, import_file, plan

console = Console()
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def id_number(i: int) -> str:
    """The i-th ID number: 1,000 sequence numbers per birth day from 1950-01-01 (510402)."""
    born = date(1950, 1, 1) + timedelta(days=i // 1000)
    first17 = f"510402{born:%Y%m%d}{i % 1000:03d}"
    return first17 + check_character(first17)


def write_files(directory: Path, rows: int) -> tuple[Path, Path]:
    persons, identities = directory / "persons.csv", directory / "identities.csv"
    with (
        persons.open("w", encoding="utf-8", newline="") as p,
        identities.open("w", encoding="utf-8", newline="") as i,
    ):
        people, records = csv.writer(p), csv.writer(i)
        people.writerow(["身份证号", "姓名", "区划代码"])
        records.writerow(["身份证号", "类别", "认定日期", "文号"])
        for n in range(rows):
            number = id_number(n)
            people.writerow([number, f"测试{n}", "510402"])
            records.writerow([number, "低保", "2026-01-01", f"东民发〔2026〕{n % 97}号"])
    return persons, identities


def rss() -> int:
    """The resident set size of this process, in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


@contextmanager
def peak_rss() -> Iterator[dict[str, int]]:
    """Samples RSS every 50 ms while the block runs: ``{"before", "peak"}``."""
    seen = {"before": rss(), "peak": rss()}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            seen["peak"] = max(seen["peak"], rss())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()
        seen["peak"] = max(seen["peak"], rss())


async def timed_import(
    db: Database, settings: Settings, kind: str, path: Path, department: str
) -> tuple[Summary, float]:
    """The import of ``path`` as ``medgw import`` or the HTTP endpoint runs it: the policies
    loaded and the heap frozen (``gc.freeze``) before the clock starts, as the command does
    once per process and the served process once at startup."""
    _, access = load_access_for_schema()
    caller = Principal("bench", department, f"{department}-5104", ("5104",))
    today = settings.today()
    planned = plan(ImportRequest(kind), caller, access, today)
    policies = load_policies()
    gc.collect()
    gc.freeze()
    started = time.perf_counter()
    summary = await import_file(db, caller, policies, access, planned, path, today)
    return summary, time.perf_counter() - started


async def plain_copy(url: str, path: Path) -> float:
    """A plain COPY of the identity file into a table of its columns; seconds."""
    conn = await asyncpg.connect(**asyncpg_options(url))
    try:
        await conn.execute(
            "CREATE TABLE bench_plain_copy (id_number varchar(18), category text, "
            "valid_from date, reference text)"
        )
        started = time.perf_counter()
        await conn.copy_to_table(
            "bench_plain_copy", source=str(path), format="csv", header=True, encoding="utf8"
        )
        return time.perf_counter() - started
    finally:
        await conn.close()


async def bench(url: str, rows: int, directory: Path) -> bool:
    engine = create_async_engine(url)
    await migrate.upgrade_engine(engine)
    await engine.dispose()
    settings = Settings(database_url=url, data_dir=directory)
    db = Database.connect(url, settings)
    try:
        started = time.perf_counter()
        persons, identities = await asyncio.to_thread(write_files, directory, rows)
        console.print(
            f"files: {rows:,} rows each, written in {time.perf_counter() - started:.1f} s"
        )
        people, seconds = await timed_import(db, settings, "persons", persons, "civil_affairs")
        console.print(
            f"set-up, persons: {people.status} {people.stored:,} in {seconds:.1f} s "
            f"({people.stored / seconds:,.0f} rows/s)"
        )
        with peak_rss() as memory:
            summary, seconds = await timed_import(
                db, settings, "identities", identities, "civil_affairs"
            )
        rate = summary.rows / seconds
        copy_seconds = await plain_copy(url, identities)
        copy_rate = rows / copy_seconds
        console.print(
            f"import identities: {summary.status} {summary.stored:,} rows in {seconds:.1f} s = "
            f"[bold]{rate:,.0f} rows/s[/bold] end to end"
        )
        phases = ", ".join(f"{name} {value:.1f} s" for name, value in summary.seconds.items())
        console.print(f"  of which: {phases} (then the commit)")
        console.print(
            f"memory: RSS {memory['before'] / 2**20:,.0f} MiB before, peak "
            f"{memory['peak'] / 2**20:,.0f} MiB during the import (+"
            f"{(memory['peak'] - memory['before']) / 2**20:,.0f} MiB); process max "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB"
        )
        console.print(
            f"plain COPY of the same file: {copy_seconds:.1f} s = {copy_rate:,.0f} rows/s; "
            f"ratio import/COPY time = {seconds / copy_seconds:.1f}x"
        )
        ok = summary.status == "STORED" and summary.stored == rows == people.stored
        console.print("check: every row stored" if ok else "[red]check failed[/red]")
        return ok
    finally:
        await db.dispose()


def main(
    rows: Annotated[int, typer.Option(help="Rows of the generated list.")] = 1_000_000,
) -> None:
    """Measure an identity import of ``--rows`` rows against a plain COPY."""
    with scratch_database() as (url, where), tempfile.TemporaryDirectory() as tmp:
        console.print(f"database: {where}; load: {os.getloadavg()[0]:.2f}")
        ok = asyncio.run(bench(url, rows, Path(tmp)))
    raise typer.Exit(0 if ok else 1)


def _run() -> Any:
    return typer.run(main)


if __name__ == "__main__":
    _run()
