"""Load from wrk (Debian's ``wrk``, C): the point lookups of ``make bench`` over HTTP.

Why not the bench's own aiohttp clients (:class:`bench.settle.LoadClient`): the load generator
runs on the same two cores as the server it measures, while the raw side it is compared with
runs in the bench process with no HTTP client at all. aiohttp costs 0.25–0.32 ms of CPU per
request, a quarter of what a point lookup costs the whole machine, so the point figures
measured the client nearly as much as the server (on 2026-12-02, the same gateway answered
885–1,000 point lookups/s driven by aiohttp, 1,180–1,280 by wrk; the HTTP floor 1,200–1,330 and
1,580–1,720). wrk is what HTTP servers are usually measured with (TechEmpower's benchmarks, the
GraphQL engines' own); one wrk process per served port, one thread each.

Every answer is checked by ``bench/graphql_post.lua`` (status 200, a pattern of the expected
data, no ``errors``): a bad answer or a transport error is an error of the run, as with the
aiohttp clients.
wrk runs for a time, not a count: the rate is its completed requests ÷ its seconds.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT = Path(__file__).with_name("graphql_post.lua")


def found() -> str | None:
    """The path of ``wrk``, or None when it is not installed (``make bench`` installs Debian's
    package as root where apt-get exists)."""
    return shutil.which("wrk")


@dataclass
class WrkRun:
    """One timed load of one or more wrk processes: as :class:`bench.settle.Run` for the
    bench's tables (``rate``, ``percentile``, ``errors``)."""

    name: str
    clients: int
    requests: int = 0
    seconds: float = 0.0
    quantiles_ms: list[tuple[float, float]] = field(default_factory=list)
    """(latency in ms, weight in requests) of every wrk process's 100 percentiles."""
    errors: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return self.requests

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """The ``q`` quantile (0–1) of the latencies in milliseconds, from the processes'
        percentiles weighted by their requests (1 % resolution)."""
        if not self.quantiles_ms:
            return float("nan")
        ordered = sorted(self.quantiles_ms)
        total = sum(weight for _, weight in ordered)
        reached = 0.0
        for latency, weight in ordered:
            reached += weight
            if reached >= q * total - 1e-9:
                return latency
        return ordered[-1][0]


def spread(urls: Sequence[str], clients: int) -> list[tuple[str, int]]:
    """Client ``i`` on ``urls[i mod len(urls)]``, as the aiohttp clients: (url, connections)
    for every url that gets any."""
    counts = [len(range(u, clients, len(urls))) for u in range(len(urls))]
    return [(url, n) for url, n in zip(urls, counts, strict=True) if n]


async def load(
    name: str,
    urls: Sequence[str],
    clients: int,
    seconds: int,
    *,
    query: str,
    variable: str,
    values: Sequence[str],
    authorization: str,
    expect: str,
) -> WrkRun:
    """``clients`` kept-alive connections POSTing ``query`` for ``seconds`` (wrk takes whole
    seconds), spread over
    ``urls`` (one wrk process per url, together), ``variable`` cycling over ``values``; every
    answer must be a 200 whose body matches the Lua pattern ``expect`` and has no ``errors``."""
    run = WrkRun(name, clients)
    started = []
    for url, connections in spread(urls, clients):
        command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s"]
        command += ["-s", str(SCRIPT), url, "--", json.dumps(query), authorization]
        command += [variable, expect, *values]
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        started.append((url, process))
    rates = 0.0
    for url, process in started:
        out, err = await process.communicate()
        lines = [line for line in out.decode().splitlines() if line.startswith("WRK ")]
        if process.returncode != 0 or not lines:
            run.errors.append(f"wrk exited {process.returncode}: {err.decode()[-300:]}")
            continue
        figures = json.loads(lines[-1].removeprefix("WRK "))
        requests, took = int(figures["requests"]), float(figures["seconds"])
        run.requests += requests
        rates += requests / took if took else 0.0
        weight = requests / len(figures["quantiles_ms"])
        run.quantiles_ms += [(float(ms), weight) for ms in figures["quantiles_ms"]]
        if figures["bad"] or figures["errors"]:
            run.errors.append(
                f"{url}: {figures['bad']} bad answers, {figures['errors']} transport errors "
                f"of {requests}; {err.decode().strip()[-300:]}"
            )
    # the processes ran together: their rates add up; seconds is what gives that total rate
    run.seconds = run.requests / rates if rates else 0.0
    return run
