"""A year of history against the real PostgreSQL: the pruning statements take what the policy lets
go and nothing else, and the timers' claims read the live rows alone, whatever the planner believes
of a table holding millions of ended ones (docs/performance.md, "A year of history")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.escalation import store as escalation
from services.notify import store as notify
from shared.housekeeping import horizon, inbox, more_waiting, prune_once
from tests.integration.databases import fresh_database

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=40)
RECENT = NOW - timedelta(days=2)

_CLOCKS = (
    "INSERT INTO clocks (id, work_order_id, dispatch_id, department, level, area, kind, started_at, "
    "due_at, remind_at, reminded, state, updated_at) "
    "SELECT :prefix || i, 'WO-' || i, 'WO-' || i || '-D1', 'heat', 'community', 'x', 'accept', "
    ":at, :due, :due, false, :state, :at FROM generate_series(1, CAST(:n AS int)) AS i"
)
_NOTIFICATIONS = (
    "INSERT INTO notifications (id, work_order_id, audience, recipient, channel, template, body, "
    "status, attempts, event_time, created_at, retry_at) "
    "SELECT :prefix || i, 'WO-' || i, 'resident', 'WO-' || i, 'sms', 'received', 'b', :status, 1, "
    ":at, :at, :at FROM generate_series(1, CAST(:n AS int)) AS i"
)
_ATTEMPTS = (
    "INSERT INTO notification_attempts (notification_id, attempt, channel, at) "
    "SELECT :prefix || i, 1, 'sms', :at FROM generate_series(1, CAST(:n AS int)) AS i"
)
_CONTACTS = (
    "INSERT INTO contacts (work_order_id, reporter_id, phone, delete_after) "
    "SELECT 'WO-' || i, 'WO-' || i, '13900000000', :at FROM generate_series(1, CAST(:n AS int)) AS i"
)
_INBOX = (
    "INSERT INTO inbox (event_id, topic, received_at) "
    "SELECT :prefix || i, 't', :at FROM generate_series(1, CAST(:n AS int)) AS i"
)


async def _rows(conn: AsyncConnection, sql: str, **values: Any) -> None:
    await conn.execute(text(sql), values)


async def _ids(engine: AsyncEngine, table: str, column: str) -> set[str]:
    async with engine.connect() as conn:
        return {r[0] for r in await conn.execute(text(f"SELECT {column} FROM {table}"))}


async def _prune_all(engine: AsyncEngine, prunables: Any, batch: int) -> list[dict[str, int]]:
    """Rounds until none comes full, as the housekeeping task runs them."""
    rounds = [await prune_once(engine, prunables, horizon(NOW, 30), batch)]
    while more_waiting(rounds[-1], batch):
        rounds.append(await prune_once(engine, prunables, horizon(NOW, 30), batch))
    return rounds


async def _plan(conn: AsyncConnection, query: TextClause, values: dict[str, Any]) -> str:
    return "\n".join(r[0] for r in await conn.execute(text(f"EXPLAIN {query}"), values))


async def test_escalation_prunes_ended_clocks_and_inbox_ids_past_the_horizon_and_keeps_the_rest() -> None:
    async with fresh_database("whistle_test_history", "escalation") as engine:
        async with engine.begin() as conn:
            await _rows(conn, _CLOCKS, prefix="old-stopped-", at=OLD, due=OLD, state="stopped", n=5)
            await _rows(conn, _CLOCKS, prefix="old-fired-", at=OLD, due=OLD, state="fired", n=2)
            # open since long ago (an order waiting on the centre): never pruned, whatever its age
            await _rows(
                conn, _CLOCKS, prefix="old-open-", at=OLD, due=NOW + timedelta(days=1), state="open", n=1
            )
            await _rows(conn, _CLOCKS, prefix="recent-stopped-", at=RECENT, due=RECENT, state="stopped", n=2)
            await _rows(conn, _INBOX, prefix="old-", at=OLD, n=4)
            await _rows(conn, _INBOX, prefix="recent-", at=RECENT, n=2)
        prunables = [inbox(escalation.Inbox.__table__), *escalation.PRUNABLE]  # type: ignore[arg-type]
        rounds = await _prune_all(engine, prunables, batch=3)
        clocks = await _ids(engine, "clocks", "id")
        events = await _ids(engine, "inbox", "event_id")
        async with engine.connect() as conn:
            plans = [await _plan(conn, p.statement, {"before": NOW, "n": 3}) for p in prunables]

    assert clocks == {"old-open-1", "recent-stopped-1", "recent-stopped-2"}
    assert events == {"recent-1", "recent-2"}
    assert [r["clocks"] for r in rounds] == [3, 3, 1] and sum(r["inbox"] for r in rounds) == 4
    # Each batch found in the index on its time, not by reading the table (the rows themselves
    # are then deleted by address; a table of a page is simply read).
    assert "ix_inbox_received_at" in plans[0] and "ix_clocks_ended" in plans[1], plans


async def test_notify_prunes_finished_notifications_and_attempts_and_keeps_the_pending() -> None:
    async with fresh_database("whistle_test_history", "notify") as engine:
        async with engine.begin() as conn:
            await _rows(conn, _NOTIFICATIONS, prefix="old-sent-", status="sent", at=OLD, n=3)
            await _rows(conn, _NOTIFICATIONS, prefix="old-failed-", status="failed", at=OLD, n=1)
            await _rows(conn, _NOTIFICATIONS, prefix="old-pending-", status="pending", at=OLD, n=1)
            await _rows(conn, _NOTIFICATIONS, prefix="recent-sent-", status="sent", at=RECENT, n=1)
            await _rows(conn, _ATTEMPTS, prefix="old-sent-", at=OLD, n=3)
            await _rows(conn, _ATTEMPTS, prefix="recent-sent-", at=RECENT, n=1)
        prunables = [inbox(notify.Inbox.__table__), *notify.PRUNABLE]  # type: ignore[arg-type]
        await _prune_all(engine, prunables, batch=2)
        notifications = await _ids(engine, "notifications", "id")
        attempts = await _ids(engine, "notification_attempts", "notification_id")
        async with engine.connect() as conn:
            plans = [await _plan(conn, p.statement, {"before": NOW, "n": 2}) for p in prunables]

    assert notifications == {"old-pending-1", "recent-sent-1"}
    assert attempts == {"recent-sent-1"}
    assert "ix_inbox_received_at" in plans[0], plans[0]
    assert "ix_notifications_finished" in plans[1] and "ix_notification_attempts_at" in plans[2], plans


@pytest.mark.parametrize("statistics", ["none yet", "of the ended rows alone"])
async def test_the_timers_claim_among_the_live_rows_whatever_the_planner_believes(statistics: str) -> None:
    """Escalation's clock loop and notify's sender run every half second: over a year of ended
    clocks and sent notifications, a scan of the table took a quarter of a second at 100,000
    orders, and more than the interval itself at a million. They read a partial index of the open
    clocks and the pending notifications: as small as the work in flight."""
    ended = 20_000
    async with fresh_database("whistle_test_history", "escalation") as clocks:
        async with clocks.begin() as conn:
            if statistics != "none yet":
                await _rows(conn, _CLOCKS, prefix="first-", at=OLD, due=OLD, state="stopped", n=10)
                await conn.execute(text("ANALYZE clocks"))
            await _rows(conn, _CLOCKS, prefix="ended-", at=OLD, due=OLD, state="stopped", n=ended)
            await _rows(conn, _CLOCKS, prefix="open-", at=RECENT, due=NOW, state="open", n=3)
        async with clocks.begin() as conn:
            due = await escalation.claim_due(conn, NOW + timedelta(seconds=1))
            running = await escalation.open_clocks(conn)
            oldest = await escalation.oldest_overdue(conn, NOW + timedelta(seconds=1))
            clock_plans = [
                await _plan(conn, escalation._DUE, {"now": NOW, "n": 200}),
                await _plan(conn, escalation._OPEN_CLOCKS, {}),
                await _plan(conn, escalation._OLDEST, {}),
            ]
    async with fresh_database("whistle_test_history", "notify") as notifications:
        async with notifications.begin() as conn:
            if statistics != "none yet":
                await _rows(conn, _NOTIFICATIONS, prefix="first-", status="sent", at=OLD, n=10)
                await conn.execute(text("ANALYZE notifications"))
            await _rows(conn, _NOTIFICATIONS, prefix="sent-", status="sent", at=OLD, n=ended)
            await _rows(conn, _CONTACTS, at=NOW + timedelta(days=20), n=ended)  # a month of closed orders
            await _rows(conn, _NOTIFICATIONS, prefix="pending-", status="pending", at=RECENT, n=3)
        async with notifications.begin() as conn:
            claimed = await notify.claim_pending(conn, NOW, NOW, NOW + timedelta(minutes=2))
            values = {"now": NOW, "business_now": NOW, "lease": NOW, "n": 50}
            notify_plans = [
                await _plan(conn, notify._CLAIM, values),
                await _plan(conn, notify._FORGET, {"now": NOW}),
            ]

    assert len(due) == 3 and running == 3 and oldest == NOW
    assert "ix_clocks_open_remind_at" in clock_plans[0], clock_plans[0]
    assert sorted(n.id for n in claimed) == ["pending-1", "pending-2", "pending-3"]
    for p in clock_plans:
        assert "ix_clocks_open_due_at" in p and "Seq Scan" not in p, p
    for p in notify_plans:
        assert ("ix_notifications_pending" in p or "ix_contacts_delete_after" in p) and "Seq Scan" not in p, p
