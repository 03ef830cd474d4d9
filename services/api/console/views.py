"""What the console reads of the api's read model beyond what the JSON API's ``queries`` already
answer: the centre's board (orders by status, what is overdue, the latest orders, alerts and
escalations), the triage queue, a department's inbox, the public board and the three rates week by
week. Bounded reads (each a LIMIT, or an aggregate over a window); no personal data is in any of
these tables."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from ..rates import SATISFIED, RateCounts

OPEN = ("new", "dispatched", "accepted")
# When an open dispatch is due: its accept-by until it is signed for, then its resolve-by.
_DUE = "CASE WHEN d.status = 'assigned' THEN d.accept_by ELSE d.resolve_by END"
_DISPATCH_WITH_ORDER = f"""
    SELECT d.*, {_DUE} AS due, o.status AS order_status, o.level AS order_level,
           o.category_name AS order_category_name, o.urgency AS order_urgency, o.street AS order_street,
           o.community AS order_community, o.grid AS order_grid, o.summary AS order_summary,
           o.address AS order_address, o.requested_at AS order_requested_at
    FROM dispatches d JOIN orders o ON o.id = d.work_order_id
"""


@dataclass(frozen=True, slots=True)
class Board:
    by_status: dict[str, int]
    overdue_count: int
    overdue: list[Row[Any]]  # open dispatches past their due time, the longest overdue first
    latest: list[Row[Any]]  # orders, newest first
    alerts: list[Row[Any]]
    escalations: list[Row[Any]]


async def board(conn: AsyncConnection, now: datetime) -> Board:
    counts = await conn.execute(
        text("SELECT status, count(*) FROM orders WHERE requested_at IS NOT NULL GROUP BY status")
    )
    overdue_where = f"""
        WHERE d.status IN ('assigned', 'accepted') AND o.status = ANY(CAST(:open AS text[]))
          AND (d.overdue OR {_DUE} < :now)
    """
    params = {"now": now, "open": list(OPEN)}
    overdue_count = (
        await conn.execute(
            text(
                f"SELECT count(*) FROM dispatches d JOIN orders o ON o.id = d.work_order_id {overdue_where}"
            ),
            params,
        )
    ).scalar_one()
    overdue = await conn.execute(
        text(f"{_DISPATCH_WITH_ORDER} {overdue_where} ORDER BY due NULLS LAST, d.id LIMIT 15"), params
    )
    latest = await conn.execute(
        text(
            "SELECT * FROM orders WHERE requested_at IS NOT NULL ORDER BY requested_at DESC, id DESC LIMIT 12"
        )
    )
    alerts = await conn.execute(text("SELECT * FROM alerts ORDER BY at DESC, id DESC LIMIT 8"))
    # The timeline has no index by type: the newest day of it is enough for a board.
    escalations = await conn.execute(
        text(
            "SELECT t.*, o.category_name, o.community "
            "FROM timeline t JOIN orders o ON o.id = t.work_order_id "
            "WHERE t.type = 'workorder.escalated' AND t.at > :since ORDER BY t.at DESC LIMIT 8"
        ),
        {"since": now - timedelta(days=1)},
    )
    return Board(
        by_status={status: n for status, n in counts},
        overdue_count=int(overdue_count),
        overdue=list(overdue),
        latest=list(latest),
        alerts=list(alerts),
        escalations=list(escalations),
    )


async def triage(conn: AsyncConnection, desks: Collection[str], limit: int = 100) -> list[Row[Any]]:
    """Open orders a person must place or tag: at a triage desk, uncategorised (其他) or unplaced."""
    return list(
        await conn.execute(
            text(
                "SELECT * FROM orders WHERE status = ANY(CAST(:open AS text[])) AND requested_at IS NOT NULL "
                "AND (lead_department = ANY(CAST(:desks AS text[])) "
                "OR category = 'other' OR community IS NULL) "
                "ORDER BY requested_at DESC, id DESC LIMIT :limit"
            ),
            {"open": list(OPEN), "desks": sorted(desks), "limit": limit},
        )
    )


async def inbox(conn: AsyncConnection, department: str, limit: int = 100) -> list[Row[Any]]:
    """A department's open dispatches, nearest deadline first."""
    return list(
        await conn.execute(
            text(
                f"{_DISPATCH_WITH_ORDER} WHERE d.department = :department "
                "AND d.status IN ('assigned', 'accepted') ORDER BY due NULLS LAST, d.id LIMIT :limit"
            ),
            {"department": department, "limit": limit},
        )
    )


async def inbox_one(conn: AsyncConnection, dispatch_id: str) -> Row[Any] | None:
    """One dispatch as the inbox shows it (whoever's: the caller checks)."""
    found: Row[Any] | None = (
        await conn.execute(text(f"{_DISPATCH_WITH_ORDER} WHERE d.id = :id"), {"id": dispatch_id})
    ).first()
    return found


