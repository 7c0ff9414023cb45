"""audit log partitioned by year

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01

``audit_log`` becomes a table partitioned by range of ``at``: one partition per calendar year
in China time (UTC+8), 2024 to ten years after the upgrade, in the schema ``audit_partitions``,
plus a ``DEFAULT`` partition so that no append fails for want of a partition
(gateway/storage/audit_partitions.py names them alike; ``medgw audit add-years`` adds later
years).

Every row moves over as it is (id, hash, shard: the chain verifies as before), and the id
sequence is kept (detached from the old table, attached to the new one). The primary key must
contain the partition key: it is (id, at); ids still come from the one sequence, so they stay
unique. The unique constraint on ``hash`` cannot be kept (it would have to contain ``at``); it
checked nothing the chain does not: a record's hash covers the hash before it.

The append-only triggers of 0002 are declared again on the partitioned table: the row trigger
(UPDATE, DELETE) is cloned by PostgreSQL onto every partition, present and future; TRUNCATE
triggers are statement-level and not cloned, so each partition gets its own. The grants of 0005
are restated (the default privileges of schema public would otherwise give the app role UPDATE
and DELETE on the new table); the app role has no right on ``audit_partitions`` at all.

The upgrade copies the log under an exclusive lock: stop the gateway first. Downgrade copies it
back into a plain table with ``hash`` unique again: it fails (changing nothing) if two records
share a hash, which shards make possible (two shards' first records with the same content and
time).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "medgw_app"
# The partitions as this revision creates them, written out here (not imported from the app,
# whose later code must not change what an old revision does).
SCHEMA = "audit_partitions"
FIRST_YEAR = 2024
YEARS_AHEAD = 10
CHINA = timezone(timedelta(hours=8), "China")


def _partition(year: int | None) -> list[str]:
    """The DDL of ``year``'s partition (China-time calendar year; None: ``DEFAULT``), closed to
    everyone but its owner, with its own TRUNCATE trigger."""
    if year is None:
        name, bounds = f"{SCHEMA}.audit_log_default", "DEFAULT"
    else:
        start = datetime(year, 1, 1, tzinfo=CHINA).isoformat()
        end = datetime(year + 1, 1, 1, tzinfo=CHINA).isoformat()
        name, bounds = f"{SCHEMA}.audit_log_{year}", f"FOR VALUES FROM ('{start}') TO ('{end}')"
    return [
        f"CREATE TABLE {name} PARTITION OF audit_log {bounds}",
        f"REVOKE ALL ON {name} FROM PUBLIC",
        f"CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON {name} "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
    ]


COLUMNS = (
    "id, at, action, department, org, subject, purpose, operation, query_hash, beneficiary_ids, "
    "field_paths, detail, prev_hash, hash, query_text, shard"
)


def _create(table: str, *, partitioned: bool) -> None:
    key = "id, at" if partitioned else "id"
    unique = "" if partitioned else ", CONSTRAINT uq_audit_log_hash UNIQUE (hash)"
    op.execute(
        f"""
        CREATE TABLE {table} (
            id bigint NOT NULL DEFAULT nextval('audit_log_id_seq'),
            at timestamp with time zone NOT NULL,
            action varchar(8) NOT NULL,
            department varchar(40) NOT NULL,
            org varchar(120) NOT NULL,
            subject varchar(120) NOT NULL,
            purpose varchar(80),
            operation varchar(120),
            query_hash varchar(64),
            beneficiary_ids uuid[] NOT NULL,
            field_paths varchar[] NOT NULL,
            detail jsonb NOT NULL,
            prev_hash varchar(64) NOT NULL,
            hash varchar(64) NOT NULL,
            query_text text,
            shard smallint NOT NULL DEFAULT 0,
            CONSTRAINT ck_audit_log_action CHECK (action IN ('READ', 'WRITE')),
            CONSTRAINT pk_audit_log PRIMARY KEY ({key}){unique}
        ){" PARTITION BY RANGE (at)" if partitioned else ""}
        """
    )


def _replace(*, partitioned: bool) -> None:
    """Copy ``audit_log`` into a new one, partitioned or not, and put the new one in its place
    with the old one's sequence, indexes, triggers and grants."""
    op.execute("LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE")
    op.execute("ALTER TABLE audit_log RENAME TO audit_log_old")
    # Free the names of the old table's indexes (schema-wide) and its sequence.
    op.execute("ALTER TABLE audit_log_old DROP CONSTRAINT pk_audit_log")
    if partitioned:
        op.execute("ALTER TABLE audit_log_old DROP CONSTRAINT uq_audit_log_hash")
    for index in ("ix_audit_log_at", "ix_audit_log_beneficiary_ids", "ix_audit_log_shard_id"):
        op.execute(f"DROP INDEX {index}")
    op.execute("ALTER SEQUENCE audit_log_id_seq OWNED BY NONE")
    _create("audit_log", partitioned=partitioned)
    if partitioned:
        op.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        op.execute(f"REVOKE ALL ON SCHEMA {SCHEMA} FROM PUBLIC")
        last = datetime.now(UTC).year + YEARS_AHEAD
        for year in [*range(FIRST_YEAR, last + 1), None]:
            for statement in _partition(year):
                op.execute(statement)
    op.execute(f"INSERT INTO audit_log ({COLUMNS}) SELECT {COLUMNS} FROM audit_log_old")
    op.execute("DROP TABLE audit_log_old")
    op.execute("ALTER SEQUENCE audit_log_id_seq OWNED BY audit_log.id")
    op.execute("CREATE INDEX ix_audit_log_at ON audit_log (at)")
    op.execute("CREATE INDEX ix_audit_log_beneficiary_ids ON audit_log USING gin (beneficiary_ids)")
    op.execute("CREATE INDEX ix_audit_log_shard_id ON audit_log (shard, id)")
    op.execute(
        "CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
    )
    op.execute(f"REVOKE ALL ON audit_log FROM PUBLIC, {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT ON audit_log TO {APP_ROLE}")


def upgrade() -> None:
    _replace(partitioned=True)


def downgrade() -> None:
    _replace(partitioned=False)
    op.execute(f"DROP SCHEMA {SCHEMA}")
