"""claims, settlements and settlement lines partitioned by year; the claim numbers' own table

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01

``claims``, ``settlements`` and ``settlement_lines`` become tables partitioned by list of their
settlement ``year`` (gateway/storage/partitions.py): one partition per year from 2024 to ten
years after the upgrade, as the audit log's (migration 0018), plus one for every other year
their rows hold at the upgrade, plus ``DEFAULT``, all in the schema ``year_partitions`` where
the app role has no right (it works through the parent tables, with the grants it had).
``medgw partitions add-years`` adds later years.

Keys (issue 15 point 5: partitioned by year now, distributable by beneficiary id later): a
primary key must contain the partition key, and Citus wants the distribution column in every
key, so

- ``claims``: primary key ``(beneficiary_id, year, id)`` (it replaces the person-year index
  ``ix_claims_beneficiary_id_year_id``, which had these columns), plus a plain index on ``id``;
- ``settlements``: primary key ``(beneficiary_id, year, id)`` (it replaces
  ``ix_settlements_beneficiary_id_year``), plus ``UNIQUE (id, year)``: the key that
  ``fund_entries``, which has no beneficiary id, references (and the index of lookups by id);
- ``settlement_lines`` gets ``beneficiary_id`` and ``year``, copied from its event: primary key
  ``(settlement_id, payer, year, beneficiary_id)``, partitioned with its event.

Ids still come from the tables' sequences (kept: detached from the old tables, attached to the
new ones), so ``id`` alone stays unique. Foreign keys to these tables become composite and
keep their names: ``settlements → claims``, ``recoveries → claims`` and ``recoveries →
settlements``, ``settlement_lines → settlements`` (ON DELETE CASCADE as before) on ``(id,
year, beneficiary_id)``; ``fund_entries → settlements`` on ``(id, year)`` (its ``year`` was the
settlement year already).

The claim number's uniqueness (the settlement's idempotency key) cannot be a unique constraint
of partitioned ``claims`` (it would have to contain ``year``): it moves to ``claim_numbers
(claim_number PRIMARY KEY, claim_id, year, beneficiary_id)``, referencing its claim, written
in the statement that writes the claim (resolvers/original.py). The app role has the business
tables' rights on it, as on ``claims``. ``claims.claim_number`` keeps a plain index for the lookups by number.

The upgrade copies the tables under an exclusive lock: stop the gateway first. Downgrade copies
them back into plain tables with ``claim_number`` unique again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "medgw_app"
# The partitions as this revision creates them, written out here (not imported from the app,
# whose later code must not change what an old revision does).
SCHEMA = "year_partitions"
PARTITIONED = ("claims", "settlements", "settlement_lines")
"""Referenced before referencing: the order to create them in."""
FIRST_YEAR = 2024
YEARS_AHEAD = 10
TABLES = ("claims", "settlements", "settlement_lines")
LINE_COLUMNS = "settlement_id, payer, amount"

# The foreign keys into the rebuilt tables from tables that stay (dropped, then restated).
OUTSIDE = (
    ("recoveries", "fk_recoveries_claim_id_claims"),
    ("recoveries", "fk_recoveries_settlement_id_settlements"),
    ("fund_entries", "fk_fund_entries_settlement_id_settlements"),
)
# (table, name, columns, referenced table (columns), options): once partitioned, and before.
PARTITIONED_FKS = (
    ("settlements", "fk_settlements_claim_id_claims", "claim_id, year, beneficiary_id",
     "claims (id, year, beneficiary_id)", ""),
    ("settlement_lines", "fk_settlement_lines_settlement_id_settlements",
     "settlement_id, year, beneficiary_id", "settlements (id, year, beneficiary_id)",
     " ON DELETE CASCADE"),
    ("recoveries", "fk_recoveries_claim_id_claims", "claim_id, year, beneficiary_id",
     "claims (id, year, beneficiary_id)", ""),
    ("recoveries", "fk_recoveries_settlement_id_settlements", "settlement_id, year, beneficiary_id",
     "settlements (id, year, beneficiary_id)", ""),
    ("fund_entries", "fk_fund_entries_settlement_id_settlements", "settlement_id, year",
     "settlements (id, year)", ""),
    ("claim_numbers", "fk_claim_numbers_claim_id_claims", "claim_id, year, beneficiary_id",
     "claims (id, year, beneficiary_id)", ""),
)  # fmt: skip
PLAIN_FKS = (
    ("settlements", "fk_settlements_claim_id_claims", "claim_id", "claims (id)", ""),
    ("settlement_lines", "fk_settlement_lines_settlement_id_settlements", "settlement_id",
     "settlements (id)", " ON DELETE CASCADE"),
    ("recoveries", "fk_recoveries_claim_id_claims", "claim_id", "claims (id)", ""),
    ("recoveries", "fk_recoveries_settlement_id_settlements", "settlement_id", "settlements (id)",
     ""),
    ("fund_entries", "fk_fund_entries_settlement_id_settlements", "settlement_id",
     "settlements (id)", ""),
)  # fmt: skip


REGISTER_FUNCTION = """CREATE FUNCTION register_claim_number() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO claim_numbers (claim_number, claim_id, year, beneficiary_id)
    VALUES (NEW.claim_number, NEW.id, NEW.year, NEW.beneficiary_id);
    RETURN NULL;
