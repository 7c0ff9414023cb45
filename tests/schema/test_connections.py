"""Relay connections through the API: totalCount over the filtered rows, pageInfo both ways,
and the sort orders of claims (admission date) and alerts (out-of-pocket), paged to the end."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

from gateway.storage import models
from gateway.storage.database import Database
from tests.conftest import GraphQLClient
from tests.factories import add_people

CLAIMS = """query($first: Int!, $after: String, $year: Int, $order: ClaimOrder) {
  claims(first: $first, after: $after, year: $year, orderBy: $order) {
    totalCount
    edges { cursor node { claimNumber admissionDate } }
    pageInfo { hasNextPage endCursor hasPreviousPage startCursor } } }"""

ALERTS = """query($first: Int!, $after: String, $order: AlertOrder) {
  highCostAlerts(first: $first, after: $after, orderBy: $order) {
    totalCount
    edges { cursor node { id outOfPocket } }
    pageInfo { hasNextPage endCursor hasPreviousPage startCursor } } }"""


async def pages(
    gql: GraphQLClient, query: str, field: str, first: int, **variables: Any
) -> list[dict[str, Any]]:
    """Every page of ``field``, following endCursor until hasNextPage is false."""
    found: list[dict[str, Any]] = []
    after = None
    while True:
        page = (await gql.data(query, {"first": first, "after": after, **variables}))[field]
        found.append(page)
        if not page["pageInfo"]["hasNextPage"]:
            return found
        after = page["pageInfo"]["endCursor"]


async def test_total_count_and_page_info_of_claims(gql: GraphQLClient, db: Database) -> None:
    await add_people(db, 2, claims_each=3, year=2023)
    await add_people(db, 1, claims_each=2, year=2024, start=10)
    first, second, third = await pages(gql, CLAIMS, "claims", 2, year=2023, order="ID")
    assert [p["totalCount"] for p in (first, second, third)] == [6, 6, 6]  # year filter applies
    assert first["pageInfo"] == {
        "hasNextPage": True,
        "endCursor": first["edges"][1]["cursor"],
        "hasPreviousPage": False,
        "startCursor": first["edges"][0]["cursor"],
    }
    assert second["pageInfo"]["hasPreviousPage"] is True
    assert second["pageInfo"]["startCursor"] == second["edges"][0]["cursor"]
    assert third["pageInfo"]["hasNextPage"] is False
    everything = await gql.data(CLAIMS, {"first": 50, "order": "ID"})
    assert everything["claims"]["totalCount"] == 8
    # The id order keeps its cursors: claim:<id>.
    cursor = base64.urlsafe_b64decode(first["edges"][0]["cursor"]).decode()
    assert cursor.startswith("claim:")
    assert cursor.removeprefix("claim:").isdigit()


async def test_an_empty_page_has_no_cursors(gql: GraphQLClient, db: Database) -> None:
    page = (await gql.data(CLAIMS, {"first": 5, "year": 2031, "order": "ID"}))["claims"]
    assert page == {
        "totalCount": 0,
        "edges": [],
        "pageInfo": {
            "hasNextPage": False,
            "endCursor": None,
            "hasPreviousPage": False,
            "startCursor": None,
        },
    }


async def test_total_count_of_a_persons_claims(gql: GraphQLClient, db: Database) -> None:
    people = await add_people(db, 3, claims_each=4, year=2023)
    query = """query($id: ID!, $after: String) { beneficiary(id: $id) {
      claims(first: 3, after: $after) { totalCount edges { cursor }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }"""
    page = (await gql.data(query, {"id": str(people[1].id)}))["beneficiary"]["claims"]
    assert page["totalCount"] == 4
    assert page["pageInfo"]["hasPreviousPage"] is False
    after = page["pageInfo"]["endCursor"]
    rest = (await gql.data(query, {"id": str(people[1].id), "after": after}))["beneficiary"]
    assert rest["claims"]["totalCount"] == 4
    assert len(rest["claims"]["edges"]) == 1
    assert rest["claims"]["pageInfo"]["hasPreviousPage"] is True
    persons = """{ beneficiaries(first: 2) { totalCount
      edges { node { claims(first: 1, year: 2023) { totalCount } } } } }"""
    found = (await gql.data(persons))["beneficiaries"]
    assert found["totalCount"] == 3
    assert [e["node"]["claims"]["totalCount"] for e in found["edges"]] == [4, 4]


async def test_claims_by_admission_date_page_through_every_row_once_in_order(
    gql: GraphQLClient, db: Database
) -> None:
    # Each person's n-th claim is admitted on 1 + n March: three claims share each date, so
    # the id breaks the ties and a page boundary falls inside a date.
    await add_people(db, 3, claims_each=3, year=2023)
    everything = (await gql.data(CLAIMS, {"first": 50, "order": "ID"}))["claims"]["edges"]
    admitted = {e["node"]["claimNumber"]: e["node"]["admissionDate"] for e in everything}
    ids = [e["node"]["claimNumber"] for e in everything]  # in id order
    for order, reverse in (("ADMISSION_DATE_ASC", False), ("ADMISSION_DATE_DESC", True)):
        found = await pages(gql, CLAIMS, "claims", 2, order=order)
        assert len(found) == 5
        assert {p["totalCount"] for p in found} == {9}
        numbers = [e["node"]["claimNumber"] for p in found for e in p["edges"]]
        expected = sorted(ids, key=lambda n: (admitted[n], ids.index(n)), reverse=reverse)
        assert numbers == expected
        assert [admitted[n] for n in numbers[:4]] == (
            ["2023-03-03"] * 3 + ["2023-03-02"] if reverse else ["2023-03-01"] * 3 + ["2023-03-02"]
        )


async def test_a_cursor_of_another_order_is_bad_input(gql: GraphQLClient, db: Database) -> None:
    await add_people(db, 1, claims_each=3, year=2023)
    page = (await gql.data(CLAIMS, {"first": 1, "order": "ADMISSION_DATE_ASC"}))["claims"]
    cursor = page["edges"][0]["cursor"]
    assert (
        base64.urlsafe_b64decode(cursor)
        .decode()
        .startswith("claim by ADMISSION_DATE_ASC:2023-03-01,")
    )
    for order in ("ID", "ADMISSION_DATE_DESC"):
        error = await gql.error(CLAIMS, {"first": 1, "after": cursor, "order": order})
        assert error["extensions"]["code"] == "BAD_INPUT"
        assert error["extensions"]["field"] == "after"
    forged = base64.urlsafe_b64encode(b"claim by ADMISSION_DATE_ASC:2023-02-31,5").decode()
    error = await gql.error(CLAIMS, {"first": 1, "after": forged, "order": "ADMISSION_DATE_ASC"})
    assert error["message"] == (
        f"after = {forged}: not a claim by ADMISSION_DATE_ASC cursor of this API"
    )


async def test_alerts_by_out_of_pocket_page_through_every_row_once_in_order(
    gql: GraphQLClient, db: Database
) -> None:
    people = await add_people(db, 4)
    amounts = ["30000.00", "12000.50", "30000.00", "45000.00", "12000.50", "8000.00"]
    async with db.transaction() as session:
        session.add_all(
            models.HighCostAlert(
                beneficiary_id=people[i % 4].id,
                year=2023 + i // 4,
                out_of_pocket=Decimal(amount),
                threshold=Decimal("7000.00"),
            )
            for i, amount in enumerate(amounts)
        )
    by_id = (await gql.data(ALERTS, {"first": 50, "order": "ID"}))["highCostAlerts"]["edges"]
    ids = [int(e["node"]["id"]) for e in by_id]
    assert [e["node"]["outOfPocket"] for e in by_id] == amounts
    for order, reverse in (("OUT_OF_POCKET_DESC", True), ("OUT_OF_POCKET_ASC", False)):
        found = await pages(gql, ALERTS, "highCostAlerts", 4, order=order)
        assert [p["totalCount"] for p in found] == [6, 6]
        got = [
            (Decimal(e["node"]["outOfPocket"]), int(e["node"]["id"]))
            for p in found
            for e in p["edges"]
        ]
        assert got == sorted(zip(map(Decimal, amounts), ids, strict=True), reverse=reverse)
    largest = await gql.data(ALERTS, {"first": 1, "order": "OUT_OF_POCKET_DESC"})
    assert largest["highCostAlerts"]["edges"][0]["node"]["outOfPocket"] == "45000.00"
