"""The api's own database: a read model of orders, their dispatches, timeline, alerts and
notifications (built from the events it reads, with the residents' answers for the rates), the
requests it took through Open311, and the responses and 改派 it sent for its keys, with dispatch's
refusals. No personal data in any of it. What the HTTP side reads of it: ``queries``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    Select,
    String,
    Text,
    exists,
    false,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base, bulk_insert, service_metadata
from shared.messaging import InboxRow, OutboxRow

from .domain import CLOSED, DispatchView, OrderView
from .forms import Listing


class Model(Base):
    __abstract__ = True
    metadata = service_metadata()


class Inbox(InboxRow, Model):
    __tablename__ = "inbox"


class Outbox(OutboxRow, Model):
    __tablename__ = "outbox"


class Order(Model):
    """An order as the api answers for it (``domain.OrderView``)."""

    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), server_default="new")
    level: Mapped[str | None] = mapped_column(String(16))
    category: Mapped[str | None] = mapped_column(String(64))
    category_name: Mapped[str | None] = mapped_column(String(64))
    street: Mapped[str | None] = mapped_column(Text)
    community: Mapped[str | None] = mapped_column(Text)
    grid: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(16))
    urgency: Mapped[str | None] = mapped_column(String(16))
    merged_into: Mapped[str | None] = mapped_column(String(80))
    summary: Mapped[str | None] = mapped_column(Text)  # masked
    address: Mapped[str | None] = mapped_column(Text)  # masked
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lead_dispatch_id: Mapped[str | None] = mapped_column(String(100))
    lead_department: Mapped[str | None] = mapped_column(String(64))
    resolve_by: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status_notes: Mapped[str | None] = mapped_column(Text)
    overdue: Mapped[bool] = mapped_column(Boolean, server_default=false())
    rated_by: Mapped[str | None] = mapped_column(String(200))  # the applied feedback's event id
    rated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # Listings go by time: all, by category (Open311), by status (the desk); the rates by rating.
    __table_args__ = (
        Index("ix_orders_requested_at", "requested_at"),
        Index("ix_orders_category_requested_at", "category", "requested_at"),
        Index("ix_orders_status_requested_at", "status", "requested_at"),
        Index("ix_orders_rated_at", "rated_at"),
    )


class Dispatch(Model):
    __tablename__ = "dispatches"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    work_order_id: Mapped[str] = mapped_column(String(80), index=True)
    department: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[str | None] = mapped_column(String(8))
    level: Mapped[str | None] = mapped_column(String(16))
    accept_by: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolve_by: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))  # assigned, accepted, ended, resolved, cancelled
    overdue: Mapped[bool] = mapped_column(Boolean)
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # A department's own, newest first; the rates' window.
    __table_args__ = (
        Index("ix_dispatches_department_assigned_at", "department", "assigned_at"),
        Index("ix_dispatches_assigned_at", "assigned_at"),
    )


class TimelineEntry(Model):
    """Every lifecycle event of an order, with why it happened (``domain.timeline_entry``)."""

    __tablename__ = "timeline"

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    work_order_id: Mapped[str] = mapped_column(String(80))
    type: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    caused_by: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # In the order rows were written: one order's lifecycle comes in order, and events of one
    # command share their time (escalated, then dispatched).
    seq: Mapped[int] = mapped_column(BigInteger, Identity())

    __table_args__ = (Index("ix_timeline_work_order_id_at", "work_order_id", "at"),)


class Alert(Model):
    """``alerts.v1`` as it came: SLA breaches and cluster warnings (no personal data in either)."""

    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # the event's id
    type: Mapped[str] = mapped_column(String(40))
    area: Mapped[str | None] = mapped_column(Text)  # the topic's key
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    work_order_id: Mapped[str | None] = mapped_column(String(80), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)


class Request(Model):
    """A request taken through Open311, so that it can be answered for before intake has made its
    order. Its description and address are kept masked; the caller's contact not at all."""

    __tablename__ = "requests"

    service_request_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    call_id: Mapped[str] = mapped_column(String(64), unique=True)
    service_code: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    key_name: Mapped[str] = mapped_column(String(100))  # which key posted it (never the key)
    description: Mapped[str] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    service_notice: Mapped[str | None] = mapped_column(Text)


