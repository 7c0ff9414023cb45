"""the dashboard rollup: person cells and the cube (resolvers/cube.py), built from the
settlement events already stored

Revision ID: 0013
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from resolvers.cube import REBUILD

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = (
    "total_cost",
    "out_of_scope",
    "out_of_pocket",
    "basic_insurance",
    "critical_illness",
    "inclusive_commercial",
    "assistance",
    "secondary_assistance",
)


def _sums() -> list[sa.Column[Any]]:
    return [
        sa.Column("claims", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Numeric(14, 2), nullable=False) for name in MONEY),
    ]


def upgrade() -> None:
    op.create_table(
        "dashboard_person_cells",
        sa.Column("beneficiary_id", sa.UUID(), nullable=False),
        sa.Column("year", sa.SmallInteger(), nullable=False),
        sa.Column("dim", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=40), nullable=False),
        sa.Column("region_code", sa.String(length=6), nullable=False),
        *_sums(),
        sa.ForeignKeyConstraint(
            ["beneficiary_id"],
            ["beneficiaries.id"],
            name=op.f("fk_dashboard_person_cells_beneficiary_id_beneficiaries"),
        ),
        sa.PrimaryKeyConstraint(
            "beneficiary_id", "year", "dim", "value", name=op.f("pk_dashboard_person_cells")
        ),
    )
    op.create_table(
        "dashboard_cube",
        sa.Column("year", sa.SmallInteger(), nullable=False),
        sa.Column("region_code", sa.String(length=6), nullable=False),
        sa.Column("dim", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=40), nullable=False),
        sa.Column("persons", sa.Integer(), nullable=False),
        *_sums(),
        sa.PrimaryKeyConstraint(
            "year", "region_code", "dim", "value", name=op.f("pk_dashboard_cube")
        ),
    )
    for statement in REBUILD:
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("dashboard_cube")
    op.drop_table("dashboard_person_cells")
