"""merge candidates probed by category and compound, grid or phone

Revision ID: 900b8b0ed2ad
Revises: 97961c43cd3a
Create Date: 2026-11-21 22:06:10.702270
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "900b8b0ed2ad"
down_revision: str | None = "97961c43cd3a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index(
        op.f("ix_work_orders_open_category"),
        table_name="work_orders",
        postgresql_where="((status)::text = 'open'::text)",
    )
    op.create_index(
        "ix_work_orders_merge_caller_phone",
        "work_orders",
        [sa.literal_column("(category || '/' || caller_phone)")],
        unique=False,
    )
    op.create_index(
        "ix_work_orders_merge_compound",
        "work_orders",
        [sa.literal_column("(category || '/' || compound)")],
        unique=False,
    )
    op.create_index(
        "ix_work_orders_merge_grid",
        "work_orders",
        [sa.literal_column("(category || '/' || grid)")],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_work_orders_merge_grid", table_name="work_orders")
    op.drop_index("ix_work_orders_merge_compound", table_name="work_orders")
    op.drop_index(
        "ix_work_orders_merge_caller_phone",
        table_name="work_orders",
    )
    op.create_index(
        op.f("ix_work_orders_open_category"),
        "work_orders",
        ["category", "received_at"],
        unique=False,
        postgresql_where="((status)::text = 'open'::text)",
    )
