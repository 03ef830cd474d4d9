"""cluster window counted from the orders, keyed category/community; order_counts dropped

Revision ID: 84953fbf03af
Revises: 900b8b0ed2ad
Create Date: 2026-11-21 23:10:45.589874
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "84953fbf03af"
down_revision: str | None = "900b8b0ed2ad"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_table("order_counts")
    op.drop_index("ix_work_orders_cluster", table_name="work_orders")
    op.create_index(
        "ix_work_orders_cluster",
        "work_orders",
        [sa.text("(category || '/' || community)"), "received_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_work_orders_cluster", table_name="work_orders")
    op.create_index(
        "ix_work_orders_cluster", "work_orders", ["community", "category", "received_at"], unique=False
    )
    op.create_table(
        "order_counts",
        sa.Column("community", sa.VARCHAR(length=100), autoincrement=False, nullable=False),
        sa.Column("category", sa.VARCHAR(length=64), autoincrement=False, nullable=False),
        sa.Column("minute", postgresql.TIMESTAMP(timezone=True), autoincrement=False, nullable=False),
        sa.Column("n", sa.INTEGER(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("community", "category", "minute", name=op.f("pk_order_counts")),
    )
    # The counters again, from the orders: the last day's, as the pruning kept.
    op.execute(
        "INSERT INTO order_counts (community, category, minute, n) "
        "SELECT community, category, to_timestamp(floor(extract(epoch FROM received_at) / 60) * 60), "
        "count(*) FROM work_orders WHERE community IS NOT NULL AND category <> 'other' "
        "AND received_at >= (SELECT max(received_at) FROM work_orders) - interval '1 day' GROUP BY 1, 2, 3"
    )
