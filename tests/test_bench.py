"""The benchmark scripts import against the code as it is (they are not run by the suite, so a
renamed function would otherwise break ``make bench`` unnoticed), and the suite runs end to end
in its tiny mode with a summary line a machine can read. No speed is asserted here."""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEYS = {
    "settle_ratio",
    "page100_slowdown",
    "point_slowdown",
    "statements_per_settle",
    "resettle_100_ms",
    "audited_reads_4_vs_1",
}


@pytest.mark.parametrize(
    "module",
    [
        "bench.settle",
        "bench.fuzz",
        "bench.suite",
        "bench.events",
        "bench.dashboard",
        "bench.import",
        "bench.retention",
    ],
)
def test_a_benchmark_script_imports(module: str) -> None:
    loaded = importlib.import_module(module)
    assert callable(loaded.main)


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m bench.<args>`` on its own embedded PostgreSQL (as ``make bench``), wide
    output; asserts it exited 0."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_the_suite_in_quick_mode_ends_with_a_summary_of_positive_figures() -> None:
    done = run_bench("bench.suite", "--quick")
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("BENCH {")
    figures = json.loads(last.removeprefix("BENCH "))
    assert set(figures) == KEYS
    for key, value in figures.items():
        assert isinstance(value, float | int), key
        assert math.isfinite(value), key
        assert value > 0, key
    # The statement count is exact, not a timing: the person's lock, the year's read, the
    # claim's statement, two audit records of 3, the rollups (issue 15's goal: at most 10).
    assert figures["statements_per_settle"] <= 10
    assert "SQL per request" in done.stdout


def test_the_settlement_baseline_writes_what_the_gateway_writes() -> None:
    """The raw side of ``settle_ratio`` is a transaction doing the gateway's writes (issue 15):
    ``bench.settle``'s check compares, per claim of each side, the fund entries per paid line,
    outbox events, READ records of the answer, persons with dashboard cells and entries in the
    fund months (a check that fails makes the exit status 1)."""
    done = run_bench(
        "bench.settle", "--clients", "2", "--claims", "12", "--persons", "3", "--workers", "1"
    )
    [row] = [line for line in done.stdout.splitlines() if "baseline writes what" in line]
    assert "yes" in row
    figures = row.split("per claim (gateway, raw): ")[1]
    pairs = dict(p.strip().split(" ") for p in figures.strip(" │").split(","))
    assert {k: v for k, v in pairs.items() if k != "cells"} == {
        "entries": "2.00/2.00",
        "outbox": "1.00/1.00",
        "reads": "1.00/1.00",
        "months": "1.00/1.00",
    }
    gateway_cells, raw_cells = pairs["cells"].split("/")
    assert gateway_cells == raw_cells
    assert float(gateway_cells) >= 5


DOCUMENTS = ("Makefile", "README.md", "bench/README.md")


def documented_benchmarks() -> set[str]:
    """Every ``python -m bench.X`` the Makefile and the READMEs tell a user to run."""
    import re

    text = "\n".join((ROOT / name).read_text(encoding="utf-8") for name in DOCUMENTS)
    return set(re.findall(r"python -m\s+bench\.([a-z_]+)", text))


def test_the_documents_run_benchmarks_as_modules_not_as_files() -> None:
    """``python bench/x.py`` cannot import ``bench.settle`` (sys.path[0] is bench/), so every
    documented command is ``python -m bench.x``, and each of the scripts (a module run as
    ``__main__``; ``bench/wrk.py`` is the suite's library) is documented."""
    import re

    for name in DOCUMENTS:
        text = (ROOT / name).read_text(encoding="utf-8")
        assert not re.search(r"python\s+bench/[a-z_]+\.py", text), name
    scripts = {
        p.stem
        for p in (ROOT / "bench").glob("*.py")
        if 'if __name__ == "__main__":' in p.read_text(encoding="utf-8")
    }
    assert documented_benchmarks() == scripts


@pytest.mark.parametrize("module", sorted(documented_benchmarks()))
def test_a_documented_benchmark_command_starts_from_a_fresh_shell(module: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "usage" in (done.stdout + done.stderr).lower()
