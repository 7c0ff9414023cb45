"""The HTTP edge pieces (gateway/middleware.py) and the refusal cache (gateway/access.py), through
the real HTTP server where the behaviour is HTTP."""

from __future__ import annotations

import graphql
import httpx

from gateway.access import RefusalCache


async def test_health_checks_and_unknown_paths_carry_a_request_id_too(
    http: httpx.AsyncClient,
) -> None:
    ids = set()
    for path in ("/healthz", "/readyz", "/graphql", "/nowhere"):
        response = await http.get(path)
        assert len(response.headers["x-request-id"]) == 32, path
        ids.add(response.headers["x-request-id"])
    assert len(ids) == 4


async def test_a_refused_token_says_which_scheme_to_use(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/graphql",
        json={"query": "{ benefitPolicies { id } }"},
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="medgw"'
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert response.json()["data"] is None


def test_the_refusal_cache_keeps_hashes_not_queries_and_stays_within_its_bytes() -> None:
    cache = RefusalCache(max_bytes=10_000)
    computed: list[str] = []

    def answer(query: str) -> graphql.GraphQLError | None:
        computed.append(query)
        return graphql.GraphQLError("no") if "secret" in query else None

    for i in range(1_000):
        query = f'{{ beneficiary(idNumber: "{i:018d}") {{ name }} }}'
        cache.get(query, None, None, lambda q=query: answer(q))
    assert len(computed) == 1_000
    assert cache.size <= 10_000
    assert 0 < len(cache) < 100
    # A query asked again while it is still held is not checked again.
    last = f'{{ beneficiary(idNumber: "{999:018d}") {{ name }} }}'
    cache.get(last, None, None, lambda: answer(last))
    assert len(computed) == 1_000
    # The purpose is part of the key: the same text with another purpose is checked anew.
    cache.get(last, None, "claim_handling", lambda: answer(last))
    assert len(computed) == 1_001
    # Only digests are kept: no query text is in the cache.
    assert all(isinstance(key[0], bytes) and len(key[0]) == 32 for key in cache._cache)
