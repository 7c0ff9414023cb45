"""The §8 case format: defaults, every refusal naming field and value, and the output shape."""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from policies.benefits import PolicySet, load_policies
from policies.errors import InvalidInput, NoPolicyInForce
from policies.settlement.cases import parse_case, simulate
from policies.vocabulary import Category, HospitalLevel, VisitType

POLICIES: PolicySet = load_policies()

OUTPUT_KEYS = {
    "id",
    "policy",
    "category",
    "basicInsurance",
    "criticalIllness",
    "inclusiveCommercial",
    "assistance",
    "secondaryAssistance",
    "outOfPocket",
}


def case() -> dict[str, Any]:
    """A minimal valid case: one Panzhihua minimum-living stay (example P01)."""
    return {
        "person": {
            "regionCode": "510402",
            "birthDate": "1970-01-01",
            "categories": [{"category": "MINIMUM_LIVING", "validFrom": "2021-06-01"}],
        },
        "visits": [
            {
                "id": "v1",
                "type": "INPATIENT",
                "hospitalLevel": "SECONDARY",
                "admissionDate": "2023-03-01",
                "dischargeDate": "2023-03-10",
                "totalCost": "30000.00",
                "policyScopeCost": "26000.00",
            }
        ],
    }


def refusal(data: object) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        parse_case(data)
    return caught.value


def with_visit(**changes: object) -> dict[str, Any]:
    data = case()
    data["visits"][0].update(changes)
    return data


def with_person(**changes: object) -> dict[str, Any]:
    data = case()
    data["person"].update(changes)
    return data


# -- defaults ----------------------------------------------------------------------------------


def test_defaults_fill_what_a_case_leaves_out() -> None:
    data = case()
    del data["visits"][0]["dischargeDate"]
    person, [visit] = parse_case(data)
    assert (person.insured, person.inclusive_commercial) == (True, False)
    assert person.categories[0].category is Category.MINIMUM_LIVING
    assert person.categories[0].valid_to is None
    assert (visit.referral_compliant, visit.in_province) == (True, True)
    assert visit.discharge_date == visit.admission_date == date(2023, 3, 1)
    assert (visit.diagnosis, visit.special_treatment_hospital) == (None, False)
    assert (visit.type, visit.hospital_level) == (VisitType.INPATIENT, HospitalLevel.SECONDARY)
    assert (visit.total_cost, visit.policy_scope_cost) == (Decimal("30000.00"), Decimal("26000.00"))


def test_null_means_the_default_too() -> None:
    _, [visit] = parse_case(with_visit(referralCompliant=None, dischargeDate=None, diagnosis=None))
    assert visit.referral_compliant is True
    assert visit.discharge_date == date(2023, 3, 1)


def test_a_person_without_categories_is_an_ordinary_person() -> None:
    data = case()
    del data["person"]["categories"]
    person, _ = parse_case(data)
    assert person.categories == ()
    assert simulate(data, POLICIES)["visits"][0]["category"] is None


def test_amounts_may_be_json_numbers() -> None:
    _, [visit] = parse_case(with_visit(totalCost=30000, policyScopeCost=25999.5))
    assert (visit.total_cost, visit.policy_scope_cost) == (Decimal("30000"), Decimal("25999.5"))


