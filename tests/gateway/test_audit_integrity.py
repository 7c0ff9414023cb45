"""Audit records that cannot be made to lie (issue 9, faults 7 and 9; ACCESS.md, Behaviour).

Aliases cannot rename the recorded field paths, the operation is the one the document ran, the
query text is kept; the gateway's database role cannot change the log; and what a superuser can
still do (delete the newest records, recompute the whole chain) is caught by signed checkpoints
kept outside the database.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from gateway.config import Settings
from gateway.storage import audit, checkpoints, models
from gateway.storage.checkpoints import Checkpoint
from gateway.storage.database import Database
from policies.benefits import PolicySet
from tests.conftest import GraphQLClient, bearer, in_process
from tests.factories import add_people
from tests.gateway.test_audit import PAGE, medgw_audit, records, tamper

LYING = """query Lookup($i: String!) { beneficiary(idNumber: $i) {
  id: idNumber regionCode: name birthDate: identities { category } } }"""


async def the_record(db: Database) -> models.AuditRecord:
    [record] = await records(db)
    return record


# --- fault 7: what the record says ------------------------------------------------------------


async def test_aliases_do_not_rename_the_recorded_field_paths(
    http: httpx.AsyncClient, db: Database
) -> None:
    [person] = await add_people(db, 1)
    response = await http.post(
        "/graphql",
        json={"query": LYING, "variables": {"i": person.id_number}},
        headers=bearer(),
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "data": {
            "beneficiary": {
                "id": person.id_number,
                "regionCode": person.name,
                "birthDate": [{"category": "MINIMUM_LIVING"}],
            }
        }
    }
    record = await the_record(db)
    assert record.field_paths == [
        "beneficiary(idNumber)",
        "beneficiary.idNumber",
        "beneficiary.identities",
        "beneficiary.identities.category",
        "beneficiary.name",
    ]
    assert record.query_text == LYING
    assert record.operation == "query Lookup"
    assert record.beneficiary_ids == [person.id]


async def test_aliases_inside_lists_and_fragments_are_recorded_by_field_name(
    gql: GraphQLClient, db: Database
) -> None:
    await add_people(db, 2)
    query = """{ people: beneficiaries(first: 5) { e: edges { n: node { ...Who } } } }
      fragment Who on Beneficiary { gender: name ... on Beneficiary { id: birthDate } }"""
    data = await gql.data(query)
    assert {edge["n"]["gender"] for edge in data["people"]["e"]} == {"测试0", "测试1"}
    record = await the_record(db)
    assert record.field_paths == [
        "beneficiaries.edges.node.birthDate",
        "beneficiaries.edges.node.name",
    ]
    assert record.operation == "query beneficiaries"
    assert record.query_text == query


async def test_the_recorded_operation_is_the_one_the_document_ran(
    gql: GraphQLClient, client: httpx.AsyncClient, db: Database
) -> None:
    [person] = await add_people(db, 1)
    document = f"""query Harmless {{ benefitPolicies {{ id }} }}
      query Lookup {{ beneficiary(idNumber: "{person.id_number}") {{ name }} }}"""
    ran = await client.post(
        "/graphql", json={"query": document, "operationName": "Lookup"}, headers=bearer()
    )
    assert ran.json() == {"data": {"beneficiary": {"name": person.name}}}
    record = await the_record(db)
    assert record.operation == "query Lookup"
    assert record.query_text == document
    # A name the document does not have runs nothing and records nothing.
    lie = await client.post(
        "/graphql",
        json={
            "query": f'{{ beneficiary(idNumber: "{person.id_number}") {{ name }} }}',
            "operationName": "Harmless",
        },
        headers=bearer(),
    )
    assert lie.status_code == 400
    [error] = lie.json()["errors"]  # an HTTP-level refusal in the JSON error shape
    assert (error["message"], error["extensions"]["code"]) == (
        'Unknown operation named "Harmless".',
        "BAD_INPUT",
    )
    assert len(await records(db)) == 1


async def test_a_mutation_is_recorded_as_a_mutation_with_its_root_fields(
    gql: GraphQLClient, db: Database
) -> None:
    await gql.data(
        """mutation { a: registerBeneficiary(input: {idNumber: "510402197001010013",
           name: "王五", regionCode: "510402"}) { n: name } }"""
    )
    [write, read] = await records(db)
    assert (write.action, write.operation, write.query_text) == (
        "WRITE",
        "registerBeneficiary",
        None,
    )
    assert (read.action, read.operation, read.field_paths) == (
        "READ",
        "mutation registerBeneficiary",
        ["registerBeneficiary.name"],
    )


async def test_the_auditor_reads_the_query_text_in_the_log(
    gql: GraphQLClient, db: Database
) -> None:
    [person] = await add_people(db, 1)
    await gql.data(LYING, {"i": person.id_number})
    log = await gql.data(
        "{ auditLog { edges { node { operation queryText queryHash fieldPaths } } } }",
        department="auditor",
    )
    [edge] = log["auditLog"]["edges"]
    assert edge["node"]["operation"] == "query Lookup"
    assert edge["node"]["queryText"] == LYING
    assert edge["node"]["fieldPaths"][:2] == ["beneficiary(idNumber)", "beneficiary.idNumber"]


async def test_the_query_text_is_part_of_the_hash_chain(
    gql: GraphQLClient, db: Database, admin: AsyncEngine
) -> None:
    await add_people(db, 1)
    await gql.data(PAGE)
    await tamper(admin, "UPDATE audit_log SET query_text = '{ benefitPolicies { id } }'")
    async with db.sessions() as session:
        result = await audit.verify(session)
    assert (result.broken_at, result.reason) == (1, "content does not match its hash")


# --- fault 9: the app role --------------------------------------------------------------------


@pytest.fixture
async def app_role(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


async def test_the_gateway_connects_as_a_role_without_privileges(
    app_role: AsyncEngine, db: Database
) -> None:
    async with db.engine.connect() as conn:
        role = (
            await conn.execute(
                text(
                    "SELECT current_user, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, "
                    "rolreplication FROM pg_roles WHERE rolname = current_user"
                )
            )
        ).one()
    assert tuple(role) == ("medgw_app", False, False, False, False, False)


@pytest.mark.parametrize(
    ("statement", "refusal"),
    [
        ("UPDATE audit_log SET purpose = 'curiosity'", "permission denied for table audit_log"),
        ("DELETE FROM audit_log WHERE id > 1", "permission denied for table audit_log"),
        ("TRUNCATE audit_log", "permission denied for table audit_log"),
        ("ALTER TABLE audit_log DISABLE TRIGGER ALL", "must be owner of table audit_log"),
        ("DROP TABLE audit_log", "must be owner of table audit_log"),
        (
            "SET session_replication_role = replica",
            'permission denied to set parameter "session_replication_role"',
        ),
    ],
    ids=["update", "delete", "truncate", "disable-trigger", "drop", "replica"],
)
async def test_the_app_role_cannot_change_or_unprotect_the_audit_log(
    gql: GraphQLClient, db: Database, app_role: AsyncEngine, statement: str, refusal: str
) -> None:
    await add_people(db, 1)
    await gql.data(PAGE)
    await gql.data(PAGE)
    before = [(r.id, r.hash, r.purpose) for r in await records(db)]
    with pytest.raises(DBAPIError, match=refusal) as raised:
        async with app_role.begin() as conn:
            await conn.execute(text(statement))
    assert raised.value.orig is not None
    assert getattr(raised.value.orig, "sqlstate", None) == "42501"  # insufficient_privilege
    assert [(r.id, r.hash, r.purpose) for r in await records(db)] == before


async def test_the_app_role_has_just_the_table_rights_it_needs(
    db: Database, app_role: AsyncEngine
) -> None:
    async with app_role.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT tablename, "
                "array_remove(ARRAY[CASE WHEN has_table_privilege(tablename, 'SELECT') "
                "THEN 'SELECT' END, CASE WHEN has_table_privilege(tablename, 'INSERT') "
                "THEN 'INSERT' END, CASE WHEN has_table_privilege(tablename, 'UPDATE') "
                "THEN 'UPDATE' END, CASE WHEN has_table_privilege(tablename, 'DELETE') "
                "THEN 'DELETE' END, CASE WHEN has_table_privilege(tablename, 'TRUNCATE') "
                "THEN 'TRUNCATE' END], NULL) FROM pg_tables WHERE schemaname = 'public'"
            )
        )
        rights = {name: list(granted) for name, granted in rows.all()}
    append_only = {"audit_log", "fund_accounts", "fund_entries"}
    upsert_only = {"fund_entry_months"}  # the entries' monthly rollup (migration 0016)
    business = set(models.Base.metadata.tables) - append_only - upsert_only
    assert rights == {
        **{name: ["SELECT", "INSERT"] for name in append_only},
        **{name: ["SELECT", "INSERT", "UPDATE"] for name in upsert_only},
        "alembic_version": ["SELECT"],
        **{name: ["SELECT", "INSERT", "UPDATE", "DELETE"] for name in business},
    }


# --- fault 9: checkpoints and verify ----------------------------------------------------------


async def read_and_sign(gql: GraphQLClient, db: Database, data_dir: Path, reads: int) -> None:
    await add_people(db, 1)
    for _ in range(reads):
        await gql.data(PAGE)
    signed = await asyncio.to_thread(medgw_audit, "checkpoint", data_dir, _url(db))
    assert signed.exit_code == 0, signed.output


def _url(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=False)


async def verify(db: Database, data_dir: Path) -> Any:
    return await asyncio.to_thread(medgw_audit, "verify", data_dir, _url(db))


async def links_hold(db: Database) -> bool:
    """What ``verify`` said before checkpoints: only the links."""
    async with db.sessions() as session:
        return (await audit.verify(session)).ok


async def test_deleting_the_newest_records_is_reported_as_truncation(
    gql: GraphQLClient, db: Database, admin: AsyncEngine, tmp_path: Path
) -> None:
    await read_and_sign(gql, db, tmp_path, reads=5)
    await tamper(admin, "DELETE FROM audit_log WHERE id > 3")
    assert await links_hold(db), "the links alone cannot show a cut-off tail"
    result = await verify(db, tmp_path)
    assert result.exit_code == 1
    assert "audit chain does not match its checkpoints: truncated: the checkpoint of " in (
        result.stdout
    )
    assert "counts 5 records up to id 5, the log has 3" in result.stdout


async def test_a_truncation_stays_visible_after_the_gateway_signs_again(
    gql: GraphQLClient, db: Database, admin: AsyncEngine, tmp_path: Path
) -> None:
    await read_and_sign(gql, db, tmp_path, reads=4)
    await tamper(admin, "DELETE FROM audit_log WHERE id > 2")
    again = await asyncio.to_thread(medgw_audit, "checkpoint", tmp_path, _url(db))
    assert "checkpoint: 2 records, last id 2" in again.stdout
    result = await verify(db, tmp_path)
    assert result.exit_code == 1
    assert "truncated" in result.stdout
    assert "counts 4 records up to id 4, the log has 2" in result.stdout


async def _recompute_chain(admin: AsyncEngine) -> None:
    """The attacker's rewrite: change a record, then re-hash every link so that they all hold."""
    async with async_sessionmaker(admin)() as session, session.begin():
        await session.execute(text("SET LOCAL session_replication_role = replica"))
        await session.execute(text("UPDATE audit_log SET purpose = 'curiosity' WHERE id = 2"))
        prev = audit.GENESIS
        rows = await session.scalars(select(models.AuditRecord).order_by(models.AuditRecord.id))
        for record in rows.all():
            record.prev_hash = prev
            record.hash = audit.record_digest(prev, record)
            prev = record.hash