END
$$"""
"""The trigger function that registers an inserted claim's number (its row's own values)."""


def _set_aside() -> None:
    """Rename the three tables ``…_old``, free their index names (schema-wide) and sequences,
    and drop the foreign keys into them (restated on the new tables)."""
    op.execute(
        "LOCK TABLE claims, settlements, settlement_lines, recoveries, fund_entries "
        "IN ACCESS EXCLUSIVE MODE"
    )
    for table, name in OUTSIDE:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RENAME TO {table}_old")
    # Dropping a primary key drops the foreign keys that reference it (between the old tables).
    for table in TABLES:
        op.execute(f"ALTER TABLE {table}_old DROP CONSTRAINT pk_{table} CASCADE")
    for table in ("claims", "settlements"):
        op.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY NONE")


def _finish(indexes: Sequence[str], fks: Sequence[tuple[str, str, str, str, str]]) -> None:
    for table in reversed(TABLES):
        op.execute(f"DROP TABLE {table}_old")
    for table in ("claims", "settlements"):
        op.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY {table}.id")
    for statement in indexes:
        op.execute(statement)
    for table, name, columns, referenced, options in fks:
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({columns}) "
            f"REFERENCES {referenced}{options}"
        )
    op.execute(f"REVOKE ALL ON {', '.join(TABLES)} FROM PUBLIC, {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(TABLES)} TO {APP_ROLE}")


def upgrade() -> None:
    _set_aside()
    op.execute("ALTER TABLE claims_old DROP CONSTRAINT uq_claims_claim_number")
    op.execute("DROP INDEX ix_claims_beneficiary_id_year_id, ix_claims_carrier_id")
    op.execute("DROP INDEX ix_settlements_beneficiary_id_year, ix_settlements_claim_id")
    # LIKE: the same columns in the same order, their defaults (the id sequences), NOT NULL and
    # CHECK constraints (with their names).
    op.execute(
        "CREATE TABLE claims (LIKE claims_old INCLUDING DEFAULTS INCLUDING CONSTRAINTS, "
        "CONSTRAINT pk_claims PRIMARY KEY (beneficiary_id, year, id), "
        "CONSTRAINT fk_claims_beneficiary_id_beneficiaries FOREIGN KEY (beneficiary_id) "
        "REFERENCES beneficiaries (id)) PARTITION BY LIST (year)"
    )
    op.execute(
        "CREATE TABLE settlements (LIKE settlements_old INCLUDING DEFAULTS INCLUDING CONSTRAINTS, "
        "CONSTRAINT pk_settlements PRIMARY KEY (beneficiary_id, year, id), "
        "CONSTRAINT uq_settlements_id_year UNIQUE (id, year), "
        "CONSTRAINT fk_settlements_beneficiary_id_beneficiaries FOREIGN KEY (beneficiary_id) "
        "REFERENCES beneficiaries (id)) PARTITION BY LIST (year)"
    )
    op.execute(
        "CREATE TABLE settlement_lines (LIKE settlement_lines_old INCLUDING DEFAULTS "
        "INCLUDING CONSTRAINTS, beneficiary_id uuid NOT NULL, year smallint NOT NULL, "
        "CONSTRAINT pk_settlement_lines PRIMARY KEY (settlement_id, payer, year, beneficiary_id)) "
        "PARTITION BY LIST (year)"
    )
    bind = op.get_bind()
    held = {
        int(year)
        for (year,) in bind.exec_driver_sql(
            "SELECT DISTINCT year FROM claims_old UNION SELECT DISTINCT year FROM settlements_old"
        )
    }
    ahead = range(FIRST_YEAR, datetime.now(UTC).year + YEARS_AHEAD + 1)
    years = sorted(set(ahead) | held)
    op.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    op.execute(f"REVOKE ALL ON SCHEMA {SCHEMA} FROM PUBLIC")
    for table in PARTITIONED:
        for year in [*years, None]:
            name = f"{SCHEMA}.{table}_{'default' if year is None else year}"
            bounds = "DEFAULT" if year is None else f"FOR VALUES IN ({int(year)})"
            op.execute(f"CREATE TABLE {name} PARTITION OF {table} {bounds}")
            op.execute(f"REVOKE ALL ON {name} FROM PUBLIC")
    op.execute("INSERT INTO claims SELECT * FROM claims_old")
    op.execute("INSERT INTO settlements SELECT * FROM settlements_old")
    op.execute(
        f"INSERT INTO settlement_lines ({LINE_COLUMNS}, beneficiary_id, year) "
        "SELECT l.settlement_id, l.payer, l.amount, s.beneficiary_id, s.year "
        "FROM settlement_lines_old l JOIN settlements_old s ON s.id = l.settlement_id"
    )
    op.execute(
        "CREATE TABLE claim_numbers (claim_number varchar(64) NOT NULL, "
        "claim_id bigint NOT NULL, year smallint NOT NULL, beneficiary_id uuid NOT NULL, "
        "CONSTRAINT pk_claim_numbers PRIMARY KEY (claim_number))"
    )
    op.execute(
        "INSERT INTO claim_numbers (claim_number, claim_id, year, beneficiary_id) "
        "SELECT claim_number, id, year, beneficiary_id FROM claims_old"
    )
    _finish(
        [
            "CREATE INDEX ix_claims_id ON claims (id)",
            "CREATE INDEX ix_claims_claim_number ON claims (claim_number)",
            "CREATE INDEX ix_claims_carrier_id ON claims (carrier, id)",
            "CREATE INDEX ix_settlements_claim_id ON settlements (claim_id)",
        ],
        PARTITIONED_FKS,
    )
    # The business tables' rights (0005), as on ``claims``, whatever the default privileges.
    op.execute(f"REVOKE ALL ON claim_numbers FROM PUBLIC, {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON claim_numbers TO {APP_ROLE}")
    # Every claim registers its number, however it is inserted (the gateway's statement, the
    # ORM, COPY or plain SQL): a number registered already fails the insert.
    op.execute(REGISTER_FUNCTION)
    op.execute(
        "CREATE TRIGGER claims_register_number AFTER INSERT ON claims "
        "FOR EACH ROW EXECUTE FUNCTION register_claim_number()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER claims_register_number ON claims")
    op.execute("DROP FUNCTION register_claim_number()")
    op.execute("DROP TABLE claim_numbers")
    _set_aside()
    op.execute("DROP INDEX ix_claims_id, ix_claims_claim_number, ix_claims_carrier_id")
    op.execute("DROP INDEX ix_settlements_claim_id")
    op.execute("ALTER TABLE settlements_old DROP CONSTRAINT uq_settlements_id_year")
    op.execute(
        "CREATE TABLE claims (LIKE claims_old INCLUDING DEFAULTS INCLUDING CONSTRAINTS, "
        "CONSTRAINT pk_claims PRIMARY KEY (id), "
        "CONSTRAINT uq_claims_claim_number UNIQUE (claim_number), "
        "CONSTRAINT fk_claims_beneficiary_id_beneficiaries FOREIGN KEY (beneficiary_id) "
        "REFERENCES beneficiaries (id))"
    )
    op.execute(
        "CREATE TABLE settlements (LIKE settlements_old INCLUDING DEFAULTS INCLUDING CONSTRAINTS, "
        "CONSTRAINT pk_settlements PRIMARY KEY (id), "
        "CONSTRAINT fk_settlements_beneficiary_id_beneficiaries FOREIGN KEY (beneficiary_id) "
        "REFERENCES beneficiaries (id))"
    )
    op.execute(
        "CREATE TABLE settlement_lines (LIKE settlement_lines_old INCLUDING DEFAULTS "
        "INCLUDING CONSTRAINTS, CONSTRAINT pk_settlement_lines PRIMARY KEY (settlement_id, payer))"
    )
    op.execute("ALTER TABLE settlement_lines DROP COLUMN beneficiary_id, DROP COLUMN year")
    op.execute("INSERT INTO claims SELECT * FROM claims_old")
    op.execute("INSERT INTO settlements SELECT * FROM settlements_old")
    op.execute(
        f"INSERT INTO settlement_lines ({LINE_COLUMNS}) "
        f"SELECT {LINE_COLUMNS} FROM settlement_lines_old"
    )
    _finish(
        [
            "CREATE INDEX ix_claims_beneficiary_id_year_id ON claims (beneficiary_id, year, id)",
            "CREATE INDEX ix_claims_carrier_id ON claims (carrier, id)",
            "CREATE INDEX ix_settlements_beneficiary_id_year ON settlements (beneficiary_id, year)",
            "CREATE INDEX ix_settlements_claim_id ON settlements (claim_id)",
        ],
        PLAIN_FKS,
    )
    op.execute(f"DROP SCHEMA {SCHEMA}")
