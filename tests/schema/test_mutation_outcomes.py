"""A document with several mutation fields reports each field's outcome (issue 10, point 6):
the fields run in order, each in its own transaction; a failed one is null with its error and
the others keep their results, which are audited like any read of personal data."""

from __future__ import annotations

from collections.abc import Sequence

import graphql
from sqlalchemy import select

from gateway.storage import models
from gateway.storage.database import Database
from schema import build_schema
from tests.conftest import GraphQLClient

FIRST = "510402197001010013"
SECOND = "510402198001010018"
TWO = """mutation Two($a: RegisterBeneficiaryInput!, $b: RegisterBeneficiaryInput!) {
  a: registerBeneficiary(input: $a) { idNumber name regionCode }
  b: registerBeneficiary(input: $b) { idNumber name regionCode } }"""


def person(number: str, name: str = "张三", region: str = "510402") -> dict[str, str]:
    return {"idNumber": number, "name": name, "regionCode": region}


async def stored(db: Database) -> list[tuple[str, str]]:
    async with db.sessions() as session:
        rows = await session.scalars(select(models.Beneficiary).order_by(models.Beneficiary.name))
        return [(r.id_number, r.name) for r in rows]


async def audit_records(db: Database) -> Sequence[models.AuditRecord]:
    async with db.sessions() as session:
        rows = await session.scalars(select(models.AuditRecord).order_by(models.AuditRecord.id))
        return rows.all()


def test_every_mutation_field_is_nullable() -> None:
    mutation = build_schema().as_str()
    schema = graphql.build_schema(mutation)
    assert schema.mutation_type is not None
    required = [
        name
        for name, field in schema.mutation_type.fields.items()
        if graphql.is_non_null_type(field.type)
    ]
    assert len(schema.mutation_type.fields) >= 13
    assert required == []


async def test_a_failing_second_field_leaves_the_first_result_in_data(
    gql: GraphQLClient, db: Database
) -> None:
    body = await gql.post(TWO, {"a": person(FIRST), "b": person("510402198001010019", "李四")})
    assert body["data"] == {
        "a": {"idNumber": FIRST, "name": "张三", "regionCode": "510402"},
        "b": None,
    }
    [error] = body["errors"]
    assert error["path"] == ["b"]
    assert error["extensions"]["code"] == "BAD_INPUT"
    assert error["extensions"]["field"] == "idNumber"
    assert error["extensions"]["value"] == "510402198001010019"
    assert await stored(db) == [(FIRST, "张三")]
    # The response carried the first person's name: one WRITE and one READ record about them.
    write, read = await audit_records(db)
    assert (write.action, write.operation) == ("WRITE", "registerBeneficiary")
    assert (read.action, read.operation) == ("READ", "mutation Two")
    assert read.beneficiary_ids == write.beneficiary_ids
    assert read.field_paths == [
        "registerBeneficiary.idNumber",
        "registerBeneficiary.name",
        "registerBeneficiary.regionCode",
    ]


async def test_a_failing_first_field_does_not_stop_the_second(
    gql: GraphQLClient, db: Database
) -> None:
    # FORBIDDEN (outside the token's regions), then a valid registration.
    body = await gql.post(
        TWO, {"a": person(FIRST, region="370802"), "b": person(SECOND, "李四")}, regions=("5104",)
    )
    assert body["data"] == {
        "a": None,
        "b": {"idNumber": SECOND, "name": "李四", "regionCode": "510402"},
    }
    [error] = body["errors"]
    assert (error["path"], error["extensions"]["code"]) == (["a"], "FORBIDDEN")
    assert await stored(db) == [(SECOND, "李四")]


async def test_different_mutations_in_one_document_each_report(
    gql: GraphQLClient, db: Database
) -> None:
    await gql.data(
        "mutation($p: RegisterBeneficiaryInput!) { registerBeneficiary(input: $p) { id } }",
        {"p": person(FIRST)},
    )
    body = await gql.post(
        """mutation($e: RecordEnrollmentInput!, $bad: RecordEnrollmentInput!) {
          ok: recordEnrollment(input: $e) { year contribution subsidy { individual } }
          bad: recordEnrollment(input: $bad) { year } }""",
        {
            "e": {
                "idNumber": FIRST,
                "year": 2024,
                "contribution": "380",
                "enrolledOn": "2023-11-01",
            },
            "bad": {
                "idNumber": FIRST,
                "year": 2025,
                "contribution": "-1",
                "enrolledOn": "2024-11-01",
            },
        },
    )
    assert body["data"] == {
        "ok": {"year": 2024, "contribution": "380.00", "subsidy": {"individual": "380.00"}},
        "bad": None,
    }
    [error] = body["errors"]
    assert error["path"] == ["bad"]
    assert (error["extensions"]["field"], error["extensions"]["value"]) == ("contribution", "-1")
    async with db.sessions() as session:
        years = (await session.scalars(select(models.Enrollment.year))).all()
    assert years == [2024]
