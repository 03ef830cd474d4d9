"""Intake's own database: work orders as received, with the caller's contact (personal data)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Float, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from services.intake.domain import NewOrder, OpenOrder
from shared.db import Base, bulk_insert, json_keys, key_in, keys_table, service_metadata
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

    # WO-H-<call id> or WO-G-<report id>: one order per call or report, held by the primary key.
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
    # open (may absorb repeats), merged (joined merged_into), done (resolved or closed)
    status: Mapped[str] = mapped_column(String(8), default="open")
    merged_into: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# Merge candidates: open orders of a category at a compound, in a grid, or from a phone, each kind
# found in an index of its own keyed "category/place" (_OPEN). One index on category had every
# batch read all the open orders of the merge window (a day's), a cost that grew with the day's
# calls. The indexes hold every order, not the open ones only: a planner without statistics (a new
# table) took any index over open orders for a way to read them all, and did.
MERGE_KEYS = ("compound", "grid", "caller_phone")
# With the time beside the key, the probe reads the merge window's orders, not a year's of that key.
for _place in MERGE_KEYS:
    Index(
        f"ix_work_orders_merge_{_place}",
        WorkOrder.category + "/" + getattr(WorkOrder, _place),
        WorkOrder.received_at,
    )
# A cluster's orders (工单预警): a category's in a community since a moment, keyed
# "category/community" and looked up as the merge candidates are, for the same reasons (_CLUSTER).
Index("ix_work_orders_cluster", WorkOrder.category + "/" + WorkOrder.community, WorkOrder.received_at)


class ClusterAlert(Model):
    """The last cluster alert per community and category, so each step is raised once."""

    __tablename__ = "cluster_alerts"

    community: Mapped[str] = mapped_column(String(100), primary_key=True)
    category: Mapped[str] = mapped_column(String(64), primary_key=True)
    step: Mapped[int] = mapped_column(Integer)
    alerted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# Every column but created_at (the server's): the keys of order_row.
_ORDER_COLUMNS = [c.name for c in WorkOrder.__table__.columns if c.name != "created_at"]
_INSERT_ORDERS = bulk_insert(WorkOrder.__table__, _ORDER_COLUMNS, "ON CONFLICT DO NOTHING")  # type: ignore[arg-type]
_ALERT = bulk_insert(
    ClusterAlert.__table__,  # type: ignore[arg-type]
    ("community", "category", "step", "alerted_at"),
    "ON CONFLICT (community, category) DO UPDATE SET step = EXCLUDED.step, alerted_at = EXCLUDED.alerted_at",
)
# Ids in a constant array (as _SET_STATUS): the planner sizes it and, on a unique column, probes
# the primary key without statistics; on a table small enough to scan, it hashes the ids (key_in
# would compare every order with every id).
_KNOWN = text("SELECT id FROM work_orders WHERE id = ANY(CAST(:ids AS text[]))")


def _keyed(place: str, param: str) -> str:
    """The orders whose "category/place" is one of the parameter's (category_keys), looked up in
    the index of that key (one bitmap for the batch)."""
    return key_in(f"(category || '/' || {place})", param)


# Open orders of the same category at one of the batch's compounds or grids, or from one of its
# phones: the batch's "category/place" keys, each kind in its own index.
_OPEN = text(
    " UNION ".join(
        "SELECT id, category, community, compound, grid, caller_phone, received_at FROM work_orders "
        f"WHERE {_keyed(c, c)} AND status = 'open' AND NOT closed_on_site AND received_at >= :since"
        for c in MERGE_KEYS
    )
    + " ORDER BY received_at, id"
)
# The cluster window's counts (工单预警): the orders of the batch's communities and categories per
# minute of business time (minutes since the epoch, as unit._minute), counted in the cluster
# index. A table of counters beside the orders cost each call a row more to write, and pruning.
# Joined to the batch's pairs rather than keyed, this read every order since the moment until the
# table had statistics, and the whole cluster index with stale ones.
_CLUSTER = f"{_keyed('community', 'clusters')} AND received_at >= :since"
_COUNTS = text(
    "SELECT community, category, floor(extract(epoch FROM received_at) / 60)::bigint, count(*) "
    f"FROM work_orders WHERE {_CLUSTER} GROUP BY 1, 2, 3"
)
_CLUSTER_IDS = text(
    f"SELECT community, category, id, received_at FROM work_orders WHERE {_CLUSTER} ORDER BY received_at"
)
# The batch's own (community, category) pairs only: a busy district has many others. A table of a
# row per cluster ever alerted stays small, and is hashed: probed with key_in, the planner scanned it
# anyway and compared every row with every key (docs/performance.md).
_ALERTS = text(
    "SELECT community, category, step, alerted_at FROM cluster_alerts "
    f"JOIN {keys_table('pairs', 'community', 'category')} AS k USING (community, category)"
)
_SET_STATUS = text(
    "UPDATE work_orders SET status = :status WHERE id = ANY(CAST(:ids AS text[])) AND status <> 'merged'"
)


def order_row(order: NewOrder, status: str, merged_into: str | None) -> dict[str, Any]:
    return {
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
        "status": status,
        "merged_into": merged_into,
    }


async def existing_orders(conn: AsyncConnection, ids: list[str]) -> set[str]:
    """Which of these work orders exist."""
    return {row[0] for row in await conn.execute(_KNOWN, {"ids": ids})}


async def open_orders(conn: AsyncConnection, orders: list[NewOrder], since: datetime) -> list[OpenOrder]:
    params = {
        "since": since,
        "compound": category_keys({(o.category.code, o.place.compound) for o in orders}),
        # An order at a compound joins one at that compound (or from its phone), never one found
        # by its grid alone (merge_target): the grid is asked only for orders without a compound.
        "grid": category_keys({(o.category.code, o.place.grid) for o in orders if not o.place.compound}),
        "caller_phone": category_keys({(o.category.code, o.caller_phone) for o in orders}),
    }
    return [OpenOrder(*row) for row in await conn.execute(_OPEN, params)]


def category_keys(pairs: set[tuple[str, str | None]]) -> bytes:
    """(category, place) pairs as the merge and cluster indexes key them: "category/place" (a
    category code holds no slash)."""
    return json_keys([(f"{category}/{place}",) for category, place in pairs if place])


async def recent_counts(
    conn: AsyncConnection, keys: list[tuple[str, str]], since: datetime
) -> list[tuple[str, str, int, int]]:
    """(community, category, minute since the epoch, orders) of these pairs since then."""
    params = {"clusters": category_keys({(k, c) for c, k in keys}), "since": since}
    return [tuple(row) for row in await conn.execute(_COUNTS, params)]


async def cluster_alerts(
    conn: AsyncConnection, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, datetime]]:
    params = {"pairs": json_keys(keys)}
    return {
        (community, category): (step, at)
        for community, category, step, at in await conn.execute(_ALERTS, params)
    }


async def cluster_members(
    conn: AsyncConnection, keys: list[tuple[str, str]], since: datetime
) -> list[tuple[str, str, str, datetime]]:
    """(community, category, order id, received at) of the orders of these clusters since then."""
    params = {"clusters": category_keys({(k, c) for c, k in keys}), "since": since}
    return [tuple(row) for row in await conn.execute(_CLUSTER_IDS, params)]


async def save(
    conn: AsyncConnection,
    orders: list[dict[str, Any]],
    alerts: dict[tuple[str, str], tuple[int, datetime]] | None = None,
    statuses: dict[str, str] | None = None,  # order id -> open or done; a merged order stays merged
) -> None:
    await _INSERT_ORDERS.execute(conn, orders)
    statuses, alerts = statuses or {}, alerts or {}
    for status in sorted(set(statuses.values())):
        ids = [i for i, s in statuses.items() if s == status]
        await conn.execute(_SET_STATUS, {"status": status, "ids": ids})
    await _ALERT.execute(
        conn,
        [{"community": c, "category": k, "step": s, "alerted_at": at} for (c, k), (s, at) in alerts.items()],
    )