async def test_a_recomputed_chain_is_reported_as_rewritten(
    gql: GraphQLClient, db: Database, admin: AsyncEngine, tmp_path: Path
) -> None:
    await read_and_sign(gql, db, tmp_path, reads=4)
    await _recompute_chain(admin)
    assert await links_hold(db), "a recomputed chain holds all its links"
    result = await verify(db, tmp_path)
    assert result.exit_code == 1
    assert (
        "audit chain does not match its checkpoints: rewritten: record 4 of the chain is id 4"
        in (result.stdout)
    )
    [signed] = checkpoints.read(tmp_path / "audit_checkpoints.jsonl")
    assert f"signed id 4 with hash {signed.head[:16]}" in result.stdout


async def test_records_without_any_checkpoint_fail_verification(
    gql: GraphQLClient, db: Database, tmp_path: Path
) -> None:
    empty = await verify(db, tmp_path)
    assert empty.exit_code == 0, empty.output
    assert "audit chain intact: 0 records" in empty.stdout
    await add_people(db, 1)
    await gql.data(PAGE)
    result = await verify(db, tmp_path)
    assert result.exit_code == 1
    assert f"no checkpoint in {tmp_path / 'audit_checkpoints.jsonl'}: 1 records" in result.stdout


@pytest.mark.parametrize(
    "forge",
    [
        lambda c, key: {**json.loads(c.line()), "count": 9},
        lambda c, key: {**json.loads(c.line()), "signature": "0" * 64},
        lambda c, key: json.loads(
            Checkpoint.signed(
                b"the attacker's key", count=c.count, last_id=c.last_id, head=c.head, at=c.at
            ).line()
        ),
    ],
    ids=["changed-count", "changed-signature", "other-key"],
)
async def test_a_checkpoint_with_a_bad_signature_fails_verification(
    gql: GraphQLClient, db: Database, tmp_path: Path, forge: Any
) -> None:
    await read_and_sign(gql, db, tmp_path, reads=2)
    path = tmp_path / "audit_checkpoints.jsonl"
    [signed] = checkpoints.read(path)
    path.write_text(json.dumps(forge(signed, None)) + "\n")
    result = await verify(db, tmp_path)
    assert result.exit_code == 1
    assert f"{path}: checkpoint 1 (of {signed.at}) has a bad signature" in result.stdout


