"""Notify's own database: residents' contacts (personal data) and every notification with its attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Identity,
    Integer,
    String,
    Text,
    bindparam,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from shared.clock import BusinessClockRow
from shared.db import Base, service_metadata
from shared.messaging import InboxRow, OutboxRow


class Model(Base):
    __abstract__ = True
    metadata = service_metadata()


class Inbox(InboxRow, Model):
    __tablename__ = "inbox"


class Outbox(OutboxRow, Model):
    __tablename__ = "outbox"


class Contact(Model):
    """Personal data, to reach the resident; never logged or published."""

    __tablename__ = "contacts"

    work_order_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    # The report this resident made: the order itself, or a repeat report merged into it.
    reporter_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(64))
    phone: Mapped[str | None] = mapped_column(String(32))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    delete_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # business time


class Notification(Model):
    __tablename__ = "notifications"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    work_order_id: Mapped[str] = mapped_column(String(80), index=True)
    audience: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(80))
    channel: Mapped[str] = mapped_column(String(16))
    template: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(8), default="pending")  # pending, sent, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Not before: the next try after a failure (wall clock).
    retry_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Not before: the end of the quiet hours (business time).
    hold_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BusinessClock(BusinessClockRow, Model):
    __tablename__ = "business_clock"


class Attempt(Model):
    """Every delivery attempt, successful or not."""

    __tablename__ = "notification_attempts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    notification_id: Mapped[str] = mapped_column(String(64), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)


_PENDING = text(
    "SELECT * FROM notifications WHERE status = 'pending' AND retry_at <= :now "
    "AND (hold_until IS NULL OR hold_until <= :business_now) "
    "ORDER BY created_at LIMIT :n FOR UPDATE SKIP LOCKED"
)
_ATTEMPTS = insert(Attempt)


async def save_contact(
    conn: AsyncConnection, work_order_id: str, reporter_id: str, name: str | None, phone: str | None
) -> None:
    stmt = insert(Contact).values(
        work_order_id=work_order_id, reporter_id=reporter_id, name=name, phone=phone
    )
    keys = ["work_order_id", "reporter_id"]
    await conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_={"name": name, "phone": phone}))


_REPORTERS = (
    select(Contact.reporter_id).where(Contact.work_order_id == bindparam("id")).order_by(Contact.reporter_id)
)
_ADD = insert(Notification).on_conflict_do_nothing()


async def reporters(conn: AsyncConnection, work_order_id: str) -> list[str]:
    """The residents to tell about an order: its own reporter and those of repeats merged into it."""
    return [row[0] for row in await conn.execute(_REPORTERS, {"id": work_order_id})]


async def add(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(_ADD, rows)


async def claim_pending(
    conn: AsyncConnection, now: datetime, business_now: datetime, limit: int = 50
) -> list[Row[Any]]:
    params = {"n": limit, "now": now, "business_now": business_now}
    return list((await conn.execute(_PENDING, params)).all())


async def forget_contacts_after(conn: AsyncConnection, work_order_id: str, when: datetime) -> None:
    """Personal data is kept only while it is needed: until ``when`` (the order closed + retention)."""
    await conn.execute(
        update(Contact).where(Contact.work_order_id == work_order_id).values(delete_after=when)
    )


_FORGET = text("DELETE FROM contacts WHERE delete_after <= :now")


async def forget_expired_contacts(conn: AsyncConnection, business_now: datetime) -> int:
    return int((await conn.execute(_FORGET, {"now": business_now})).rowcount)


async def record_attempts(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(_ATTEMPTS, rows)


async def contact(conn: AsyncConnection, work_order_id: str, reporter_id: str) -> Row[Any] | None:
    stmt = select(Contact).where(Contact.work_order_id == work_order_id, Contact.reporter_id == reporter_id)
    return (await conn.execute(stmt)).first()


async def finish(conn: AsyncConnection, notification_id: str, **values: Any) -> None:
    await conn.execute(update(Notification).where(Notification.id == notification_id).values(**values))
