"""What the department API and the centre's desk read of the api's database: listings newest first,
a page at a time (keyset: a cursor holds the last row's time and id, so that new rows never shift
a page), one dispatch or order with what goes with it, and the three rates' counts."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Select, and_, or_, select, text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from .forms import OrderFilters
from .rates import SATISFIED, RateCounts, rate_counts
from .store import Alert, Dispatch, Notification, Order, Return, Sent, TimelineEntry


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ended: its last row's time (None sorts first, as DESC does) and id."""

    at: datetime | None
    id: str

    def encode(self) -> str:
        raw = orjson.dumps([self.at.isoformat() if self.at else None, self.id])
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> Cursor:
        """ValueError unless it is a cursor this API gave."""
        try:
            at, id = orjson.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
            when = datetime.fromisoformat(at) if at is not None else None
        except (ValueError, TypeError, orjson.JSONDecodeError):
            raise ValueError("cursor: not a cursor this API gave") from None
        if not isinstance(id, str) or (when is not None and when.tzinfo is None):
            raise ValueError("cursor: not a cursor this API gave")
        return cls(when, id)


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Row[Any]]
    next: Cursor | None


async def _page(
    conn: AsyncConnection, stmt: Select[Any], time: Any, id: Any, limit: int, after: Cursor | None
) -> Page:
    """``stmt`` newest first by (time, id), ``limit`` rows after the cursor; one more is asked for to
    know whether another page follows."""
    if after is not None:
        stmt = stmt.where(_after(time, id, after))
    rows = list(await conn.execute(stmt.order_by(time.desc(), id.desc()).limit(limit + 1)))
    if len(rows) <= limit:
        return Page(rows, None)
    last = rows[limit - 1]
    return Page(rows[:limit], Cursor(getattr(last, time.key), getattr(last, id.key)))


def _after(time: Any, id: Any, cursor: Cursor) -> ColumnElement[bool]:
    if cursor.at is None:  # in the rows without a time (first), then every row with one
        return or_(and_(time.is_(None), id < cursor.id), time.is_not(None))
    return or_(time < cursor.at, and_(time == cursor.at, id < cursor.id))


# ---- the department API ------------------------------------------------------------------------

_ORDER_OF_DISPATCH = [
    getattr(Order, c).label(f"order_{c}")
    for c in (
        "status",
        "level",
        "category",
        "category_name",
        "urgency",
        "street",
        "community",
        "grid",
        "summary",
        "address",
        "lat",
        "lon",
        "requested_at",
    )
]


def _dispatches_with_orders() -> Select[Any]:
    return select(*Dispatch.__table__.columns, *_ORDER_OF_DISPATCH).join(
        Order, Order.id == Dispatch.work_order_id
    )


async def department_dispatches(
    conn: AsyncConnection, department: str, statuses: Sequence[str], limit: int, after: Cursor | None
) -> Page:
    stmt = _dispatches_with_orders().where(Dispatch.department == department)
    if statuses:
        stmt = stmt.where(Dispatch.status.in_(statuses))
    return await _page(conn, stmt, Dispatch.assigned_at, Dispatch.id, limit, after)


async def dispatch(conn: AsyncConnection, dispatch_id: str) -> Row[Any] | None:
    found: Row[Any] | None = (
        await conn.execute(_dispatches_with_orders().where(Dispatch.id == dispatch_id))
    ).first()
    return found


async def sent_for(
    conn: AsyncConnection, *, dispatch_id: str | None = None, order: str | None = None
) -> list[Row[Any]]:
    """What the api sent about a dispatch, or an order, oldest first."""
    where = Sent.dispatch_id == dispatch_id if dispatch_id is not None else Sent.work_order_id == order
    return list(await conn.execute(select(Sent.__table__).where(where).order_by(Sent.sent_at, Sent.event_id)))


# ---- the centre's desk -------------------------------------------------------------------------


