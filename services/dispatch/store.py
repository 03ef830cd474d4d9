"""Dispatch's own database: the work order's state, its dispatches, and its history."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Identity,
    Integer,
    String,
    Text,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base, bulk_insert, bulk_update, json_keys, keys_table, service_metadata
from shared.messaging import InboxRow, OutboxRow

from . import domain
from .dispatches import Dispatch as DispatchState


class Model(Base):
    __abstract__ = True
    metadata = service_metadata()


class Inbox(InboxRow, Model):
    __tablename__ = "inbox"


class Outbox(OutboxRow, Model):
    __tablename__ = "outbox"


class Order(Model):
    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(64))
    category_name: Mapped[str] = mapped_column(String(64))
    urgency: Mapped[str] = mapped_column(String(16))
    street: Mapped[str | None] = mapped_column(String(100))
    community: Mapped[str | None] = mapped_column(String(100))
    grid: Mapped[str | None] = mapped_column(String(64))
    property_company: Mapped[str | None] = mapped_column(String(64))
    summary: Mapped[str] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    location: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    contact: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # masked only
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    satisfaction: Mapped[str | None] = mapped_column(String(24))  # the resident's last answer
    feedback_by: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    request_type: Mapped[str | None] = mapped_column(String(16))  # null: opened before types
    closure: Mapped[str | None] = mapped_column(String(24))  # how it closed: answered_directly, rated …
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The rates' window (the last 30 days) by index, not the whole history.
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class Dispatch(Model):
    __tablename__ = "dispatches"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    work_order_id: Mapped[str] = mapped_column(String(80), index=True)
    department: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(8))
    level: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # assigned, accepted, resolved, rejected, cancelled
    accept_by: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolve_by: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)  # the rates' window
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    extended: Mapped[bool] = mapped_column(Boolean, default=False)
    # 派单异议审核: a return put to the centre's review (kept once decided).
    returned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    return_reason: Mapped[str | None] = mapped_column(String(32))
    review_by: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Cluster(Model):
    """Concentrated complaints (工单预警) seen on alerts.v1: new orders there start at the street."""

    __tablename__ = "clusters"

    community: Mapped[str] = mapped_column(String(100), primary_key=True)
    category: Mapped[str] = mapped_column(String(64), primary_key=True)
    alerted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class History(Model):
    """Every state change of an order with its cause, for the timeline."""

    __tablename__ = "history"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    work_order_id: Mapped[str] = mapped_column(String(80), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    event: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))
    caused_by: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# The hot path's statements, built once (constructing them per message costs more than the query).
_INSERT_ORDER_COLUMNS = (
    "id",
    "status",
    "level",
    "source",
    "category",
    "category_name",
    "urgency",
    "street",
    "community",
    "grid",
    "property_company",
    "summary",
    "address",
    "location",
    "contact",
    "reopen_count",
    "request_type",
    "closure",
    "opened_at",
    "updated_at",
)
_INSERT_ORDERS = bulk_insert(
    Order.__table__,  # type: ignore[arg-type]
    _INSERT_ORDER_COLUMNS,
    "ON CONFLICT DO NOTHING",
)
_INSERT_DISPATCHES = bulk_insert(
    Dispatch.__table__,  # type: ignore[arg-type]
    (
        "id",
        "work_order_id",
        "department",
        "role",
        "level",
        "attempt",
        "status",
        "accept_by",
        "resolve_by",
        "created_at",
        "extended",
        "returned_at",
        "return_reason",
        "review_by",
    ),
)
_INSERT_HISTORY = bulk_insert(
    History.__table__,  # type: ignore[arg-type]
    ("work_order_id", "at", "event", "status", "level", "caused_by", "detail"),
)


async def load(conn: AsyncConnection, order_id: str) -> domain.Order | None:
    """The order with its dispatches, locked: one order's changes apply one at a time, whatever
    topic they came from."""
    return (await load_many(conn, [order_id])).get(order_id)


async def load_many(conn: AsyncConnection, order_ids: Iterable[str]) -> dict[str, domain.Order]:
    """``load`` of several orders in two statements, not two an order (a cluster alert names
    hundreds), locked in id order; those unknown are left out."""
    ids = sorted(set(order_ids))
    if not ids:
        return {}
    found = await conn.execute(select(Order).where(Order.id.in_(ids)).order_by(Order.id).with_for_update())
    rows = {row.id: row for row in found}
    by_order: dict[str, list[DispatchState]] = {order_id: [] for order_id in rows}
    if rows:
        for r in await conn.execute(select(Dispatch).where(Dispatch.work_order_id.in_(list(rows)))):
            by_order[r.work_order_id].append(DispatchState(**r._mapping))
    orders = {}
    for order_id, row in rows.items():
        dispatches = by_order[order_id]
        dispatches.sort(key=lambda d: int(d.id.rsplit("-D", 1)[1]))  # in the order they were made
        order = domain.Order(**row._mapping, dispatches=dispatches)
        order.loaded = _changing(order)
        orders[order_id] = order
    return orders


# The columns of a dispatch that commands change; the rest are set when it is made.
_DISPATCH_CHANGING = (
    "status",
    "accepted_at",
    "resolved_at",
    "accept_by",
    "resolve_by",
    "extended",
    "returned_at",
    "return_reason",
    "review_by",
)


# The columns of an order's row that commands change (改派 re-tags and re-places it).
_ORDER_CHANGING = (
    "status",
    "level",
    "category",
    "category_name",
    "street",
    "community",
    "grid",
    "property_company",
    "reopen_count",
    "satisfaction",
    "feedback_by",
    "closure",
    "updated_at",
)
_UPDATE_ORDERS = bulk_update(Order.__table__, _ORDER_CHANGING)  # type: ignore[arg-type]
_UPDATE_DISPATCHES = bulk_update(Dispatch.__table__, _DISPATCH_CHANGING)  # type: ignore[arg-type]


def _changing(order: domain.Order) -> dict[str, Any]:
    """The order's values of the columns commands change, to compare and to write."""
    return {c: getattr(order, c) for c in _ORDER_CHANGING}


