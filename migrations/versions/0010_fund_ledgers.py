"""fund ledgers: accounts and append-only double-entry entries (issue 13)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01

``fund_accounts`` (kind, region code, party) and ``fund_entries`` (one side of a posting of a
settlement event or an enrollment subsidy, policies/funds/postings.yaml). Amounts are never
edited: like ``audit_log`` (migration 0002), a trigger refuses UPDATE, DELETE and TRUNCATE on
both tables, and the gateway's role may only SELECT and INSERT them. Every settlement event and
enrollment subsidy stored before is posted by today's rules (resolvers/history.py).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from resolvers.history import post_history

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "medgw_app"
TABLES = ("fund_accounts", "fund_entries")
KINDS = (
    "kind IN ('BASIC_FUND', 'CRITICAL_ILLNESS_INSURER', 'INCLUSIVE_COMMERCIAL_INSURER', "
    "'ASSISTANCE_FUND', 'FINANCE', 'HOSPITAL', 'PERSON')"
)


def upgrade() -> None:
    op.create_table(
        "fund_accounts",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("region_code", sa.String(length=6), nullable=False),
        sa.Column("party", sa.String(length=120), server_default="", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(KINDS, name=op.f("ck_fund_accounts_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fund_accounts")),
        sa.UniqueConstraint(
            "kind", "region_code", "party", name=op.f("uq_fund_accounts_kind_region_code_party")
        ),
    )
    op.create_index(
        "ix_fund_accounts_region_code",
        "fund_accounts",
        ["region_code"],
        postgresql_ops={"region_code": "text_pattern_ops"},
    )
    op.create_table(
        "fund_entries",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("settlement_id", sa.BigInteger(), nullable=True),
        sa.Column("enrollment_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("flow", sa.String(length=24), nullable=False),
        sa.Column("side", sa.String(length=6), nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.Column("year", sa.SmallInteger(), nullable=False),
        sa.Column("booked_on", sa.Date(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("side IN ('DEBIT', 'CREDIT')", name=op.f("ck_fund_entries_side")),
        sa.CheckConstraint("amount > 0", name=op.f("ck_fund_entries_amount")),
        sa.CheckConstraint(
            "kind IN ('ORIGINAL', 'ADJUSTMENT', 'REVERSAL', 'RECOVERY', 'SUBSIDY')",
            name=op.f("ck_fund_entries_kind"),
        ),
        sa.CheckConstraint(
            "(settlement_id IS NULL) <> (enrollment_id IS NULL)",
            name=op.f("ck_fund_entries_source"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["fund_accounts.id"],
            name=op.f("fk_fund_entries_account_id_fund_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["settlement_id"],
            ["settlements.id"],
            name=op.f("fk_fund_entries_settlement_id_settlements"),
        ),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["enrollments.id"],
            name=op.f("fk_fund_entries_enrollment_id_enrollments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fund_entries")),
    )
    op.create_index(
        op.f("ix_fund_entries_settlement_id"), "fund_entries", ["settlement_id"], unique=False
    )
    op.create_index(
        op.f("ix_fund_entries_enrollment_id"), "fund_entries", ["enrollment_id"], unique=False
    )
    op.create_index(
        "ix_fund_entries_account_id_booked_on", "fund_entries", ["account_id", "booked_on"]
    )
    op.create_index("ix_fund_entries_year_account_id", "fund_entries", ["year", "account_id"])
    op.execute(
        """
        CREATE FUNCTION fund_ledgers_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END;
        $$;
        """
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION fund_ledgers_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION fund_ledgers_append_only()"
        )
    # What was settled and enrolled before: posted by today's rules (resolvers/history.py).
    post_history(op.get_bind(), os.environ.get("MEDGW_TIMEZONE") or "Asia/Shanghai")
    # The app role (migration 0005) may only read and append; where it exists.
    op.execute(
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                REVOKE ALL ON {", ".join(TABLES)} FROM {APP_ROLE};
                GRANT SELECT, INSERT ON {", ".join(TABLES)} TO {APP_ROLE};
            END IF;
        END
        $$;
        """
    )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
        op.execute(f"DROP TRIGGER {table}_no_update_delete ON {table}")
    op.execute("DROP FUNCTION fund_ledgers_append_only()")
    op.drop_table("fund_entries")
    op.drop_index("ix_fund_accounts_region_code", table_name="fund_accounts")
    op.drop_table("fund_accounts")
