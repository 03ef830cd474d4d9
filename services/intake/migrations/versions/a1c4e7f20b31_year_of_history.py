"""merge candidates by key and time; the inbox pruned by age

Revision ID: a1c4e7f20b31
Revises: 4c6669102e22
Create Date: 2026-12-03 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1c4e7f20b31"
down_revision: str | None = "4c6669102e22"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Merge candidates by their key and time: the window's orders alone are read, not a year's.
    for place in ("compound", "grid", "caller_phone"):
        op.drop_index(f"ix_work_orders_merge_{place}", table_name="work_orders")
        op.create_index(
            f"ix_work_orders_merge_{place}",
            "work_orders",
            [sa.literal_column(f"(category || '/' || {place})"), "received_at"],
        )
    op.create_index("ix_inbox_received_at", "inbox", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_inbox_received_at", table_name="inbox")
    for place in ("compound", "grid", "caller_phone"):
        op.drop_index(f"ix_work_orders_merge_{place}", table_name="work_orders")
        op.create_index(
            f"ix_work_orders_merge_{place}",
            "work_orders",
            [sa.literal_column(f"(category || '/' || {place})")],
        )
