"""Claims, settlements and settlement lines partitioned by year (issue 15, point 5; migration
0019).

Rows land in the partition of their settlement year; the claim number stays unique across
years (the register ``claim_numbers``): the same number in another year is another person's
claim or a conflict, never a second claim; the composite foreign keys refuse an event or a fund
entry whose year is not its claim's; the app role cannot reach a partition, and its changes
to the register must still name a claim; ``medgw partitions add-years`` adds the years of
every partitioned table and refuses one whose rows are in DEFAULT; upgrading a populated
database keeps every row, id and reference, the sequences continue, a settlement works after
it, and the downgrade gives it all back.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import TextClause, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from gateway import migrate
from gateway.app import create_app
from gateway.cli import app as cli
from gateway.config import Settings
from gateway.storage import partitions
from gateway.storage.database import Database
from policies.benefits import PolicySet
from resolvers import person_year
from tests.conftest import GraphQLClient
from tests.gateway.test_audit_partitions import app_role  # noqa: F401  (fixture)
from tests.gateway.test_migrate import scratch  # noqa: F401  (fixture)
from tests.resolvers.test_settlement_governance import (
    PAN_ID,
    PANZHIHUA,
    SETTLE,
    enroll,
    register,
    settle,
    stay,
)
from tests.resolvers.test_settlement_lean import insured

OTHER_ID = "510402198001010018"


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(text(sql), params)).all()]


COPIED = (
    "type, admission_date, discharge_date, total_cost, policy_scope_cost, referral_compliant, "
    "in_province, special_treatment_hospital, content_hash"
)


def copy_claim(number: str, year: int, source: str) -> TextClause:
    """A plain SQL statement storing a copy of the claim ``source`` as ``number`` of ``year``
    (the database registers its number: the trigger ``claims_register_number``)."""
    return text(
        f"INSERT INTO claims (claim_number, beneficiary_id, year, {COPIED}) "
        f"SELECT :number, beneficiary_id, CAST(:year AS smallint), {COPIED} "
        "FROM claims WHERE claim_number = :source"
    ).bindparams(number=number, year=year, source=source)


async def test_rows_land_in_the_partition_of_their_year_and_numbers_in_the_register(
    gql: GraphQLClient, admin: AsyncEngine
) -> None:
    await insured(gql)
    await enroll(gql, PAN_ID, 2025)
    await settle(gql, stay(PAN_ID, "Y-23", "2023-03-01", "10000.00", "8000.00"))
    await settle(gql, stay(PAN_ID, "Y-25", "2025-03-01", "10000.00", "8000.00"))
    placed = await rows(
        admin,
        "SELECT 'c', c.year, c.tableoid::regclass::text FROM claims c UNION ALL "
        "SELECT 's', s.year, s.tableoid::regclass::text FROM settlements s UNION ALL "
        "SELECT DISTINCT 'l', l.year, l.tableoid::regclass::text FROM settlement_lines l "
        "ORDER BY 1, 2",
    )
    # 2023 is before the first year given a partition (nothing of it was stored at the upgrade).
    assert placed == [
        ("c", 2023, "year_partitions.claims_default"),
        ("c", 2025, "year_partitions.claims_2025"),
        ("l", 2023, "year_partitions.settlement_lines_default"),
        ("l", 2025, "year_partitions.settlement_lines_2025"),
        ("s", 2023, "year_partitions.settlements_default"),
        ("s", 2025, "year_partitions.settlements_2025"),
    ]
    assert await rows(
        admin,
        "SELECT n.claim_number, n.claim_id = c.id, n.year, n.beneficiary_id = c.beneficiary_id "
        "FROM claim_numbers n JOIN claims c USING (claim_number) ORDER BY 1",
    ) == [("Y-23", True, 2023, True), ("Y-25", True, 2025, True)]
    lines = await rows(
        admin,
        "SELECT count(*) FROM settlement_lines l JOIN settlements s ON s.id = l.settlement_id "
        "WHERE (l.year, l.beneficiary_id) = (s.year, s.beneficiary_id)",
    )
    assert lines == [(10,)]  # five payers of each event, each with its event's person and year


async def test_a_number_taken_between_the_check_and_the_insert_is_answered_as_taken(
    gql: GraphQLClient, admin: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two persons' claims of one number in flight at once both pass the register check; the
    second insert fails on the register's key (raised on asyncpg, answered as SQLAlchemy's
    IntegrityError: ``resolvers.original``) and is answered from the stored claim. The check
    is made to miss here, as the race makes it."""
    await insured(gql)
    await register(gql, OTHER_ID, PANZHIHUA)
    await enroll(gql, OTHER_ID, 2023)
    first = await settle(gql, stay(PAN_ID, "RACE-1", "2023-03-01", "10000.00", "8000.00"))
    read = person_year.read

    async def missing_the_register(*args: Any, **kwargs: Any) -> person_year.PersonYear:
        found = await read(*args, **kwargs)
        found.known_claim = None
        return found

    monkeypatch.setattr(person_year, "read", missing_the_register)
    theirs = await gql.error(
        SETTLE, {"i": stay(OTHER_ID, "RACE-1", "2023-03-01", "900.00", "800.00")}
    )
    assert theirs["extensions"]["code"] == "CONFLICT"
    assert "already used by another person's claim" in theirs["message"]
    again = await settle(gql, stay(PAN_ID, "RACE-1", "2023-03-01", "10000.00", "8000.00"))
    assert again == first
    assert await rows(admin, "SELECT claim_number, year FROM claims") == [("RACE-1", 2023)]
    assert await rows(admin, "SELECT count(*) FROM settlements") == [(1,)]


