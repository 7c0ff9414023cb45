"""The audit trail: one record per response that carried personal data, none for aggregates,
every write audited, a hash chain that shows tampering, and the auditor's reports."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from gateway.cli import app as cli
from gateway.storage import audit, models
from gateway.storage.database import Database
from tests.conftest import GraphQLClient
from tests.factories import add_people, category_document

PAGE = """query People { beneficiaries(first: 10) { edges { node {
  name identities { category } } } } }"""


async def records(db: Database) -> Sequence[models.AuditRecord]:
    async with db.sessions() as session:
        rows = await session.scalars(select(models.AuditRecord).order_by(models.AuditRecord.id))
        return rows.all()


async def test_a_read_of_personal_fields_leaves_exactly_one_record(
    gql: GraphQLClient, db: Database
) -> None:
    people = await add_people(db, 2)
    await gql.data(PAGE, department="civil_affairs", org="东区民政局", purpose="assistance review")
    [record] = await records(db)
    assert record.action == "READ"
    assert (record.department, record.org, record.subject) == (
        "civil_affairs",
        "东区民政局",
        "tester",
    )
    assert record.purpose == "assistance review"
    assert record.operation == "query People"
    assert record.query_hash == hashlib.sha256(PAGE.encode()).hexdigest()
    assert record.query_text == PAGE
    assert sorted(record.beneficiary_ids) == sorted(p.id for p in people)
    assert record.field_paths == [
        "beneficiaries.edges.node.identities",
        "beneficiaries.edges.node.identities.category",
        "beneficiaries.edges.node.name",
    ]


async def test_an_anonymous_operation_is_named_by_its_type_and_root_fields(
    gql: GraphQLClient, db: Database
) -> None:
    [person] = await add_people(db, 1)
    await gql.data(f'{{ beneficiary(idNumber: "{person.id_number}") {{ gender }} }}')
    [record] = await records(db)
    assert record.operation == "query beneficiary"
    assert record.field_paths == ["beneficiary(idNumber)", "beneficiary.gender"]


@pytest.mark.parametrize(
    ("department", "query"),
    [
        ("finance", "{ statistics(year: 2023) { persons claims assistance } }"),
        ("dashboard", "{ statistics(year: 2023) { byCategory { category persons } } }"),
        ("health", "{ benefitPolicies { id name } }"),
        ("civil_affairs", "{ beneficiaries(first: 5) { edges { cursor node { id } } } }"),
    ],
    ids=["statistics", "categories-count", "policies", "opaque-ids-only"],
)
async def test_responses_without_personal_data_leave_no_record(
    gql: GraphQLClient, db: Database, department: str, query: str
) -> None:
    await add_people(db, 3, start=50)
    await gql.data(query, department=department)
    assert await records(db) == []


async def test_without_its_audit_record_a_response_carries_no_data(
    gql: GraphQLClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_people(db, 1)

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("audit store down")

    monkeypatch.setattr(audit, "append", broken)
    body = await gql.post(PAGE)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL"
    assert "audit unavailable" in body["errors"][0]["message"]


async def test_concurrent_requests_keep_one_linear_chain(gql: GraphQLClient, db: Database) -> None:
    await add_people(db, 3)
    await asyncio.gather(*(gql.data(PAGE) for _ in range(20)))
    assert len(await records(db)) == 20
    async with db.sessions() as session:
        result = await audit.verify(session)
    assert result.ok
    assert result.checked == 20


async def tamper(admin: AsyncEngine, *statements: str) -> None:
    """Run ``statements`` as the database superuser with the append-only trigger off: what the
    gateway's own role cannot do."""
    async with admin.begin() as conn:
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        for statement in statements:
            await conn.execute(text(statement))


def medgw_audit(command: str, data_dir: Path, database_url: str) -> Any:
    """``medgw audit <command>`` with the checkpoints and their key in ``data_dir``."""
    env = {"DATABASE_URL": database_url, "MEDGW_DATA_DIR": str(data_dir)}
    return CliRunner().invoke(cli, ["audit", command], env=env)


async def test_audit_verify_reports_an_intact_chain(
    gql: GraphQLClient, db: Database, tmp_path: Path, database_url: str
) -> None:
    await add_people(db, 1)
    for _ in range(3):
        await gql.data(PAGE)
    signed = await asyncio.to_thread(medgw_audit, "checkpoint", tmp_path, database_url)
    assert signed.exit_code == 0, signed.output
    assert "checkpoint: 3 records, last id 3" in signed.stdout
    result = await asyncio.to_thread(medgw_audit, "verify", tmp_path, database_url)
    assert result.exit_code == 0, result.output
    assert "audit chain intact: 3 records, consistent with 1 signed checkpoints" in result.stdout


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        ("UPDATE audit_log SET purpose = 'curiosity' WHERE id = 2", "content does not match"),
        ("DELETE FROM audit_log WHERE id = 2", "prev_hash does not match"),
    ],
    ids=["changed", "deleted"],
)
async def test_tampering_is_detected_at_the_first_broken_link(
    gql: GraphQLClient,
    db: Database,
    admin: AsyncEngine,
    tmp_path: Path,
    database_url: str,
    statement: str,
    reason: str,
) -> None:
    await add_people(db, 1)
    for _ in range(4):
        await gql.data(PAGE)
    await tamper(admin, statement)
    result = await asyncio.to_thread(medgw_audit, "verify", tmp_path, database_url)
    assert result.exit_code == 1
    broken_at = 2 if "UPDATE" in statement else 3
    assert f"audit chain broken at record {broken_at}: {reason}" in result.stdout
    assert "(1 records before it are intact)" in result.stdout


