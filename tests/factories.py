"""Rows straight into the database, for tests that are about reading them."""

from __future__ import annotations

import functools
import uuid
from datetime import date
from decimal import Decimal
from typing import Any

from gateway.resident_id import check_character
from gateway.storage import models
from gateway.storage.database import Database


def id_number(region: str, born: date, sequence: int) -> str:
    first17 = f"{region}{born:%Y%m%d}{sequence:03d}"
    return first17 + check_character(first17)


async def add_people(
    db: Database,
    count: int,
    *,
    region: str = "510402",
    claims_each: int = 0,
    start: int = 0,
    year: int = 2023,
    carrier: str | None = "insurer-a",
) -> list[models.Beneficiary]:
    """``count`` persons, each with an identity, a flag, an enrollment and some claims."""
    people: list[models.Beneficiary] = []
    async with db.transaction() as session:
        for i in range(start, start + count):
            born = date(1950 + i % 50, 1 + i % 12, 1 + i % 28)
            person = models.Beneficiary(
                id=uuid.uuid4(),
                id_number=id_number(region, born, i % 1000),
                name=f"测试{i}",
                gender="MALE" if (i % 1000) % 2 else "FEMALE",
                birth_date=born,
                region_code=region,
                created_by="medical_insurance",
            )
            session.add(person)
            people.append(person)
            session.add_all(_records(person.id, i, year, claims_each, carrier))
    return people


def _records(pid: uuid.UUID, i: int, year: int, claims: int, carrier: str | None) -> list[Any]:
    common = {"department": "civil_affairs", "org": "o", "reference": f"R{i}"}
    rows: list[Any] = [
        models.Identity(
            beneficiary_id=pid, category="MINIMUM_LIVING", valid_from=date(2020, 1, 1), **common
        ),
        models.MonitoringFlag(
            beneficiary_id=pid, category="MONITORED", valid_from=date(2021, 1, 1), **common
        ),
        models.Enrollment(
            beneficiary_id=pid,
            year=year,
            contribution=Decimal("380.00"),
            inclusive_commercial=False,
            enrolled_on=date(year - 1, 12, 1),
            subsidy_individual=Decimal("95.00"),
            subsidy_assistance_fund=Decimal("285.00"),
            subsidy_finance=Decimal("0.00"),
            department="medical_insurance",
            org="o",
        ),
    ]
    for n in range(claims):
        rows.append(
            models.Claim(
                claim_number=f"C-{pid.hex[:8]}-{n}",
                beneficiary_id=pid,
                year=year,
                type="INPATIENT",
                hospital_level="SECONDARY",
                hospital_code="H1",
                admission_date=date(year, 3, 1 + n),
                discharge_date=date(year, 3, 2 + n),
                total_cost=Decimal("1000.00"),
                policy_scope_cost=Decimal("900.00"),
                referral_compliant=True,
                in_province=True,
                diagnosis="J18.9",
                special_treatment_hospital=False,
                carrier=carrier,
                content_hash="x" * 64,
            )
        )
    return rows


@functools.cache
def _recorders() -> dict[str, str]:
    from gateway.app import load_access_for_schema

    access = load_access_for_schema()[1]
    return {
        category.value: name
        for name, policy in sorted(access.departments.items())
        for category in policy.write_categories
    }


def recorder(category: str) -> str:
    """The department that recognises ``category`` (whose policy lets it write it)."""
    return _recorders()[category]


def category_document(category: str, verb: str = "record", selection: str = "") -> str:
    """The ``recordIdentity`` / ``recordMonitoringFlag`` (``verb="end"``: ``end…``) document for
    ``category`` with its input as ``$i``, selecting the record's category plus ``selection``
    (other fields of the payload); the answer is under ``category_field(category, verb)``."""
    mutation, record = category_field(category, verb), _record_field(category)
    kind = "RecordCategoryInput" if verb == "record" else "EndCategoryInput"
    return (
        f"mutation($i: {kind}!) {{ {mutation}(input: $i) "
        f"{{ {record} {{ category }} {selection} }} }}"
    )


def category_field(category: str, verb: str = "record") -> str:
    """``recordIdentity``, ``endMonitoringFlag`` …: the mutation that writes ``category``."""
    from policies.vocabulary import Category

    flag = Category(category).is_monitoring_flag
    return f"{verb}MonitoringFlag" if flag else f"{verb}Identity"


def _record_field(category: str) -> str:
    from policies.vocabulary import Category

    return "monitoringFlag" if Category(category).is_monitoring_flag else "identity"
