"""``make bench`` drives its point lookups over HTTP with wrk (``bench/wrk.py`` and its Lua
script): against real uvicorn servers, what wrk sends is the query with the variable cycling
over the values and the authorization; a bad answer is an error of the run, not a request
counted as served; the rate and percentiles come from every wrk process. No speed is asserted.

wrk is Debian's (``make test`` installs it where it can, with apt-get as root); without it the
tests that run it are skipped and say so.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bench import wrk
from tests.conftest import serving

QUERY = "query Point($n: String!) { beneficiary(idNumber: $n) { id name } }"
EXPECT = '"beneficiary":%s*{"id":%s*"'


def need_wrk() -> None:
    if wrk.found() is None:
        pytest.skip("SKIPPED LOUDLY: no wrk (make test installs Debian's wrk as root)")


class Recorder:
    """A GraphQL endpoint answering a beneficiary for any ``n`` but those starting ``bad``
    (``errors`` and no beneficiary) or ``partial`` (the beneficiary and ``errors``); it keeps
    what it was sent."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str], str]] = []
        self.lock = threading.Lock()

    async def graphql(self, request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        with self.lock:
            self.seen.append(
                (body["query"], body["variables"], request.headers.get("authorization", ""))
            )
        n = body["variables"]["n"]
        found = {"beneficiary": {"id": f"id-{n}", "name": "x"}}
        if n.startswith("bad"):
            return JSONResponse({"data": {"beneficiary": None}, "errors": [{"message": n}]})
        if n.startswith("partial"):  # the data, and an error beside it
            return JSONResponse({"data": found, "errors": [{"message": n}]})
        return JSONResponse({"data": found})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/graphql", self.graphql, methods=["POST"])])


@pytest.fixture
def two_servers() -> Iterator[tuple[list[Recorder], list[str]]]:
    recorders = [Recorder(), Recorder()]
    with ExitStack() as stack:
        urls = [stack.enter_context(serving(r.app())) for r in recorders]
        yield recorders, urls


def test_clients_are_spread_over_the_ports_as_the_bench_clients_are() -> None:
    assert wrk.spread(["a", "b"], 1) == [("a", 1)]
    assert wrk.spread(["a", "b"], 4) == [("a", 2), ("b", 2)]
    assert wrk.spread(["a", "b"], 3) == [("a", 2), ("b", 1)]
    assert wrk.spread(["a"], 16) == [("a", 16)]


def test_percentiles_weigh_each_process_by_its_requests() -> None:
    run = wrk.WrkRun("x", 2, requests=400, seconds=1.0)
    # one process: 100 requests all at 1 ms; the other: 300 requests all at 5 ms
    run.quantiles_ms = [(1.0, 1.0)] * 100 + [(5.0, 3.0)] * 100
    assert run.rate == 400.0
    assert run.percentile(0.2) == 1.0
    assert run.percentile(0.25) == 1.0
    assert run.percentile(0.26) == 5.0
    assert run.percentile(0.95) == 5.0
    assert wrk.WrkRun("empty", 1).rate == 0.0


async def test_wrk_sends_the_query_cycling_the_values_to_every_port(
    two_servers: tuple[list[Recorder], list[str]],
) -> None:
    need_wrk()
    recorders, urls = two_servers
    values = ["51040219800101001X", "510402198001010028", "510402198001010036"]
    run = await wrk.load(
        "test",
        urls,
        3,
        1,
        query=QUERY,
        variable="n",
        values=values,
        authorization="Bearer t0k3n",
        expect=EXPECT,
    )
    assert run.errors == []
    served = [len(r.seen) for r in recorders]
    assert all(n > 0 for n in served), served
    # wrk stops mid-request at its deadline: the servers may have answered a few more
    assert run.requests <= sum(served) <= run.requests + 3
    assert run.rate > 0
    assert run.seconds > 0
    assert 0 < run.percentile(0.5) <= run.percentile(0.95)
    for recorder in recorders:
        queries = {q for q, _, _ in recorder.seen}
        auths = {a for _, _, a in recorder.seen}
        sent = {v["n"] for _, v, _ in recorder.seen}
        assert queries == {QUERY}
        assert auths == {"Bearer t0k3n"}
        assert {tuple(v) for _, v, _ in recorder.seen} == {("n",)}
        assert sent <= set(values)
    assert set().union(*({v["n"] for _, v, _ in r.seen} for r in recorders)) == set(values)


@pytest.mark.parametrize("wrong", ["bad-1", "partial-1"])
async def test_an_answer_without_the_expected_data_or_with_errors_is_an_error_of_the_run(
    wrong: str, two_servers: tuple[list[Recorder], list[str]]
) -> None:
    need_wrk()
    _, urls = two_servers
    run = await wrk.load(
        "test",
        urls[:1],
        1,
        1,
        query=QUERY,
        variable="n",
        values=["ok-1", wrong],
        authorization="Bearer t",
        expect=EXPECT,
    )
    [error] = run.errors
    bad = int(error.split(": ")[1].split(" bad answers")[0])
    # every other request is a bad one
    assert abs(bad - run.requests / 2) <= 1, (bad, run.requests)
    assert "first bad answer: 200" in error
    assert wrong in error
