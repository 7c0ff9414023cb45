"""Every example of ../shared/spec/examples, settled visit by visit through the GraphQL API:
the person registered, categories recorded by their departments, enrollment recorded, then one
settleClaim per visit. The answers must equal the contract exactly."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from gateway.resident_id import check_character
from tests.conftest import GraphQLClient
from tests.factories import category_document, recorder
from tests.spec.examples import load_examples

EXAMPLES = load_examples()
KEYS = [
    "id",
    "policy",
    "category",
    "basicInsurance",
    "criticalIllness",
    "inclusiveCommercial",
    "assistance",
    "secondaryAssistance",
    "outOfPocket",
]
SETTLE = """mutation($i: SettleClaimInput!) { settleClaim(input: $i) {
  claimNumber policy category basicInsurance criticalIllness inclusiveCommercial assistance
  secondaryAssistance outOfPocket } }"""
MI = {"department": "medical_insurance", "regions": ("5104", "3708", "32", "43")}


def id_number_for(region: str, birth: str) -> str:
    first17 = f"{region}{date.fromisoformat(birth):%Y%m%d}001"
    return first17 + check_character(first17)


async def load_person(gql: GraphQLClient, person: dict[str, Any], years: set[int]) -> str:
    number = id_number_for(person["regionCode"], person["birthDate"])
    await gql.data(
        """mutation($i: RegisterBeneficiaryInput!) { registerBeneficiary(input: $i) { id } }""",
        {"i": {"idNumber": number, "name": "示例", "regionCode": person["regionCode"]}},
        **MI,
    )
    for i, record in enumerate(person.get("categories", [])):
        await gql.data(
            category_document(record["category"]),
            {
                "i": {
                    "idNumber": number,
                    "category": record["category"],
                    "validFrom": record["validFrom"],
                    "validTo": record.get("validTo"),
                    "reference": f"R{i}",
                    # Replaying history: a case file's absent decidedOn means "on validTo"
                    # (§8), the API's default is today (§9.2).
                    "decidedOn": record.get("decidedOn")
                    or record.get("validTo")
                    or record["validFrom"],
                }
            },
            department=recorder(record["category"]),
        )
    if person.get("insured", True):
        for year in sorted(years):
            await gql.data(
                """mutation($i: RecordEnrollmentInput!) { recordEnrollment(input: $i) { year } }""",
                {
                    "i": {
                        "idNumber": number,
                        "year": year,
                        "contribution": "380.00",
                        "inclusiveCommercial": person.get("inclusiveCommercial", False),
                        "enrolledOn": f"{year - 1}-12-01",
                    }
                },
                **MI,
            )
    return number


def claim_input(
    number: str, stem: str, visit: dict[str, Any], insured: bool = True
) -> dict[str, Any]:
    data = {
        "claimNumber": f"{stem}-{visit['id']}",
        "idNumber": number,
        **{k: v for k, v in visit.items() if k != "id"},
    }
    if not insured:
        data["insured"] = False
    return data


@pytest.mark.parametrize(("stem", "example"), EXAMPLES, ids=[stem for stem, _ in EXAMPLES])
async def test_example_settled_one_by_one_through_the_api(
    gql: GraphQLClient, stem: str, example: dict[str, Any]
) -> None:
    case = example["case"]
    years = {date.fromisoformat(v["admissionDate"]).year for v in case["visits"]}
    number = await load_person(gql, case["person"], years)
    got = []
    for visit in case["visits"]:
        insured = case["person"].get("insured", True)
        claim = claim_input(number, stem, visit, insured)
        settled = (await gql.data(SETTLE, {"i": claim}, **MI))["settleClaim"]
        got.append({"id": visit["id"], **{k: settled[k] for k in KEYS[1:]}})
    want = [{k: v.get(k) for k in KEYS} for v in example["expected"]["visits"]]
    assert got == want
