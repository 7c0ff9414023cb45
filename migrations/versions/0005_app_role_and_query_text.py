"""least-privilege app role; the query text kept with each audit record

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08

ACCESS.md: the gateway connects as a role that can only INSERT and SELECT the audit log, and
migrations run as the owner. This migration runs as the owner (the role that owns the tables)
and grants ``medgw_app`` what the gateway needs: SELECT, INSERT, UPDATE, DELETE on the business
tables, SELECT and INSERT on ``audit_log`` (no UPDATE, DELETE or TRUNCATE; not being the owner, it
cannot disable the append-only triggers either), SELECT on ``alembic_version``. Tables created by
later migrations (run by the same owner) get the business grants by default; a later table that
must be append-only revokes them as ``audit_log`` does here.

The role is created here if missing, which needs CREATEROLE (the embedded set-up creates it
beforehand); otherwise the database administrator creates it (``CREATE ROLE medgw_app LOGIN
PASSWORD '…'``) before migrating.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "medgw_app"


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("query_text", sa.Text()))
    op.execute(
        f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
            IF NOT (SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user)
            THEN
              RAISE EXCEPTION 'role {APP_ROLE} does not exist and % may not create it: '
                'have the database administrator run CREATE ROLE {APP_ROLE} LOGIN PASSWORD ...',
                current_user;
            END IF;
            CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
          END IF;
          EXECUTE format('GRANT CONNECT ON DATABASE %I TO {APP_ROLE}', current_database());
        END $$;
        """
    )
    for statement in (
        f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}",
        f"REVOKE ALL ON audit_log, alembic_version FROM PUBLIC, {APP_ROLE}",
        f"GRANT SELECT, INSERT ON audit_log TO {APP_ROLE}",
        f"GRANT SELECT ON alembic_version TO {APP_ROLE}",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}",
    ):
        op.execute(statement)


def downgrade() -> None:
    for statement in (
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM {APP_ROLE}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM {APP_ROLE}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE}",
        f"REVOKE USAGE ON SCHEMA public FROM {APP_ROLE}",
    ):
        op.execute(statement)
    # The role itself stays: roles belong to the whole server, other databases may use it.
    op.drop_column("audit_log", "query_text")
