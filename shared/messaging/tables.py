"""The inbox and outbox tables every service has, as mixins for its own declarative model."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Identity, LargeBinary, String, func
from sqlalchemy.orm import Mapped, mapped_column


class InboxRow:
    """Mixin: ``class Inbox(InboxRow, Model): __tablename__ = "inbox"``."""

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255))
    # Indexed for the pruning of ids past the redelivery horizon (shared/housekeeping.py).
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )


class OutboxRow:
    """Mixin: ``class Outbox(OutboxRow, Model): __tablename__ = "outbox"``."""

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255))
    key: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # No "sent" mark: the relay deletes what Kafka has acknowledged, so the table holds only what
    # is still to be sent.
