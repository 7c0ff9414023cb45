"""audit chain split into shards

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01

Each audit record now belongs to one shard of the hash chain (``audit_log.shard``); its
``prev_hash`` is the hash of the record before it in the same shard, and each shard has its
own lock, so appends of concurrent transactions no longer wait for one another
(gateway/storage/audit.py). Every existing record joins shard 0 in id order, which is exactly
the chain it already forms: no hash changes, the chain stays verifiable, and checkpoints
signed before this migration are checked against shard 0.

Adding a column with a constant default rewrites no row (the append-only trigger of 0002 does
not fire) and keeps the table's grants of 0005: the app role still only SELECTs and INSERTs.
The index on (shard, id) finds each shard's head.

Stop every gateway process of the previous version before upgrading: it would append to one
global chain across the shards. Downgrading is only sound while every record is in shard 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "audit_log",
        sa.Column("shard", sa.SmallInteger(), server_default=sa.text("0"), nullable=False),
    )
    op.create_index("ix_audit_log_shard_id", "audit_log", ["shard", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_audit_log_shard_id", table_name="audit_log")
    op.drop_column("audit_log", "shard")
