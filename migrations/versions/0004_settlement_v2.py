"""settlement v2 (SETTLEMENT.md §9): decision dates, basic scheme, reported payments, recoveries,
closed years and late news

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(14, 2)


def upgrade() -> None:
    for table in ("identities", "monitoring_flags"):
        op.add_column(table, sa.Column("decided_on", sa.Date()))
    op.add_column(
        "enrollments",
        sa.Column("scheme", sa.String(length=12), server_default="RESIDENT", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_enrollments_scheme"), "enrollments", "scheme IN ('RESIDENT', 'EMPLOYEE')"
    )
    op.add_column(
        "claims", sa.Column("insured", sa.Boolean(), server_default="true", nullable=False)
    )
    op.add_column(
        "claims",
        sa.Column("inclusive_commercial", sa.Boolean(), server_default="false", nullable=False),
    )
    op.add_column("claims", sa.Column("reported", postgresql.JSONB()))
    op.add_column("claims", sa.Column("policy", sa.String(length=40)))
    # Claims settled before v2 carry their policy on their original settlement event.
    op.execute(
        "UPDATE claims SET policy = s.policy FROM settlements s "
        "WHERE s.claim_id = claims.id AND s.kind = 'ORIGINAL'"
    )
    op.drop_constraint(op.f("ck_settlements_kind"), "settlements", type_="check")
    op.create_check_constraint(
        op.f("ck_settlements_kind"),
        "settlements",
        "kind IN ('ORIGINAL', 'ADJUSTMENT', 'REVERSAL', 'RECOVERY')",
    )
    op.create_table(
        "recoveries",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("claim_id", sa.BigInteger(), nullable=False),
        sa.Column("beneficiary_id", sa.UUID(), nullable=False),
        sa.Column("year", sa.SmallInteger(), nullable=False),
        sa.Column("policy", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("assistance", MONEY, nullable=False),
        sa.Column("secondary_assistance", MONEY, nullable=False),
        sa.Column("cause", sa.String(length=500), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("decided_by", sa.String(length=120)),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("decision_reason", sa.String(length=500)),
        sa.Column("settlement_id", sa.BigInteger()),
        sa.CheckConstraint(
            "status IN ('PENDING', 'RECOVERED', 'WAIVED', 'WITHDRAWN')",
            name=op.f("ck_recoveries_status"),
        ),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_recoveries_amount")),
        sa.ForeignKeyConstraint(
            ["claim_id"], ["claims.id"], name=op.f("fk_recoveries_claim_id_claims")
        ),
        sa.ForeignKeyConstraint(
            ["beneficiary_id"],
            ["beneficiaries.id"],
            name=op.f("fk_recoveries_beneficiary_id_beneficiaries"),
        ),
        sa.ForeignKeyConstraint(
            ["settlement_id"],
            ["settlements.id"],
            name=op.f("fk_recoveries_settlement_id_settlements"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recoveries")),
    )
    op.create_index(op.f("ix_recoveries_claim_id"), "recoveries", ["claim_id"])
    op.create_index("ix_recoveries_status_year", "recoveries", ["status", "year"])
    op.create_index(
        "uq_recoveries_claim_id_pending",
        "recoveries",
        ["claim_id"],
        unique=True,
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.create_table(
        "settlement_year_closings",
        sa.Column("region_code", sa.String(length=6), nullable=False),
        sa.Column("year", sa.SmallInteger(), nullable=False),
        sa.Column("policy", sa.String(length=40), nullable=False),
        sa.Column("department", sa.String(length=40), nullable=False),
        sa.Column("org", sa.String(length=120), nullable=False),
        sa.Column(
            "closed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("region_code", "year", name=op.f("pk_settlement_year_closings")),
    )
    op.create_table(
        "late_news",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("beneficiary_id", sa.UUID(), nullable=False),
        sa.Column("year", sa.SmallInteger(), nullable=False),
        sa.Column("region_code", sa.String(length=6), nullable=False),
        sa.Column("operation", sa.String(length=40), nullable=False),
        sa.Column("changes", postgresql.JSONB(), nullable=False),
        sa.Column("department", sa.String(length=40), nullable=False),
        sa.Column("org", sa.String(length=120), nullable=False),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["beneficiary_id"],
            ["beneficiaries.id"],
            name=op.f("fk_late_news_beneficiary_id_beneficiaries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_late_news")),
    )
    op.create_index("ix_late_news_region_code_year", "late_news", ["region_code", "year"])


def downgrade() -> None:
    op.drop_index("ix_late_news_region_code_year", table_name="late_news")
    op.drop_table("late_news")
    op.drop_table("settlement_year_closings")
    op.drop_index("uq_recoveries_claim_id_pending", table_name="recoveries")
    op.drop_index("ix_recoveries_status_year", table_name="recoveries")
    op.drop_index(op.f("ix_recoveries_claim_id"), table_name="recoveries")
    op.drop_table("recoveries")
    op.execute(
        "DELETE FROM settlement_lines WHERE settlement_id IN (SELECT id FROM settlements WHERE kind = 'RECOVERY')"
    )
    op.execute("DELETE FROM settlements WHERE kind = 'RECOVERY'")
    op.drop_constraint(op.f("ck_settlements_kind"), "settlements", type_="check")
    op.create_check_constraint(
        op.f("ck_settlements_kind"), "settlements", "kind IN ('ORIGINAL', 'ADJUSTMENT', 'REVERSAL')"
    )
    for column in ("policy", "reported", "inclusive_commercial", "insured"):
        op.drop_column("claims", column)
    op.drop_constraint(op.f("ck_enrollments_scheme"), "enrollments", type_="check")
    op.drop_column("enrollments", "scheme")
    for table in ("identities", "monitoring_flags"):
        op.drop_column(table, "decided_on")
