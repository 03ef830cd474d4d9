"""return review: a dispatch's return waits for the centre

A lead's return (退单) is reviewed by the centre (派单异议审核): when it was returned, why, and
when the review is due; kept once decided (a department returns a dispatch once).

Revision ID: 5c1f0e7a2b93
Revises: 7a1f0c2d9e31
Create Date: 2026-12-03 13:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c1f0e7a2b93"
down_revision: str | None = "7a1f0c2d9e31"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("dispatches", sa.Column("returned_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("dispatches", sa.Column("return_reason", sa.String(length=32), nullable=True))
    op.add_column("dispatches", sa.Column("review_by", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("dispatches", "review_by")
    op.drop_column("dispatches", "return_reason")
    op.drop_column("dispatches", "returned_at")
