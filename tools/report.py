"""Read-only views over the services' databases (and the dead-letter topic), for operators: the
summary and an order's timeline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.contract import DEADLETTER
from shared.settings import Settings
from shared.topics import records_in


async def _rows(settings: Settings, service: str, sql: str, **params: Any) -> Sequence[Any]:
    engine = create_async_engine(settings.database_url_for(service))
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql), params)).all()
    finally:
        await engine.dispose()


@dataclass
class Summary:
    orders: int = 0
    closed_on_site: int = 0
    merged: int = 0
    clusters_alerted: int = 0  # communities and categories with an early warning
    by_status: dict[str, int] = field(default_factory=dict)
    by_department: list[tuple[str, int, int]] = field(default_factory=list)  # dept, dispatches, resolved
    escalations: list[tuple[str, str, int]] = field(default_factory=list)  # level, reason, count
    notifications: list[tuple[str, str, int]] = field(default_factory=list)  # audience, status, count
    dead_letters: int = 0

    @property
    def open_orders(self) -> int:
        return sum(n for status, n in self.by_status.items() if status != "closed")


async def summary(settings: Settings) -> Summary:
    s = Summary()
    intake = await _rows(
        settings,
        "intake",
        "SELECT count(*), count(*) FILTER (WHERE closed_on_site), count(*) FILTER (WHERE status = 'merged') "
        "FROM work_orders",
    )
    s.orders, s.closed_on_site, s.merged = intake[0]
    s.clusters_alerted = (await _rows(settings, "intake", "SELECT count(*) FROM cluster_alerts"))[0][0]
    s.by_status = dict(await _rows(settings, "dispatch", "SELECT status, count(*) FROM orders GROUP BY 1"))
    s.by_department = [
        tuple(r)
        for r in await _rows(
            settings,
            "dispatch",
            "SELECT department, count(*), count(*) FILTER (WHERE status = 'resolved') "
            "FROM dispatches GROUP BY 1 ORDER BY 2 DESC, 1",
        )
    ]
    s.escalations = [
        tuple(r)
        for r in await _rows(
            settings,
            "dispatch",
            "SELECT level, detail->>'reason', count(*) FROM history "
            "WHERE event = 'workorder.escalated' GROUP BY 1, 2 ORDER BY 3 DESC",
        )
    ]
    s.notifications = [
        tuple(r)
        for r in await _rows(
            settings,
            "notify",
            "SELECT audience, CASE WHEN status = 'pending' AND hold_until IS NOT NULL "
            "THEN 'held for the quiet hours' ELSE status END, count(*) "
            "FROM notifications GROUP BY 1, 2 ORDER BY 1, 2",
        )
    ]
    s.dead_letters = await records_in(settings, DEADLETTER)  # the outboxes keep only what is unsent
    return s


async def timeline(settings: Settings, work_order_id: str) -> Sequence[Any]:
    return await _rows(
        settings,
        "dispatch",
        "SELECT at, event, status, level, caused_by, detail FROM history "
        "WHERE work_order_id = :id ORDER BY id",
        id=work_order_id,
    )
