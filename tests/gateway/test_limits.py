"""The limits of a query document (gateway/limits.py): fragment bombs, response amplification and
their variants are refused in milliseconds, before the access check, validation or execution,
with ``BAD_INPUT`` naming the limit, its setting and the value computed; an over-size response
is replaced by an error naming MEDGW_MAX_RESPONSE_BYTES.

The faults are HTTP faults (a frozen server process), so the requests go through a real uvicorn
server; the measure itself is checked on small SDL schemas too (interfaces and unions, which
the gateway's schema does not have).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import graphql
import httpx
import pytest
from sqlalchemy import func, select

from gateway import limits
from gateway.app import create_app
from gateway.config import Settings
from gateway.limits import Measure, Rechecked, measure, refusal
from gateway.storage import models
from gateway.storage.database import Database
from tests.conftest import bearer, serving
from tests.factories import add_people

Body = dict[str, Any]


def bomb(levels: int, leaf: str = "__typename", on: str = "Query", spread: str = "...F{}") -> str:
    """``levels`` fragments, each spreading the previous one twice (2**levels leaves)."""
    fragments = [f"fragment F0 on {on} {{ {leaf} }}"] + [
        f"fragment F{i} on {on} {{ {spread.format(i - 1)} {spread.format(i - 1)} }}"
        for i in range(1, levels + 1)
    ]
    return " ".join(fragments)


FRAGMENT_BOMB = bomb(20) + " query { ...F20 }"


async def post(http: httpx.AsyncClient, query: str, **token: Any) -> tuple[Body, float]:
    """The body of a POST and the seconds it took."""
    started = time.perf_counter()
    response = await http.post("/graphql", json={"query": query}, headers=bearer(**token))
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    body: Body = response.json()
    return body, elapsed


def refused(body: Body) -> dict[str, Any]:
    """The one error of a refused document, with its code checked and no data."""
    assert body["data"] is None, body
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_INPUT", error
    return error  # type: ignore[no-any-return]


async def audit_rows(db: Database) -> int:
    async with db.sessions() as session:
        return await session.scalar(select(func.count()).select_from(models.AuditRecord)) or 0


# --- fault 1: fragment expansion -------------------------------------------------------------


async def test_the_fragment_bomb_is_refused_in_milliseconds_naming_the_limit(
    http: httpx.AsyncClient,
) -> None:
    assert len(FRAGMENT_BOMB) < 830  # the 823-byte query of the report
    body, elapsed = await post(http, FRAGMENT_BOMB, department="dashboard", org="dash")
    error = refused(body)
    assert error["message"] == (
        "field count 1,048,576 exceeds MEDGW_MAX_FIELDS=500; "
        "query cost 1,048,576 exceeds MEDGW_MAX_QUERY_COST=50000"
    )
    assert error["extensions"]["limits"] == {
        "MEDGW_MAX_FIELDS": 2**20,
        "MEDGW_MAX_QUERY_COST": 2**20,
    }
    assert elapsed < 1.0
    # The process is not frozen: the next request is answered at once.
    body, elapsed = await post(http, "{ __typename }", department="dashboard", org="dash")
    assert body == {"data": {"__typename": "Query"}}
    assert elapsed < 1.0


def test_measuring_is_linear_in_the_document_whatever_it_expands_to() -> None:
    schema = graphql.build_schema("type Query { a: Int }")
    document = graphql.parse(bomb(60, leaf="a") + " { ...F60 }")
    started = time.perf_counter()
    found = measure(document, schema)
    assert time.perf_counter() - started < 0.1
    assert found == Measure(fields=2**60, aliases=0, depth=0, cost=2**60)


def test_values_past_a_quadrillion_are_shown_as_over_it() -> None:
    error = refusal(Measure(fields=2**60, cost=2**60), Settings())
    assert error is not None
    assert error.message == (
        "field count over 1,000,000,000,000,000 exceeds MEDGW_MAX_FIELDS=500; "
        "query cost over 1,000,000,000,000,000 exceeds MEDGW_MAX_QUERY_COST=50000"
    )
    assert error.extensions == {
        "code": "BAD_INPUT",
        "limits": {"MEDGW_MAX_FIELDS": 10**15, "MEDGW_MAX_QUERY_COST": 10**15},
    }
    assert refusal(Measure(fields=500, depth=10, aliases=15, cost=50_000), Settings()) is None


@pytest.mark.parametrize(
    ("query", "limits"),
    [
        pytest.param(
            bomb(12, leaf="claims { edges { cursor } }", on="Beneficiary")
            + ' { beneficiary(idNumber: "1") { ...F12 } }',
            {"MEDGW_MAX_FIELDS": 1 + 3 * 2**12, "MEDGW_MAX_QUERY_COST": 1 + 2**12 * (1 + 20 * 2)},
            id="nested-fragments-with-lists",
        ),
        pytest.param(
            bomb(12, spread="... on Query {{ ...F{} }}") + " { ...F12 }",
            {"MEDGW_MAX_FIELDS": 2**12},
            id="inline-fragments",
        ),
        pytest.param(
            bomb(12, spread="...F{} @include(if: true)") + " { ...F12 }",
            {"MEDGW_MAX_FIELDS": 2**12},
            id="directives",
        ),
        pytest.param(
            bomb(3, leaf=" ".join(f"a{i}: __typename" for i in range(3))) + " { ...F3 }",
            {"MEDGW_MAX_ALIASES": 3 * 2**3},
            id="aliases-through-fragments",
        ),
        pytest.param(
            "{ " + "__typename " * 501 + "}",
            {"MEDGW_MAX_FIELDS": 501},
            id="many-fields",
        ),
        pytest.param(
            "{ " + "benefitPolicies { id } " * 251 + "}",
            {"MEDGW_MAX_FIELDS": 502},
            id="one-field-repeated",
        ),
    ],
)
async def test_variants_of_expansion_are_refused_quickly_with_the_value_computed(
    http: httpx.AsyncClient, query: str, limits: dict[str, int]
) -> None:
    body, elapsed = await post(http, query)
    error = refused(body)
    assert error["extensions"]["limits"] == limits
    for name, value in limits.items():
        assert f" {value:,} exceeds {name}=" in error["message"]
    assert elapsed < 1.0


async def test_fragments_nested_too_deeply_to_measure_are_refused_naming_the_depth(
    http: httpx.AsyncClient,
) -> None:
    # Eight fragments, each nesting the previous one 60 fields deeper: the parser stops plain
    # fields nested 200 deep, but not fragments, and 480 levels are more than the walk follows.
    hops = "claims { edges { node { beneficiary { " * 15
    chain = ["fragment F0 on Beneficiary { id }"] + [
        f"fragment F{i} on Beneficiary {{ {hops}...F{i - 1} {'} ' * 60}}}" for i in range(1, 9)
    ]
    query = " ".join(chain) + ' { beneficiary(idNumber: "1") { ...F8 } }'
    body, elapsed = await post(http, query)
    error = refused(body)
    assert error["message"] == (
        "fragments nested too deeply to measure: query depth exceeds MEDGW_MAX_QUERY_DEPTH=10"
    )
    assert error["extensions"]["limits"] == {"MEDGW_MAX_QUERY_DEPTH": None}
    assert elapsed < 1.0


async def test_the_limits_are_checked_before_the_access_check(http: httpx.AsyncClient) -> None:
    # The dashboard may not read persons; a bomb of them is a bomb first.
    query = bomb(16, leaf="beneficiaries { edges { cursor } }") + " { ...F16 }"
    body, _ = await post(http, query, department="dashboard", org="dash")
    assert set(refused(body)["extensions"]["limits"]) == {
        "MEDGW_MAX_FIELDS",
        "MEDGW_MAX_QUERY_COST",
    }
    body, _ = await post(http, "{ beneficiaries { edges { cursor } } }", department="dashboard")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_very_long_document_is_answered_at_once(http: httpx.AsyncClient) -> None:
    padding = "#" + "x" * 90_000 + "\n"  # a comment: under the body limit, one token
    body, elapsed = await post(http, padding + "{ __typename }")
    assert body == {"data": {"__typename": "Query"}}
    assert elapsed < 1.0
    body, elapsed = await post(
        http, '{ statistics(year: 2023, regionPrefix: "%s") { persons } }' % ("5" * 90_000)
    )
    assert body["errors"][0]["extensions"]["code"] == "BAD_INPUT"
    assert elapsed < 1.0


# --- introspection ---------------------------------------------------------------------------


def introspection_chain(hops: int) -> str:
    """``__schema { types { fields { type { fields { type … } } } } } }``: each hop multiplies
    the response by the number of fields of a type."""
    inner = "name"
    for _ in range(hops):
        inner = f"fields {{ type {{ {inner} }} }}"
    return f"{{ __schema {{ types {{ {inner} }} }} }}"


async def test_introspection_nested_through_lists_is_refused_by_its_cost(
    http: httpx.AsyncClient,
) -> None:
    body, elapsed = await post(http, introspection_chain(6), department="dashboard")
    error = refused(body)
    [(name, value)] = error["extensions"]["limits"].items()
    assert name == "MEDGW_MAX_QUERY_COST"
    assert value > 50_000
    assert elapsed < 1.0
    # The whole introspection query GraphiQL sends (with ofType twelve deep) is allowed.
    body, _ = await post(http, graphql.get_introspection_query(), department="dashboard")
    assert "errors" not in body
    assert body["data"]["__schema"]["queryType"] == {"name": "Query", "kind": "OBJECT"}


async def test_a_long_of_type_chain_is_not_a_depth_and_costs_little(
    http: httpx.AsyncClient,
) -> None:
    inner = "name"
    for _ in range(150):
        inner = f"ofType {{ {inner} }}"
    body, elapsed = await post(http, f'{{ __type(name: "Query") {{ {inner} }} }}')
    assert body == {"data": {"__type": {"ofType": None}}}
    assert elapsed < 1.0


def test_interface_and_union_fragments_are_measured_like_any_other() -> None:
    schema = graphql.build_schema(
        """
        interface Node { id: ID, peers(first: Int = 5): [Node!]! }
        type A implements Node { id: ID, peers(first: Int = 5): [Node!]! }
        type B implements Node { id: ID, peers(first: Int = 5): [Node!]! }
        union Either = A | B
        type Query { node: Node, either: Either }
        """
    )
    document = graphql.parse(
        "fragment N on Node { id peers(first: 3) { id } } "
        "fragment U on Either { ... on A { ...N } ... on B { ...N ...N } } "
        "{ node { ...N } either { ...U ...U } }"
    )
    # N: 3 fields costing 1 + 1 + 3 * 1 = 5; U: 3 times N.
    assert measure(document, schema) == Measure(fields=2 + 3 + 6 * 3, depth=2, cost=2 + 7 * 5)


# --- fault 2: response amplification ---------------------------------------------------------


def amplifier(outer: int, inner: int, copies: int = 1) -> str:
    """The 191-byte amplifier: a person's claims, each claim's person's claims, their
    settlement explanations; ``copies`` aliases of it."""
    one = (
        f"beneficiary(idNumber: $n) {{ claims(first: {outer}) {{ edges {{ node {{ "
        f"beneficiary {{ claims(first: {inner}) {{ edges {{ node {{ "
        "settlement { explanation { text } } } } } } } } } }"
    )
    return "query($n: String!) { " + " ".join(f"a{i}: {one}" for i in range(copies)) + " }"


def sized_amplifier() -> str:
    """The amplifier with its page sizes given by the variable ``$size``."""
    return (
        amplifier(100, 100)
        .replace("first: 100", "first: $size")
        .replace("$n: String!", "$n: String!, $size: Int!")
    )


def amplifier_cost(outer: int, inner: int) -> int:
    # beneficiary, claims, then per outer claim: edges node beneficiary claims, then per inner
    # claim: edges node settlement explanation text.
    return 2 + outer * (4 + inner * 5)


@pytest.mark.parametrize("copies", [1, 3])
async def test_the_amplifier_is_refused_by_its_cost_before_it_runs(
    http: httpx.AsyncClient, db: Database, copies: int
) -> None:
    [person] = await add_people(db, 1, claims_each=2)
    query = amplifier(100, 100, copies)
    response = await http.post(
        "/graphql",
        json={"query": query, "variables": {"n": person.id_number}},
        headers=bearer(),
    )
    error = refused(response.json())
    cost = copies * amplifier_cost(100, 100)
    assert error["message"] == f"query cost {cost:,} exceeds MEDGW_MAX_QUERY_COST=50000"
    assert error["extensions"]["limits"] == {"MEDGW_MAX_QUERY_COST": cost}
    assert await audit_rows(db) == 0  # nothing ran, nothing was read


async def test_page_sizes_given_as_variables_count_too(
    http: httpx.AsyncClient, db: Database
) -> None:
    [person] = await add_people(db, 1, claims_each=2)
    query = sized_amplifier()
    variables = {"n": person.id_number, "size": 100}
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=bearer()
    )
    assert refused(response.json())["extensions"]["limits"] == {
        "MEDGW_MAX_QUERY_COST": amplifier_cost(100, 100)
    }
    variables["size"] = 20
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=bearer()
    )
    body = response.json()
    assert "errors" not in body, body
    assert len(body["data"]["a0"]["claims"]["edges"]) == 2


def test_a_prepared_reads_limits_are_walked_once_unless_variables_size_its_pages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A prepared read checks its limits again with each request's variables
    (gateway/read_compiler.py): a document whose page sizes are written in it is measured once
    per schema, settings and operation; one whose page size is a variable, every time, so that
    a larger value is refused after a small one was answered."""
    schema = graphql.build_schema("type Query { a: Int, items(first: Int = 20): [Query!]! }")
    walks: list[bool] = []
    measured = limits.measured

    def counted(*args: Any) -> tuple[Measure, bool]:
        found = measured(*args)
        walks.append(found[1])
        return found

    monkeypatch.setattr(limits, "measured", counted)
    roomy, tight = Settings(), Settings().model_copy(update={"max_query_cost": 2000})
    written = Rechecked(graphql.parse("{ items(first: 100) { items { a } } }"))  # costs 2,101
    assert written.check(schema, None, None, roomy) is None
    assert written.check(schema, None, {"x": 1}, roomy) is None
    assert walks == [False]
    # What was kept is of those settings: tighter ones measure again, and refuse.
    error = written.check(schema, None, None, tight)
    assert error is not None
    assert error.extensions == {"code": "BAD_INPUT", "limits": {"MEDGW_MAX_QUERY_COST": 2101}}
    assert walks == [False, False]
    sized = Rechecked(graphql.parse("query($n: Int) { items(first: $n) { items { a } } }"))
    assert sized.check(schema, None, {"n": 1}, tight) is None  # costs 22
    error = sized.check(schema, None, {"n": 100}, tight)
    assert error is not None
    assert error.extensions == {"code": "BAD_INPUT", "limits": {"MEDGW_MAX_QUERY_COST": 2101}}
    assert walks == [False, False, True, True]


