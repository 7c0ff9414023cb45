"""The HTTP surface over a real server: health, readiness, GraphiQL, request hygiene."""

from __future__ import annotations

import httpx
import pytest

from gateway.config import Settings
from gateway.storage.database import Database
from policies.benefits import PolicySet
from tests.conftest import bearer, in_process


async def test_healthz_answers_while_the_process_lives(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_answers_when_the_database_does(http: httpx.AsyncClient) -> None:
    response = await http.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_readyz_is_503_when_the_database_is_down(
    settings: Settings, policies: PolicySet
) -> None:
    broken = Database.connect("postgresql+asyncpg://nobody@127.0.0.1:1/none", settings)
    async with in_process(settings, broken, policies) as client:
        response = await client.get("/readyz")
    await broken.dispose()
    assert response.status_code == 503
    assert response.json()["status"] == "database unavailable"


async def test_graphiql_is_served_on_get_in_development(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_no_graphiql_in_production(
    settings: Settings, db: Database, policies: PolicySet
) -> None:
    production = settings.model_copy(update={"env": "production"})
    async with in_process(production, db, policies) as client:
        response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 404


async def test_every_response_carries_a_request_id(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql", json={"query": "{ beneficiaries { edges { cursor } } }"}, headers=bearer()
    )
    assert response.status_code == 200
    assert len(response.headers["x-request-id"]) == 32


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_posts_that_are_not_json_are_refused(
    http: httpx.AsyncClient, content_type: str
) -> None:
    response = await http.post(
        "/graphql",
        content=b'{"query": "{ beneficiaries { edges { cursor } } }"}',
        headers={**bearer(), "Content-Type": content_type},
    )
    assert response.status_code == 415
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_INPUT"
