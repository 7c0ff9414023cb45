"""The shared input checks (resolvers/inputs.py) and their siblings: a value that only looks right
(a trailing newline that a `$` pattern lets through, digits of another script that `str.isdigit`
and `Decimal` accept) is bad input naming the field and the value, never stored."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from gateway import resident_id
from gateway.storage import models
from gateway.storage.database import Database
from policies.benefits import load_policies
from policies.errors import InvalidInput
from policies.settlement.cases import parse_case
from resolvers.inputs import check_region, check_region_prefix
from tests.conftest import GraphQLClient

LOOK_ALIKES = ["510402\n", "５１０４０２", "٥١٠٤٠٢", "51040²"]


@pytest.mark.parametrize("code", LOOK_ALIKES)
def test_a_region_code_is_six_ascii_digits_and_nothing_after(code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_region(code)
    assert (caught.value.field, caught.value.value) == ("regionCode", code)


@pytest.mark.parametrize("prefix", ["5104\n", "５１", "٥١"])
def test_a_region_prefix_is_ascii_digits(prefix: str) -> None:
    with pytest.raises(InvalidInput):
        check_region_prefix(prefix)


def test_an_id_number_is_trimmed_and_look_alike_digits_are_refused() -> None:
    # Surrounding white space is trimmed: the stored number never carries it.
    assert resident_id.parse(" 510402197001010013\n").number == "510402197001010013"
    with pytest.raises(InvalidInput):
        resident_id.parse("５１０４０２197001010013")


@pytest.mark.parametrize(
    ("key", "value"),
    [("totalCost", "١٢٠٠٠"), ("totalCost", "１２０００"), ("admissionDate", "٢٠٢٣-03-01")],
)
def test_case_files_refuse_look_alike_amounts_and_dates(key: str, value: str) -> None:
    visit = {
        "id": "v1",
        "type": "INPATIENT",
        "hospitalLevel": "SECONDARY",
        "admissionDate": "2023-03-01",
        "totalCost": "30000.00",
        "policyScopeCost": "26000.00",
        key: value,
    }
    case = {"person": {"regionCode": "510402", "birthDate": "1970-01-01"}, "visits": [visit]}
    with pytest.raises(InvalidInput) as caught:
        parse_case(case)
    assert (caught.value.field, caught.value.value) == (f"visits[0].{key}", value)


def test_the_policy_lookup_refuses_look_alike_region_codes() -> None:
    for code in LOOK_ALIKES:
        with pytest.raises(InvalidInput):
            load_policies().for_region(code)


async def test_registering_a_look_alike_region_code_is_bad_input_and_stores_nothing(
    gql: GraphQLClient, db: Database
) -> None:
    for code in LOOK_ALIKES:
        error = await gql.error(
            "mutation($i: RegisterBeneficiaryInput!) { registerBeneficiary(input: $i) { id } }",
            {"i": {"idNumber": "510402197001010013", "name": "王五", "regionCode": code}},
        )
        assert error["extensions"]["code"] == "BAD_INPUT", error
        assert error["extensions"]["field"] == "regionCode"
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(models.Beneficiary)) == 0
