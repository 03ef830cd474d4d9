"""the inbox pruned by age; the rates' window by time

Revision ID: b2d5f8a31c42
Revises: 5c1f0e7a2b93
Create Date: 2026-12-03 17:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "b2d5f8a31c42"
down_revision: str | None = "5c1f0e7a2b93"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_inbox_received_at", "inbox", ["received_at"])
    # The three rates read the last 30 days: by time, not the whole history.
    op.create_index("ix_dispatches_created_at", "dispatches", ["created_at"])
    op.create_index("ix_orders_updated_at", "orders", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_orders_updated_at", table_name="orders")
    op.drop_index("ix_dispatches_created_at", table_name="dispatches")
    op.drop_index("ix_inbox_received_at", table_name="inbox")
