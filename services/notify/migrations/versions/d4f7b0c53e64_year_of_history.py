"""pending notifications claimed by index; finished ones and the inbox pruned by age

Revision ID: d4f7b0c53e64
Revises: 3b930d58257e
Create Date: 2026-12-03 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d4f7b0c53e64"
down_revision: str | None = "3b930d58257e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_inbox_received_at", "inbox", ["received_at"])
    # The sender reads the pending notifications only, however many were sent.
    op.create_index(
        "ix_notifications_pending",
        "notifications",
        ["created_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_notifications_finished",
        "notifications",
        ["created_at"],
        postgresql_where=sa.text("status <> 'pending'"),
    )
    op.create_index("ix_notification_attempts_at", "notification_attempts", ["at"])
    op.create_index(
        "ix_contacts_delete_after",
        "contacts",
        ["delete_after"],
        postgresql_where=sa.text("delete_after IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_contacts_delete_after", table_name="contacts")
    op.drop_index("ix_notification_attempts_at", table_name="notification_attempts")
    op.drop_index("ix_notifications_finished", table_name="notifications")
    op.drop_index("ix_notifications_pending", table_name="notifications")
    op.drop_index("ix_inbox_received_at", table_name="inbox")
