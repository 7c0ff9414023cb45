"""Parsed and validated documents kept per department (gateway/query_cache.py): a document
served from the cache answers exactly as a freshly parsed one, and is still refused by the
access check and the query limits: of the same department with other variables or another
token, and of another department."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import graphql
import httpx
import pytest
import strawberry.schema.schema

from gateway.app import create_app
from gateway.config import Settings
from gateway.query_cache import CachedDocuments, QueryCache
from gateway.storage.database import Database
from policies.benefits import PolicySet
from tests.conftest import bearer
from tests.factories import add_people
from tests.gateway.test_limits import amplifier_cost, sized_amplifier

PERSON = """query Person($n: String!) { beneficiary(idNumber: $n) {
  id idNumber name regionCode identities { category validFrom }
  claims(first: 5) { edges { node {
    claimNumber totalCost settlement { assistance outOfPocket } } } }
} }"""
MASKED = "query Masked($n: String!) { beneficiary(idNumber: $n) { id name regionCode } }"


@pytest.fixture(scope="module")
async def served(
    settings: Settings, db: Database, policies: PolicySet
) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """Its own app, so that its caches start empty; with the read compiler off, so that every
    request takes the pipeline the document cache serves (a read answered compiled is answered
    again as a prepared read, before that pipeline: tests/gateway/test_read_compiler.py)."""
    pipeline = settings.model_copy(update={"read_compiler": False})
    app = create_app(pipeline, db=db, policies=policies)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            yield client, app


def cache_of(app: Any, department: str) -> QueryCache:
    """The document cache of ``department``'s schema (each extension factory makes one)."""
    schema = app.state.gateway.views[department].schema
    for factory in schema.extensions:
        extension = factory()
        if isinstance(extension, CachedDocuments):
            return extension.cache
    raise AssertionError(f"{department}: no document cache")


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[graphql.DocumentNode]:
    """The documents graphql-core validates from now on."""
    seen: list[graphql.DocumentNode] = []
    original = strawberry.schema.schema.validate_document

    def counted(schema: Any, document: graphql.DocumentNode, rules: Any) -> Any:
        seen.append(document)
        return original(schema, document, rules)

    monkeypatch.setattr(strawberry.schema.schema, "validate_document", counted)
    return seen


async def post(client: httpx.AsyncClient, query: str, variables: Any, **token: Any) -> Any:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=bearer(**token)
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_cached_document_answers_as_a_fresh_one_without_parsing_or_validating_again(
    served: tuple[httpx.AsyncClient, Any], db: Database, validations: list[Any]
) -> None:
    client, app = served
    cache = cache_of(app, "medical_insurance")
    [person] = await add_people(db, 1, claims_each=2)
    first = await post(client, PERSON, {"n": person.id_number})
    assert "errors" not in first, first
    assert len(first["data"]["beneficiary"]["claims"]["edges"]) == 2
    hits = cache.hits
    again = await post(client, PERSON, {"n": person.id_number})
    assert again == first
    assert cache.hits == hits + 1
    assert len(validations) == 1  # the second request skipped validation
    # the cache keeps hashes and documents, never the text
    assert all(isinstance(key[0], bytes) and len(key[0]) == 32 for key in cache._entries)
    assert 0 < cache.size <= Settings().document_cache_bytes


async def test_another_department_is_refused_the_same_document(
    served: tuple[httpx.AsyncClient, Any], db: Database
) -> None:
    client, _ = served
    [person] = await add_people(db, 1, claims_each=1)
    for _ in range(2):
        assert "errors" not in await post(client, PERSON, {"n": person.id_number})
    for _ in range(2):  # the dashboard may read no person at all
        body = await post(
            client, PERSON, {"n": person.id_number}, department="dashboard", org="dash"
        )
        assert body["data"] is None
        [error] = body["errors"]
        assert error["extensions"]["code"] == "FORBIDDEN"
        assert "beneficiary" in error["extensions"]["forbidden"]
    # the insurer: personal data needs a token with its purpose, cached document or not
    for purpose in ("claim_handling", None, "claim_handling", None):
        body = await post(
            client, MASKED, {"n": person.id_number}, department="insurer", org="ins-1",
            purpose=purpose,
        )  # fmt: skip
        codes = [e["extensions"]["code"] for e in body.get("errors", [])]
        assert ("FORBIDDEN" in codes) == (purpose is None), body


async def test_a_cached_document_still_gets_the_limits_of_its_variables(
    served: tuple[httpx.AsyncClient, Any], db: Database, validations: list[Any]
) -> None:
    client, app = served
    [person] = await add_people(db, 1, claims_each=2)
    query = sized_amplifier()
    small = {"n": person.id_number, "size": 20}
    large = {"n": person.id_number, "size": 100}
    allowed = await post(client, query, small)
    assert "errors" not in allowed, allowed
    for _ in range(2):
        body = await post(client, query, large)
        assert body["data"] is None
        [error] = body["errors"]
        assert error["extensions"]["limits"] == {"MEDGW_MAX_QUERY_COST": amplifier_cost(100, 100)}
    assert await post(client, query, small) == allowed
    assert len(validations) == 1
    assert cache_of(app, "medical_insurance").hits >= 3


async def test_invalid_documents_are_not_kept_and_fail_every_time(
    served: tuple[httpx.AsyncClient, Any], validations: list[Any]
) -> None:
    client, app = served
    cache = cache_of(app, "medical_insurance")
    held = len(cache)
    for _ in range(2):
        body = await post(client, "query { beneficiary(idNumber: 1) { name } }", {})
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "BAD_INPUT"
    for _ in range(2):
        body = await post(client, "query { beneficiary(", {})
        assert body["data"] is None
    assert len(validations) == 2
    assert len(cache) == held + 1  # the parsed but invalid document; never marked valid


def test_the_cache_stays_within_its_bytes_and_keeps_nothing_at_zero() -> None:
    document = graphql.parse("{ a }")
    cache = QueryCache(max_bytes=10_000)
    for i in range(100):
        text = "{ a }" + " " * i
        cache.put(cache.key(text, {}), text, document)
    assert cache.size <= 10_000
    assert 0 < len(cache) < 100
    nothing = QueryCache(max_bytes=0)
    assert nothing.put(nothing.key("{ a }", {}), "{ a }", document) is None
    assert len(nothing) == 0