async def test_a_claim_number_is_unique_across_years(
    gql: GraphQLClient, admin: AsyncEngine
) -> None:
    """The same number in another year (another partition): another person's is the one
    answer, the same person's with other content a conflict; nothing is stored either way."""
    await insured(gql)
    await enroll(gql, PAN_ID, 2025)
    await register(gql, OTHER_ID, PANZHIHUA)
    await enroll(gql, OTHER_ID, 2025)
    first = await settle(gql, stay(PAN_ID, "U-1", "2023-03-01", "10000.00", "8000.00"))
    again = await settle(gql, stay(PAN_ID, "U-1", "2023-03-01", "10000.00", "8000.00"))
    assert again == first  # the same content: the same answer
    theirs = await gql.error(SETTLE, {"i": stay(OTHER_ID, "U-1", "2025-03-01", "900.00", "800.00")})
    assert theirs["extensions"]["code"] == "CONFLICT"
    assert "already used by another person's claim" in theirs["message"]
    mine = await gql.error(SETTLE, {"i": stay(PAN_ID, "U-1", "2025-03-01", "900.00", "800.00")})
    assert mine["extensions"]["code"] == "CONFLICT"
    assert "claimNumber = U-1" in mine["message"]
    assert await rows(admin, "SELECT claim_number, year FROM claims") == [("U-1", 2023)]
    assert await rows(admin, "SELECT claim_number, year FROM claim_numbers") == [("U-1", 2023)]


async def test_a_claim_inserted_by_plain_sql_registers_its_number(
    gql: GraphQLClient, admin: AsyncEngine
) -> None:
    """However a claim is inserted, its number is registered in the same statement: the
    register holds every claim, and a second claim of the number fails."""
    await insured(gql)
    await settle(gql, stay(PAN_ID, "P-1", "2023-03-01", "10000.00", "8000.00"))
    async with admin.begin() as conn:
        await conn.execute(copy_claim("P-2", 2026, "P-1"))
    assert await rows(
        admin,
        "SELECT n.claim_number, n.year, n.claim_id = c.id FROM claim_numbers n "
        "JOIN claims c USING (claim_number) ORDER BY 1",
    ) == [("P-1", 2023, True), ("P-2", 2026, True)]
    with pytest.raises(IntegrityError, match="pk_claim_numbers"):
        async with admin.begin() as conn:
            await conn.execute(copy_claim("P-2", 2024, "P-1"))
    assert await rows(admin, "SELECT count(*) FROM claims") == [(2,)]


