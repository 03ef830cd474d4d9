"""one order per call or report is held by the primary key (WO-H-<call id>, WO-G-<report id>):
the unique (source, source_id) index was one more to write per order. In a rolling deploy, a replica
of the code before still looks orders up by (source, source_id) until it is replaced: rightly, but
without an index

Revision ID: 4c6669102e22
Revises: 84953fbf03af
Create Date: 2026-11-22 00:04:38.293414
"""

from collections.abc import Sequence

from alembic import op

revision: str = "4c6669102e22"
down_revision: str | None = "84953fbf03af"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("uq_work_orders_source_source_id", "work_orders", type_="unique")


def downgrade() -> None:
    op.create_unique_constraint("uq_work_orders_source_source_id", "work_orders", ["source", "source_id"])
