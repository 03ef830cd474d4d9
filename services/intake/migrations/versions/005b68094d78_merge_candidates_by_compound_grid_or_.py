"""merge candidates by compound, grid or phone index

Revision ID: 005b68094d78
Revises: 97961c43cd3a
Create Date: 2026-11-21 21:53:25.640167
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "005b68094d78"
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
        "ix_work_orders_open_caller_phone",
        "work_orders",
        ["category", "caller_phone"],
        unique=False,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_index(
        "ix_work_orders_open_compound",
        "work_orders",
        ["category", "compound"],
        unique=False,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_index(
        "ix_work_orders_open_grid",
        "work_orders",
        ["category", "grid"],
        unique=False,
        postgresql_where=sa.text("status = 'open'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_work_orders_open_grid", table_name="work_orders", postgresql_where=sa.text("status = 'open'")
    )
    op.drop_index(
        "ix_work_orders_open_compound", table_name="work_orders", postgresql_where=sa.text("status = 'open'")
    )
    op.drop_index(
        "ix_work_orders_open_caller_phone",
        table_name="work_orders",
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_index(
        op.f("ix_work_orders_open_category"),
        "work_orders",
        ["category", "received_at"],
        unique=False,
        postgresql_where="((status)::text = 'open'::text)",
    )