async def test_a_claim_number_registered_twice_fails_the_claims_statement(
    gql: GraphQLClient, admin: AsyncEngine
) -> None:
    """Two claims of one number, whatever their years, cannot both be stored: the register's
    key refuses the second (the unique claim number of an unpartitioned table did)."""
    await insured(gql)
    await settle(gql, stay(PAN_ID, "R-1", "2023-03-01", "10000.00", "8000.00"))
    with pytest.raises(IntegrityError, match="pk_claim_numbers"):
        async with admin.begin() as conn:
            await conn.execute(copy_claim("R-1", 2026, "R-1"))


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO settlements (claim_id, beneficiary_id, year, kind, policy, out_of_pocket, "
        "explanation, department, org) SELECT id, beneficiary_id, year + 1, 'ADJUSTMENT', 'p', 0, "
        "'{}', 'd', 'o' FROM claims",
        "INSERT INTO settlement_lines (settlement_id, beneficiary_id, year, payer, amount) "
        "SELECT id, beneficiary_id, year + 1, 'assistance', 0 FROM settlements",
        "INSERT INTO recoveries (claim_id, beneficiary_id, year, policy, status, amount, "
        "assistance, secondary_assistance, cause) SELECT id, beneficiary_id, year - 1, 'p', "
        "'WAIVED', 0, 0, 0, 'c' FROM claims",
        "INSERT INTO fund_entries (account_id, settlement_id, kind, flow, side, amount, year, "
        "booked_on) SELECT account_id, settlement_id, kind, flow, side, amount, year + 1, "
        "booked_on FROM fund_entries LIMIT 1",
        "INSERT INTO claim_numbers SELECT 'N-2', id, year, gen_random_uuid() FROM claims",
    ],
    ids=["settlement", "line", "recovery", "fund-entry", "claim-number"],
)
async def test_references_name_the_year_and_person_of_what_they_reference(
    gql: GraphQLClient, admin: AsyncEngine, statement: str
) -> None:
    await insured(gql)
    await settle(gql, stay(PAN_ID, "F-1", "2023-03-01", "10000.00", "8000.00"))
    with pytest.raises(IntegrityError, match="violates foreign key constraint"):
        async with admin.begin() as conn:
            await conn.execute(text(statement))


async def test_the_app_role_reaches_no_partition_and_the_register_holds_to_its_claims(
    gql: GraphQLClient,
    admin: AsyncEngine,
    app_role: AsyncEngine,  # noqa: F811
) -> None:
    await insured(gql)
    await settle(gql, stay(PAN_ID, "P-1", "2023-03-01", "10000.00", "8000.00"))
    every = await rows(
        admin,
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent IN "
        "('claims'::regclass, 'settlements'::regclass, 'settlement_lines'::regclass)",
    )
    assert len(every) >= 3 * 14
    for (partition,) in every:
        with pytest.raises(DBAPIError, match="permission denied for schema year_partitions"):
            async with app_role.begin() as conn:
                await conn.execute(text(f"SELECT * FROM {partition}"))
    for statement in (
        "UPDATE claim_numbers SET year = 2024",
        "UPDATE claim_numbers SET claim_id = claim_id + 1",
    ):
        with pytest.raises(IntegrityError, match="fk_claim_numbers_claim_id_claims"):
            async with app_role.begin() as conn:
                await conn.execute(text(statement))
    # Through the parents, as granted (migration 0005): what the gateway does.
    async with app_role.begin() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM settlement_lines")) == 5
        await conn.execute(text("UPDATE claims SET acknowledged_by = 'x'"))


