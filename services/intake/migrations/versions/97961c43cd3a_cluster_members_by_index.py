"""cluster members by index

Revision ID: 97961c43cd3a
Revises: 5b2242228ac1
Create Date: 2026-11-21 17:56:26.309868
"""

from collections.abc import Sequence

from alembic import op

revision: str = "97961c43cd3a"
down_revision: str | None = "5b2242228ac1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_work_orders_cluster", "work_orders", ["community", "category", "received_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_work_orders_cluster", table_name="work_orders")