async def order_of(conn: AsyncConnection, dispatch_id: str) -> str | None:
    """The order a dispatch belongs to."""
    stmt = select(Dispatch.work_order_id).where(Dispatch.id == dispatch_id)
    return (await conn.execute(stmt)).scalar_one_or_none()


# Rows locked in one order (by id), whichever messages name them: a batch that locked its orders
# as its messages came could wait on another replica's batch waiting on it.
_LOCK = text(
    "SELECT id FROM orders WHERE id IN (SELECT unnest(CAST(:orders AS text[])) "
    "UNION SELECT work_order_id FROM dispatches WHERE id = ANY(CAST(:dispatches AS text[]))) "
    "ORDER BY id FOR UPDATE"
)


async def lock(conn: AsyncConnection, order_ids: Iterable[str], dispatch_ids: Iterable[str]) -> None:
    """Lock, for the transaction, these orders and those of these dispatches, in the order of
    their ids."""
    await conn.execute(_LOCK, {"orders": sorted(set(order_ids)), "dispatches": sorted(set(dispatch_ids))})


async def save(conn: AsyncConnection, order: domain.Order) -> None:
    """What a command changed: the order's row, its dispatches, and its history."""
    await save_many(conn, [order])


async def save_many(conn: AsyncConnection, orders: Iterable[domain.Order]) -> None:
    """``save`` of several orders in four statements at most, not four an order (a cluster alert
    raises hundreds): the rows that changed, each table's in one statement."""
    changed, dispatches, new, history = [], [], [], []
    for order in orders:
        changes = _changing(order)
        if changes != order.loaded:
            changed.append(changes | {"id": order.id})
        for d in order.dispatches:
            if d.new:
                new.append(d.row())
            elif d.changed:
                dispatches.append({c: getattr(d, c) for c in _DISPATCH_CHANGING} | {"id": d.id})
        history += history_rows(order)
    await _UPDATE_ORDERS.execute(conn, changed)
    await _UPDATE_DISPATCHES.execute(conn, dispatches)
    await _INSERT_DISPATCHES.execute(conn, new)
    await _INSERT_HISTORY.execute(conn, history)


def order_row(order: domain.Order) -> dict[str, Any]:
    """A new order's row, for the batch's insert."""
    return {c: getattr(order, c) for c in _INSERT_ORDER_COLUMNS}


def history_rows(order: domain.Order) -> list[dict[str, Any]]:
    return [
        {
            "work_order_id": order.id,
            "at": order.at,
            "event": e.event,
            "status": e.status,
            "level": e.level,
            "caused_by": order.cause,
            "detail": e.detail,
        }
        for e in order.history
    ]


async def timeline(conn: AsyncConnection, order_id: str) -> list[Row[Any]]:
    stmt = select(History).where(History.work_order_id == order_id).order_by(History.id)
    return list((await conn.execute(stmt)).all())


async def note_cluster(conn: AsyncConnection, community: str, category: str, at: datetime) -> None:
    stmt = insert(Cluster).values(community=community, category=category, alerted_at=at)
    await conn.execute(
        stmt.on_conflict_do_update(index_elements=["community", "category"], set_={"alerted_at": at})
    )


