"""fund entries: the (account, booking day) index carries kind, flow, side and amount, so that
statements and the dashboard's fund balances sum a year of entries by index-only scans

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_fund_entries_account_id_booked_on"
COVERED = ["kind", "flow", "side", "amount"]


def upgrade() -> None:
    # fund_entries is append-only: its pages become all-visible once vacuumed (autovacuum runs
    # on inserts), so these scans need not visit the table.
    op.drop_index(INDEX, table_name="fund_entries")
    op.create_index(INDEX, "fund_entries", ["account_id", "booked_on"], postgresql_include=COVERED)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="fund_entries")
    op.create_index(INDEX, "fund_entries", ["account_id", "booked_on"])
