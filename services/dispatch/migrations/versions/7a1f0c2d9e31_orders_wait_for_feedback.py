"""orders wait for the resident's rating until feedback_by (回访 that ends)

Revision ID: 7a1f0c2d9e31
Revises: 7c1e5a9d3b20
Create Date: 2026-12-03 14:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7a1f0c2d9e31"
down_revision: str | None = "7c1e5a9d3b20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Orders resolved before this have no limit: they wait for a rating as they did.
    op.add_column("orders", sa.Column("feedback_by", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("orders", "feedback_by")
