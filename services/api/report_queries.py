"""What the monthly report reads of the read model: a month's orders with their timeline, dispatches
and the residents' answers, and the month before's orders. Rows only; ``reports`` computes."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.reference import Jurisdiction

from .reports import DispatchRow, EventRow, Month, OrderRow, Report, report

_ORDERS = text(
    "SELECT id, status, category, category_name, street, community, source, urgency, requested_at, "
    "merged_into FROM orders WHERE requested_at >= :start AND requested_at < :end"
)
# The month's orders' own rows, by the order's time: an order of the month keeps its whole history.
_MONTHS_ORDERS = "SELECT id FROM orders WHERE requested_at >= :start AND requested_at < :end"
_EVENTS = text(
    "SELECT work_order_id, type, status, at, caused_by, detail FROM timeline "
    f"WHERE work_order_id IN ({_MONTHS_ORDERS}) ORDER BY work_order_id, at, seq"
)
_DISPATCHES = text(
    "SELECT id, work_order_id, department, role, level, status, assigned_at, accept_by, accepted_at, "
    f"resolve_by, resolved_at FROM dispatches WHERE work_order_id IN ({_MONTHS_ORDERS})"
)
# The answers that caused a close or a reopening of the month's orders (the rows keep no comment).
_FEEDBACK = text(
    f"SELECT f.event_id, f.satisfaction FROM feedback f WHERE f.work_order_id IN ({_MONTHS_ORDERS})"
)


async def monthly_report(conn: AsyncConnection, month: Month, ref: Jurisdiction, now: datetime) -> Report:
    """The month's report as the read model has it now (one snapshot: callers use one connection)."""
    zone = ZoneInfo(ref.timezone)
    window = {"start": month.start(zone), "end": month.end(zone)}
    before = {"start": month.previous().start(zone), "end": month.start(zone)}
    orders = [OrderRow(**r._mapping) for r in await conn.execute(_ORDERS, window)]
    events = [
        EventRow(r.work_order_id, r.type, r.status, r.at, r.caused_by, r.detail or {})
        for r in await conn.execute(_EVENTS, window)
    ]
    dispatches = [DispatchRow(**r._mapping) for r in await conn.execute(_DISPATCHES, window)]
    feedback = {r.event_id: r.satisfaction for r in await conn.execute(_FEEDBACK, window)}
    previous = [OrderRow(**r._mapping) for r in await conn.execute(_ORDERS, before)]
    return report(
        month,
        zone,
        now,
        orders,
        events,
        dispatches,
        feedback,
        previous,
        districts=_districts(ref),
        categories={c.code: c.name for c in ref.categories},
        departments={d.code: d.name for d in ref.departments},
    )


def _districts(ref: Jurisdiction) -> dict[str, str]:
    return {street.name: district.name for district in ref.districts for street in district.streets}