class Sent(Model):
    """What the api published for a key: a department's response on ``dispatch.responses.v1``, or
    the centre's 改派 on ``internal.dispatch.commands.v1``; dispatch's refusal once its dead letter is
    read. Who sent it (the key's name) but not what it said: notes may name residents."""

    __tablename__ = "sent"

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(40))
    work_order_id: Mapped[str] = mapped_column(String(80), index=True)
    dispatch_id: Mapped[str | None] = mapped_column(String(100), index=True)
    key_name: Mapped[str] = mapped_column(String(100))
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    refusal: Mapped[str | None] = mapped_column(Text)  # the dead letter's error
    refused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Feedback(Model):
    """The residents' answers (``feedback.v1``): only what the rates need. Counted where dispatch
    applied one (an order's ``rated_by``); the comment is not kept."""

    __tablename__ = "feedback"

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    work_order_id: Mapped[str] = mapped_column(String(80))
    satisfaction: Mapped[str] = mapped_column(String(24))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Notification(Model):
    """``notifications.v1``: what notify told whom about an order (or a cluster alert, whose id is
    ``cluster:<community>:<category>``), as its newest event has it. No recipient in it."""

    __tablename__ = "notifications"

    notification_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    work_order_id: Mapped[str] = mapped_column(String(200), index=True)
    type: Mapped[str] = mapped_column(String(8))  # sent, failed
    audience: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(32))
    template: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)  # masked
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # the event's time


class Return(Model):
    """A department's return (退单) under the centre's review (派单异议审核), by its dispatch, from
    the lifecycle's review events: pending, then approved, refused or cancelled. Notes masked."""

    __tablename__ = "returns"

    dispatch_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    work_order_id: Mapped[str | None] = mapped_column(String(80), index=True)
    department: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    review_by: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))  # pending, approved, refused, cancelled
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    operator: Mapped[str | None] = mapped_column(String(100))
    automatic: Mapped[bool | None] = mapped_column(Boolean)
    decision_note: Mapped[str | None] = mapped_column(Text)

    # The queue, by status, oldest request first or newest.
    __table_args__ = (Index("ix_returns_status_requested_at", "status", "requested_at"),)


# ---- the read model, a batch at a time ----------------------------------------------------------

ORDER_COLUMNS = tuple(c.name for c in Order.__table__.columns)
DISPATCH_COLUMNS = tuple(c.name for c in Dispatch.__table__.columns)

# Every order a batch is about gets a row first, so that the batch can lock it: events of one order
# come from several topics, whose partitions another replica may hold.
_ENSURE = text(
    "INSERT INTO orders (id) SELECT id FROM unnest(CAST(:ids AS text[])) AS u(id) ORDER BY id "
    "ON CONFLICT DO NOTHING"
)
_LOCK = text("SELECT * FROM orders WHERE id = ANY(CAST(:ids AS text[])) ORDER BY id FOR UPDATE")
# Joined to the ids, not filtered by = ANY: as a prepared statement's generic plan a seq scan
# compared every row with every id of the batch (2,000), its cost growing with the table; joined,
# it is a hash join or an index lookup a batch's order (docs/performance.md).
_DISPATCHES = text(
    "SELECT d.* FROM unnest(CAST(:ids AS text[])) AS k(id) JOIN dispatches AS d ON d.work_order_id = k.id"
)
_SAVE_ORDERS = text(
    "UPDATE orders AS o SET "
    + ", ".join(f"{c} = n.{c}" for c in ORDER_COLUMNS if c != "id")
    + " FROM json_populate_recordset(NULL::orders, CAST(:rows AS json)) AS n WHERE o.id = n.id"
)
_SAVE_DISPATCHES = bulk_insert(
    Dispatch.__table__,  # type: ignore[arg-type]
    DISPATCH_COLUMNS,
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in DISPATCH_COLUMNS if c != "id"),
)
_ADD_TIMELINE = bulk_insert(
    TimelineEntry.__table__,  # type: ignore[arg-type]
    tuple(c.name for c in TimelineEntry.__table__.columns if c.name != "seq"),  # the database's
    "ON CONFLICT DO NOTHING",
)
_ADD_ALERTS = bulk_insert(
    Alert.__table__,  # type: ignore[arg-type]
    tuple(c.name for c in Alert.__table__.columns),
    "ON CONFLICT DO NOTHING",
)

