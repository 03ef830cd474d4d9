"""states kept until the resident's contact is known (the contact race)

Revision ID: 19cec14f1b7a
Revises: d4f7b0c53e64
Create Date: 2026-12-03 17:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "19cec14f1b7a"
down_revision: str | None = "d4f7b0c53e64"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "unheard_states",
        sa.Column("work_order_id", sa.String(length=80), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("delete_after", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("work_order_id", "event_id"),
    )


def downgrade() -> None:
    op.drop_table("unheard_states")