async def orders(conn: AsyncConnection, f: OrderFilters, limit: int, after: Cursor | None) -> Page:
    stmt = select(Order.__table__)
    for column, value in (
        (Order.street, f.street),
        (Order.community, f.community),
        (Order.category, f.category),
        (Order.level, f.level),
        (Order.lead_department, f.department),
        (Order.overdue, f.overdue),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if f.statuses:
        stmt = stmt.where(Order.status.in_(f.statuses))
    return await _page(conn, stmt, Order.requested_at, Order.id, limit, after)


async def order(conn: AsyncConnection, order_id: str) -> Row[Any] | None:
    return (await conn.execute(select(Order.__table__).where(Order.id == order_id))).first()


async def order_parts(conn: AsyncConnection, order_id: str) -> tuple[list[Row[Any]], ...]:
    """An order's dispatches (as they were made), timeline, alerts, what was sent about it, and
    what notify told whom about it (oldest first)."""
    dispatches = select(Dispatch.__table__).where(Dispatch.work_order_id == order_id)
    timeline = select(TimelineEntry.__table__).where(TimelineEntry.work_order_id == order_id)
    alerts = select(Alert.__table__).where(Alert.work_order_id == order_id).order_by(Alert.at, Alert.id)
    notifications = select(Notification.__table__).where(Notification.work_order_id == order_id)
    return (
        list(await conn.execute(dispatches.order_by(Dispatch.assigned_at.nulls_last(), Dispatch.id))),
        list(await conn.execute(timeline.order_by(TimelineEntry.at, TimelineEntry.seq))),
        list(await conn.execute(alerts)),
        await sent_for(conn, order=order_id),
        list(await conn.execute(notifications.order_by(Notification.at, Notification.notification_id))),
    )


async def alerts(
    conn: AsyncConnection, kind: str | None, area: str | None, limit: int, after: Cursor | None
) -> Page:
    stmt = select(Alert.__table__)
    if kind is not None:
        stmt = stmt.where(Alert.type == kind)
    if area is not None:
        stmt = stmt.where(Alert.area == area)
    return await _page(conn, stmt, Alert.at, Alert.id, limit, after)


async def returns(conn: AsyncConnection, status: str | None, limit: int, after: Cursor | None) -> Page:
    """The centre's review queue (派单异议审核), newest request first."""
    stmt = select(Return.__table__)
    if status is not None:
        stmt = stmt.where(Return.status == status)
    return await _page(conn, stmt, Return.requested_at, Return.dispatch_id, limit, after)


async def return_of(conn: AsyncConnection, dispatch_id: str) -> Row[Any] | None:
    stmt = select(Return.__table__).where(
        Return.dispatch_id == dispatch_id, Return.work_order_id.is_not(None)
    )
    return (await conn.execute(stmt)).first()


# ---- the three rates (三率): what each counts is ``domain.RateCounts`` -------------------------

_COUNTS = """
    count(*),
    count(*) FILTER (WHERE d.accepted_at <= d.accept_by),
    count(*) FILTER (WHERE d.role = 'lead' AND (d.status = 'resolved' OR d.resolve_by <= :now)),
    count(*) FILTER (WHERE d.role = 'lead' AND d.status = 'resolved' AND d.resolved_at <= d.resolve_by)
"""
_ACTIVITY_BY_DEPARTMENT = text(f"""
    SELECT d.department, {_COUNTS} FROM dispatches d
    WHERE d.assigned_at > :since AND d.department IS NOT NULL GROUP BY 1
""")
_ACTIVITY_BY_COMMUNITY = text(f"""
    SELECT coalesce(o.community, '(unplaced)'), {_COUNTS}
    FROM dispatches d JOIN orders o ON o.id = d.work_order_id WHERE d.assigned_at > :since GROUP BY 1
""")
# An order is rated by the answer dispatch applied (its rated_by), once, however many rounds.
_RATINGS_BY_DEPARTMENT = text("""
    SELECT d.department, count(DISTINCT o.id),
           count(DISTINCT o.id) FILTER (WHERE f.satisfaction = ANY(CAST(:satisfied AS text[])))
    FROM orders o JOIN feedback f ON f.event_id = o.rated_by
    JOIN dispatches d ON d.work_order_id = o.id AND d.role = 'lead' AND d.status = 'resolved'
    WHERE o.rated_at > :since GROUP BY 1
""")
_RATINGS_BY_COMMUNITY = text("""
    SELECT coalesce(o.community, '(unplaced)'), count(*),
           count(*) FILTER (WHERE f.satisfaction = ANY(CAST(:satisfied AS text[])))
    FROM orders o JOIN feedback f ON f.event_id = o.rated_by
    WHERE o.rated_at > :since GROUP BY 1
""")


async def rates(
    conn: AsyncConnection, since: datetime, now: datetime
) -> tuple[dict[str, RateCounts], dict[str, RateCounts]]:
    """By department and by community: the dispatches assigned since ``since``, the orders rated."""
    params = {"since": since, "now": now, "satisfied": list(SATISFIED)}
    found = [
        [tuple(r) for r in await conn.execute(query, params)]
        for query in (
            _ACTIVITY_BY_DEPARTMENT,
            _RATINGS_BY_DEPARTMENT,
            _ACTIVITY_BY_COMMUNITY,
            _RATINGS_BY_COMMUNITY,
        )
    ]
    return rate_counts(found[0], found[1]), rate_counts(found[2], found[3])
