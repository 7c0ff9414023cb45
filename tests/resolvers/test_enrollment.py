"""Enrollment does not depend on assistance policies (issue 10, point 9): a region or year no
policy covers is enrolled with no subsidy, and the split says so."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from gateway.storage import models
from gateway.storage.database import Database
from tests.conftest import GraphQLClient
from tests.factories import category_document

ENROLL = """mutation($i: RecordEnrollmentInput!) { recordEnrollment(input: $i) {
  year contribution subsidy { policy category assistanceFund finance individual } } }"""


async def person(gql: GraphQLClient, number: str, region: str, category: str) -> None:
    await gql.data(
        "mutation($i: RegisterBeneficiaryInput!) { registerBeneficiary(input: $i) { id } }",
        {"i": {"idNumber": number, "name": "赵六", "regionCode": region}},
        regions=(region[:2],),
    )
    await gql.data(
        category_document("MINIMUM_LIVING"),
        {
            "i": {
                "idNumber": number,
                "category": category,
                "validFrom": "2020-01-01",
                "reference": "R1",
            }
        },
        department="civil_affairs",
        regions=(region[:2],),
    )


@pytest.mark.parametrize(
    ("number", "region", "year", "enrolled_on"),
    [
        ("110101197001010139", "110101", 2024, "2023-12-01"),  # Beijing: no policy at all
        ("510402197001010013", "510402", 2022, "2021-12-01"),  # 攀枝花 before its 2023 policy
    ],
    ids=["region-without-policy", "year-before-policy"],
)
async def test_enrollment_without_an_assistance_policy_is_stored_without_subsidy(
    gql: GraphQLClient, db: Database, number: str, region: str, year: int, enrolled_on: str
) -> None:
    # An orphan would be fully subsidised where a policy applies; here nothing is.
    await person(gql, number, region, "ORPHAN")
    enrollment = {
        "idNumber": number,
        "year": year,
        "contribution": "380",
        "enrolledOn": enrolled_on,
    }
    data = await gql.data(ENROLL, {"i": enrollment}, regions=(region[:2],))
    assert data["recordEnrollment"] == {
        "year": year,
        "contribution": "380.00",
        "subsidy": {
            "policy": None,
            "category": None,
            "assistanceFund": "0.00",
            "finance": "0.00",
            "individual": "380.00",
        },
    }
    async with db.sessions() as session:
        [row] = (await session.scalars(select(models.Enrollment))).all()
    assert (row.year, row.contribution, row.subsidy_policy, row.subsidy_category) == (
        year,
        Decimal("380.00"),
        None,
        None,
    )
    assert (row.subsidy_assistance_fund, row.subsidy_finance, row.subsidy_individual) == (
        Decimal("0.00"),
        Decimal("0.00"),
        Decimal("380.00"),
    )
    # The same enrollment again is answered from what is stored.
    again = await gql.data(ENROLL, {"i": enrollment}, regions=(region[:2],))
    assert again == data
