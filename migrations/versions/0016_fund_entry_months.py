"""the fund entries' monthly rollup (resolvers/fund_months.py), built from the entries stored

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from resolvers.fund_months import REBUILD

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "medgw_app"


def upgrade() -> None:
    op.create_table(
        "fund_entry_months",
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("year", sa.SmallInteger(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("flow", sa.String(length=24), nullable=False),
        sa.Column("side", sa.String(length=6), nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["fund_accounts.id"],
            name=op.f("fk_fund_entry_months_account_id_fund_accounts"),
        ),
        sa.PrimaryKeyConstraint(
            "account_id", "year", "month", "kind", "flow", "side", name=op.f("pk_fund_entry_months")
        ),
    )
    for statement in REBUILD:
        op.execute(statement)
    # The app role (migration 0005) reads and upserts: no DELETE; where it exists.
    op.execute(
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                REVOKE ALL ON fund_entry_months FROM {APP_ROLE};
                GRANT SELECT, INSERT, UPDATE ON fund_entry_months TO {APP_ROLE};
            END IF;
        END
        $$;
        """
    )


def downgrade() -> None:
    op.drop_table("fund_entry_months")