async def test_the_same_query_with_default_pages_runs_and_is_audited(
    http: httpx.AsyncClient, db: Database
) -> None:
    [person] = await add_people(db, 1, claims_each=2)
    query = amplifier(100, 100).replace("(first: 100)", "", 1)  # outer page: default 20
    assert amplifier_cost(20, 100) < 50_000
    response = await http.post(
        "/graphql", json={"query": query, "variables": {"n": person.id_number}}, headers=bearer()
    )
    body = response.json()
    assert "errors" not in body, body
    edges = body["data"]["a0"]["claims"]["edges"]
    assert len(edges) == 2
    assert len(edges[0]["node"]["beneficiary"]["claims"]["edges"]) == 2
    assert await audit_rows(db) == 1


async def test_a_dashboard_sized_query_is_allowed(http: httpx.AsyncClient, db: Database) -> None:
    await add_people(db, 3, claims_each=2)
    query = """{ beneficiaries(first: 100) { edges { cursor node { id name idNumber regionCode
        identities { category validFrom } monitoringFlags { category }
        claims(first: 20) { edges { node { claimNumber totalCost admissionDate } } } } } }
      statistics(year: 2023) { persons } benefitPolicies { id } }"""
    body, _ = await post(http, query)
    assert "errors" not in body, body
    assert len(body["data"]["beneficiaries"]["edges"]) == 3


