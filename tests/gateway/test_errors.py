"""Bad input is BAD_INPUT naming field and value, never INTERNAL (issue 9, faults 11, 12, 14):
no schema suggestions in production, one parsing layer for cursors, text, amounts, years and
dates, JSON bodies that do not parse, and bounded token claims. Each case also checks that
nothing was stored.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from gateway.auth import issue_token
from gateway.cli import app as cli
from gateway.storage import models
from gateway.storage.database import Database
from schema.pagination import encode_cursor
from tests.conftest import SECRET, GraphQLClient, bearer, without_request_ids
from tests.factories import add_people

ID = "510402197001010013"
REGISTER = "mutation($i: RegisterBeneficiaryInput!) { registerBeneficiary(input: $i) { id } }"
SETTLE = "mutation($i: SettleClaimInput!) { settleClaim(input: $i) { claimNumber } }"
CLAIMS = "query($a: String, $y: Int) { claims(after: $a, year: $y) { edges { cursor } } }"


def person(**changes: Any) -> dict[str, Any]:
    return {"idNumber": ID, "name": "张三", "regionCode": "510402", **changes}


def claim(**changes: Any) -> dict[str, Any]:
    return {
        "claimNumber": "C1",
        "idNumber": ID,
        "type": "INPATIENT",
        "admissionDate": "2023-03-01",
        "totalCost": "1000.00",
        "policyScopeCost": "900.00",
        **changes,
    }


async def stored(db: Database) -> tuple[int, int]:
    async with db.sessions() as session:
        persons = await session.scalar(select(func.count()).select_from(models.Beneficiary))
        claims = await session.scalar(select(func.count()).select_from(models.Claim))
    return persons or 0, claims or 0


# --- fault 11: no suggestions in production ------------------------------------------------

MISSPELT = {
    "argument": ('{ beneficiary(idNumbe: "x") { id } }', "idNumber"),
    "field": (f'{{ beneficiary(idNumber: "{ID}") {{ nam }} }}', "name"),
    "type": ("query($c: Categor) { beneficiaries(category: $c) { edges { cursor } } }", "Category"),
    "fragment type": (
        "{ ...F } fragment F on Quer { statistics(year: 2023) { persons } }",
        "Query",
    ),
    "enum value": ("{ beneficiaries(category: MINIMUM_LIVIN) { edges { cursor } } }", "LIVING"),
    "input field": (
        'mutation { registerBeneficiary(input: {idNumber: "x", name: "n", regionCode: "510402", '
        'birthDat: "2000-01-01"}) { id } }',
        "birthDate",
    ),
}


@pytest.mark.parametrize(("query", "suggested"), MISSPELT.values(), ids=MISSPELT.keys())
async def test_in_production_no_error_suggests_a_schema_name(
    production: httpx.AsyncClient, gql: GraphQLClient, query: str, suggested: str
) -> None:
    response = await production.post("/graphql", json={"query": query}, headers=bearer())
    body = response.json()
    assert body["errors"], body
    assert {e["extensions"]["code"] for e in body["errors"]} == {"BAD_INPUT"}
    assert "Did you mean" not in response.text
    assert f"'{suggested}" not in response.text
    assert f"{suggested}'" not in response.text
    development = await gql.post(query)  # the same request does get a suggestion there
    assert "Did you mean" in json.dumps(development["errors"])


async def test_in_production_a_variable_of_a_misspelt_enum_value_gets_no_suggestion(
    production: httpx.AsyncClient,
) -> None:
    query = "query($c: Category) { beneficiaries(category: $c) { edges { cursor } } }"
    response = await production.post(
        "/graphql",
        json={"query": query, "variables": {"c": "MINIMUM_LIVIN"}},
        headers=bearer(),
    )
    [error] = without_request_ids(response.json(), response.headers["x-request-id"])["errors"]
    assert error["extensions"] == {"code": "BAD_INPUT", "field": "c", "value": "MINIMUM_LIVIN"}
    assert "Did you mean" not in response.text
    assert "MINIMUM_LIVING" not in response.text


# --- issue 10 item 5: validation and variable errors name field and value ---------------------


@pytest.mark.parametrize(
    ("query", "variables", "field", "value"),
    [
        ('{ beneficiary(idNumbe: "x") { id } }', {}, "idNumbe", '"x"'),
        ('{ statistics(year: "2023") { persons } }', {}, "year", '"2023"'),
        (SETTLE, {"i": claim(totalCost="many")}, "i.totalCost", "many"),
        (CLAIMS, {"y": "twenty"}, "y", "twenty"),
    ],
    ids=["unknown argument", "literal of the wrong type", "input field", "variable"],
)
async def test_a_validation_or_variable_error_names_the_field_and_value(
    gql: GraphQLClient, query: str, variables: dict[str, Any], field: str, value: str
) -> None:
    error = await gql.error(query, variables)
    assert error["extensions"]["code"] == "BAD_INPUT"
    assert (error["extensions"]["field"], error["extensions"]["value"]) == (field, value)


# --- fault 12: one parsing layer -------------------------------------------------------------

BAD = {
    "forged cursor": (CLAIMS, {"a": "Y2xhaW06YWJj"}, "after", "Y2xhaW06YWJj"),
    "cursor of another kind": (CLAIMS, {"a": encode_cursor("alert", 1)}, "after", None),
    "cursor beyond bigint": (CLAIMS, {"a": encode_cursor("claim", 10**20)}, "after", None),
    "NUL in a variable": (REGISTER, {"i": person(name="张\x00三")}, "name", "张\\u0000三"),
    "NUL in a literal": ('{ beneficiary(idNumber: "5104\\u0000") { id } }', {}, "idNumber", None),
    "lone surrogate in a literal": ('{ claim(claimNumber: "a\\ud800") { id } }', {}, None, None),
    "control character": (REGISTER, {"i": person(name="张\x1b三")}, "name", "张\\u001b三"),
    "amount beyond the column": (SETTLE, {"i": claim(totalCost="1e20")}, "totalCost", None),
    "amount NaN": (SETTLE, {"i": claim(policyScopeCost="NaN")}, "policyScopeCost", "NaN"),
    "year beyond smallint": (CLAIMS, {"y": 2147483647}, "year", 2147483647),
    "negative year": ("{ statistics(year: -5) { persons } }", {}, "year", -5),
    "date year 9999": (SETTLE, {"i": claim(admissionDate="9999-12-31")}, "admissionDate", None),
    "birth date year 1": (REGISTER, {"i": person(birthDate="0001-01-01")}, "birthDate", None),
}


@pytest.mark.parametrize(("query", "variables", "field", "value"), BAD.values(), ids=BAD.keys())
async def test_bad_input_is_bad_input_naming_field_and_value_and_stores_nothing(
    gql: GraphQLClient,
    db: Database,
    query: str,
    variables: dict[str, Any],
    field: str | None,
    value: object,
) -> None:
    await add_people(db, 1, claims_each=1)
    before = await stored(db)
    body = await gql.post(query, variables)
    assert body["errors"], body
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_INPUT", error
    if field is not None:
        assert error["extensions"]["field"] == field
        assert field in error["message"]
    if value is not None:
        assert error["extensions"]["value"] == value
    assert await stored(db) == before


async def test_a_refused_argument_leaves_no_connection_behind(
    client: httpx.AsyncClient, db: Database
) -> None:
    """The refused field fails like a resolver: the fields already running are settled, so their
    sessions end with the request (raised synchronously, 10 requests kept ~7 connections)."""
    await add_people(db, 2, claims_each=1)
    query = (
        '{ claim(claimNumber: "x") { acknowledged } beneficiaries(first: 5) { edges { cursor } } '
        "claims(year: 0) { edges { cursor } } }"
    )
    for _ in range(10):
        response = await client.post("/graphql", json={"query": query}, headers=bearer())
        assert response.json()["errors"][0]["extensions"]["field"] == "year"
    await asyncio.sleep(0.3)
    assert db.engine.pool.checkedout() == 0


async def test_a_cursor_given_out_still_pages(gql: GraphQLClient, db: Database) -> None:
    await add_people(db, 3, claims_each=1)
    first = await gql.data("{ claims(first: 2) { edges { cursor } pageInfo { endCursor } } }")
    after = first["claims"]["pageInfo"]["endCursor"]
    rest = await gql.data(CLAIMS.replace("claims(", "claims(first: 5, "), {"a": after})
    assert len(rest["claims"]["edges"]) == 1


async def test_tabs_and_newlines_pass_the_parsing_layer(gql: GraphQLClient, db: Database) -> None:
    await gql.data(REGISTER, {"i": person()})
    data = await gql.data(
        "query($n: String) { beneficiary(idNumber: $n) { name } }", {"n": f"\t{ID}\r\n"}
    )
    assert data == {"beneficiary": {"name": "张三"}}


BODIES = {
    "90 KB of [": (b"[" * 90_000, "nested deeper than 32"),
    "not JSON": (b'{"query": ', "not JSON"),
    "not UTF-8": (b'{"query": "{ a \xb7 }"}', "not JSON"),
    "lone surrogate": (b'{"query": "{ a }", "operationName": "\\ud800"}', "surrogate"),
    "NaN": (b'{"query": "{ a }", "variables": {"x": NaN}}', "NaN"),
    "deep variables": (
        b'{"query": "{ a }", "variables": {"x": ' + b"[" * 40 + b"]" * 40 + b"}}",
        "nested deeper",
    ),
}


@pytest.mark.parametrize(("body", "said"), BODIES.values(), ids=BODIES.keys())
async def test_a_body_that_is_not_usable_json_is_a_json_bad_input_with_a_request_id(
    http: httpx.AsyncClient, body: bytes, said: str
) -> None:
    response = await http.post(
        "/graphql", content=body, headers={"Content-Type": "application/json", **bearer()}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert len(response.headers["x-request-id"]) == 32
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_INPUT"
    assert said in error["message"]


async def test_get_variables_nested_too_deep_are_bad_input(http: httpx.AsyncClient) -> None:
    response = await http.get(
        "/graphql",
        params={"query": CLAIMS, "variables": "[" * 5000},
        headers=bearer(),
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_INPUT"


# --- fault 14: bounded token claims ----------------------------------------------------------


def raw_token(**claims: Any) -> dict[str, str]:
    import jwt

    payload = {
        "sub": "tester",
        "department": "medical_insurance",
        "org": "mi-5104",
        "regions": ["5104"],
        "exp": 4102444800,
        **claims,
    }
    return {"Authorization": f"Bearer {jwt.encode(payload, SECRET, algorithm='HS256')}"}


@pytest.mark.parametrize(
    ("claims", "named"),
    [
        ({"regions": [f"{i % 100:02d}" for i in range(33_000)]}, "regions: 33000 prefixes"),
        ({"regions": ["5104"] * 65}, "regions: 65 prefixes"),
        ({"regions": []}, "regions: 0 prefixes"),
        ({"regions": ["5104\n"]}, "regions: '5104\\n'"),
        ({"regions": "5104"}, "regions: '5104'"),
        ({"org": "o" * 121}, "org = "),
        ({"org": "mi\x005104"}, "org = "),
        ({"purpose": "p" * 81}, "purpose = "),
        ({"purpose": 7}, "purpose = 7"),
        ({"sub": "s" * 121}, "sub = "),
    ],
    ids=[
        "33000 regions",
        "65 regions",
        "no region",
        "newline",
        "not a list",
        "long org",
        "NUL in org",
        "long purpose",
        "purpose not text",
        "long subject",
    ],
)
async def test_a_token_with_unbounded_claims_is_401_naming_the_claim(
    client: httpx.AsyncClient, claims: dict[str, Any], named: str
) -> None:
    response = await client.post(
        "/graphql",
        json={"query": "{ statistics(year: 2023) { persons } }"},
        headers=raw_token(**claims),
    )
    assert response.status_code == 401
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert error["message"].startswith(named), error["message"]
    assert len(error["message"]) < 200


async def test_a_token_with_64_regions_is_served(client: httpx.AsyncClient) -> None:
    regions = [f"{i:02d}" for i in range(10, 74)]
    response = await client.post(
        "/graphql",
        json={"query": "{ statistics(year: 2023) { persons } }"},
        headers=raw_token(regions=regions),
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"statistics": {"persons": 0}}}


def test_issuing_a_token_refuses_the_same_claims() -> None:
    with pytest.raises(Exception, match="regions: 65 prefixes, expected 1 to 64"):
        issue_token(SECRET, subject="s", department="d", org="o", regions=["32"] * 65)
    result = CliRunner().invoke(
        cli,
        ["token", "--department", "dashboard", "--org", "o" * 121, "--region", "32"],
        env={"MEDGW_JWT_SECRET": SECRET},
    )
    assert result.exit_code == 2
    assert "org = " in result.output
    assert "at most 120 characters" in result.output
    many = [arg for i in range(65) for arg in ("--region", f"{i:02d}")]
    result = CliRunner().invoke(
        cli,
        ["token", "--department", "dashboard", "--org", "o", *many],
        env={"MEDGW_JWT_SECRET": SECRET, "MEDGW_MAX_TOKEN_REGIONS": "64"},
    )
    assert result.exit_code == 2
    assert "regions: 65 prefixes" in result.output
