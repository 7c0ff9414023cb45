"""A bounded fuzz run (hypothesis-graphql, fixed seed) of the medical_insurance schema through
the real HTTP app: no INTERNAL error and no 5xx (issue 9, "Done when"). ``bench/fuzz.py`` runs
the same check longer and with random seeds."""

from __future__ import annotations

import time

from bench.fuzz import check, problems
from tests.conftest import make_token

EXAMPLES = 100


def test_fuzzed_queries_and_mutations_never_answer_internal(http_server: str, db: object) -> None:
    started = time.monotonic()
    check(http_server, make_token(purpose="fuzz"), "medical_insurance", EXAMPLES, derandomize=True)
    assert time.monotonic() - started < 120


def test_the_fuzz_check_sees_an_internal_error() -> None:
    import httpx

    internal = httpx.Response(
        200, json={"data": None, "errors": [{"message": "x", "extensions": {"code": "INTERNAL"}}]}
    )
    assert problems(internal) == ["INTERNAL: x"]
    assert problems(httpx.Response(500, text="Internal Server Error")) != []
    assert (
        problems(httpx.Response(503, json={"errors": [{"extensions": {"code": "UNAVAILABLE"}}]}))
        == []
    )
    assert problems(httpx.Response(200, json={"data": {"a": 1}})) == []
