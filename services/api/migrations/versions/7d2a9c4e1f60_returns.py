"""returns: the centre's review queue (派单异议审核)

A department's return under review, by its dispatch, from the lifecycle's review events: pending,
then approved, refused or cancelled. Rows come from the topic's history.

Revision ID: 7d2a9c4e1f60
Revises: 3b9e5d41c7a2
Create Date: 2026-12-03 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7d2a9c4e1f60"
down_revision: str | None = "3b9e5d41c7a2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "returns",
        sa.Column("dispatch_id", sa.String(length=100), nullable=False),
        sa.Column("work_order_id", sa.String(length=80), nullable=True),
        sa.Column("department", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("review_by", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("operator", sa.String(length=100), nullable=True),
        sa.Column("automatic", sa.Boolean(), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("dispatch_id", name=op.f("pk_returns")),
    )
    op.create_index(op.f("ix_returns_work_order_id"), "returns", ["work_order_id"], unique=False)
    op.create_index("ix_returns_status_requested_at", "returns", ["status", "requested_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_returns_status_requested_at", table_name="returns")
    op.drop_index(op.f("ix_returns_work_order_id"), table_name="returns")
    op.drop_table("returns")