async def test_access_report_lists_who_saw_the_person_and_why(
    gql: GraphQLClient, db: Database
) -> None:
    [person, other] = await add_people(db, 2, claims_each=1, carrier="insurer-a")
    await gql.data(
        f'{{ beneficiary(idNumber: "{person.id_number}") {{ name identities {{ category }} }} }}',
        department="civil_affairs",
        org="东区民政局",
        purpose="低保复核",
    )
    await gql.data(
        "{ claims(first: 5) { edges { node { claimNumber diagnosis beneficiary { name } } } } }",
        department="insurer",
        org="insurer-a",
        purpose="claim_handling",
    )
    await gql.data(f'{{ beneficiary(idNumber: "{other.id_number}") {{ name }} }}')
    report = await gql.data(
        """query($n: String!) { accessReport(idNumber: $n) { idNumber beneficiaryId
          records { action department org purpose operation fieldPaths } } }""",
        {"n": person.id_number},
        department="auditor",
        org="审计局",
    )
    found = report["accessReport"]
    assert found["beneficiaryId"] == str(person.id)
    assert found["records"] == [
        {
            "action": "READ",
            "department": "civil_affairs",
            "org": "东区民政局",
            "purpose": "低保复核",
            "operation": "query beneficiary",
            "fieldPaths": [
                "beneficiary(idNumber)",
                "beneficiary.identities",
                "beneficiary.identities.category",
                "beneficiary.name",
            ],
        },
        {
            "action": "READ",
            "department": "insurer",
            "org": "insurer-a",
            "purpose": "claim_handling",
            "operation": "query claims",
            "fieldPaths": [
                "claims.edges.node.beneficiary",
                "claims.edges.node.beneficiary.name",
                "claims.edges.node.diagnosis",
            ],
        },
    ]


async def test_the_auditor_pages_and_filters_the_log(gql: GraphQLClient, db: Database) -> None:
    [person] = await add_people(db, 1)
    for department in ("civil_affairs", "medical_insurance", "civil_affairs"):
        await gql.data(PAGE, department=department)
    query = """query($d: String, $b: ID, $after: String) {
      auditLog(department: $d, beneficiaryId: $b, first: 1, after: $after) {
        edges { node { id department beneficiaryIds } } pageInfo { hasNextPage endCursor } } }"""
    first = (await gql.data(query, {"d": "civil_affairs"}, department="auditor"))["auditLog"]
    assert [e["node"]["department"] for e in first["edges"]] == ["civil_affairs"]
    assert first["pageInfo"]["hasNextPage"] is True
    rest = await gql.data(
        query,
        {"d": "civil_affairs", "after": first["pageInfo"]["endCursor"]},
        department="auditor",
    )
    assert [e["node"]["id"] for e in rest["auditLog"]["edges"]] == ["3"]
    mine = await gql.data(query, {"b": str(person.id)}, department="auditor")
    assert mine["auditLog"]["edges"][0]["node"]["beneficiaryIds"] == [str(person.id)]


async def test_writes_only_ever_append_to_the_audit_log(gql: GraphQLClient, db: Database) -> None:
    """Every write adds records after the ones there are and changes none of them: the log of
    the first writes is the same, byte for byte, after many more."""

    async def log() -> list[tuple[Any, ...]]:
        async with db.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT id, hash, prev_hash, detail, action FROM audit_log ORDER BY id")
            )
            return [tuple(row) for row in rows.all()]

    number = "510402197001010013"
    await gql.data(
        "mutation($i: RegisterBeneficiaryInput!) { registerBeneficiary(input: $i) { id } }",
        {"i": {"idNumber": number, "name": "王五", "regionCode": "510402"}},
    )
    first = await log()
    assert [row[4] for row in first] == ["WRITE"]
    await gql.data(
        "mutation($i: RecordEnrollmentInput!) { recordEnrollment(input: $i) { year } }",
        {
            "i": {
                "idNumber": number,
                "year": 2023,
                "contribution": "380.00",
                "enrolledOn": "2022-12-01",
            }
        },
    )
    await gql.data(
        category_document("MINIMUM_LIVING"),
        {
            "i": {
                "idNumber": number,
                "category": "MINIMUM_LIVING",
                "validFrom": "2022-01-01",
                "reference": "R-1",
            }
        },
        department="civil_affairs",
    )
    claim = {
        "claimNumber": "C1",
        "idNumber": number,
        "type": "INPATIENT",
        "hospitalLevel": "SECONDARY",
        "admissionDate": "2023-03-01",
        "totalCost": "30000.00",
        "policyScopeCost": "26000.00",
    }
    await gql.data(
        "mutation($i: SettleClaimInput!) { settleClaim(input: $i) { assistance } }", {"i": claim}
    )
    await gql.data(
        'mutation { reverseSettlement(claimNumber: "C1", reason: "x") '
        "{ settlement { assistance } } }"
    )
    after = await log()
    assert after[: len(first)] == first
    # Five writes, and the reads of the personal fields each mutation answered with.
    assert [row[4] for row in after].count("WRITE") == 5
    assert [row[0] for row in after] == sorted(row[0] for row in after)
    assert all(row[2] == before[1] for before, row in itertools.pairwise(after))
