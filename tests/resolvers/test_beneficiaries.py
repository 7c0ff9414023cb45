"""Reading persons: lookups, pages, filters, nested lists, row rules by region."""

from __future__ import annotations

from gateway.storage.database import Database
from tests.conftest import GraphQLClient
from tests.factories import add_people

PAGE = """query($first: Int!, $after: String, $region: String, $category: Category) {
  beneficiaries(first: $first, after: $after, regionPrefix: $region, category: $category) {
    edges { cursor node { id name regionCode } }
    pageInfo { hasNextPage endCursor } } }"""


async def test_lookup_by_id_and_by_id_number_find_the_same_person(
    gql: GraphQLClient, db: Database
) -> None:
    [person] = await add_people(db, 1)
    query = """query($id: ID, $n: String) { beneficiary(id: $id, idNumber: $n) {
      id idNumber name gender birthDate regionCode
      identities { category validFrom validTo reference }
      monitoringFlags { category validFrom }
      enrollments { year contribution subsidy { assistanceFund individual } } } }"""
    by_id = await gql.data(query, {"id": str(person.id)})
    by_number = await gql.data(query, {"n": person.id_number})
    assert by_id == by_number
    found = by_id["beneficiary"]
    assert found["idNumber"] == person.id_number
    assert found["identities"] == [
        {
            "category": "MINIMUM_LIVING",
            "validFrom": "2020-01-01",
            "validTo": None,
            "reference": "R0",
        }
    ]
    assert found["monitoringFlags"] == [{"category": "MONITORED", "validFrom": "2021-01-01"}]
    assert found["enrollments"] == [
        {
            "year": 2023,
            "contribution": "380.00",
            "subsidy": {"assistanceFund": "285.00", "individual": "95.00"},
        }
    ]


async def test_lookup_needs_exactly_one_key(gql: GraphQLClient) -> None:
    for args in ("", '(id: "x", idNumber: "y")'):
        error = await gql.error(f"{{ beneficiary{args} {{ id }} }}")
        assert error["extensions"]["code"] == "BAD_INPUT"


async def test_a_malformed_id_is_bad_input_naming_it(gql: GraphQLClient) -> None:
    error = await gql.error('{ beneficiary(id: "not-a-uuid") { id } }')
    assert error["extensions"]["code"] == "BAD_INPUT"
    assert "id = not-a-uuid" in error["message"]


async def test_a_person_of_another_region_is_indistinguishable_from_a_missing_one(
    gql: GraphQLClient, db: Database
) -> None:
    [person] = await add_people(db, 1, region="370811")
    query = "query($n: String) { beneficiary(idNumber: $n) { id } }"
    assert await gql.data(query, {"n": person.id_number}, regions=("5104",)) == {
        "beneficiary": None
    }
    assert await gql.data(query, {"n": "510402197001010013"}, regions=("5104",)) == {
        "beneficiary": None
    }
    found = await gql.data(query, {"n": person.id_number}, regions=("3708",))
    assert found["beneficiary"]["id"] == str(person.id)


async def test_pages_walk_every_person_once_in_id_order(gql: GraphQLClient, db: Database) -> None:
    people = await add_people(db, 7)
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        data = (await gql.data(PAGE, {"first": 3, "after": after}))["beneficiaries"]
        seen.extend(edge["node"]["id"] for edge in data["edges"])
        pages += 1
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]
    assert pages == 3
    assert seen == sorted(str(p.id) for p in people)


async def test_page_size_is_capped(gql: GraphQLClient) -> None:
    for first in (0, 101, -1):
        error = await gql.error(PAGE, {"first": first})
        assert error["extensions"]["code"] == "BAD_INPUT"
        assert f"first = {first}" in error["message"]


async def test_a_foreign_cursor_is_bad_input(gql: GraphQLClient) -> None:
    error = await gql.error(PAGE, {"first": 3, "after": "Y2xhaW06NDI="})
    assert error["extensions"]["code"] == "BAD_INPUT"
    assert error["extensions"]["field"] == "after"


async def test_region_prefix_narrows_within_the_token_regions(
    gql: GraphQLClient, db: Database
) -> None:
    await add_people(db, 2, region="510402")
    await add_people(db, 3, region="510411", start=10)
    await add_people(db, 4, region="370811", start=20)

    async def regions(**kwargs: object) -> list[str]:
        variables = {"first": 50, **{k: v for k, v in kwargs.items() if k != "token"}}
        token = kwargs.get("token", {})
        data = await gql.data(PAGE, variables, **token)  # type: ignore[arg-type]
        return sorted(e["node"]["regionCode"] for e in data["beneficiaries"]["edges"])

    assert await regions(region="510411") == ["510411"] * 3
    assert await regions(region="5104") == ["510402"] * 2 + ["510411"] * 3
    assert len(await regions()) == 9
    assert await regions(token={"regions": ("3708",)}) == ["370811"] * 4
    # Outside the token: FORBIDDEN, not an empty page that looks real (issue 10, point 7).
    outside = await gql.error(PAGE, {"first": 5, "region": "5104"}, regions=("3708",))
    assert (outside["extensions"]["code"], outside["extensions"]["value"]) == ("FORBIDDEN", "5104")
    error = await gql.error(PAGE, {"first": 5, "region": "51a"})
    assert error["extensions"]["field"] == "regionPrefix"


async def test_category_filter_keeps_persons_holding_it_today(
    gql: GraphQLClient, db: Database
) -> None:
    await add_people(db, 3)
    data = await gql.data(PAGE, {"first": 10, "category": "MINIMUM_LIVING"})
    assert len(data["beneficiaries"]["edges"]) == 3
    data = await gql.data(PAGE, {"first": 10, "category": "MONITORED"})
    assert len(data["beneficiaries"]["edges"]) == 3
    data = await gql.data(PAGE, {"first": 10, "category": "ORPHAN"})
    assert data["beneficiaries"]["edges"] == []


async def test_claims_of_a_person_are_paged_and_filtered_by_year(
    gql: GraphQLClient, db: Database
) -> None:
    [person] = await add_people(db, 1, claims_each=5)
    query = """query($id: ID, $year: Int, $after: String) { beneficiary(id: $id) {
      claims(year: $year, first: 2, after: $after) {
        edges { node { claimNumber admissionDate totalCost } } pageInfo { hasNextPage endCursor }
      } } }"""
    first = (await gql.data(query, {"id": str(person.id)}))["beneficiary"]["claims"]
    assert [e["node"]["admissionDate"] for e in first["edges"]] == ["2023-03-01", "2023-03-02"]
    assert first["edges"][0]["node"]["totalCost"] == "1000.00"
    assert first["pageInfo"]["hasNextPage"] is True
    rest = await gql.data(query, {"id": str(person.id), "after": first["pageInfo"]["endCursor"]})
    assert [e["node"]["admissionDate"] for e in rest["beneficiary"]["claims"]["edges"]] == [
        "2023-03-03",
        "2023-03-04",
    ]
    other_year = await gql.data(query, {"id": str(person.id), "year": 2022})
    assert other_year["beneficiary"]["claims"]["edges"] == []
