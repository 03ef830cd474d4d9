"""reminders claimed by index

Revision ID: d7a1e5c20f86
Revises: c3e6a9b42d53
Create Date: 2026-12-04 07:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d7a1e5c20f86"
down_revision: str | None = "c3e6a9b42d53"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The clock loop's claim reads the reminders due in their own index, not every open clock.
    op.create_index(
        "ix_clocks_open_remind_at",
        "clocks",
        ["remind_at"],
        postgresql_where=sa.text("state = 'open' AND NOT reminded"),
    )


def downgrade() -> None:
    op.drop_index("ix_clocks_open_remind_at", table_name="clocks")
