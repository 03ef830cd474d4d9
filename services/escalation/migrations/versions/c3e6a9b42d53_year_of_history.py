"""open clocks claimed by index; ended clocks and the inbox pruned by age

Revision ID: c3e6a9b42d53
Revises: f90e055041ca
Create Date: 2026-12-03 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c3e6a9b42d53"
down_revision: str | None = "f90e055041ca"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_inbox_received_at", "inbox", ["received_at"])
    # The clock loop reads the open clocks only, however many have ended.
    op.create_index("ix_clocks_open_due_at", "clocks", ["due_at"], postgresql_where=sa.text("state = 'open'"))
    op.create_index("ix_clocks_ended", "clocks", ["updated_at"], postgresql_where=sa.text("state <> 'open'"))


def downgrade() -> None:
    op.drop_index("ix_clocks_ended", table_name="clocks")
    op.drop_index("ix_clocks_open_due_at", table_name="clocks")
    op.drop_index("ix_inbox_received_at", table_name="inbox")