# The three rates (三率), over the dispatches of the last 30 days; see README for the definitions.
_RATES_BY_DEPARTMENT = text("""
    SELECT department,
           count(*),
           count(*) FILTER (WHERE accepted_at IS NOT NULL AND accepted_at <= accept_by),
           count(*) FILTER (WHERE role = 'lead' AND (status = 'resolved' OR resolve_by <= now())),
           count(*) FILTER (WHERE role = 'lead' AND status = 'resolved' AND resolved_at <= resolve_by)
    FROM dispatches WHERE created_at > now() - interval '30 days' GROUP BY department
""")
_RATES_BY_COMMUNITY = text("""
    SELECT coalesce(o.community, '(unplaced)'),
           count(*),
           count(*) FILTER (WHERE d.accepted_at IS NOT NULL AND d.accepted_at <= d.accept_by),
           count(*) FILTER (WHERE d.role = 'lead' AND (d.status = 'resolved' OR d.resolve_by <= now())),
           count(*) FILTER (WHERE d.role = 'lead' AND d.status = 'resolved' AND d.resolved_at <= d.resolve_by)
    FROM dispatches d JOIN orders o ON o.id = d.work_order_id
    WHERE d.created_at > now() - interval '30 days' GROUP BY 1
""")
_RATES_BY_REQUEST_TYPE = text("""
    SELECT coalesce(o.request_type, 'unknown'),
           count(*),
           count(*) FILTER (WHERE d.accepted_at IS NOT NULL AND d.accepted_at <= d.accept_by),
           count(*) FILTER (WHERE d.role = 'lead' AND (d.status = 'resolved' OR d.resolve_by <= now())),
           count(*) FILTER (WHERE d.role = 'lead' AND d.status = 'resolved' AND d.resolved_at <= d.resolve_by)
    FROM dispatches d JOIN orders o ON o.id = d.work_order_id
    WHERE d.created_at > now() - interval '30 days' GROUP BY 1
""")
_SATISFACTION_BY_DEPARTMENT = text("""
    SELECT d.department, count(*),
           count(*) FILTER (WHERE o.satisfaction IN ('satisfied', 'basically_satisfied'))
    FROM orders o JOIN dispatches d ON d.work_order_id = o.id AND d.role = 'lead' AND d.status = 'resolved'
    WHERE o.satisfaction IS NOT NULL AND o.updated_at > now() - interval '30 days' GROUP BY 1
""")
_SATISFACTION_BY_COMMUNITY = text("""
    SELECT coalesce(community, '(unplaced)'), count(*),
           count(*) FILTER (WHERE satisfaction IN ('satisfied', 'basically_satisfied'))
    FROM orders WHERE satisfaction IS NOT NULL AND updated_at > now() - interval '30 days' GROUP BY 1
""")
_SATISFACTION_BY_REQUEST_TYPE = text("""
    SELECT coalesce(request_type, 'unknown'), count(*),
           count(*) FILTER (WHERE satisfaction IN ('satisfied', 'basically_satisfied'))
    FROM orders WHERE satisfaction IS NOT NULL AND updated_at > now() - interval '30 days' GROUP BY 1
""")


async def rate_counts(conn: AsyncConnection) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "department": [tuple(r) for r in await conn.execute(_RATES_BY_DEPARTMENT)],
        "community": [tuple(r) for r in await conn.execute(_RATES_BY_COMMUNITY)],
        "department_satisfaction": [tuple(r) for r in await conn.execute(_SATISFACTION_BY_DEPARTMENT)],
        "community_satisfaction": [tuple(r) for r in await conn.execute(_SATISFACTION_BY_COMMUNITY)],
        "request_type": [tuple(r) for r in await conn.execute(_RATES_BY_REQUEST_TYPE)],
        "request_type_satisfaction": [tuple(r) for r in await conn.execute(_SATISFACTION_BY_REQUEST_TYPE)],
    }


_EXISTING = text("SELECT id FROM orders WHERE id = ANY(CAST(:ids AS text[]))")
# A row per cluster ever alerted: a small table, hashed (as intake's _ALERTS).
_CLUSTERS_AMONG = text(
    f"SELECT community, category FROM clusters "
    f"JOIN {keys_table('pairs', 'community', 'category')} AS k "
    "USING (community, category) WHERE alerted_at > :since"
)


async def existing_orders(conn: AsyncConnection, ids: list[str]) -> set[str]:
    return {row[0] for row in await conn.execute(_EXISTING, {"ids": ids})}


async def clusters_among(
    conn: AsyncConnection, pairs: list[tuple[str, str]], since: datetime
) -> set[tuple[str, str]]:
    params = {"pairs": json_keys(pairs), "since": since}
    return {(community, category) for community, category in await conn.execute(_CLUSTERS_AMONG, params)}


async def save_new(
    conn: AsyncConnection,
    orders: list[dict[str, Any]],
    dispatches: list[dict[str, Any]],
    history: list[dict[str, Any]],
) -> None:
    """A batch's new orders with their first dispatches and history, in three statements."""
    await _INSERT_ORDERS.execute(conn, orders)
    await _INSERT_DISPATCHES.execute(conn, dispatches)
    await _INSERT_HISTORY.execute(conn, history)
