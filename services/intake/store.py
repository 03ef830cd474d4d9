"""Intake's own database: work orders as received, with the caller's contact (personal data)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, String, Text, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from services.intake.domain import NewOrder
from shared.db import Base, service_metadata
from shared.messaging import InboxRow, OutboxRow


class Model(Base):
    __abstract__ = True
    metadata = service_metadata()


class Inbox(InboxRow, Model):
    __tablename__ = "inbox"


class Outbox(OutboxRow, Model):
    __tablename__ = "outbox"


class WorkOrder(Model):
    __tablename__ = "work_orders"
    __table_args__ = (UniqueConstraint("source", "source_id"),)

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    source_id: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    category: Mapped[str] = mapped_column(String(64))
    confidence: Mapped[float] = mapped_column(Float)
    street: Mapped[str | None] = mapped_column(String(100))
    community: Mapped[str | None] = mapped_column(String(100))
    grid: Mapped[str | None] = mapped_column(String(64))
    compound: Mapped[str | None] = mapped_column(String(100))
    urgency: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    location: Mapped[dict[str, object] | None] = mapped_column(JSONB)
    # Personal data: stored here (and in notify) only; never logged or published in clear.
    caller_name: Mapped[str | None] = mapped_column(String(64))
    caller_phone: Mapped[str | None] = mapped_column(String(32))
    closed_on_site: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# Built once: per-message statement construction costs more than the round trip.
_INSERT_ORDER = insert(WorkOrder).on_conflict_do_nothing().returning(WorkOrder.id)


async def insert_order(conn: AsyncConnection, order: NewOrder) -> bool:
    """Insert the order; False when this call or report was already taken (under another event id)."""
    values = {
        "id": order.work_order_id,
        "source": order.source,
        "source_id": order.source_id,
        "event_id": order.event_id,
        "received_at": order.received_at,
        "category": order.category.code,
        "confidence": order.confidence,
        "street": order.place.street,
        "community": order.place.community,
        "grid": order.place.grid,
        "compound": order.place.compound,
        "urgency": order.urgency,
        "summary": order.summary,
        "address": order.address,
        "location": order.location,
        "caller_name": order.caller_name,
        "caller_phone": order.caller_phone,
        "closed_on_site": order.closed_on_site,
    }
    return (await conn.execute(_INSERT_ORDER, values)).first() is not None