async def test_a_line_that_is_no_checkpoint_fails_verification_naming_it(
    gql: GraphQLClient, db: Database, tmp_path: Path
) -> None:
    await read_and_sign(gql, db, tmp_path, reads=1)
    path = tmp_path / "audit_checkpoints.jsonl"
    with path.open("a") as file:
        file.write('{"count": "all of them"}\n')
    result = await verify(db, tmp_path)
    assert result.exit_code == 1
    assert f"{path} line 2: not a checkpoint" in result.stdout


async def test_the_running_gateway_signs_checkpoints_on_schedule_and_at_shutdown(
    settings: Settings, db: Database, policies: PolicySet, tmp_path: Path
) -> None:
    await add_people(db, 1)
    often = settings.model_copy(
        update={"audit_checkpoints_path": tmp_path / "cp.jsonl", "audit_checkpoint_seconds": 0.1}
    )
    path = often.audit_checkpoints
    async with in_process(often, db, policies) as client:
        await client.post("/graphql", json={"query": PAGE}, headers=bearer())
        for _ in range(100):
            found = checkpoints.read(path) if path.exists() else []
            if found and found[-1].count == 1:
                break
            await asyncio.sleep(0.05)
        assert [c.count for c in found][-1] == 1, "no scheduled checkpoint after the read"
        await client.post("/graphql", json={"query": PAGE}, headers=bearer())
        # Unchanged heads are not signed twice.
        await asyncio.sleep(0.3)
        assert [c.count for c in checkpoints.read(path)].count(1) == 1
    rarely = often.model_copy(update={"audit_checkpoint_seconds": 3600})
    async with in_process(rarely, db, policies) as client:
        await client.post("/graphql", json={"query": PAGE}, headers=bearer())
    last = checkpoints.read(path)[-1]
    assert (last.count, last.last_id) == (3, 3), "the shutdown checkpoint counts the last read"
    assert all(c.valid(settings.audit_key) for c in checkpoints.read(path))
    async with db.sessions() as session:
        assert (await audit.verify(session, checkpoints.read(path))).ok


async def test_the_auditor_reads_the_checkpoints_and_only_the_auditor(
    gql: GraphQLClient, db: Database, settings: Settings
) -> None:
    await add_people(db, 1)
    await gql.data(PAGE)
    first = await audit.checkpoint(db, settings.audit_key, settings.audit_checkpoints)
    await gql.data(PAGE)
    second = await audit.checkpoint(db, settings.audit_key, settings.audit_checkpoints, first)
    query = "{ auditCheckpoints { count lastId head at signature signatureValid } }"
    found = (await gql.data(query, department="auditor"))["auditCheckpoints"]
    assert [(c["count"], c["lastId"], c["head"], c["signatureValid"]) for c in found] == [
        (2, "2", second.head, True),
        (1, "1", first.head, True),
    ]
    assert found[0]["signature"] == second.signature
    for department in ("medical_insurance", "finance", "dashboard", "insurer"):
        error = await gql.error(query, department=department)
        assert error["extensions"]["code"] == "FORBIDDEN"
        assert error["extensions"]["forbidden"] == ["auditCheckpoints"]
