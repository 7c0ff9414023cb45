"""The case format of SETTLEMENT.md §8: parse and validate a case, settle it, render the output.

Every bad input raises :class:`~policies.errors.InvalidInput` with a JSON-path-like field name
(``visits[1].policyScopeCost``) and the offending value; nothing is computed before the whole case
validates.

>>> from policies.benefits import load_policies
>>> case = {"person": {"regionCode": "510402", "birthDate": "1970-01-01",
...                    "categories": [{"category": "MINIMUM_LIVING", "validFrom": "2021-06-01"}]},
...         "visits": [{"id": "v1", "type": "INPATIENT", "hospitalLevel": "SECONDARY",
...                     "admissionDate": "2023-03-01", "dischargeDate": "2023-03-10",
...                     "totalCost": "30000.00", "policyScopeCost": "26000.00"}]}
>>> simulate(case, load_policies())["visits"][0]["assistance"]
'3864.00'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, TypeVar

from policies.benefits.model import PolicySet
from policies.errors import InvalidInput
from policies.settlement.categories import CategoryRecord
from policies.settlement.engine import (
    REPORTABLE_PAYERS,
    Person,
    Reported,
    Visit,
    settle_visits,
    validate_person,
    validate_visit,
)
from policies.vocabulary import Category, HospitalLevel, VisitType

E = TypeVar("E", bound=StrEnum)

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_AMOUNT = re.compile(r"^-?\d+(\.\d+)?$")

PERSON_KEYS = ("regionCode", "birthDate", "insured", "inclusiveCommercial", "categories")
RECORD_KEYS = ("category", "validFrom", "validTo", "decidedOn")
VISIT_KEYS = (
    "id",
    "type",
    "hospitalLevel",
    "admissionDate",
    "dischargeDate",
    "totalCost",
    "policyScopeCost",
    "referralCompliant",
    "inProvince",
    "diagnosis",
    "specialTreatmentHospital",
    "reported",
)
REPORTED_KEYS = tuple(payer.value for payer in REPORTABLE_PAYERS)


def _object(
    data: object, field: str, required: tuple[str, ...], known: tuple[str, ...]
) -> Mapping[str, object]:
    if not isinstance(data, Mapping):
        raise InvalidInput(field or "case", data, "must be a JSON object")
    for key in data:
        if key not in known:
            raise InvalidInput(_at(field, key), data[key], "unknown key")
    for key in required:
        if data.get(key) is None:
            raise InvalidInput(_at(field, key), None, "is required")
    return data


def _at(field: str, key: object) -> str:
    return f"{field}.{key}" if field else str(key)


def _date(value: object, field: str) -> date:
    if not isinstance(value, str) or not _DATE.match(value):
        raise InvalidInput(field, value, "must be a date YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(field, value, "is not a valid date") from None


def _amount(value: object, field: str) -> Decimal:
    """A decimal string or a JSON number; non-negative, at most 2 decimals.

    >>> _amount("30000.00", "x"), _amount(12.5, "x")
    (Decimal('30000.00'), Decimal('12.5'))
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidInput(field, value, "must be a decimal amount (string or number)")
    text = value if isinstance(value, str) else str(value)
    if not _AMOUNT.match(text.strip()):
        raise InvalidInput(field, value, 'must be a decimal amount such as "1234.50"')
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise InvalidInput(field, value, "must be a decimal amount") from None
    if amount < 0:
        raise InvalidInput(field, value, "must not be negative")
    if amount != amount.quantize(Decimal("0.01")):
        raise InvalidInput(field, value, "must have at most 2 decimals")
    return amount


def _flag(data: Mapping[str, object], key: str, field: str, default: bool) -> bool:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidInput(_at(field, key), value, "must be true or false")
    return value


def _enum(kind: type[E], value: object, field: str, what: str) -> E:
    allowed = ", ".join(member.value for member in kind)
    if not isinstance(value, str) or value not in allowed.split(", "):
        raise InvalidInput(field, value, f"unknown {what} (one of {allowed})")
    return kind(value)


