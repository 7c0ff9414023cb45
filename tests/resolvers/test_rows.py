"""Row rules in SQL: a 5104 token never sees a 3708 person, an insurer never sees another
insurer's claims or the persons of those claims; a forbidden row looks like a missing one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from gateway.storage import models
from gateway.storage.database import Database
from tests.conftest import GraphQLClient
from tests.factories import add_people

PANZHIHUA = {"regions": ("5104",)}


async def two_regions(db: Database) -> tuple[models.Beneficiary, models.Beneficiary]:
    [here] = await add_people(db, 1, region="510402", claims_each=1)
    [there] = await add_people(db, 1, region="370811", claims_each=1, start=7)
    async with db.transaction() as session:
        for person in (here, there):
            session.add(
                models.HighCostAlert(
                    beneficiary_id=person.id,
                    year=2023,
                    out_of_pocket=Decimal("30000.00"),
                    threshold=Decimal("21000.00"),
                )
            )
            session.add(
                models.Ledger(
                    beneficiary_id=person.id,
                    year=2023,
                    state={},
                    visits=1,
                    total_cost=Decimal("1000.00"),
                    assistance=Decimal("100.00"),
                    updated_at=datetime.now(UTC),
                )
            )
    return here, there


def ids(edges: Sequence[dict[str, Any]]) -> list[str]:
    return [e["node"]["id"] for e in edges]


async def test_point_lookups_do_not_cross_regions(gql: GraphQLClient, db: Database) -> None:
    here, there = await two_regions(db)
    query = "query($id: ID, $n: String) { beneficiary(id: $id, idNumber: $n) { id } }"
    for department in ("medical_insurance", "civil_affairs", "rural_revitalisation"):
        token = {"department": department, **PANZHIHUA}
        assert await gql.data(query, {"id": str(there.id)}, **token) == {"beneficiary": None}
        assert await gql.data(query, {"n": there.id_number}, **token) == {"beneficiary": None}
        found = await gql.data(query, {"n": here.id_number}, **token)
        assert found["beneficiary"]["id"] == str(here.id)


async def test_lists_nested_lists_and_claims_stay_in_region(
    gql: GraphQLClient, db: Database
) -> None:
    here, _ = await two_regions(db)
    people = await gql.data(
        "{ beneficiaries(first: 50) { edges { node { id regionCode } } } }", **PANZHIHUA
    )
    assert ids(people["beneficiaries"]["edges"]) == [str(here.id)]
    claims = await gql.data(
        "{ claims(first: 50) { edges { node { claimNumber beneficiary { regionCode } } } } }",
        **PANZHIHUA,
    )
    regions = [e["node"]["beneficiary"]["regionCode"] for e in claims["claims"]["edges"]]
    assert regions == ["510402"]
    alerts = await gql.data(
        "{ highCostAlerts(first: 50) { edges { node { beneficiary { regionCode } } } } }",
        **PANZHIHUA,
    )
    assert [e["node"]["beneficiary"]["regionCode"] for e in alerts["highCostAlerts"]["edges"]] == [
        "510402"
    ]


async def test_a_claim_of_another_region_looks_missing(gql: GraphQLClient, db: Database) -> None:
    _, there = await two_regions(db)
    number = f"C-{there.id.hex[:8]}-0"
    query = "query($n: String!) { claim(claimNumber: $n) { claimNumber } }"
    assert await gql.data(query, {"n": number}, **PANZHIHUA) == {"claim": None}
    found = await gql.data(query, {"n": number}, regions=("3708",))
    assert found["claim"]["claimNumber"] == number


async def test_aggregates_count_only_the_token_regions(gql: GraphQLClient, db: Database) -> None:
    await two_regions(db)
    query = (
        "{ statistics(year: 2023) { persons claims assistance byCategory { category persons } } }"
    )
    local = (await gql.data(query, department="finance", **PANZHIHUA))["statistics"]
    both = (await gql.data(query, department="finance", regions=("5104", "3708")))["statistics"]
    assert (local["persons"], local["claims"], local["assistance"]) == (1, 1, "100.00")
    assert (both["persons"], both["claims"], both["assistance"]) == (2, 2, "200.00")
    assert {"category": "MINIMUM_LIVING", "persons": 1} in local["byCategory"]
    # A prefix outside the token is FORBIDDEN, not zeros that look real (issue 10, point 7).
    outside = await gql.error(
        '{ statistics(year: 2023, regionPrefix: "3708") { persons } }',
        department="dashboard",
        **PANZHIHUA,
    )
    assert (outside["extensions"]["code"], outside["extensions"]["value"]) == ("FORBIDDEN", "3708")


INSURER = """{ claims(first: 50) { edges { node { claimNumber carrier
  beneficiary { id name idNumber } } } } }"""


async def test_an_insurer_sees_only_the_claims_it_carries(gql: GraphQLClient, db: Database) -> None:
    a_people = await add_people(db, 2, claims_each=2, carrier="insurer-a")
    b_people = await add_people(db, 1, claims_each=3, carrier="insurer-b", start=20)
    token = {"department": "insurer", "org": "insurer-a", "purpose": "claim_handling"}
    data = await gql.data(INSURER, **token)
    edges = data["claims"]["edges"]
    assert len(edges) == 4
    assert {e["node"]["carrier"] for e in edges} == {"insurer-a"}
    assert {e["node"]["beneficiary"]["id"] for e in edges} == {str(p.id) for p in a_people}
    # Masked, never in the clear.
    assert all(e["node"]["beneficiary"]["name"].endswith("*") for e in edges)
    b_claim = f"C-{b_people[0].id.hex[:8]}-0"
    missing = await gql.data(
        "query($n: String!) { claim(claimNumber: $n) { claimNumber } }", {"n": b_claim}, **token
    )
    assert missing == {"claim": None}


async def test_an_insurer_sees_only_the_persons_of_its_claims(
    gql: GraphQLClient, db: Database
) -> None:
    [mine] = await add_people(db, 1, claims_each=1, carrier="insurer-a")
    [theirs] = await add_people(db, 1, claims_each=1, carrier="insurer-b", start=30)
    [nobody] = await add_people(db, 1, start=40)
    token = {"department": "insurer", "org": "insurer-a", "purpose": "claim_handling"}
    listed = await gql.data("{ beneficiaries(first: 50) { edges { node { id } } } }", **token)
    assert ids(listed["beneficiaries"]["edges"]) == [str(mine.id)]
    for person in (theirs, nobody):
        found = await gql.data(
            "query($n: String) { beneficiary(idNumber: $n) { id } }",
            {"n": person.id_number},
            **token,
        )
        assert found == {"beneficiary": None}


async def test_nested_claims_of_a_shared_person_show_only_the_insurers_own(
    gql: GraphQLClient, db: Database
) -> None:
    [person] = await add_people(db, 1, claims_each=2, carrier="insurer-a")
    async with db.transaction() as session:
        session.add(
            models.Claim(
                claim_number="B-ONLY",
                beneficiary_id=person.id,
                year=2023,
                type="INPATIENT",
                hospital_level="PRIMARY",
                admission_date=datetime(2023, 6, 1).date(),
                discharge_date=datetime(2023, 6, 2).date(),
                total_cost=Decimal("10.00"),
                policy_scope_cost=Decimal("10.00"),
                referral_compliant=True,
                in_province=True,
                special_treatment_hospital=False,
                carrier="insurer-b",
                content_hash="x" * 64,
            )
        )
    query = """query($n: String) { beneficiary(idNumber: $n) {
      claims(first: 10) { edges { node { claimNumber carrier } } } } }"""
    token = {"department": "insurer", "org": "insurer-a", "purpose": "claim_handling"}
    seen = await gql.data(query, {"n": person.id_number}, **token)
    carriers = [e["node"]["carrier"] for e in seen["beneficiary"]["claims"]["edges"]]
    assert carriers == ["insurer-a", "insurer-a"]
    everything = await gql.data(query, {"n": person.id_number})
    assert len(everything["beneficiary"]["claims"]["edges"]) == 3


async def test_filtering_on_data_the_caller_may_not_read_is_refused(
    gql: GraphQLClient, db: Database
) -> None:
    await add_people(db, 2, claims_each=1, carrier="insurer-a")
    token = {"department": "insurer", "org": "insurer-a", "purpose": "claim_handling"}
    error = await gql.error(
        "{ beneficiaries(category: MINIMUM_LIVING) { edges { node { id } } } }", **token
    )
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["extensions"]["forbidden"] == ["beneficiaries(category)"]
    allowed = await gql.data(
        "{ beneficiaries(category: MINIMUM_LIVING) { edges { node { id } } } }",
        department="civil_affairs",
    )
    assert len(allowed["beneficiaries"]["edges"]) == 2