# --- the response-size cap -------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_responses_server(settings: Settings, db: Database) -> Iterator[str]:
    """The gateway with responses capped at 2,000 bytes, behind a real uvicorn."""
    with serving(create_app(settings.model_copy(update={"max_response_bytes": 2_000}))) as url:
        yield url


@pytest.fixture
async def small(small_responses_server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=small_responses_server, timeout=30) as client:
        yield client


async def test_a_response_over_the_cap_is_replaced_by_an_error_naming_the_setting(
    small: httpx.AsyncClient, db: Database
) -> None:
    await add_people(db, 30)
    query = "{ beneficiaries(first: 30) { edges { node { id name idNumber regionCode } } } }"
    response = await small.post("/graphql", json={"query": query}, headers=bearer())
    assert response.status_code == 200
    assert len(response.content) < 2_000
    body = response.json()
    error = refused(body)
    assert error["message"] == (
        "response over 2,000 bytes exceeds MEDGW_MAX_RESPONSE_BYTES=2000: "
        "select fewer fields or smaller pages (first)"
    )
    assert error["extensions"]["limits"] == {"MEDGW_MAX_RESPONSE_BYTES": 2000}
    assert "测试" not in response.text

    small_query = "{ beneficiaries(first: 3) { edges { node { name } } } }"
    response = await small.post("/graphql", json={"query": small_query}, headers=bearer())
    names = [e["node"]["name"] for e in response.json()["data"]["beneficiaries"]["edges"]]
    assert len(names) == 3
    assert all(name.startswith("测试") for name in names)
    assert names[0].encode() in response.content  # UTF-8, not \\u escapes
