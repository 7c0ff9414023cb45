"""claims can be acknowledged by their carrier

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("claims", sa.Column("acknowledged_at", sa.DateTime(timezone=True)))
    op.add_column("claims", sa.Column("acknowledged_by", sa.String(length=120)))


def downgrade() -> None:
    op.drop_column("claims", "acknowledged_by")
    op.drop_column("claims", "acknowledged_at")
