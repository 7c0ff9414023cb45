"""high-cost alerts get a lifecycle (acknowledged, recognised with the record, rejected, closed);
applications for assistance (依申请救助)

Revision ID: 0009
Revises: 0005
Create Date: 2026-12-01

Alerts closed by the old free-text ``resolveAlert`` (status RESOLVED) become CLOSED, their text
kept as the resolution; the downgrade turns every closed state back into RESOLVED.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATES = "status IN ('OPEN', 'ACKNOWLEDGED', 'RECOGNISED', 'REJECTED', 'CLOSED')"


def _assessed() -> list[sa.Column[object]]:
    return [
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("acknowledged_by", sa.String(length=120), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("department", sa.String(length=40), nullable=True),
        sa.Column("resolved_by", sa.String(length=120), nullable=True),
        sa.Column("resolution", sa.String(length=500), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("identity_id", sa.BigInteger(), nullable=True),
        sa.Column("flag_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    ]


def upgrade() -> None:
    table = "high_cost_alerts"
    op.drop_constraint(op.f("ck_high_cost_alerts_status"), table, type_="check")
    op.execute("UPDATE high_cost_alerts SET status = 'CLOSED' WHERE status = 'RESOLVED'")
    op.create_check_constraint(op.f("ck_high_cost_alerts_status"), table, STATES)
    op.add_column(table, sa.Column("policy", sa.String(length=40), nullable=True))
    for name in ("acknowledged_by", "acknowledged_at", "department", "identity_id", "flag_id"):
        op.add_column(table, next(c for c in _assessed() if c.name == name))
    op.add_column(table, next(c for c in _assessed() if c.name == "updated_at"))
    op.create_foreign_key(
        op.f("fk_high_cost_alerts_identity_id_identities"),
        table,
        "identities",
        ["identity_id"],
        ["id"],
    )
    op.create_foreign_key(
        op.f("fk_high_cost_alerts_flag_id_monitoring_flags"),
        table,
        "monitoring_flags",
        ["flag_id"],
        ["id"],
    )
    op.create_table(
        "assistance_applications",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("beneficiary_id", sa.UUID(), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("statement", sa.String(length=500), nullable=False),
        sa.Column("received_department", sa.String(length=40), nullable=False),
        sa.Column("received_by", sa.String(length=120), nullable=False),
        sa.Column("routed_to", sa.String(length=40), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        *_assessed(),
        sa.CheckConstraint(STATES, name=op.f("ck_assistance_applications_status")),
        sa.ForeignKeyConstraint(
            ["beneficiary_id"],
            ["beneficiaries.id"],
            name=op.f("fk_assistance_applications_beneficiary_id_beneficiaries"),
        ),
        sa.ForeignKeyConstraint(
            ["identity_id"],
            ["identities.id"],
            name=op.f("fk_assistance_applications_identity_id_identities"),
        ),
        sa.ForeignKeyConstraint(
            ["flag_id"],
            ["monitoring_flags.id"],
            name=op.f("fk_assistance_applications_flag_id_monitoring_flags"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assistance_applications")),
    )
    op.create_index(
        op.f("ix_assistance_applications_beneficiary_id"),
        "assistance_applications",
        ["beneficiary_id"],
    )
    op.create_index(
        "ix_assistance_applications_routed_to_status",
        "assistance_applications",
        ["routed_to", "status"],
    )


def downgrade() -> None:
    op.drop_table("assistance_applications")
    table = "high_cost_alerts"
    op.drop_constraint(
        op.f("fk_high_cost_alerts_flag_id_monitoring_flags"), table, type_="foreignkey"
    )
    op.drop_constraint(
        op.f("fk_high_cost_alerts_identity_id_identities"), table, type_="foreignkey"
    )
    for name in (
        "updated_at",
        "flag_id",
        "identity_id",
        "department",
        "acknowledged_at",
        "acknowledged_by",
        "policy",
    ):
        op.drop_column(table, name)
    op.drop_constraint(op.f("ck_high_cost_alerts_status"), table, type_="check")
    op.execute(
        "UPDATE high_cost_alerts SET status = CASE WHEN status IN ('OPEN', 'ACKNOWLEDGED') "
        "THEN 'OPEN' ELSE 'RESOLVED' END"
    )
    op.create_check_constraint(
        op.f("ck_high_cost_alerts_status"), table, "status IN ('OPEN', 'RESOLVED')"
    )
