"""The OWASP GraphQL cheat sheet, item by item: depth, alias and token limits, page size,
batching, no mutations over GET, JSON only (CSRF), body size, statement timeout, masked errors,
no suggestions and no introspection in production. Each refusal is checked for its status and
code and for what it did not do: run SQL or store anything.

Tests about HTTP itself go through a real uvicorn server; pure GraphQL limits run in-process.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import graphql
import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

import resolvers.beneficiaries
from gateway.config import Settings
from gateway.storage import models
from gateway.storage.database import Database
from policies.benefits import PolicySet
from tests.conftest import GraphQLClient, StatementCounter, bearer, in_process, without_request_ids
from tests.factories import add_people

ID = "510402197001010013"
REGISTER = (
    f'mutation {{ registerBeneficiary(input: {{idNumber: "{ID}", name: "张三", '
    'regionCode: "510402"}) { id } }'
)


def lookup(number: str, selection: str) -> str:
    """A query of one person by ID number."""
    return f'{{ beneficiary(idNumber: "{number}") {{ {selection} }} }}'


async def stored(db: Database) -> tuple[int, int, int]:
    """Persons, identities and audit records in the database."""
    async with db.sessions() as session:
        counts = [
            await session.scalar(select(func.count()).select_from(model))
            for model in (models.Beneficiary, models.Identity, models.AuditRecord)
        ]
    return counts[0] or 0, counts[1] or 0, counts[2] or 0


def codes(body: dict[str, Any]) -> list[str | None]:
    return [(e.get("extensions") or {}).get("code") for e in body.get("errors") or []]


# --- depth, aliases, tokens ------------------------------------------------------------------

# Persons → their claims → each claim's person → its claims → … as (field, type it returns).
CHAIN = [
    ("beneficiaries", "BeneficiaryConnection"),
    ("edges", "BeneficiaryEdge"),
    ("node", "Beneficiary"),
]
CYCLE = [
    ("claims", "ClaimConnection"),
    ("edges", "ClaimEdge"),
    ("node", "Claim"),
    ("beneficiary", "Beneficiary"),
]
SCALAR = {
    "BeneficiaryEdge": "cursor",
    "Beneficiary": "id",
    "ClaimEdge": "cursor",
    "Claim": "claimNumber",
}


def nested(depth: int) -> str:
    """A query whose deepest field sits ``depth`` levels below the root field (as the depth
    limiter counts: ``{ a { b } }`` has depth 1)."""
    steps = list(CHAIN)
    while len(steps) < depth:
        steps.append(CYCLE[(len(steps) - len(CHAIN)) % len(CYCLE)])
    steps = steps[:depth]
    inner = SCALAR[steps[-1][1]]
    for name, _ in reversed(steps):
        inner = f"{name} {{ {inner} }}"
    return f"{{ {inner} }}"


def depth_of(document: str) -> int:
    """How deep the deepest field of ``document`` sits below its root fields (fragments
    expanded, as the depth limiter does)."""
    parsed = graphql.parse(document)
    fragments = {
        d.name.value: d for d in parsed.definitions if isinstance(d, graphql.FragmentDefinitionNode)
    }

    def below(selections: graphql.SelectionSetNode | None) -> int:
        if selections is None:
            return -1
        depths = [-1]
        for selection in selections.selections:
            if isinstance(selection, graphql.FragmentSpreadNode):
                depths.append(below(fragments[selection.name.value].selection_set) - 1)
            elif isinstance(selection, graphql.InlineFragmentNode):
                depths.append(below(selection.selection_set) - 1)
            else:
                depths.append(below(getattr(selection, "selection_set", None)))
        return 1 + max(depths)

    return max(
        below(d.selection_set)
        for d in parsed.definitions
        if isinstance(d, graphql.OperationDefinitionNode)
    )


async def test_a_query_deeper_than_the_limit_is_refused_before_it_runs(
    gql: GraphQLClient,
    settings: Settings,
    count_statements: Callable[[], StatementCounter],
) -> None:
    limit = settings.max_query_depth
    assert (depth_of(nested(limit)), depth_of(nested(limit + 1))) == (limit, limit + 1)
    statements = count_statements()
    body = await gql.post(nested(limit + 1))
    assert body["data"] is None
    assert codes(body) == ["BAD_INPUT"]
    message = f"query depth {limit + 1} exceeds MEDGW_MAX_QUERY_DEPTH={limit}"
    assert body["errors"][0]["message"] == message
    assert len(statements) == 0

    at_limit = await gql.data(nested(limit))
    assert at_limit == {"beneficiaries": {"edges": []}}
    assert len(statements) > 0  # that one ran


async def test_a_document_nested_far_beyond_the_limit_is_bad_input_not_a_crash(
    gql: GraphQLClient, count_statements: Callable[[], StatementCounter]
) -> None:
    statements = count_statements()
    body = await gql.post(nested(401))
    assert body["data"] is None
    assert codes(body) == ["BAD_INPUT"]
    assert len(statements) == 0


async def test_introspection_is_not_counted_as_depth(
    gql: GraphQLClient, settings: Settings
) -> None:
    # GraphiQL's query nests ofType far deeper than the limit.
    query = graphql.get_introspection_query()
    assert depth_of(query) > settings.max_query_depth
    data = await gql.data(query)
    assert data["__schema"]["queryType"] == {"name": "Query", "kind": "OBJECT"}


def aliased(count: int) -> str:
    return (
        "{ " + " ".join(f"a{i}: statistics(year: 2023) {{ persons }}" for i in range(count)) + " }"
    )


async def test_more_aliases_than_allowed_are_refused_before_they_run(
    gql: GraphQLClient,
    settings: Settings,
    count_statements: Callable[[], StatementCounter],
) -> None:
    limit = settings.max_aliases
    statements = count_statements()
    body = await gql.post(aliased(limit + 1))
    assert body["data"] is None
    assert codes(body) == ["BAD_INPUT"]
    message = f"alias count {limit + 1} exceeds MEDGW_MAX_ALIASES={limit}"
    assert body["errors"][0]["message"] == message
    assert len(statements) == 0

    data = await gql.data(aliased(limit))
    assert data == {f"a{i}": {"persons": 0} for i in range(limit)}


def parses(document: str, max_tokens: int) -> bool:
    try:
        graphql.parse(document, max_tokens=max_tokens)
    except graphql.GraphQLError:
        return False
    return True


def around_token_limit(limit: int) -> tuple[str, str]:
    """Two queries reading statistics: the longest one graphql-core parses under ``limit``
    tokens, and the same with one token more."""
    fields = ["statistics(year: 2023) { persons }"] * (limit // 9 - 2)  # 9 tokens each
    documents = (
        "{ " + " ".join(fields) + " statistics(year: 2023) { persons" + " persons" * extra + " } }"
        for extra in range(limit)
    )
    previous = next(documents)
    assert parses(previous, limit)
    for document in documents:
        if not parses(document, limit):
            return previous, document
        previous = document
    raise AssertionError("never reached the limit")


async def test_a_document_of_more_tokens_than_allowed_is_refused_before_it_runs(
    gql: GraphQLClient,
    settings: Settings,
    count_statements: Callable[[], StatementCounter],
) -> None:
    limit = settings.max_tokens
    at_limit, over = around_token_limit(limit)
    assert parses(at_limit, limit)
    assert not parses(over, limit)
    statements = count_statements()
    body = await gql.post(over)
    assert body["data"] is None
    assert f"more than {limit} tokens" in body["errors"][0]["message"]
    assert codes(body) == ["BAD_INPUT"]
    assert len(statements) == 0

    data = await gql.data(at_limit)
    assert set(data) == {"statistics"}


async def test_every_error_of_a_document_that_does_not_parse_has_a_code(
    gql: GraphQLClient,
) -> None:
    body = await gql.post("{ benefitPolicies { id }")
    assert body["data"] is None
    assert "Syntax Error" in body["errors"][0]["message"]
    assert codes(body) == ["BAD_INPUT"]


# --- page size -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("department", "query"),
    [
        ("medical_insurance", "{ beneficiaries(first: %d) { edges { cursor } } }"),
        ("medical_insurance", "{ claims(first: %d) { edges { cursor } } }"),
        ("medical_insurance", "{ highCostAlerts(first: %d) { edges { cursor } } }"),
        ("auditor", "{ auditLog(first: %d) { edges { cursor } } }"),
    ],
    ids=["beneficiaries", "claims", "highCostAlerts", "auditLog"],
)
@pytest.mark.parametrize("first", [101, 100_000, 0, -1])
async def test_a_page_size_outside_1_to_100_is_bad_input_naming_first(
    gql: GraphQLClient,
    count_statements: Callable[[], StatementCounter],
    department: str,
    query: str,
    first: int,
) -> None:
    statements = count_statements()
    body = await gql.post(query % first, department=department)
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"] == {"code": "BAD_INPUT", "field": "first", "value": first}
    assert error["message"] == f"first = {first}: must be between 1 and 100"
    assert len(statements) == 0
    data = await gql.data(query % 100, department=department)
    assert next(iter(data.values())) == {"edges": []}


async def test_a_nested_page_of_claims_is_capped_too(gql: GraphQLClient, db: Database) -> None:
    [person] = await add_people(db, 1, claims_each=2)
    query = lookup(person.id_number, "claims(first: %d) { edges { cursor } }")
    body = await gql.post(query % 101)
    assert codes(body) == ["BAD_INPUT"]
    assert body["errors"][0]["extensions"]["field"] == "first"
    assert body["data"] == {"beneficiary": None}  # claims is non-null: the person goes null
    data = await gql.data(query % 100)
    assert len(data["beneficiary"]["claims"]["edges"]) == 2


# --- batching --------------------------------------------------------------------------------


async def test_a_batch_is_refused_when_batching_is_not_configured(
    http: httpx.AsyncClient, db: Database
) -> None:
    response = await http.post(
        "/graphql",
        json=[{"query": REGISTER}, {"query": "{ benefitPolicies { id } }"}],
        headers=bearer(),
    )
    assert response.status_code == 400
    assert "Batching is not enabled" in response.text
    assert await stored(db) == (0, 0, 0)


async def test_with_a_batch_cap_of_two_two_operations_run_and_three_are_refused(
    settings: Settings, db: Database, policies: PolicySet
) -> None:
    batching = settings.model_copy(update={"max_batch": 2})
    operation = {"query": "{ benefitPolicies { id } }"}
    async with in_process(batching, db, policies) as client:
        two = await client.post("/graphql", json=[operation, operation], headers=bearer())
        three = await client.post(
            "/graphql", json=[{"query": REGISTER}, operation, operation], headers=bearer()
        )
    assert two.status_code == 200
    ids = [{"id": policy.id} for policy in policies]
    assert two.json() == [{"data": {"benefitPolicies": ids}}] * 2
    assert three.status_code == 400
    assert "Too many operations" in three.text
    assert await stored(db) == (0, 0, 0)


async def test_each_operation_of_a_batch_that_returns_personal_data_is_audited(
    settings: Settings, db: Database, policies: PolicySet
) -> None:
    [person] = await add_people(db, 1)
    batching = settings.model_copy(update={"max_batch": 2})
    refused = {"query": "{ auditLog { edges { cursor } } }"}  # not medical insurance's
    personal = {"query": lookup(person.id_number, "name")}
    async with in_process(batching, db, policies) as client:
        response = await client.post("/graphql", json=[refused, personal], headers=bearer())
    first, second = response.json()
    assert codes(first) == ["FORBIDDEN"]
    assert second == {"data": {"beneficiary": {"name": person.name}}}
    async with db.sessions() as session:
        records = (await session.scalars(select(models.AuditRecord))).all()
    assert [(r.action, r.field_paths, r.beneficiary_ids) for r in records] == [
        ("READ", ["beneficiary(idNumber)", "beneficiary.name"], [person.id])
    ], "a person's name left the gateway without an audit record"


# --- GET -------------------------------------------------------------------------------------


async def test_a_mutation_over_get_is_refused_and_stores_nothing(
    http: httpx.AsyncClient, db: Database
) -> None:
    response = await http.get("/graphql", params={"query": REGISTER}, headers=bearer())
    assert response.status_code == 400
    assert "mutations are not allowed when using GET" in response.text
    assert await stored(db) == (0, 0, 0)


async def test_a_query_over_get_needs_a_token_and_then_works(
    http: httpx.AsyncClient, policies: PolicySet
) -> None:
    params = {"query": "{ benefitPolicies { id } }"}
    anonymous = await http.get("/graphql", params=params)
    assert anonymous.status_code == 401
    assert anonymous.json()["data"] is None
    response = await http.get("/graphql", params=params, headers=bearer())
    assert response.status_code == 200
    assert response.json() == {"data": {"benefitPolicies": [{"id": p.id} for p in policies]}}


# --- JSON only (CSRF) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "body", "files"),
    [
        ({}, json.dumps({"query": REGISTER}).encode(), None),
        ({"Content-Type": "application/graphql"}, REGISTER.encode(), None),
        ({}, None, {"operations": (None, json.dumps({"query": REGISTER}))}),
    ],
    ids=["no content-type", "application/graphql", "multipart form"],
)
async def test_a_post_that_is_not_json_is_415_and_stores_nothing(
    http: httpx.AsyncClient,
    db: Database,
    headers: dict[str, str],
    body: bytes | None,
    files: dict[str, Any] | None,
) -> None:
    request = http.build_request(
        "POST", "/graphql", content=body, files=files, headers={**bearer(), **headers}
    )
    if not headers and files is None:
        assert "content-type" not in request.headers
    response = await http.send(request)
    assert response.status_code == 415
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_INPUT"
    if files is None and not headers:
        assert "(none)" in response.json()["errors"][0]["message"]
    assert await stored(db) == (0, 0, 0)


async def test_json_with_a_charset_parameter_is_json(http: httpx.AsyncClient, db: Database) -> None:
    response = await http.post(
        "/graphql",
        content=json.dumps({"query": REGISTER}).encode(),
        headers={**bearer(), "Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200
    assert "errors" not in response.json()
    assert (await stored(db))[0] == 1


# --- body size -------------------------------------------------------------------------------


def padded(size: int) -> bytes:
    """A registration request of exactly ``size`` bytes (whitespace is not a token)."""
    empty = json.dumps({"query": REGISTER + " "}).encode()
    body = json.dumps({"query": REGISTER + " " * (1 + size - len(empty))}).encode()
    assert len(body) == size
    return body


async def chunked(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 8192):
        yield body[start : start + 8192]


@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
async def test_a_body_over_the_limit_is_413_and_stores_nothing(
    http: httpx.AsyncClient, db: Database, settings: Settings, transfer: str
) -> None:
    body = padded(settings.max_body_bytes + 1)
    headers = {**bearer(), "Content-Type": "application/json"}
    if transfer == "chunked":
        response = await http.post("/graphql", content=chunked(body), headers=headers)
        assert "content-length" not in response.request.headers
        assert response.request.headers["transfer-encoding"] == "chunked"
    else:
        response = await http.post("/graphql", content=body, headers=headers)
        assert response.request.headers["content-length"] == str(len(body))
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_INPUT"
    assert await stored(db) == (0, 0, 0)


@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
async def test_a_body_at_the_limit_is_served(
    http: httpx.AsyncClient, db: Database, settings: Settings, transfer: str
) -> None:
    body = padded(settings.max_body_bytes)
    content = chunked(body) if transfer == "chunked" else body
    response = await http.post(
        "/graphql", content=content, headers={**bearer(), "Content-Type": "application/json"}
    )
    assert response.status_code == 200
    assert "errors" not in response.json()
    assert (await stored(db))[0] == 1


# --- statement timeout -----------------------------------------------------------------------


async def test_a_statement_running_longer_than_the_timeout_is_cancelled(
    settings: Settings, database_url: str, db: Database
) -> None:
    impatient = Database.connect(
        database_url, settings.model_copy(update={"statement_timeout_ms": 100})
    )
    try:
        async with impatient.engine.connect() as conn:
            assert await conn.scalar(text("SHOW statement_timeout")) == "100ms"
            started = time.monotonic()
            with pytest.raises(DBAPIError, match="statement timeout") as raised:
                await conn.execute(text("SELECT pg_sleep(1)"))
            assert time.monotonic() - started < 0.9
            assert type(raised.value.orig).__name__ == "QueryCanceledError" or (
                "QueryCanceled" in repr(raised.value.orig.__cause__)
            )
    finally:
        await impatient.dispose()
    async with db.engine.connect() as conn:
        shown = await conn.scalar(text("SHOW statement_timeout"))
    assert settings.statement_timeout_ms == 5000
    assert shown == "5s"  # the gateway's own engine: the default


# --- errors ----------------------------------------------------------------------------------


def _leaky(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("secret detail")


async def test_in_production_an_unexpected_error_shows_only_a_request_id(
    production: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(resolvers.beneficiaries, "find", _leaky)
    caplog.set_level(logging.ERROR, logger="medgw")
    response = await production.post("/graphql", json={"query": lookup(ID, "id")}, headers=bearer())
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    assert response.json() == {
        "data": {"beneficiary": None},
        "errors": [
            {
                "message": f"Unexpected error (request id {request_id})",
                "locations": [{"line": 1, "column": 3}],
                "path": ["beneficiary"],
                "extensions": {"code": "INTERNAL", "requestId": request_id},
            }
        ],
    }
    assert "secret detail" not in response.text
    [logged] = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged.exc_info is not None
    assert str(logged.exc_info[1]) == "secret detail"


async def test_in_development_an_unexpected_error_shows_its_message(
    gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resolvers.beneficiaries, "find", _leaky)
    body = await gql.post(lookup(ID, "id"))
    assert body["errors"][0]["message"] == "secret detail"
    assert codes(body) == ["INTERNAL"]


async def test_in_production_a_misspelt_field_gets_no_suggestion(
    production: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    query = lookup(ID, "nam")
    response = await production.post("/graphql", json={"query": query}, headers=bearer())
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["message"] == "Cannot query field 'nam' on type 'Beneficiary'."
    assert codes(body) == ["BAD_INPUT"]
    development = await gql.post(query)
    assert "Did you mean 'name'?" in development["errors"][0]["message"]


@pytest.mark.parametrize(
    "query",
    ["{ __schema { types { name } } }", '{ __type(name: "Beneficiary") { name } }'],
    ids=["__schema", "__type"],
)
async def test_in_production_introspection_is_refused_unless_the_department_policy_allows_it(
    production: httpx.AsyncClient, query: str
) -> None:
    refused = await production.post(
        "/graphql", json={"query": query}, headers=bearer(department="civil_affairs")
    )
    body = refused.json()
    assert body["data"] is None
    assert body["errors"]
    assert all("introspection has been disabled" in e["message"] for e in body["errors"])
    assert set(codes(body)) == {"FORBIDDEN"}  # the department's policy, not bad input
    allowed = await production.post(
        "/graphql", json={"query": query}, headers=bearer(department="medical_insurance")
    )
    assert "errors" not in allowed.json()
    assert allowed.json()["data"]


async def test_in_production_there_is_no_graphiql(production: httpx.AsyncClient) -> None:
    response = await production.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"


# --- FORBIDDEN over HTTP ---------------------------------------------------------------------


async def test_ending_a_category_another_body_recognised_is_forbidden_and_changes_nothing(
    http: httpx.AsyncClient, db: Database
) -> None:
    [person] = await add_people(db, 1)  # holds MINIMUM_LIVING, recognised by civil affairs
    before = await stored(db)
    response = await http.post(
        "/graphql",
        json={
            "query": """mutation($i: EndCategoryInput!) {
              endIdentity(input: $i) { identity { validTo } } }""",
            "variables": {
                "i": {
                    "idNumber": person.id_number,
                    "category": "MINIMUM_LIVING",
                    "validTo": "2023-06-30",
                }
            },
        },
        headers=bearer(department="trade_union"),
    )
    assert response.status_code == 200
    assert len(response.headers["x-request-id"]) == 32
    body = without_request_ids(response.json(), response.headers["x-request-id"])
    assert body["data"] == {"endIdentity": None}  # mutation fields are nullable (issue 10, 6)
    assert body["errors"][0]["extensions"] == {"code": "FORBIDDEN", "field": "category"}
    assert "MINIMUM_LIVING" in body["errors"][0]["message"]
    assert await stored(db) == before
    async with db.sessions() as session:
        valid_to = await session.scalar(select(models.Identity.valid_to))
    assert valid_to is None
