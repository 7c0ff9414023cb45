"""No N+1: the statements of a page do not grow with its size."""

from __future__ import annotations

from collections.abc import Callable

import pytest

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


SHARED = {
    "identities": "identities { id category }",
    "monitoringFlags": "monitoringFlags { id category }",
    "enrollments": "enrollments { year }",
    "claims": "claims { totalCount edges { node { claimNumber } } }",
}


@pytest.mark.parametrize("field", sorted(SHARED))
async def test_a_failing_field_does_not_cancel_what_another_field_loads(
    gql: GraphQLClient, db: Database, field: str
) -> None:
    """graphql-core cancels the pending siblings of a field whose error nulls their parent; a
    loader's future is shared by every field that loads the same key, so another root field
    waiting on it must still get the request's answer, never a cancelled request (it ended in
    CancelledError and HTTP 500). ``claims(first: 0)`` is refused as BAD_INPUT (a refused
    argument is not compiled: the resolvers answer with or without the read compiler)."""
    people = await add_people(db, 3, claims_each=2)
    document = f"""query {{
      a: beneficiary(idNumber: "{people[0].id_number}") {{ idNumber {SHARED[field]} }}
      b: beneficiaries {{ edges {{ node {{ idNumber {SHARED[field]}
        refused: claims(first: 0) {{ totalCount }} }} }} }}
    }}"""
    for _ in range(3):
        error = await gql.error(document)
        assert error["extensions"] == {"code": "BAD_INPUT", "field": "first", "value": 0}
        assert error["path"][0] == "b"
        assert error["path"][-1] == "refused"
    # The same loaders still answer, and both root fields agree on the person.
    data = await gql.data(document.replace("(first: 0)", "(first: 1)"))
    nodes = {e["node"]["idNumber"]: e["node"] for e in data["b"]["edges"]}
    assert len(nodes) == 3
    assert data["a"][field] == nodes[people[0].id_number][field]
    assert data["a"][field] not in ([], None)


OTHER_ROOTS = [
    "highCostAlerts(year: 2023) { edges { node { id } } }",
    "claims(year: 2023) { edges { node { claimNumber "
    "settlement { explanation { __typename } } } } }",
    'claim(claimNumber: "C-none") { claimNumber }',
    "lateNews { edges { node { id } } }",
    "recoveries { edges { node { id } } }",
    "statistics(year: 2023) { __typename }",
]


@pytest.mark.parametrize("sibling", OTHER_ROOTS)
async def test_a_failing_field_answers_next_to_any_root_field(
    gql: GraphQLClient, db: Database, sibling: str
) -> None:
    """The same kind of fault by other paths: root fields that query directly (not through a
    loader) and a person's ``yearlySummary``, cancelled while a sibling's error nulls ``data``,
    still end in the request's BAD_INPUT answer, never a failed request."""
    people = await add_people(db, 3, claims_each=2)
    document = (
        f'query {{ a: {sibling} p: beneficiary(idNumber: "{people[0].id_number}") '
        "{ yearlySummary(year: 2023) { __typename } identities { id } } "
        "b: beneficiaries { edges { node { identities { id } "
        "refused: claims(first: 0) { totalCount } } } } }"
    )
    for _ in range(3):
        error = await gql.error(document)
        assert error["extensions"] == {"code": "BAD_INPUT", "field": "first", "value": 0}
        assert error["path"][-1] == "refused"
