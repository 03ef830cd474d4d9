"""several reporters per order

Revision ID: 6b7206f64117
Revises: ca1f17cd0d90
Create Date: 2026-11-21 14:15:15.081478
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "6b7206f64117"
down_revision: str | None = "ca1f17cd0d90"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing contacts are the order's own reporter; repeats merged into an order add theirs.
    op.add_column("contacts", sa.Column("reporter_id", sa.String(length=80), nullable=True))
    op.execute("UPDATE contacts SET reporter_id = work_order_id")
    op.alter_column("contacts", "reporter_id", nullable=False)
    op.drop_constraint("pk_contacts", "contacts", type_="primary")
    op.create_primary_key("pk_contacts", "contacts", ["work_order_id", "reporter_id"])


def downgrade() -> None:
    op.execute("DELETE FROM contacts WHERE reporter_id <> work_order_id")
    op.drop_constraint("pk_contacts", "contacts", type_="primary")
    op.create_primary_key("pk_contacts", "contacts", ["work_order_id"])
    op.drop_column("contacts", "reporter_id")
