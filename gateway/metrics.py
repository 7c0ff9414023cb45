"""Prometheus metrics (``prometheus-client``), served as text on ``GET /metrics``.

What is measured, and nothing else (no label ever carries a personal value: departments,
operation types, outcome codes and payers are closed sets):

- ``medgw_requests_total{department, operation, code}``: HTTP requests, by the caller's
  department (``none`` before authentication), the GraphQL operation type (``query``,
  ``mutation``, ``none``) and the outcome code (``OK`` or an ``extensions.code``);
- ``medgw_request_duration_seconds{operation}``: their latency, a histogram;
- ``medgw_settlements_total{kind}``: settlement events committed (``ORIGINAL``, ``ADJUSTMENT``,
  ``REVERSAL``, ``RECOVERY``);
- ``medgw_settled_yuan_total{payer, direction}``: the amounts of their lines, by payer, ``paid``
  (positive lines) and ``recovered`` (negative lines, as a positive number); net = paid −
  recovered;
- ``medgw_audit_append_duration_seconds``: how long an audit record takes to chain (the lock
  on the chain's head included);
- ``medgw_db_pool_in_use`` and ``medgw_db_pool_size``: connections checked out, and the pool's
  size, read at each scrape.

Several worker processes (``MEDGW_WORKERS`` > 1): set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
directory before the server starts and every worker's numbers are summed on each scrape
(prometheus-client's multiprocess mode); without it, each scrape sees one worker's numbers.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session, UOWTransaction
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.storage import models

REQUESTS = Counter(
    "medgw_requests",
    "HTTP requests by the caller's department, GraphQL operation type and outcome code.",
    ["department", "operation", "code"],
)
REQUEST_SECONDS = Histogram(
    "medgw_request_duration_seconds",
    "Time from a request's arrival to its answer, seconds.",
    ["operation"],
)
SETTLEMENTS = Counter("medgw_settlements", "Settlement events committed, by kind.", ["kind"])
SETTLED_YUAN = Counter(
    "medgw_settled_yuan",
    "Amounts of committed settlement lines, yuan, by payer; direction paid (positive lines) "
    "or recovered (negative lines, counted positive).",
    ["payer", "direction"],
)
AUDIT_APPEND_SECONDS = Histogram(
    "medgw_audit_append_duration_seconds",
    "Time to append one audit record to the hash chain (its lock included), seconds.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
POOL_IN_USE = Gauge(
    "medgw_db_pool_in_use",
    "Database connections checked out of the pool.",
    multiprocess_mode="livesum",
)
POOL_SIZE = Gauge(
    "medgw_db_pool_size",
    "Connections the pool keeps (overflow beyond it up to as many again).",
    multiprocess_mode="livesum",
)

P = ParamSpec("P")
R = TypeVar("R")

_PENDING = "medgw.metrics.settled"
"""The session's ``info`` key of what its transaction settled, counted once it commits."""


def timed(histogram: Histogram) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Decorate a coroutine function: the seconds each call takes (also when it raises) are
    observed in ``histogram``."""

    def decorate(function: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(function)
        async def observed(*args: P.args, **kwargs: P.kwargs) -> R:
            start = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                histogram.observe(time.perf_counter() - start)

        return observed

    return decorate


def count_request(department: str, operation: str, code: str, seconds: float) -> None:
    """Count one answered request and observe its latency."""
    _request_counter(department, operation, code).inc()
    _request_histogram(operation).observe(seconds)


@functools.cache
def _request_counter(department: str, operation: str, code: str) -> Any:
    """:data:`REQUESTS`' child of these labels, looked up once (the label sets are few: the
    departments, operation types and outcome codes)."""
    return REQUESTS.labels(department, operation, code)


@functools.cache
def _request_histogram(operation: str) -> Any:
    """:data:`REQUEST_SECONDS`' child of ``operation``, looked up once."""
    return REQUEST_SECONDS.labels(operation)


def observe_settlements() -> None:
    """Count settlement events and their lines when the transaction that stored them commits
    (a rolled-back settlement is not counted). Installs listeners on SQLAlchemy's ``Session``,
    once per process; the one place where settlements are counted."""
    if not event.contains(Session, "after_flush", _collect):
        event.listen(Session, "after_flush", _collect)
        event.listen(Session, "after_commit", _count)
        event.listen(Session, "after_rollback", _forget)


def _collect(session: Session, flush: UOWTransaction) -> None:
    rows = [r for r in session.new if isinstance(r, models.Settlement | models.SettlementLine)]
    if rows:
        session.info.setdefault(_PENDING, []).extend(rows)


def written(session: Session, rows: Sequence[models.Settlement | models.SettlementLine]) -> None:
    """Count ``rows``, settlement events and lines written by a statement rather than by the
    session's unit of work (``resolvers/original.py``), as :func:`_collect` counts flushed
    ones: when the transaction commits."""
    session.info.setdefault(_PENDING, []).extend(rows)


def _count(session: Session) -> None:
    sums: dict[tuple[str, str], Decimal] = {}
    kinds: dict[str, int] = {}
    for row in session.info.pop(_PENDING, []):
        if isinstance(row, models.Settlement):
            kinds[row.kind] = kinds.get(row.kind, 0) + 1
        else:
            key = (row.payer, "recovered" if row.amount < 0 else "paid")
            sums[key] = sums.get(key, Decimal(0)) + abs(row.amount)
    for kind, count in kinds.items():  # one increment per kind (a re-run writes a hundred)
        SETTLEMENTS.labels(kind).inc(count)
    for (payer, direction), amount in sums.items():
        SETTLED_YUAN.labels(payer, direction).inc(float(amount))


def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)


def exposition(engine: AsyncEngine) -> bytes:
    """The metrics in Prometheus text format, the pool read now; all workers' in
    multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set)."""
    pool: Any = engine.pool
    POOL_IN_USE.set(pool.checkedout())
    POOL_SIZE.set(pool.size())
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def route(engine_of: Callable[[Request], AsyncEngine]) -> Route:
    """``GET /metrics``: no token (it holds no personal value), Prometheus text format."""

    async def metrics(request: Request) -> Response:
        body = exposition(engine_of(request))
        return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return Route("/metrics", metrics, methods=["GET"])
