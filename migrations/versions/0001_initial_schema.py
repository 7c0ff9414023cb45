"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24 19:07:48.452862
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Reviewed: tables of the foundation, settlement and audit (see gateway/models.py).
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("department", sa.String(length=40), nullable=False),
        sa.Column("org", sa.String(length=120), nullable=False),
        sa.Column("subject", sa.String(length=120), nullable=False),
        sa.Column("purpose", sa.String(length=80), nullable=True),
        sa.Column("operation", sa.String(length=120), nullable=True),
        sa.Column("query_hash", sa.String(length=64), nullable=True),
        sa.Column("beneficiary_ids", postgresql.ARRAY(sa.UUID()), nullable=False),
        sa.Column("field_paths", postgresql.ARRAY(sa.String()), nullable=False),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("action IN ('READ', 'WRITE')", name=op.f("ck_audit_log_action")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_log_hash")),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"], unique=False)
    op.create_index(
        "ix_audit_log_beneficiary_ids",
        "audit_log",
        ["beneficiary_ids"],
        unique=False,
        postgresql_using="gin",
    )
    op.create_table(
        "beneficiaries",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("id_number", sa.String(length=18), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("gender", sa.String(length=6), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("region_code", sa.String(length=6), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("gender IN ('MALE', 'FEMALE')", name=op.f("ck_beneficiaries_gender")),
        sa.CheckConstraint("region_code ~ '^[0-9]{6}$'", name=op.f("ck_beneficiaries_region_code")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_beneficiaries")),
        sa.UniqueConstraint("id_number", name=op.f("uq_beneficiaries_id_number")),
    )
    op.create_index(
        "ix_beneficiaries_region_code_id",
        "beneficiaries",
        ["region_code", "id"],
        unique=False,
        postgresql_ops={"region_code": "text_pattern_ops"},
    )
    op.create_table(
        "claims",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("claim_number", sa.String(length=64), nullable=False),
        sa.Column("beneficiary_id", sa.UUID(), nullable=False),
        sa.Column("year", sa.SmallInteger(), nullable=False),
        sa.Column("type", sa.String(length=24), nullable=False),
        sa.Column("hospital_level", sa.String(length=12), nullable=True),
        sa.Column("hospital_code", sa.String(length=40), nullable=True),
        sa.Column("admission_date", sa.Date(), nullable=False),
        sa.Column("discharge_date", sa.Date(), nullable=False),
        sa.Column("total_cost", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("policy_scope_cost", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("referral_compliant", sa.Boolean(), nullable=False),
        sa.Column("in_province", sa.Boolean(), nullable=False),
        sa.Column("diagnosis", sa.String(length=20), nullable=True),
        sa.Column("special_treatment_hospital", sa.Boolean(), nullable=False),
        sa.Column("carrier", sa.String(length=120), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("reversed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reversal_reason", sa.String(length=500), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "hospital_level IS NULL OR hospital_level IN ('PRIMARY', 'SECONDARY', 'TERTIARY')",
            name=op.f("ck_claims_level"),
        ),
        sa.CheckConstraint(
            "type IN ('INPATIENT', 'OUTPATIENT_CHRONIC', 'OUTPATIENT_GENERAL')",
            name=op.f("ck_claims_type"),
        ),
        sa.CheckConstraint(
            "0 <= policy_scope_cost AND policy_scope_cost <= total_cost",
            name=op.f("ck_claims_cost"),
        ),
        sa.CheckConstraint("admission_date <= discharge_date", name=op.f("ck_claims_stay")),
        sa.ForeignKeyConstraint(
            ["beneficiary_id"],
            ["beneficiaries.id"],
            name=op.f("fk_claims_beneficiary_id_beneficiaries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claims")),
        sa.UniqueConstraint("claim_number", name=op.f("uq_claims_claim_number")),
    )
    op.create_index(
        "ix_claims_beneficiary_id_year_id", "claims", ["beneficiary_id", "year", "id"], unique=False
    )
    op.create_index("ix_claims_carrier_id", "claims", ["carrier", "id"], unique=False)
    op.create_table(
        "enrollments",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("beneficiary_id", sa.UUID(), nullable=False),
        sa.Column("year", sa.SmallInteger(), nullable=False),
        sa.Column("contribution", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("inclusive_commercial", sa.Boolean(), nullable=False),
        sa.Column("enrolled_on", sa.Date(), nullable=False),
        sa.Column("subsidy_policy", sa.String(length=40), nullable=True),
        sa.Column("subsidy_category", sa.String(length=40), nullable=True),
        sa.Column("subsidy_assistance_fund", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("subsidy_finance", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("subsidy_individual", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("department", sa.String(length=40), nullable=False),
        sa.Column("org", sa.String(length=120), nullable=False),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("contribution >= 0", name=op.f("ck_enrollments_contribution")),
        sa.ForeignKeyConstraint(
            ["beneficiary_id"],
            ["beneficiaries.id"],
            name=op.f("fk_enrollments_beneficiary_id_beneficiaries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollments")),
        sa.UniqueConstraint(
            "beneficiary_id", "year", name=op.f("uq_enrollments_beneficiary_id_year")
        ),
    )
    op.create_table(
        "high_cost_alerts",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("beneficiary_id", sa.UUID(), nullable=False),
        sa.Column("year", sa.SmallInteger(), nullable=False),
        sa.Column("out_of_pocket", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("threshold", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("resolved_by", sa.String(length=120), nullable=True),
        sa.Column("resolution", sa.String(length=500), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('OPEN', 'RESOLVED')", name=op.f("ck_high_cost_alerts_status")
        ),
        sa.ForeignKeyConstraint(
            ["beneficiary_id"],
            ["beneficiaries.id"],
            name=op.f("fk_high_cost_alerts_beneficiary_id_beneficiaries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_high_cost_alerts")),
        sa.UniqueConstraint(
            "beneficiary_id", "year", name=op.f("uq_high_cost_alerts_beneficiary_id_year")
        ),
    )
    op.create_index(
        "ix_high_cost_alerts_status_id", "high_cost_alerts", ["status", "id"], unique=False
    )
    op.create_table(
        "identities",
        sa.Column("beneficiary_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("reference", sa.String(length=120), nullable=False),
        sa.Column("department", sa.String(length=40), nullable=False),
        sa.Column("org", sa.String(length=120), nullable=False),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "category IN ('DISTRESSED_WORKER', 'DOWNSIZED_1960S_WORKER', 'EXTREME_POVERTY', 'ILLNESS_IMPOVERISHED', 'LOW_INCOME', 'LOW_INCOME_SEVERELY_DISABLED', 'MARGINAL_LOW_INCOME', 'MINIMUM_LIVING', 'ORPHAN', 'PRIORITY_ENTITLED', 'TEMPORARY_ASSISTANCE_SERIOUS_ILLNESS')",
            name=op.f("ck_identities_category"),
        ),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_from <= valid_to", name=op.f("ck_identities_interval")
        ),
        sa.ForeignKeyConstraint(
            ["beneficiary_id"],
            ["beneficiaries.id"],
            name=op.f("fk_identities_beneficiary_id_beneficiaries"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identities")),
    )
    op.create_index(
        op.f("ix_identities_beneficiary_id"), "identities", ["beneficiary_id"], unique=False
    )
    op.create_index(
        "ix_identities_category_beneficiary_id",
        "identities",
        ["category", "beneficiary_id"],
        unique=False,
    )
    op.create_table(
        "ledgers",
        sa.Column("beneficiary_id", sa.UUID(), nullable=False),
        sa.Column("year", sa.SmallInteger(), nullable=False),
        sa.Column("state", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("basic_insurance", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("critical_illness", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("inclusive_commercial", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("assistance", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("secondary_assistance", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("total_cost", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("out_of_pocket", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["beneficiary_id"],
            ["beneficiaries.id"],
            name=op.f("fk_ledgers_beneficiary_id_beneficiaries"),
        ),
        sa.PrimaryKeyConstraint("beneficiary_id", "year", name=op.f("pk_ledgers")),
    )
    op.create_table(
        "monitoring_flags",
        sa.Column("beneficiary_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("reference", sa.String(length=120), nullable=False),
        sa.Column("department", sa.String(length=40), nullable=False),
        sa.Column("org", sa.String(length=120), nullable=False),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "category IN ('MONITORED', 'POVERTY_EXIT_SECURED', 'REGISTERED_POOR')",
            name=op.f("ck_monitoring_flags_category"),
        ),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_from <= valid_to", name=op.f("ck_monitoring_flags_interval")
        ),
        sa.ForeignKeyConstraint(
            ["beneficiary_id"],
            ["beneficiaries.id"],
            name=op.f("fk_monitoring_flags_beneficiary_id_beneficiaries"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitoring_flags")),
    )
    op.create_index(
        op.f("ix_monitoring_flags_beneficiary_id"),
        "monitoring_flags",
        ["beneficiary_id"],
        unique=False,
    )
    op.create_index(
        "ix_monitoring_flags_category_beneficiary_id",
        "monitoring_flags",
        ["category", "beneficiary_id"],
        unique=False,
    )
    op.create_table(
        "settlements",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("claim_id", sa.BigInteger(), nullable=False),
        sa.Column("beneficiary_id", sa.UUID(), nullable=False),
        sa.Column("year", sa.SmallInteger(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("policy", sa.String(length=40), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=True),
        sa.Column("out_of_pocket", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("explanation", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("department", sa.String(length=40), nullable=False),
        sa.Column("org", sa.String(length=120), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('ORIGINAL', 'ADJUSTMENT', 'REVERSAL')", name=op.f("ck_settlements_kind")
        ),
        sa.ForeignKeyConstraint(
            ["beneficiary_id"],
            ["beneficiaries.id"],
            name=op.f("fk_settlements_beneficiary_id_beneficiaries"),
        ),
        sa.ForeignKeyConstraint(
            ["claim_id"], ["claims.id"], name=op.f("fk_settlements_claim_id_claims")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlements")),
    )
    op.create_index(
        "ix_settlements_beneficiary_id_year",
        "settlements",
        ["beneficiary_id", "year"],
        unique=False,
    )
    op.create_index(op.f("ix_settlements_claim_id"), "settlements", ["claim_id"], unique=False)
    op.create_table(
        "settlement_lines",
        sa.Column("settlement_id", sa.BigInteger(), nullable=False),
        sa.Column("payer", sa.String(length=24), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.CheckConstraint(
            "payer IN ('basicInsurance', 'criticalIllness', 'inclusiveCommercial', 'assistance', 'secondaryAssistance')",
            name=op.f("ck_settlement_lines_payer"),
        ),
        sa.ForeignKeyConstraint(
            ["settlement_id"],
            ["settlements.id"],
            name=op.f("fk_settlement_lines_settlement_id_settlements"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("settlement_id", "payer", name=op.f("pk_settlement_lines")),
    )


def downgrade() -> None:
    # Reviewed: tables of the foundation, settlement and audit (see gateway/models.py).
    op.drop_table("settlement_lines")
    op.drop_index(op.f("ix_settlements_claim_id"), table_name="settlements")
    op.drop_index("ix_settlements_beneficiary_id_year", table_name="settlements")
    op.drop_table("settlements")
    op.drop_index("ix_monitoring_flags_category_beneficiary_id", table_name="monitoring_flags")
    op.drop_index(op.f("ix_monitoring_flags_beneficiary_id"), table_name="monitoring_flags")
    op.drop_table("monitoring_flags")
    op.drop_table("ledgers")
    op.drop_index("ix_identities_category_beneficiary_id", table_name="identities")
    op.drop_index(op.f("ix_identities_beneficiary_id"), table_name="identities")
    op.drop_table("identities")
    op.drop_index("ix_high_cost_alerts_status_id", table_name="high_cost_alerts")
    op.drop_table("high_cost_alerts")
    op.drop_table("enrollments")
    op.drop_index("ix_claims_carrier_id", table_name="claims")
    op.drop_index("ix_claims_beneficiary_id_year_id", table_name="claims")
    op.drop_table("claims")
    op.drop_index(
        "ix_beneficiaries_region_code_id",
        table_name="beneficiaries",
        postgresql_ops={"region_code": "text_pattern_ops"},
    )
    op.drop_table("beneficiaries")
    op.drop_index("ix_audit_log_beneficiary_ids", table_name="audit_log", postgresql_using="gin")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