async def test_medgw_partitions_add_years(
    gql: GraphQLClient, admin: AsyncEngine, admin_url: str, tmp_path: Path
) -> None:
    await insured(gql)
    await settle(gql, stay(PAN_ID, "A-1", "2023-03-01", "10000.00", "8000.00"))
    env = {
        "DATABASE_URL": admin_url,
        "MEDGW_MIGRATION_URL": admin_url,
        "MEDGW_DATA_DIR": str(tmp_path),
    }

    def add_years(*years: str) -> Any:
        return CliRunner().invoke(cli, ["partitions", "add-years", *years], env=env)

    created = (2148, 2149, 2150)
    try:
        async with admin.begin() as conn:  # a claim of 2150, a year without partition: DEFAULT
            await conn.execute(copy_claim("A-2150", 2150, "A-1"))
        refused = await asyncio.to_thread(add_years, "2149", "2150")
        assert refused.exit_code == 1, refused.output
        assert "1 claims of 2150 are in year_partitions.claims_default" in refused.output
        added = await asyncio.to_thread(add_years, "2148", "2149")
        assert added.exit_code == 0, added.output
        assert added.output == (
            "audit_log partitions added: 2148, 2149\n"
            "claims partitions added: 2148, 2149\n"
            "settlements partitions added: 2148, 2149\n"
            "settlement_lines partitions added: 2148, 2149\n"
        )
        again = await asyncio.to_thread(add_years, "2149")
        assert again.output == "partitions: every year asked for already has one\n"
        found = {name for (name,) in await rows(admin, "SELECT relname::text FROM pg_class")}
        assert {f"claims_{y}" for y in (2148, 2149)} <= found
        assert "claims_2150" not in found
    finally:
        async with admin.begin() as conn:
            for table in reversed(partitions.EVERY):
                for year in created:
                    partition = table.name(year)
                    if await conn.scalar(text("SELECT to_regclass(:t)"), {"t": partition}):
                        # Detached first: the foreign keys into a partition go with it.
                        await conn.execute(
                            text(f"ALTER TABLE {table.table} DETACH PARTITION {partition}")
                        )
                        await conn.execute(text(f"DROP TABLE {partition}"))


PEOPLE = (uuid.UUID(int=1), uuid.UUID(int=2))
SEED = [
    "INSERT INTO beneficiaries (id, id_number, name, gender, birth_date, region_code, "
    "created_by) VALUES ('00000000-0000-0000-0000-000000000001', '510402197001010011', '甲', "
    "'MALE', '1970-01-01', '510402', 'seed'), ('00000000-0000-0000-0000-000000000002', "
    "'510402197001010038', '乙', 'FEMALE', '1970-01-01', '510402', 'seed')",
    # Ids with gaps, far from 1: they must be kept, and the sequences go on after them.
    "SELECT setval('claims_id_seq', 100), setval('settlements_id_seq', 500)",
    "INSERT INTO claims (claim_number, beneficiary_id, year, type, hospital_level, "
    "admission_date, discharge_date, total_cost, policy_scope_cost, referral_compliant, "
    "in_province, special_treatment_hospital, policy, content_hash, reversed_at, reported) "
    "SELECT 'OLD-' || n, CASE WHEN n % 2 = 0 THEN '00000000-0000-0000-0000-000000000001'::uuid "
    "ELSE '00000000-0000-0000-0000-000000000002'::uuid END, y, 'INPATIENT', 'SECONDARY', "
    "make_date(y, 3, n), make_date(y, 3, n + 1), 1000 * n, 800 * n, true, true, false, "
    "'510400-2023', md5(n::text), CASE WHEN n = 3 THEN timestamptz '2025-05-01' END, "
    'CASE WHEN n = 4 THEN \'{"basicInsurance": "1.00"}\'::jsonb END '
    "FROM (VALUES (1, 2019), (2, 2023), (3, 2023), (4, 2025), (5, 2026)) v(n, y)",
    "SELECT setval('claims_id_seq', 200)",
    "INSERT INTO settlements (claim_id, beneficiary_id, year, kind, policy, category, "
    "out_of_pocket, reason, explanation, department, org) "
    "SELECT id, beneficiary_id, year, k, '510400-2023', NULL, 10, NULL, "
    "jsonb_build_object('claim', claim_number), 'medical_insurance', 'mi' "
    "FROM claims, (VALUES ('ORIGINAL'), ('ADJUSTMENT')) k(k) ORDER BY id, k DESC",
    "INSERT INTO settlement_lines (settlement_id, payer, amount) "
    "SELECT s.id, p, s.id / 7.0 FROM settlements s, "
    "unnest(ARRAY['basicInsurance', 'assistance']) p",
    "INSERT INTO recoveries (claim_id, beneficiary_id, year, policy, status, amount, "
    "assistance, secondary_assistance, cause, settlement_id) "
    "SELECT c.id, c.beneficiary_id, c.year, '510400-2023', 'RECOVERED', 5, 5, 0, 'late', s.id "
    "FROM claims c JOIN settlements s ON s.claim_id = c.id AND s.kind = 'ADJUSTMENT' "
    "WHERE c.claim_number = 'OLD-2'",
    "INSERT INTO recoveries (claim_id, beneficiary_id, year, policy, status, amount, "
    "assistance, secondary_assistance, cause) SELECT id, beneficiary_id, year, '510400-2023', "
    "'PENDING', 3, 3, 0, 'late' FROM claims WHERE claim_number = 'OLD-4'",
    "INSERT INTO fund_accounts (kind, region_code, party) VALUES ('HOSPITAL', '510402', 'H')",
    "INSERT INTO fund_entries (account_id, settlement_id, kind, flow, side, amount, year, "
    "booked_on) SELECT a.id, s.id, s.kind, 'basicInsurance', 'CREDIT', 1, s.year, "
    "make_date(s.year, 4, 1) FROM settlements s, fund_accounts a",
]
CLAIMS = "SELECT * FROM claims ORDER BY id"
EVENTS = "SELECT * FROM settlements ORDER BY id"
LINES = "SELECT settlement_id, payer, amount FROM settlement_lines ORDER BY 1, 2"
RECOVERIES = "SELECT * FROM recoveries ORDER BY id"
ENTRIES = "SELECT * FROM fund_entries ORDER BY id"
REFERENCES = """
SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE contype = 'f' AND conparentid = 0 AND confrelid IN ('claims'::regclass,
  'settlements'::regclass) ORDER BY 1, 2"""