NOTIFICATION_COLUMNS = tuple(c.name for c in Notification.__table__.columns)
# A replay or an older event leaves the row as it is: the rule of ``domain.notification_rank``.
_UPSERT_NOTIFICATIONS = bulk_insert(
    Notification.__table__,  # type: ignore[arg-type]
    NOTIFICATION_COLUMNS,
    "ON CONFLICT (notification_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in NOTIFICATION_COLUMNS if c != "notification_id")
    + " WHERE (excluded.at, excluded.attempts, excluded.type = 'sent') > "
    "(notifications.at, notifications.attempts, notifications.type = 'sent')",
)


async def lock_orders(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, OrderView]:
    """The orders (new ones made empty) with their dispatches, locked until the batch commits."""
    if not ids:
        return {}
    params = {"ids": sorted(set(ids))}
    await conn.execute(_ENSURE, params)
    views = {
        row.id: OrderView(**{c: getattr(row, c) for c in ORDER_COLUMNS})
        for row in await conn.execute(_LOCK, params)
    }
    for row in await conn.execute(_DISPATCHES, params):
        views[row.work_order_id].dispatches[row.id] = DispatchView(
            **{c: getattr(row, c) for c in DISPATCH_COLUMNS}
        )
    return views


async def save(conn: AsyncConnection, views: Iterable[OrderView]) -> None:
    """What the batch changed: its orders in one statement, their dispatches in another."""
    orders, dispatches = [], []
    for view in views:
        if "" in view.changed:
            orders.append({c: getattr(view, c) for c in ORDER_COLUMNS})
        dispatches += [
            {c: getattr(view.dispatches[d], c) for c in DISPATCH_COLUMNS} for d in sorted(view.changed - {""})
        ]
        view.changed.clear()
    if orders:
        await conn.execute(_SAVE_ORDERS, {"rows": orjson.dumps(orders)})
    await _SAVE_DISPATCHES.execute(conn, dispatches)


