"""merge candidates probed by compound, grid or phone

Revision ID: 4e5829dae635
Revises: 97961c43cd3a
Create Date: 2026-11-21 21:58:30.466222
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4e5829dae635"
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
        ["caller_phone", "category"],
        unique=False,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_index(
        "ix_work_orders_open_compound",
        "work_orders",
        ["compound", "category"],
        unique=False,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_index(
        "ix_work_orders_open_grid",
        "work_orders",
        ["grid", "category"],
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
