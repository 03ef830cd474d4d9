"""Intake's own database: work orders as received, with the caller's contact (personal data)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Float, Index, Integer, String, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from services.intake.domain import NewOrder, OpenOrder
from shared.db import Base, bulk_insert, json_keys, keys_table, service_metadata
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
for _place in MERGE_KEYS:
    Index(f"ix_work_orders_merge_{_place}", WorkOrder.category + "/" + getattr(WorkOrder, _place))
# A cluster's members (工单预警): orders of some communities and categories since a moment, found
# without reading the table's whole history.
Index("ix_work_orders_cluster", WorkOrder.community, WorkOrder.category, WorkOrder.received_at)


class OrderCount(Model):
    """Reports per community, category and minute of business time: the cluster window's counter."""

    __tablename__ = "order_counts"

    community: Mapped[str] = mapped_column(String(100), primary_key=True)
    category: Mapped[str] = mapped_column(String(64), primary_key=True)
    minute: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


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
_COUNT = bulk_insert(
    OrderCount.__table__,  # type: ignore[arg-type]
    ("community", "category", "minute", "n"),
    "ON CONFLICT (community, category, minute) DO UPDATE SET n = order_counts.n + EXCLUDED.n",
)
_ALERT = bulk_insert(
    ClusterAlert.__table__,  # type: ignore[arg-type]
    ("community", "category", "step", "alerted_at"),
    "ON CONFLICT (community, category) DO UPDATE SET step = EXCLUDED.step, alerted_at = EXCLUDED.alerted_at",
)
# By (source, source_id) pairs, so that the unique index answers (source_id alone is a full scan).
_KNOWN = text(
    f"SELECT source, source_id FROM work_orders WHERE (source, source_id) IN "
    f"{keys_table('keys', 'source', 'source_id')}"
)
# Open orders of the same category at one of the batch's compounds or grids, or from one of its
# phones: the batch's "category/place" keys, each kind looked up in its index at once (= ANY of an
# array, one bitmap for the batch). The array comes from a subquery, whose size the planner cannot
# guess: no statistics, or stale ones, turn the lookup into a scan of every order.
_OPEN = text(
    " UNION ".join(
        "SELECT id, category, community, compound, grid, caller_phone, received_at FROM work_orders "
        f"WHERE (category || '/' || {c}) = ANY(ARRAY("
        f"SELECT k->>0 FROM json_array_elements(CAST(:{c} AS json)) AS k)) "
        "AND status = 'open' AND NOT closed_on_site AND received_at >= :since"
        for c in MERGE_KEYS
    )
    + " ORDER BY received_at, id"
)
# The batch's own (community, category) pairs only: a busy district has many others.
_PAIRS = f"JOIN {keys_table('pairs', 'community', 'category')} AS k USING (community, category)"
_COUNTS = text(f"SELECT community, category, minute, n FROM order_counts {_PAIRS} WHERE minute >= :since")
_ALERTS = text(f"SELECT community, category, step, alerted_at FROM cluster_alerts {_PAIRS}")
_CLUSTER_IDS = text(
    f"SELECT w.community, w.category, w.id, w.received_at FROM work_orders w "
    f"JOIN {keys_table('pairs', 'community', 'category')} AS k "
    "ON w.community = k.community AND w.category = k.category "
    "WHERE w.received_at > :since ORDER BY w.received_at"
)
# Cluster counters a day (or two windows) behind the newest minute: no window still reads them, and
# a late report up to that much behind still finds its own. Without this the table kept the
# service's whole history, and every batch's read of it grew with it.
_PRUNE_COUNTS = text(
    "DELETE FROM order_counts WHERE minute < "
    "(SELECT max(minute) FROM order_counts) - make_interval(mins => :keep)"
)
_SET_STATUS = text("UPDATE work_orders SET status = :status WHERE id = :id AND status <> 'merged'")


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


async def known_sources(conn: AsyncConnection, sources: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these (source, source_id) are already work orders."""
    rows = await conn.execute(_KNOWN, {"keys": json_keys(sources)})
    return {(source, source_id) for source, source_id in rows}


async def open_orders(conn: AsyncConnection, orders: list[NewOrder], since: datetime) -> list[OpenOrder]:
    params = {
        "since": since,
        "compound": merge_keys({(o.category.code, o.place.compound) for o in orders}),
        # An order at a compound joins one at that compound (or from its phone), never one found
        # by its grid alone (merge_target): the grid is asked only for orders without a compound.
        "grid": merge_keys({(o.category.code, o.place.grid) for o in orders if not o.place.compound}),
        "caller_phone": merge_keys({(o.category.code, o.caller_phone) for o in orders}),
    }
    return [OpenOrder(*row) for row in await conn.execute(_OPEN, params)]


def merge_keys(pairs: set[tuple[str, str | None]]) -> bytes:
    """(category, place) pairs as the merge indexes key them: "category/place" (a category
    code holds no slash)."""
    return json_keys([(f"{category}/{place}",) for category, place in pairs if place])


async def recent_counts(
    conn: AsyncConnection, keys: list[tuple[str, str]], since: datetime
) -> list[tuple[str, str, datetime, int]]:
    params = {"pairs": json_keys(keys), "since": since}
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
    params = {"pairs": json_keys(keys), "since": since}
    return [tuple(row) for row in await conn.execute(_CLUSTER_IDS, params)]


async def save(
    conn: AsyncConnection,
    orders: list[dict[str, Any]],
    counts: dict[tuple[str, str, int], int],  # minute: since the epoch
    alerts: dict[tuple[str, str], tuple[int, datetime]],
) -> None:
    await _INSERT_ORDERS.execute(conn, orders)
    await _COUNT.execute(
        conn,
        [
            {"community": c, "category": k, "minute": datetime.fromtimestamp(m * 60, UTC), "n": n}
            for (c, k, m), n in counts.items()
        ],
    )
    await _ALERT.execute(
        conn,
        [{"community": c, "category": k, "step": s, "alerted_at": at} for (c, k), (s, at) in alerts.items()],
    )


async def set_status(conn: AsyncConnection, order_id: str, status: str) -> None:
    await conn.execute(_SET_STATUS, {"id": order_id, "status": status})


async def prune_counts(conn: AsyncConnection, keep_minutes: int) -> int:
    """Drop cluster counters older than ``keep_minutes`` before the newest one (business time)."""
    result = await conn.execute(_PRUNE_COUNTS, {"keep": keep_minutes})
    return int(result.rowcount or 0)
