"""Department writes: validation names the field and value, nothing is stored on failure, and
the same write twice is answered from what is stored."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.storage import models
from gateway.storage.database import Database
from tests.conftest import GraphQLClient

ID = "510402197001010013"  # male, born 1970-01-01, 攀枝花东区
REGISTER = """mutation($i: RegisterBeneficiaryInput!) {
  registerBeneficiary(input: $i) { id idNumber name gender birthDate regionCode } }"""
RECORD_IDENTITY = """mutation($i: RecordCategoryInput!) {
  recordIdentity(input: $i) { identity { category validFrom validTo reference department org } }
}"""
RECORD_FLAG = """mutation($i: RecordCategoryInput!) {
  recordMonitoringFlag(input: $i) {
    monitoringFlag { category validFrom validTo reference department } } }"""
END_IDENTITY = """mutation($i: EndCategoryInput!) {
  endIdentity(input: $i) { identity { category validFrom validTo } } }"""
END_FLAG = """mutation($i: EndCategoryInput!) {
  endMonitoringFlag(input: $i) { monitoringFlag { category validFrom validTo } } }"""


async def count(db: Database, model: Any) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def register(gql: GraphQLClient, **overrides: Any) -> dict[str, Any]:
    person = {"idNumber": ID, "name": "张三", "regionCode": "510402", **overrides}
    data = await gql.data(REGISTER, {"i": person})
    return dict(data["registerBeneficiary"])


async def test_registering_derives_gender_and_birth_date_from_the_id_number(
    gql: GraphQLClient, db: Database
) -> None:
    person = await register(gql)
    assert person["idNumber"] == ID
    assert (person["gender"], person["birthDate"], person["regionCode"]) == (
        "MALE",
        "1970-01-01",
        "510402",
    )
    assert await count(db, models.Beneficiary) == 1


async def test_registering_the_same_person_again_returns_them(
    gql: GraphQLClient, db: Database
) -> None:
    first = await register(gql)
    again = await register(gql, birthDate="1970-01-01", gender="MALE")
    assert again["id"] == first["id"]
    assert await count(db, models.Beneficiary) == 1


async def test_registering_the_id_number_with_another_name_is_a_conflict(
    gql: GraphQLClient, db: Database
) -> None:
    await register(gql)
    error = await gql.error(
        REGISTER, {"i": {"idNumber": ID, "name": "李四", "regionCode": "510402"}}
    )
    assert error["extensions"]["code"] == "CONFLICT"
    assert "name = 李四" in error["message"]
    assert await count(db, models.Beneficiary) == 1


@pytest.mark.parametrize(
    ("overrides", "field", "value"),
    [
        ({"idNumber": "510402197001010014"}, "idNumber", "510402197001010014"),
        ({"idNumber": "51040219700230001X"}, "idNumber", "51040219700230001X"),
        ({"idNumber": "12345"}, "idNumber", "12345"),
        ({"regionCode": "5104"}, "regionCode", "5104"),
        ({"regionCode": "51040A"}, "regionCode", "51040A"),
        ({"name": "  "}, "name", "  "),
        ({"birthDate": "1971-01-01"}, "birthDate", "1971-01-01"),
        ({"gender": "FEMALE"}, "gender", "FEMALE"),
    ],
)
async def test_bad_person_input_names_field_and_value_and_stores_nothing(
    gql: GraphQLClient, db: Database, overrides: dict[str, str], field: str, value: str
) -> None:
    person = {"idNumber": ID, "name": "张三", "regionCode": "510402", **overrides}
    error = await gql.error(REGISTER, {"i": person})
    assert error["extensions"]["code"] == "BAD_INPUT"
    assert error["extensions"]["field"] == field
    assert error["extensions"]["value"] == value
    assert f"{field} = {value}" in error["message"]
    assert await count(db, models.Beneficiary) == 0
    assert await count(db, models.AuditRecord) == 0


async def test_malformed_dates_and_unknown_categories_are_bad_input(gql: GraphQLClient) -> None:
    await register(gql)
    error = await gql.error(
        RECORD_IDENTITY,
        {"i": {"idNumber": ID, "category": "RICH", "validFrom": "2023-01-01", "reference": "r"}},
        department="civil_affairs",
    )
    assert error["extensions"]["code"] == "BAD_INPUT"
    assert "RICH" in error["message"]
    error = await gql.error(
        RECORD_IDENTITY,
        {"i": {"idNumber": ID, "category": "ORPHAN", "validFrom": "2023-02-30", "reference": "r"}},
        department="civil_affairs",
    )
    assert error["extensions"]["code"] == "BAD_INPUT"
    assert "2023-02-30" in error["message"]


async def test_registering_outside_the_token_regions_is_forbidden(
    gql: GraphQLClient, db: Database
) -> None:
    error = await gql.error(
        REGISTER,
        {"i": {"idNumber": ID, "name": "张三", "regionCode": "510402"}},
        regions=("3708",),
    )
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert await count(db, models.Beneficiary) == 0


async def test_identity_is_recorded_with_the_recording_department(gql: GraphQLClient) -> None:
    await register(gql)
    data = await gql.data(
        RECORD_IDENTITY,
        {
            "i": {
                "idNumber": ID,
                "category": "MINIMUM_LIVING",
                "validFrom": "2021-06-01",
                "reference": "东民低〔2021〕12号",
            }
        },
        department="civil_affairs",
        org="东区民政局",
    )
    assert data["recordIdentity"]["identity"] == {
        "category": "MINIMUM_LIVING",
        "validFrom": "2021-06-01",
        "validTo": None,
        "reference": "东民低〔2021〕12号",
        "department": "civil_affairs",
        "org": "东区民政局",
    }


async def test_recording_the_same_identity_twice_stores_it_once(
    gql: GraphQLClient, db: Database
) -> None:
    await register(gql)
    record = {"idNumber": ID, "category": "ORPHAN", "validFrom": "2020-01-01", "reference": "R1"}
    await gql.data(RECORD_IDENTITY, {"i": record}, department="civil_affairs")
    await gql.data(RECORD_IDENTITY, {"i": record}, department="civil_affairs")
    assert await count(db, models.Identity) == 1


async def test_an_overlapping_record_of_the_same_category_is_a_conflict(
    gql: GraphQLClient, db: Database
) -> None:
    await register(gql)
    await gql.data(
        RECORD_IDENTITY,
        {"i": {"idNumber": ID, "category": "ORPHAN", "validFrom": "2020-01-01", "reference": "R1"}},
        department="civil_affairs",
    )
    error = await gql.error(
        RECORD_IDENTITY,
        {"i": {"idNumber": ID, "category": "ORPHAN", "validFrom": "2021-01-01", "reference": "R2"}},
        department="civil_affairs",
    )
    assert error["extensions"]["code"] == "CONFLICT"
    assert "validFrom = 2021-01-01" in error["message"]
    assert await count(db, models.Identity) == 1


@pytest.mark.parametrize(
    ("record", "field", "value"),
    [
        ({"validFrom": "2023-05-01", "validTo": "2023-04-30"}, "validTo", "2023-04-30"),
        ({"reference": ""}, "reference", ""),
        ({"category": "MONITORED"}, "category", "MONITORED"),
        ({"idNumber": "510402197001010014"}, "idNumber", "510402197001010014"),
    ],
)
async def test_bad_identity_input_names_field_and_value_and_stores_nothing(
    gql: GraphQLClient, db: Database, record: dict[str, str], field: str, value: str
) -> None:
    await register(gql)
    full = {
        "idNumber": ID,
        "category": "ORPHAN",
        "validFrom": "2020-01-01",
        "reference": "R",
        **record,
    }
    error = await gql.error(RECORD_IDENTITY, {"i": full}, department="civil_affairs")
    assert error["extensions"]["code"] == "BAD_INPUT"
    assert (error["extensions"]["field"], error["extensions"]["value"]) == (field, value)
    assert await count(db, models.Identity) == 0


async def test_identity_of_an_unknown_person_is_not_found(gql: GraphQLClient, db: Database) -> None:
    error = await gql.error(
        RECORD_IDENTITY,
        {"i": {"idNumber": ID, "category": "ORPHAN", "validFrom": "2020-01-01", "reference": "R"}},
        department="civil_affairs",
    )
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert ID in error["message"]
    assert await count(db, models.Identity) == 0


async def test_a_person_outside_the_token_regions_is_not_found_for_writes(
    gql: GraphQLClient, db: Database
) -> None:
    await register(gql)
    error = await gql.error(
        RECORD_IDENTITY,
        {"i": {"idNumber": ID, "category": "ORPHAN", "validFrom": "2020-01-01", "reference": "R"}},
        regions=("3708",),
        department="civil_affairs",
    )
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert await count(db, models.Identity) == 0


async def test_ending_an_identity_closes_the_open_record(gql: GraphQLClient) -> None:
    await register(gql)
    await gql.data(
        RECORD_IDENTITY,
        {
            "i": {
                "idNumber": ID,
                "category": "MINIMUM_LIVING",
                "validFrom": "2021-06-01",
                "reference": "R",
            }
        },
        department="civil_affairs",
    )
    ended = await gql.data(
        END_IDENTITY,
        {"i": {"idNumber": ID, "category": "MINIMUM_LIVING", "validTo": "2023-05-10"}},
        department="civil_affairs",
    )
    assert ended["endIdentity"]["identity"] == {
        "category": "MINIMUM_LIVING",
        "validFrom": "2021-06-01",
        "validTo": "2023-05-10",
    }
    again = await gql.data(
        END_IDENTITY,
        {"i": {"idNumber": ID, "category": "MINIMUM_LIVING", "validTo": "2023-05-10"}},
        department="civil_affairs",
    )
    assert again == ended


async def test_ending_before_the_record_began_is_bad_input(
    gql: GraphQLClient, db: Database
) -> None:
    await register(gql)
    await gql.data(
        RECORD_IDENTITY,
        {"i": {"idNumber": ID, "category": "ORPHAN", "validFrom": "2021-06-01", "reference": "R"}},
        department="civil_affairs",
    )
    error = await gql.error(
        END_IDENTITY,
        {"i": {"idNumber": ID, "category": "ORPHAN", "validTo": "2021-05-31"}},
        department="civil_affairs",
    )
    assert error["extensions"]["code"] == "BAD_INPUT"
    assert error["extensions"]["field"] == "validTo"
    async with db.sessions() as session:
        assert (await session.scalars(select(models.Identity.valid_to))).one() is None


async def test_ending_a_category_the_person_does_not_hold_is_not_found(gql: GraphQLClient) -> None:
    await register(gql)
    error = await gql.error(
        END_IDENTITY,
        {"i": {"idNumber": ID, "category": "ORPHAN", "validTo": "2021-05-31"}},
        department="civil_affairs",
    )
    assert error["extensions"]["code"] == "NOT_FOUND"


async def test_monitoring_flags_are_recorded_and_ended_apart_from_identities(
    gql: GraphQLClient, db: Database
) -> None:
    await register(gql)
    flag = {
        "idNumber": ID,
        "category": "MONITORED",
        "validFrom": "2022-09-01",
        "reference": "监测1",
    }
    data = await gql.data(RECORD_FLAG, {"i": flag}, department="rural_revitalisation")
    assert data["recordMonitoringFlag"]["monitoringFlag"]["department"] == "rural_revitalisation"
    error = await gql.error(
        RECORD_FLAG, {"i": {**flag, "category": "ORPHAN"}}, department="rural_revitalisation"
    )
    assert error["extensions"]["field"] == "category"
    ended = await gql.data(
        END_FLAG,
        {"i": {"idNumber": ID, "category": "MONITORED", "validTo": "2023-12-31"}},
        department="rural_revitalisation",
    )
    assert ended["endMonitoringFlag"]["monitoringFlag"]["validTo"] == "2023-12-31"
    assert (await count(db, models.MonitoringFlag), await count(db, models.Identity)) == (1, 0)


async def test_every_write_leaves_one_audit_record(gql: GraphQLClient, db: Database) -> None:
    await register(gql)
    await gql.data(
        RECORD_IDENTITY,
        {"i": {"idNumber": ID, "category": "ORPHAN", "validFrom": "2020-01-01", "reference": "R"}},
        department="civil_affairs",
    )
    async with db.sessions() as session:
        records = (
            await session.scalars(select(models.AuditRecord).order_by(models.AuditRecord.id))
        ).all()
        person = (await session.scalars(select(models.Beneficiary))).one()
    writes = [r for r in records if r.action == "WRITE"]
    assert [r.operation for r in writes] == ["registerBeneficiary", "recordIdentity"]
    assert all(r.beneficiary_ids == [person.id] for r in writes)
    # Each answer carried personal data back: one READ record per response as well.
    assert [(r.action, r.operation) for r in records] == [
        ("WRITE", "registerBeneficiary"),
        ("READ", "mutation registerBeneficiary"),
        ("WRITE", "recordIdentity"),
        ("READ", "mutation recordIdentity"),
    ]