async def add_timeline(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    await _ADD_TIMELINE.execute(conn, rows)


async def add_alerts(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    await _ADD_ALERTS.execute(conn, rows)


_ADD_FEEDBACK = bulk_insert(
    Feedback.__table__,  # type: ignore[arg-type]
    tuple(c.name for c in Feedback.__table__.columns),
    "ON CONFLICT DO NOTHING",
)
# Only rows the api wrote itself match: a dead letter of anyone else's response changes nothing.
_REFUSE = text(
    "UPDATE sent AS s SET refusal = r.refusal, refused_at = r.refused_at "
    "FROM json_populate_recordset(NULL::sent, CAST(:rows AS json)) AS r WHERE s.event_id = r.event_id"
)


async def add_feedback(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    await _ADD_FEEDBACK.execute(conn, rows)


async def record_refusals(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """``{"event_id", "refusal", "refused_at"}`` each: dispatch's dead letters of what was sent."""
    if rows:
        await conn.execute(_REFUSE, {"rows": orjson.dumps(rows)})


async def upsert_notifications(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """At most one row per notification (``unit.ApiBatch.notified``): an upsert touches each once."""
    await _UPSERT_NOTIFICATIONS.execute(conn, rows)


async def add_sent(conn: AsyncConnection, row: dict[str, Any]) -> None:
    await conn.execute(insert(Sent).values(**row))


RETURN_COLUMNS = tuple(c.name for c in Return.__table__.columns)
_DECIDED = ", ".join(
    f"{c} = excluded.{c}" for c in ("status", "decided_at", "operator", "automatic", "decision_note")
)
# A request (with its decision, when the batch had both): a replay leaves a decided return as it is.
_ADD_RETURNS = bulk_insert(
    Return.__table__,  # type: ignore[arg-type]
    RETURN_COLUMNS,
    f"ON CONFLICT (dispatch_id) DO UPDATE SET {_DECIDED} "
    "WHERE returns.status = 'pending' AND excluded.status <> 'pending'",
)
# A decision alone: only a pending return takes it (``domain.merge_return``'s rule).
_DECIDE_RETURNS = text(
    "UPDATE returns AS r SET status = n.status, decided_at = n.decided_at, operator = n.operator, "
    "automatic = n.automatic, decision_note = n.decision_note "
    "FROM json_populate_recordset(NULL::returns, CAST(:rows AS json)) AS n "
    "WHERE r.dispatch_id = n.dispatch_id AND r.status = 'pending'"
)


async def save_returns(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    requests = [r for r in rows if "work_order_id" in r]
    decisions = [r for r in rows if "work_order_id" not in r]
    await _ADD_RETURNS.execute(conn, requests)
    if decisions:
        await conn.execute(_DECIDE_RETURNS, {"rows": orjson.dumps(decisions)})


# Said (NOTIFY) in every batch's transaction, so that whoever LISTENs (the console's live pages)
# hears it once the batch commits, on any replica; a listener that misses one loses nothing.
CHANGED = "whistle_api_changed"


async def announce_change(conn: AsyncConnection) -> None:
    await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANGED})


# ---- what Open311 reads -----------------------------------------------------------------------


async def add_request(conn: AsyncConnection, row: dict[str, Any]) -> None:
    await conn.execute(insert(Request).values(**row))


def _answers() -> Select[Any]:
    """Orders with what their Open311 request (if they came through it) adds."""
    return select(
        *Order.__table__.columns,
        Request.service_notice,
        Request.description.label("request_description"),
        Request.address.label("request_address"),
        Request.lat.label("request_lat"),
        Request.lon.label("request_lon"),
    ).outerjoin(Request, Request.service_request_id == Order.id)


def _pending() -> Select[Any]:
    """Requests taken whose order intake has not made yet."""
    return select(*Request.__table__.columns).where(~exists().where(Order.id == Request.service_request_id))


async def find(conn: AsyncConnection, listing: Listing) -> tuple[list[Row[Any]], list[Row[Any]]]:
    """The orders a listing asks for, and the requests taken that are not orders yet: newest first,
    at most ``listing.limit`` of each (the caller merges them)."""
    orders, pending = _answers(), _pending()
    if listing.ids:
        orders = orders.where(Order.id.in_(listing.ids))
        pending = pending.where(Request.service_request_id.in_(listing.ids))
    else:
        orders = orders.where(Order.requested_at.between(listing.start, listing.end))
        pending = pending.where(Request.received_at.between(listing.start, listing.end))
        if listing.codes:
            orders = orders.where(Order.category.in_(listing.codes))
            pending = pending.where(Request.service_code.in_(listing.codes))
        if listing.closed is not None:
            closed = Order.status.in_(sorted(CLOSED))
            orders = orders.where(closed if listing.closed else ~closed)
            if listing.closed:
                pending = pending.where(false())  # a request not yet an order is open
    orders = orders.order_by(Order.requested_at.desc().nulls_last()).limit(listing.limit)
    pending = pending.order_by(Request.received_at.desc()).limit(listing.limit)
    return list(await conn.execute(orders)), list(await conn.execute(pending))
