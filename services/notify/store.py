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
    func,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from shared.clock import BusinessClockRow
from shared.db import Base, bulk_insert, json_keys, key_in, keys_table, service_metadata
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
    # The state of the order this resident was last told of (one message per state).
    last_told: Mapped[str | None] = mapped_column(String(16))


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


_SAVE_CONTACTS = bulk_insert(
    Contact.__table__,  # type: ignore[arg-type]
    ("work_order_id", "reporter_id", "name", "phone"),
    "ON CONFLICT (work_order_id, reporter_id) DO UPDATE SET name = excluded.name, phone = excluded.phone",
)
_RESIDENTS = text(
    "SELECT work_order_id, reporter_id, last_told FROM contacts "
    "WHERE work_order_id = ANY(CAST(:ids AS text[]))"
)
# By (order, reporter) pairs, the orders probed in the primary key first (key_in): joined to the
# pairs alone, the contacts were read whole until the table had statistics.
_MARK_TOLD = text(
    f"UPDATE contacts SET last_told = told.state "
    f"FROM {keys_table('told', 'work_order_id', 'reporter_id', 'state')} AS told "
    "WHERE contacts.work_order_id = told.work_order_id AND contacts.reporter_id = told.reporter_id "
    f"AND {key_in('contacts.work_order_id', 'told')}"
)
_PHONES = text(
    f"SELECT contacts.work_order_id, contacts.reporter_id, phone FROM contacts "
    f"JOIN {keys_table('wanted', 'work_order_id', 'reporter_id')} AS wanted "
    "ON contacts.work_order_id = wanted.work_order_id AND contacts.reporter_id = wanted.reporter_id "
    f"WHERE {key_in('contacts.work_order_id', 'wanted')}"
)
_ADD = bulk_insert(
    Notification.__table__,  # type: ignore[arg-type]
    (
        "id",
        "work_order_id",
        "audience",
        "recipient",
        "channel",
        "template",
        "body",
        "status",
        "attempts",
        "event_time",
        "hold_until",
    ),
    "ON CONFLICT DO NOTHING",
)

Pair = tuple[str, str]  # (work order, reporter)


async def save_contacts(conn: AsyncConnection, contacts: dict[Pair, tuple[str | None, str | None]]) -> None:
    """Record residents' names and phones, keyed by order and report."""
    if contacts:
        rows = [
            {"work_order_id": order, "reporter_id": reporter, "name": name, "phone": phone}
            for (order, reporter), (name, phone) in contacts.items()
        ]
        await _SAVE_CONTACTS.execute(conn, rows)


async def residents(conn: AsyncConnection, work_order_ids: list[str]) -> dict[str, dict[str, str | None]]:
    """The residents to tell about each order (its own reporter and those of repeats merged into
    it), each with the state they were last told of."""
    found: dict[str, dict[str, str | None]] = {}
    if work_order_ids:
        for order, reporter, told in await conn.execute(_RESIDENTS, {"ids": work_order_ids}):
            found.setdefault(order, {})[reporter] = told
    return found


async def mark_told(conn: AsyncConnection, told: dict[Pair, str]) -> None:
    if told:
        rows = [(order, reporter, state) for (order, reporter), state in told.items()]
        await conn.execute(_MARK_TOLD, {"told": json_keys(rows)})


async def phones(conn: AsyncConnection, pairs: list[Pair]) -> dict[Pair, str | None]:
    """The phones of the residents to reach (none once a contact is forgotten)."""
    if not pairs:
        return {}
    return {(o, r): phone for o, r, phone in await conn.execute(_PHONES, {"wanted": json_keys(pairs)})}


async def add(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    await _ADD.execute(conn, rows)


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


async def finish(conn: AsyncConnection, notification_id: str, **values: Any) -> None:
    await conn.execute(update(Notification).where(Notification.id == notification_id).values(**values))
