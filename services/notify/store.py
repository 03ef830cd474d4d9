"""Notify's own database: residents' contacts (personal data) and every notification with its attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    DateTime,
    Identity,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from shared.clock import BusinessClockRow
from shared.db import Base, bulk_insert, json_keys, key_in, keys_table, service_metadata
from shared.housekeeping import Prunable
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

    # Every round of the sender forgets what is due: by index, not by reading every contact.
    __table_args__ = (
        Index("ix_contacts_delete_after", "delete_after", postgresql_where=text("delete_after IS NOT NULL")),
    )


class UnheardState(Model):
    """A state of a call's order seen before its resident's contact (the contact race): told to the
    resident when the contact comes, then deleted; one never claimed is forgotten with the order's
    contacts, a retention period after it closed."""

    __tablename__ = "unheard_states"

    work_order_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)  # the notifications' cause
    seq: Mapped[int] = mapped_column(BigInteger, Identity())  # the order they came in
    event_type: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
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

    # The sender claims among the pending alone, however many were sent (a year's are millions);
    # the finished ones are pruned by age (PRUNABLE).
    __table_args__ = (
        Index("ix_notifications_pending", "created_at", postgresql_where=text("status = 'pending'")),
        Index("ix_notifications_finished", "created_at", postgresql_where=text("status <> 'pending'")),
    )


class BusinessClock(BusinessClockRow, Model):
    __tablename__ = "business_clock"


class Attempt(Model):
    """Every delivery attempt, successful or not."""

    __tablename__ = "notification_attempts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    notification_id: Mapped[str] = mapped_column(String(64), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    error: Mapped[str | None] = mapped_column(Text)


# Finished notifications and every attempt, once past the redelivery horizon (shared/housekeeping.py):
# a notification planned again from a redelivered event is dropped by its id (add), so they go no
# sooner than the inbox's ids. What was told whom stays in the api's read model.
PRUNABLE = (
    Prunable("notifications", "created_at", "status <> 'pending'"),
    Prunable("notification_attempts", "at"),
)

# The lease is the claim's retry_at: its value marks the rows as this round's until it passes.
# Claimed by physical address (ctid), as the relay claims its rows: a TID scan whatever the
# planner believes of the table.
_CLAIM = text(
    "UPDATE notifications SET retry_at = :lease WHERE ctid = ANY(ARRAY("
    "SELECT ctid FROM notifications WHERE status = 'pending' AND retry_at <= :now "
    "AND (hold_until IS NULL OR hold_until <= :business_now) "
    "ORDER BY created_at LIMIT :n FOR UPDATE SKIP LOCKED)) RETURNING *"
)
# A round's outcomes in one statement, each applied only to a row still under the round's lease.
_FINISH = text(
    "UPDATE notifications AS n SET status = o.status, attempts = o.attempts, "
    "last_error = coalesce(o.last_error, n.last_error), sent_at = coalesce(o.sent_at, n.sent_at), "
    "retry_at = coalesce(o.retry_at, n.retry_at) "
    "FROM json_populate_recordset(NULL::notifications, CAST(:rows AS json)) AS o "
    "WHERE n.id = o.id AND n.status = 'pending' AND n.retry_at = :lease RETURNING n.id"
)
_RELEASE = text(
    "UPDATE notifications SET retry_at = :at "
    "WHERE id = ANY(CAST(:ids AS text[])) AND status = 'pending' AND retry_at = :lease"
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

_ADD_UNHEARD = bulk_insert(
    UnheardState.__table__,  # type: ignore[arg-type]
    ("work_order_id", "event_id", "event_type", "data"),
    "ON CONFLICT DO NOTHING",
)
_UNHEARD = text(
    "SELECT work_order_id, event_id, event_type, data FROM unheard_states "
    "WHERE work_order_id = ANY(CAST(:ids AS text[])) ORDER BY seq"
)
_TOLD_UNHEARD = text("DELETE FROM unheard_states WHERE work_order_id = ANY(CAST(:ids AS text[]))")

Pair = tuple[str, str]  # (work order, reporter)
# A state kept for a resident to come: (event type, its data, the id of the event).
Unheard = tuple[str, dict[str, Any], str]


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


async def unheard(conn: AsyncConnection, work_order_ids: list[str]) -> dict[str, list[Unheard]]:
    """The states kept for each order's resident to come, in the order they came."""
    found: dict[str, list[Unheard]] = {}
    if work_order_ids:
        for order, event_id, event_type, data in await conn.execute(_UNHEARD, {"ids": work_order_ids}):
            found.setdefault(order, []).append((event_type, data, event_id))
    return found


async def keep_unheard(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await _ADD_UNHEARD.execute(conn, rows)


async def told_unheard(conn: AsyncConnection, work_order_ids: set[str]) -> None:
    """The orders' kept states have been told (their resident's contact came): not kept longer."""
    if work_order_ids:
        await conn.execute(_TOLD_UNHEARD, {"ids": sorted(work_order_ids)})


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
    conn: AsyncConnection, now: datetime, business_now: datetime, lease: datetime, limit: int = 50
) -> list[Row[Any]]:
    """The notifications due, oldest first, leased until ``lease``: other rounds pass them by after
    this transaction commits, until the lease has passed (a round that crashed while sending)."""
    params = {"n": limit, "now": now, "business_now": business_now, "lease": lease}
    return sorted((await conn.execute(_CLAIM, params)).all(), key=lambda n: n.created_at)


async def release(conn: AsyncConnection, ids: list[str], lease: datetime, at: datetime) -> None:
    """Notifications claimed under ``lease`` but not tried are due again from ``at``."""
    if ids:
        await conn.execute(_RELEASE, {"ids": ids, "lease": lease, "at": at})


async def forget_contacts_after(conn: AsyncConnection, work_order_id: str, when: datetime) -> None:
    """Personal data is kept only while it is needed: until ``when`` (the order closed + retention)."""
    await conn.execute(
        update(Contact).where(Contact.work_order_id == work_order_id).values(delete_after=when)
    )
    await conn.execute(
        update(UnheardState).where(UnheardState.work_order_id == work_order_id).values(delete_after=when)
    )


# Run by every round of the sender: the contacts due, found in their partial index (ordered and
# limited, the planner takes it without statistics; a scan read a month of residents each round).
# 200 a round (400 a second at the idle interval): the rest go a round later.
_FORGET = text(
    "DELETE FROM contacts WHERE ctid = ANY(ARRAY(SELECT ctid FROM contacts WHERE delete_after <= :now "
    "ORDER BY delete_after LIMIT 200))"
)
_FORGET_UNHEARD = text("DELETE FROM unheard_states WHERE delete_after <= :now")


async def forget_expired_contacts(conn: AsyncConnection, business_now: datetime) -> int:
    await conn.execute(_FORGET_UNHEARD, {"now": business_now})
    return int((await conn.execute(_FORGET, {"now": business_now})).rowcount)


async def record_attempts(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(_ATTEMPTS, rows)


async def finish(conn: AsyncConnection, outcomes: list[dict[str, Any]], lease: datetime) -> set[str]:
    """Record a round's attempts (``id``, ``status``, ``attempts`` and, where they change,
    ``last_error``, ``sent_at``, ``retry_at``) on the notifications still held under ``lease``;
    returns their ids. One whose lease passed was taken by another round, which records it."""
    if not outcomes:
        return set()
    rows = await conn.execute(_FINISH, {"rows": orjson.dumps(outcomes), "lease": lease})
    return {row[0] for row in rows}
