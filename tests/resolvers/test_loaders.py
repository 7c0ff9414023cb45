"""No N+1: the statements of a page do not grow with its size."""

from __future__ import annotations

from collections.abc import Callable

from gateway.storage.database import Database
from tests.conftest import GraphQLClient, StatementCounter
from tests.factories import add_people

NESTED = """query($first: Int!) { beneficiaries(first: $first) { edges { node {
  name identities { category } monitoringFlags { category } enrollments { year }
  claims(first: 5) { edges { node { claimNumber totalCost } } } } } } }"""


async def statements_for(
    gql: GraphQLClient, count_statements: Callable[[], StatementCounter], first: int
) -> int:
    counter = count_statements()
    data = await gql.data(NESTED, {"first": first})
    edges = data["beneficiaries"]["edges"]
    assert len(edges) == first
    assert all(len(e["node"]["claims"]["edges"]) == 2 for e in edges)
    assert all(e["node"]["identities"] == [{"category": "MINIMUM_LIVING"}] for e in edges)
    return len(counter)


async def test_nested_lists_cost_the_same_statements_at_page_size_10_and_100(
    gql: GraphQLClient, db: Database, count_statements: Callable[[], StatementCounter]
) -> None:
    await add_people(db, 100, claims_each=2)
    small = await statements_for(gql, count_statements, 10)
    large = await statements_for(gql, count_statements, 100)
    print(f"statements: page 10 -> {small}, page 100 -> {large}")
    assert small == large
    assert small <= 8