# ---- the public board ----------------------------------------------------------------------------

_PUBLIC_FROM = """
    FROM orders o
    LEFT JOIN dispatches d ON d.id = o.lead_dispatch_id
    LEFT JOIN feedback f ON f.event_id = o.rated_by
    WHERE o.status IN ('resolved', 'closed') AND o.updated_at > :since AND o.requested_at IS NOT NULL
      AND (CAST(:community AS text) IS NULL OR o.community = :community)
      AND (CAST(:category AS text) IS NULL OR o.category = :category)
"""
# When the work was done: the lead's 办结, else (handled on the spot, answered directly) the closing.
_DONE = "coalesce(d.resolved_at, o.updated_at)"


async def public(
    conn: AsyncConnection, since: datetime, community: str | None, category: str | None, limit: int = 50
) -> tuple[list[Row[Any]], list[Row[Any]]]:
    """Recently resolved and closed orders (only what the public board shows: category, place,
    status, times, the resident's rating), and by community: how many, the median time, ratings."""
    params = {"since": since, "community": community, "category": category}
    items = await conn.execute(
        text(
            "SELECT o.category_name, o.street, o.community, o.status, o.source, o.requested_at, "
            "o.lead_dispatch_id IS NULL AS on_site, "
            f"{_DONE} AS done_at, f.satisfaction {_PUBLIC_FROM} "
            "ORDER BY o.updated_at DESC, o.id DESC LIMIT :limit"
        ),
        params | {"limit": limit},
    )
    by_community = await conn.execute(
        text(
            "SELECT coalesce(o.community, '') AS community, count(*) AS orders, "
            f"percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM {_DONE} - o.requested_at)) "
            "AS median_seconds, count(f.event_id) AS rated, "
            "count(*) FILTER (WHERE f.satisfaction = ANY(CAST(:satisfied AS text[]))) AS satisfied "
            f"{_PUBLIC_FROM} GROUP BY 1 ORDER BY 2 DESC, 1"
        ),
        params | {"satisfied": list(SATISFIED)},
    )
    return list(items), list(by_community)


# ---- the three rates, week by week ------------------------------------------------------------

_WEEKLY_ACTIVITY = """
    SELECT CAST(date_trunc('week', d.assigned_at AT TIME ZONE :zone) AS date),
           count(*),
           count(*) FILTER (WHERE d.accepted_at <= d.accept_by),
           count(*) FILTER (WHERE d.role = 'lead' AND (d.status = 'resolved' OR d.resolve_by <= :now)),
           count(*) FILTER (WHERE d.role = 'lead' AND d.status = 'resolved' AND d.resolved_at <= d.resolve_by)
    FROM dispatches d
    WHERE d.assigned_at > :since AND (CAST(:department AS text) IS NULL OR d.department = :department)
    GROUP BY 1
"""
# A department's ratings are those of the orders it resolved as lead (as ``queries.rates`` counts).
_WEEKLY_RATINGS = """
    SELECT CAST(date_trunc('week', o.rated_at AT TIME ZONE :zone) AS date), count(DISTINCT o.id),
           count(DISTINCT o.id) FILTER (WHERE f.satisfaction = ANY(CAST(:satisfied AS text[])))
    FROM orders o JOIN feedback f ON f.event_id = o.rated_by
    WHERE o.rated_at > :since AND (CAST(:department AS text) IS NULL OR EXISTS (
        SELECT 1 FROM dispatches d WHERE d.work_order_id = o.id AND d.role = 'lead'
        AND d.status = 'resolved' AND d.department = :department))
    GROUP BY 1
"""


async def weekly_rates(
    conn: AsyncConnection, weeks: Sequence[date], now: datetime, zone: str, department: str | None
) -> list[RateCounts]:
    """The rates' counts for each week (Mondays, in the jurisdiction's zone), city-wide or one
    department's."""
    since = datetime.combine(weeks[0], datetime.min.time()) - timedelta(days=1)  # a day of margin
    params = {"since": since.replace(tzinfo=now.tzinfo), "now": now, "zone": zone, "department": department}
    activity = {row[0]: row[1:] for row in await conn.execute(text(_WEEKLY_ACTIVITY), params)}
    ratings = {
        row[0]: row[1:]
        for row in await conn.execute(text(_WEEKLY_RATINGS), params | {"satisfied": list(SATISFIED)})
    }
    counts = []
    for week in weeks:
        a, r = activity.get(week, (0, 0, 0, 0)), ratings.get(week, (0, 0))
        counts.append(RateCounts(*(int(n) for n in (*a, *r))))
    return counts
