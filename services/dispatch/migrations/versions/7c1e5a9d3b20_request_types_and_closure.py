"""request types and how an order closed

Revision ID: 7c1e5a9d3b20
Revises: e9448889164c
Create Date: 2026-12-03 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7c1e5a9d3b20"
down_revision: str | None = "e9448889164c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: orders opened before request types keep the urgency's limits, and open ones no closure.
    op.add_column("orders", sa.Column("request_type", sa.String(length=16), nullable=True))
    op.add_column("orders", sa.Column("closure", sa.String(length=24), nullable=True))


def downgrade() -> None:
    op.drop_column("orders", "closure")
    op.drop_column("orders", "request_type")
