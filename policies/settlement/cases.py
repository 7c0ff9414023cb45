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
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StrictBool,
    StrictStr,
    ValidationError,
)
from pydantic.alias_generators import to_camel

from policies.benefits.model import PolicySet
from policies.errors import InvalidInput
from policies.settlement.categories import CategoryRecord
from policies.settlement.engine import (
    Person,
    Reported,
    Visit,
    settle_visits,
    validate_person,
    validate_visit,
)
from policies.vocabulary import Category, HospitalLevel, VisitType

_DATE = re.compile(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_AMOUNT = re.compile(r"\A-?[0-9]+(\.[0-9]+)?\Z")


def _iso_date(value: object) -> object:
    """Dates are ``YYYY-MM-DD`` text (not numbers, not other spellings)."""
    if not isinstance(value, str) or not _DATE.match(value):
        raise ValueError("must be a date YYYY-MM-DD")
    return value


def _amount(value: object) -> Decimal:
    """A decimal string or a JSON number; non-negative, at most 2 decimals.

    >>> _amount("30000.00"), _amount(12.5)
    (Decimal('30000.00'), Decimal('12.5'))
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("must be a decimal amount (string or number)")
    text = (value if isinstance(value, str) else str(value)).strip()
    if not _AMOUNT.match(text):
        raise ValueError('must be a decimal amount such as "1234.50"')
    amount = Decimal(text)
    if amount < 0:
        raise ValueError("must not be negative")
    if amount != amount.quantize(Decimal("0.01")):
        raise ValueError("must have at most 2 decimals")
    return amount


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
Amount = Annotated[Decimal, BeforeValidator(_amount)]


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=False, frozen=True
    )


class CategoryRecordFile(_Strict):
    category: Category
    valid_from: IsoDate
    valid_to: IsoDate | None = None
    decided_on: IsoDate | None = None


class PersonFile(_Strict):
    region_code: StrictStr
    birth_date: IsoDate
    insured: StrictBool | None = None
    inclusive_commercial: StrictBool | None = None
    categories: list[CategoryRecordFile] | None = None


class ReportedFile(_Strict):
    basic_insurance: Amount | None = None
    critical_illness: Amount | None = None
    inclusive_commercial: Amount | None = None


class VisitFile(_Strict):
    id: StrictStr
    type: VisitType
    hospital_level: HospitalLevel | None = None
    admission_date: IsoDate
    discharge_date: IsoDate | None = None
    total_cost: Amount
    policy_scope_cost: Amount
    referral_compliant: StrictBool | None = None
    in_province: StrictBool | None = None
    diagnosis: StrictStr | None = None
    special_treatment_hospital: StrictBool | None = None
    reported: ReportedFile | None = None


class Expected(BaseModel):
    """The ``expected`` output of an example: one entry per visit."""

    model_config = ConfigDict(extra="forbid")

    visits: list[dict[str, Any]]


class ExampleFile(BaseModel):
    """An example of ``spec/examples``: a description, the case and its expected output."""

    model_config = ConfigDict(extra="forbid")

    description: StrictStr | None = None
    case: Any
    expected: Expected | None = None


M = TypeVar("M", bound=BaseModel)


def _validated(model: type[M], data: object, prefix: str = "") -> M:
    """``model`` from ``data``; the first problem as InvalidInput naming its path and value."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        reason = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            reason = "unknown key"
        elif first["type"] == "missing":
            reason = "is required"
        loc = (prefix, *first["loc"]) if prefix else first["loc"]
        raise InvalidInput(_field(loc), first.get("input"), reason) from None


class CaseFile(_Strict):
    """A case of SETTLEMENT.md §8; ``null`` means the default, as an absent key does."""

    person: PersonFile
    visits: list[VisitFile]


def _field(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as the case's path: ``("visits", 0, "totalCost")`` →
    ``visits[0].totalCost``; the whole case is ``case``.

    >>> _field(("visits", 0, "totalCost")), _field(())
    ('visits[0].totalCost', 'case')
    """
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not part.startswith(("function-", "[")):
            path += f".{part}" if path else part
    return path or "case"


def parse_case(data: object) -> tuple[Person, list[Visit]]:
    """The person and visits of a §8 case, with its defaults; InvalidInput on any bad input
    that needs no policy. What depends on the region's policy and the person (reported amounts
    on an uninsured visit, a commercial amount where no plan or no enrollment) is refused by
    :func:`~policies.settlement.engine.settle_visits`, before anything is computed."""
    case = _validated(CaseFile, data)
    p = case.person
    person = Person(
        region_code=p.region_code,
        birth_date=p.birth_date,
        insured=True if p.insured is None else p.insured,
        inclusive_commercial=bool(p.inclusive_commercial),
        categories=tuple(
            CategoryRecord(r.category, r.valid_from, r.valid_to, r.decided_on)
            for r in p.categories or ()
        ),
    )
    validate_person(person)
    visits: list[Visit] = []
    seen: set[str] = set()
    for i, v in enumerate(case.visits):
        field = f"visits[{i}]"
        if not v.id.strip():
            raise InvalidInput(f"{field}.id", v.id, "must be a non-empty string")
        if v.diagnosis is not None and not v.diagnosis.strip():
            raise InvalidInput(f"{field}.diagnosis", v.diagnosis, "must be a non-empty string")
        if v.id in seen:
            raise InvalidInput(f"{field}.id", v.id, "duplicate visit id")
        seen.add(v.id)
        visit = Visit(
            id=v.id,
            type=v.type,
            hospital_level=v.hospital_level,
            admission_date=v.admission_date,
            discharge_date=v.discharge_date or v.admission_date,
            total_cost=v.total_cost,
            policy_scope_cost=v.policy_scope_cost,
            referral_compliant=v.referral_compliant is not False,
            in_province=v.in_province is not False,
            diagnosis=None if v.diagnosis is None else v.diagnosis.strip(),
            special_treatment_hospital=bool(v.special_treatment_hospital),
            reported=None
            if v.reported is None
            else Reported(
                v.reported.basic_insurance,
                v.reported.critical_illness,
                v.reported.inclusive_commercial,
            ),
        )
        validate_visit(visit, field, birth_date=person.birth_date)
        visits.append(visit)
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
        example = _validated(ExampleFile, data)
        expected = None if example.expected is None else example.expected.model_dump()
        return example.case, expected
    return data, None


def differences(expected: object, actual: Mapping[str, Any]) -> list[str]:
    """Where a settled case differs from an example's ``expected`` output, one line each.

    >>> differences({"visits": [{"id": "v1", "assistance": "1.00"}]},
    ...             {"visits": [{"id": "v1", "assistance": "2.00"}]})
    ['visits[0].assistance: expected 1.00, got 2.00']
    """
    wanted = _validated(Expected, expected, "expected").visits
    got = actual["visits"]
    lines: list[str] = []
    if len(wanted) != len(got):
        lines.append(f"visits: expected {len(wanted)} entries, got {len(got)}")
    for i, (want, have) in enumerate(zip(wanted, got, strict=False)):
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
            entry["explanation"] = settlement.explanation.model_dump(mode="json")
        entries.append(entry)
    return {"visits": entries}