def _text(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(field, value, "must be a non-empty string")
    return value


def parse_person(data: object, field: str = "person") -> Person:
    person = _object(data, field, ("regionCode", "birthDate"), PERSON_KEYS)
    region = person["regionCode"]
    if not (isinstance(region, str) and len(region) == 6 and region.isdigit()):
        raise InvalidInput(f"{field}.regionCode", region, "must be a 6-digit region code")
    raw_records = person.get("categories")
    if raw_records is None:
        raw_records = []
    if not isinstance(raw_records, list):
        raise InvalidInput(f"{field}.categories", raw_records, "must be a list")
    records: list[CategoryRecord] = []
    for i, raw in enumerate(raw_records):
        at = f"{field}.categories[{i}]"
        record = _object(raw, at, ("category", "validFrom"), RECORD_KEYS)
        valid_to = record.get("validTo")
        decided_on = record.get("decidedOn")
        records.append(
            CategoryRecord(
                _enum(Category, record["category"], f"{at}.category", "category"),
                _date(record["validFrom"], f"{at}.validFrom"),
                None if valid_to is None else _date(valid_to, f"{at}.validTo"),
                None if decided_on is None else _date(decided_on, f"{at}.decidedOn"),
            )
        )
    result = Person(
        region_code=region,
        birth_date=_date(person["birthDate"], f"{field}.birthDate"),
        insured=_flag(person, "insured", field, True),
        inclusive_commercial=_flag(person, "inclusiveCommercial", field, False),
        categories=tuple(records),
    )
    validate_person(result, field)
    return result


def parse_visit(data: object, field: str) -> Visit:
    raw = _object(
        data, field, ("id", "type", "admissionDate", "totalCost", "policyScopeCost"), VISIT_KEYS
    )
    admission = _date(raw["admissionDate"], f"{field}.admissionDate")
    discharge_raw = raw.get("dischargeDate")
    level_raw = raw.get("hospitalLevel")
    diagnosis = raw.get("diagnosis")
    if diagnosis is not None:
        diagnosis = _text(diagnosis, f"{field}.diagnosis").strip()
    visit = Visit(
        id=_text(raw["id"], f"{field}.id"),
        type=_enum(VisitType, raw["type"], f"{field}.type", "visit type"),
        hospital_level=None
        if level_raw is None
        else _enum(HospitalLevel, level_raw, f"{field}.hospitalLevel", "hospital level"),
        admission_date=admission,
        discharge_date=admission
        if discharge_raw is None
        else _date(discharge_raw, f"{field}.dischargeDate"),
        total_cost=_amount(raw["totalCost"], f"{field}.totalCost"),
        policy_scope_cost=_amount(raw["policyScopeCost"], f"{field}.policyScopeCost"),
        referral_compliant=_flag(raw, "referralCompliant", field, True),
        in_province=_flag(raw, "inProvince", field, True),
        diagnosis=diagnosis,
        special_treatment_hospital=_flag(raw, "specialTreatmentHospital", field, False),
        reported=_reported(raw.get("reported"), f"{field}.reported"),
    )
    validate_visit(visit, field)
    return visit


def _reported(data: object, field: str) -> Reported | None:
    """The ``reported`` object of a visit (§5): amounts of a prefix of the insurance payers."""
    if data is None:
        return None
    raw = _object(data, field, (), REPORTED_KEYS)

    def amount(key: str) -> Decimal | None:
        value = raw.get(key)
        return None if value is None else _amount(value, f"{field}.{key}")

    return Reported(
        basic_insurance=amount("basicInsurance"),
        critical_illness=amount("criticalIllness"),
        inclusive_commercial=amount("inclusiveCommercial"),
    )


def parse_case(data: object) -> tuple[Person, list[Visit]]:
    """The person and visits of a §8 case, with its defaults; InvalidInput on any bad input
    that needs no policy. What depends on the region's policy and the person (reported amounts
    on an uninsured visit, a commercial amount where no plan or no enrollment) is refused by
    :func:`~policies.settlement.engine.settle_visits`, before anything is computed."""
    case = _object(data, "", ("person", "visits"), ("person", "visits"))
    person = parse_person(case["person"])
    raw_visits = case["visits"]
    if not isinstance(raw_visits, list):
        raise InvalidInput("visits", raw_visits, "must be a list")
    visits = [parse_visit(raw, f"visits[{i}]") for i, raw in enumerate(raw_visits)]
    seen: set[str] = set()
    for i, visit in enumerate(visits):
        if visit.id in seen:
            raise InvalidInput(f"visits[{i}].id", visit.id, "duplicate visit id")
        seen.add(visit.id)
        validate_visit(visit, f"visits[{i}]", birth_date=person.birth_date)
    return person, visits


def case_of(data: object) -> tuple[object, object | None]:
    """The case and the expected output of a document: a bare §8 case, or an example file
    (``description``, ``case``, ``expected``) as in ``spec/examples``.

    >>> case_of({"description": "d", "case": {"person": {}}, "expected": {"visits": []}})
    ({'person': {}}, {'visits': []})
    >>> case_of({"person": {}, "visits": []})
    ({'person': {}, 'visits': []}, None)
    """
    if isinstance(data, Mapping) and "case" in data:
        example = _object(data, "", ("case",), ("description", "case", "expected"))
        return example["case"], example.get("expected")
    return data, None


def differences(expected: object, actual: Mapping[str, Any]) -> list[str]:
    """Where a settled case differs from an example's ``expected`` output, one line each.

    >>> differences({"visits": [{"id": "v1", "assistance": "1.00"}]},
    ...             {"visits": [{"id": "v1", "assistance": "2.00"}]})
    ['visits[0].assistance: expected 1.00, got 2.00']
    """
    wanted = _object(expected, "expected", ("visits",), ("visits",))["visits"]
    got = actual["visits"]
    if not isinstance(wanted, list):
        raise InvalidInput("expected.visits", wanted, "must be a list")
    lines: list[str] = []
    if len(wanted) != len(got):
        lines.append(f"visits: expected {len(wanted)} entries, got {len(got)}")
    for i, (want, have) in enumerate(zip(wanted, got, strict=False)):
        if not isinstance(want, Mapping):
            raise InvalidInput(f"expected.visits[{i}]", want, "must be a JSON object")
        for key in sorted(set(want) | set(have)):
            if key == "explanation":
                continue
            if want.get(key) != have.get(key):
                lines.append(f"visits[{i}].{key}: expected {want.get(key)}, got {have.get(key)}")
    return lines


def simulate(
    data: object, policies: PolicySet, explain: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """Settle a §8 case and return its §8 output (plus ``explanation`` per visit if asked).

    NoPolicyInForce propagates for a visit no policy covers.
    """
    person, visits = parse_case(data)
    entries: list[dict[str, Any]] = []
    for settlement in settle_visits(policies, person, visits):
        entry: dict[str, Any] = dict(settlement.to_dict())
        if explain:
            entry["explanation"] = settlement.explanation.to_dict()
        entries.append(entry)
    return {"visits": entries}