def test_outpatient_visits_need_no_hospital_level() -> None:
    data = with_visit(type="OUTPATIENT_GENERAL", totalCost="900.00", policyScopeCost="800.00")
    del data["visits"][0]["hospitalLevel"]
    _, [visit] = parse_case(data)
    assert visit.hospital_level is None


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field", "value"),
    [
        (with_visit(type="DENTAL"), "visits[0].type", "DENTAL"),
        (with_visit(hospitalLevel="QUATERNARY"), "visits[0].hospitalLevel", "QUATERNARY"),
        (with_visit(totalCost="abc"), "visits[0].totalCost", "abc"),
        (with_visit(totalCost=True), "visits[0].totalCost", True),
        (with_visit(totalCost="-5.00"), "visits[0].totalCost", "-5.00"),
        (with_visit(policyScopeCost="10.005"), "visits[0].policyScopeCost", "10.005"),
        (with_visit(policyScopeCost="30000.01"), "visits[0].policyScopeCost", Decimal("30000.01")),
        (with_visit(dischargeDate="2023-02-28"), "visits[0].dischargeDate", "2023-02-28"),
        (with_visit(admissionDate="2023-13-01"), "visits[0].admissionDate", "2023-13-01"),
        (with_visit(admissionDate="2023/03/01"), "visits[0].admissionDate", "2023/03/01"),
        (with_visit(hospitalLevel=None), "visits[0].hospitalLevel", None),
        (with_visit(referralCompliant="yes"), "visits[0].referralCompliant", "yes"),
        (with_visit(ward="B3"), "visits[0].ward", "B3"),
        (with_visit(id=""), "visits[0].id", ""),
        (
            with_visit(admissionDate="1969-12-31", dischargeDate="1969-12-31"),
            "visits[0].admissionDate",
            "1969-12-31",
        ),
        (with_person(regionCode="51040"), "person.regionCode", "51040"),
        (with_person(regionCode=510402), "person.regionCode", 510402),
        (with_person(birthDate="1970-02-30"), "person.birthDate", "1970-02-30"),
        (with_person(insured="no"), "person.insured", "no"),
        (with_person(name="张三"), "person.name", "张三"),
        (
            with_person(categories=[{"category": "RICH", "validFrom": "2021-06-01"}]),
            "person.categories[0].category",
            "RICH",
        ),
        (
            with_person(
                categories=[
                    {"category": "ORPHAN", "validFrom": "2021-06-01", "validTo": "2021-05-31"}
                ]
            ),
            "person.categories[0].validTo",
            "2021-05-31",
        ),
        (
            with_person(categories=[{"category": "ORPHAN", "validFrom": "2021-06-01", "by": "x"}]),
            "person.categories[0].by",
            "x",
        ),
        (with_person(categories="ORPHAN"), "person.categories", "ORPHAN"),
    ],
)
def test_bad_input_is_refused_naming_field_and_value(
    data: dict[str, Any], field: str, value: object
) -> None:
    error = refusal(data)
    assert (error.field, error.value) == (field, value)


def test_missing_required_keys_are_named() -> None:
    data = case()
    del data["visits"][0]["policyScopeCost"]
    assert refusal(data).field == "visits[0].policyScopeCost"
    data = case()
    del data["person"]["birthDate"]
    assert refusal(data).field == "person.birthDate"
    assert refusal({"person": case()["person"]}).field == "visits"


def test_duplicate_visit_ids_are_refused() -> None:
    data = case()
    second = copy.deepcopy(data["visits"][0])
    second["admissionDate"] = second["dischargeDate"] = "2023-05-01"
    data["visits"].append(second)
    error = refusal(data)
    assert (error.field, error.value) == ("visits[1].id", "v1")


def test_the_second_visits_errors_carry_its_index() -> None:
    data = case()
    data["visits"].append(dict(data["visits"][0], id="v2", policyScopeCost="40000.00"))
    error = refusal(data)
    assert error.field == "visits[1].policyScopeCost"
    assert "must not exceed totalCost" in str(error)


def test_unknown_top_level_keys_and_non_objects_are_refused() -> None:
    assert refusal(dict(case(), expected={})).field == "expected"
    assert refusal([]).field == "case"
    assert refusal(dict(case(), visits={"v1": {}})).field == "visits"


# -- simulate ----------------------------------------------------------------------------------


def test_simulate_returns_exactly_the_output_format() -> None:
    result = simulate(case(), POLICIES)
    assert list(result) == ["visits"]
    [entry] = result["visits"]
    assert set(entry) == OUTPUT_KEYS
    assert entry["assistance"] == "3864.00"
    assert entry["outOfPocket"] == "5656.00"


def test_simulate_adds_an_explanation_only_when_asked() -> None:
    [entry] = simulate(case(), POLICIES, explain=True)["visits"]
    assert set(entry) == OUTPUT_KEYS | {"explanation"}
    assert entry["explanation"]["category"]["chosen"] == "MINIMUM_LIVING"


def test_simulate_lets_no_policy_in_force_propagate() -> None:
    with pytest.raises(NoPolicyInForce):
        simulate(with_visit(admissionDate="2023-01-15", dischargeDate="2023-01-20"), POLICIES)


def test_simulate_validates_everything_before_computing() -> None:
    data = case()
    data["visits"].append(dict(data["visits"][0], id="v2", type="XRAY"))
    with pytest.raises(InvalidInput) as caught:
        simulate(data, POLICIES)
    assert caught.value.field == "visits[1].type"