async def snapshot(engine: AsyncEngine) -> list[list[tuple[Any, ...]]]:
    return [await rows(engine, sql) for sql in (CLAIMS, EVENTS, LINES, RECOVERIES, ENTRIES)]


async def kinds(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    return await rows(
        engine,
        "SELECT relname::text, relkind::text FROM pg_class WHERE relname IN "
        "('claims', 'settlements', 'settlement_lines', 'claim_numbers') "
        "AND relnamespace = 'public'::regnamespace ORDER BY 1",
    )


@pytest.fixture
async def scratch_gql(
    scratch: AsyncEngine,  # noqa: F811
    settings: Settings,
    policies: PolicySet,
    tmp_path: Path,
) -> AsyncIterator[tuple[AsyncEngine, Any]]:
    """The scratch database, and a way to open a gateway on it (once migrated)."""
    opened: list[Database] = []

    async def gateway() -> Any:
        db = Database.connect(scratch.url.render_as_string(hide_password=False), settings)
        opened.append(db)
        return create_app(settings.model_copy(update={"data_dir": tmp_path}), db=db,
                          policies=policies)  # fmt: skip

    yield scratch, gateway
    for db in opened:
        await db.dispose()


async def test_upgrading_a_populated_database_keeps_every_row_id_and_reference(
    scratch_gql: tuple[AsyncEngine, Any],
) -> None:
    db_engine, gateway = scratch_gql
    await migrate.upgrade_engine(db_engine, "0018")
    async with db_engine.begin() as conn:
        for statement in SEED:
            await conn.execute(text(statement))
    before = await snapshot(db_engine)
    claims, events, lines, recoveries, entries = before
    assert (len(claims), len(events), len(lines), len(recoveries), len(entries)) == (
        5,
        10,
        20,
        2,
        10,
    )
    references = await rows(db_engine, REFERENCES)

    await migrate.upgrade_engine(db_engine)
    assert await kinds(db_engine) == [
        ("claim_numbers", "r"),
        ("claims", "p"),
        ("settlement_lines", "p"),
        ("settlements", "p"),
    ]
    assert await snapshot(db_engine) == before
    # Each line got its event's person and year; each claim its number in the register.
    assert await rows(
        db_engine,
        "SELECT count(*) FROM settlement_lines l JOIN settlements s ON s.id = l.settlement_id "
        "AND s.year = l.year AND s.beneficiary_id = l.beneficiary_id",
    ) == [(20,)]
    assert await rows(
        db_engine,
        "SELECT claim_number, claim_id, year, beneficiary_id FROM claim_numbers ORDER BY 2",
    ) == [(c[1], c[0], c[3], c[2]) for c in claims]
    # Every year held got its partition, 2019 and 2023 included (before the first year).
    placed = await rows(db_engine, "SELECT DISTINCT year, tableoid::regclass::text FROM claims")
    assert sorted(placed) == [(y, f"year_partitions.claims_{y}") for y in (2019, 2023, 2025, 2026)]
    assert await rows(
        db_engine,
        "SELECT DISTINCT tableoid::regclass::text FROM settlement_lines WHERE year = 2019",
    ) == [("year_partitions.settlement_lines_2019",)]
    # The same references, by name, now naming the year (and the person where the table has it).
    assert [(t, n) for t, n, _ in await rows(db_engine, REFERENCES)] == sorted(
        [(t, n) for t, n, _ in references] + [("claim_numbers", "fk_claim_numbers_claim_id_claims")]
    )
    assert {(t, d) for t, _, d in await rows(db_engine, REFERENCES)} == {
        ("claim_numbers", "FOREIGN KEY (claim_id, year, beneficiary_id) REFERENCES "
         "claims(id, year, beneficiary_id)"),
        ("fund_entries", "FOREIGN KEY (settlement_id, year) REFERENCES settlements(id, year)"),
        ("recoveries", "FOREIGN KEY (claim_id, year, beneficiary_id) REFERENCES "
         "claims(id, year, beneficiary_id)"),
        ("recoveries", "FOREIGN KEY (settlement_id, year, beneficiary_id) REFERENCES "
         "settlements(id, year, beneficiary_id)"),
        ("settlement_lines", "FOREIGN KEY (settlement_id, year, beneficiary_id) REFERENCES "
         "settlements(id, year, beneficiary_id) ON DELETE CASCADE"),
        ("settlements", "FOREIGN KEY (claim_id, year, beneficiary_id) REFERENCES "
         "claims(id, year, beneficiary_id)"),
    }  # fmt: skip

    # A settlement through the gateway: the sequences go on; an old number is still taken.
    app = await gateway()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            gql = GraphQLClient(client)
            await insured(gql)
            answer = await settle(gql, stay(PAN_ID, "NEW-1", "2023-03-01", "10000.00", "8000.00"))
            assert answer["claimNumber"] == "NEW-1"
            again = await settle(gql, stay(PAN_ID, "NEW-1", "2023-03-01", "10000.00", "8000.00"))
            assert again == answer
            taken = await gql.error(
                SETTLE, {"i": stay(PAN_ID, "OLD-3", "2023-03-01", "900.00", "800.00")}
            )
            assert "already used by another person's claim" in taken["message"]
    assert await rows(
        db_engine,
        "SELECT id, year, tableoid::regclass::text FROM claims WHERE claim_number = 'NEW-1'",
    ) == [(201, 2023, "year_partitions.claims_2023")]
    assert await rows(
        db_engine,
        "SELECT s.id, count(l.*) FROM settlements s JOIN settlement_lines l ON "
        "(l.settlement_id, l.year, l.beneficiary_id) = (s.id, s.year, s.beneficiary_id) "
        "WHERE s.claim_id = 201 GROUP BY 1",
    ) == [(511, 5)]
    assert await rows(
        db_engine, "SELECT claim_id FROM claim_numbers WHERE claim_number = 'NEW-1'"
    ) == [(201,)]
    after = await snapshot(db_engine)

    await migrate.downgrade_engine(db_engine, "0018")
    assert [k for _, k in await kinds(db_engine)] == ["r", "r", "r"]
    assert await snapshot(db_engine) == after
    assert [(t, n) for t, n, _ in await rows(db_engine, REFERENCES)] == [
        (t, n) for t, n, _ in references
    ]
    with pytest.raises(IntegrityError, match="uq_claims_claim_number"):
        async with db_engine.begin() as conn:
            await conn.execute(copy_claim("NEW-1", 2023, "NEW-1"))
    assert await rows(db_engine, "SELECT nextval('settlements_id_seq')") == [(512,)]
