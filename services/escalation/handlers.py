"""Escalation's subscribers keep the clocks in step with the work order's life; ``fire_due`` fires them."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Row

from shared import contract, metrics
from shared.calendar import Calendar
from shared.clock import BusinessClock
from shared.contract import (
    DeadlineMoved,
    DispatchReminder,
    EscalationRequested,
    SlaBreached,
    Urgency,
    WorkOrderData,
    derived_id,
)
from shared.logs import get_logger
from shared.messaging import OutboxMessage, Route, Tx, outbox_message, stage
from shared.service import Service

from . import store
from .domain import Deadline, on_breach, remind_at

log = get_logger(__name__)
SOURCE = "whistle/escalation"
STOPS_ALL = (
    "workorder.resolved",
    "workorder.closed",
    "workorder.escalated",
    "workorder.reopened",
    "workorder.merged",
)


def routes(reminder_share: float, calendars: dict[Urgency, Calendar]) -> list[Route]:
    async def on_dispatched(tx: Tx, e: WorkOrderData) -> None:
        rows = []
        for d in e.dispatches or []:
            for kind in ("accept", "resolve"):
                deadline = Deadline(kind, tx.time, datetime.fromisoformat(d[f"{kind}_by"]))
                rows.append(
                    {
                        "id": f"{d['dispatch_id']}:{kind}",
                        "work_order_id": e.work_order_id,
                        "dispatch_id": d["dispatch_id"],
                        "department": d["department"],
                        "level": e.level,
                        "area": e.community or e.street or "unplaced",
                        "urgency": e.urgency,
                        "kind": kind,
                        "started_at": deadline.started_at,
                        "due_at": deadline.due_at,
                        "remind_at": remind_at(deadline, reminder_share, calendars[e.urgency]),
                        "reminded": False,
                        "state": "open",
                    }
                )
        await store.start(tx.conn, rows)

    async def on_accepted(tx: Tx, e: WorkOrderData) -> None:
        await store.stop(tx.conn, e.work_order_id, kind="accept", dispatch_id=e.dispatch_id)

    async def on_finished(tx: Tx, e: WorkOrderData) -> None:
        await store.stop(tx.conn, e.work_order_id)

    async def on_moved(tx: Tx, m: DeadlineMoved) -> None:
        clock = await store.get(tx.conn, f"{m.dispatch_id}:resolve")
        if clock is not None:
            deadline = Deadline("resolve", clock.started_at, m.resolve_by)
            calendar = calendars[clock.urgency]
            await store.move(tx.conn, clock.id, m.resolve_by, remind_at(deadline, reminder_share, calendar))

    events = contract.WORKORDER_EVENTS
    return [
        Route(events, "workorder.dispatched", WorkOrderData, on_dispatched),
        Route(events, "workorder.accepted", WorkOrderData, on_accepted),
        *(Route(events, t, WorkOrderData, on_finished) for t in STOPS_ALL),
        Route(contract.DISPATCH_DEADLINES, "dispatch.deadline.moved", DeadlineMoved, on_moved),
    ]


def _fire(clock: Row[Any], now: datetime) -> tuple[list[OutboxMessage], dict[str, Any], bool]:
    """Events for one due clock, the clock's new columns, and whether it breached."""
    topic = contract.department_topic(clock.department)
    key = clock.work_order_id
    if clock.due_at > now:  # only the reminder is due
        reminder = DispatchReminder(
            dispatch_id=clock.dispatch_id,
            work_order_id=key,
            department=clock.department,
            deadline=clock.kind,
            due=clock.due_at,
            overdue=False,
        )
        msg = outbox_message(
            topic,
            key,
            "dispatch.reminder",
            reminder,
            source=SOURCE,
            time=clock.remind_at,
            id=derived_id(clock.id, "remind", clock.due_at.isoformat()),
        )
        return [msg], {"reminded": True}, False
    at = clock.due_at
    breach = on_breach(clock.kind, clock.level, clock.department)
    ids = (clock.id, "breach", at.isoformat())
    overdue = DispatchReminder(
        dispatch_id=clock.dispatch_id,
        work_order_id=key,
        department=clock.department,
        deadline=clock.kind,
        due=at,
        overdue=True,
    )
    sla = SlaBreached(
        work_order_id=key, department=clock.department, deadline=clock.kind, due=at, level=clock.level
    )
    messages = [
        outbox_message(
            topic, key, "dispatch.reminder", overdue, source=SOURCE, time=at, id=derived_id(*ids, "r")
        ),
        outbox_message(
            contract.ALERTS,
            clock.area,
            "alert.sla_breached",
            sla,
            source=SOURCE,
            time=at,
            id=derived_id(*ids, "a"),
        ),
    ]
    if breach.to_level:
        command = EscalationRequested(
            work_order_id=key,
            from_level=clock.level,
            to_level=breach.to_level,
            reason=breach.reason,
            dispatch_id=clock.dispatch_id,
        )
        messages.append(
            outbox_message(
                contract.ESCALATION_COMMANDS,
                key,
                "escalation.requested",
                command,
                source=SOURCE,
                time=at,
                id=derived_id(*ids, "e"),
            )
        )
        metrics.ESCALATIONS.labels(clock.kind + "_overdue", breach.to_level).inc()
    return messages, {"state": "fired"}, True


async def fire_due_once(svc: Service, clock: BusinessClock) -> int:
    """Fire what is due now (business time) in one transaction; returns how many clocks were handled."""
    async with svc.engine.begin() as conn:
        now = await clock.now(conn)
        due = await store.claim_due(conn, now)
        escalated: set[str] = set()
        messages: list[OutboxMessage] = []
        for row in due:
            if row.work_order_id in escalated:
                continue  # one breach per order climbs the ladder once; its other clocks stop below
            events, changes, breached = _fire(row, now)
            messages.extend(events)
            await store.mark(conn, row.id, **changes)
            if breached:
                metrics.BREACHES.labels(row.department, row.kind).inc()
                escalated.add(row.work_order_id)
                await store.stop(conn, row.work_order_id)
        await stage(conn, svc.consumer.outbox, messages)
        running, oldest = await store.open_clocks(conn, now)
    metrics.OPEN_CLOCKS.set(running)
    metrics.OLDEST_OVERDUE.set((now - oldest).total_seconds() if oldest else 0)
    if messages:
        svc.relay.notify()
    return len(due)


async def fire_due(svc: Service) -> None:
    """Background task: the clock loop. Timers live in the database, so a restart loses none."""
    clock = BusinessClock()
    while True:
        try:
            handled = await fire_due_once(svc, clock)
            if handled:
                continue
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("clock round failed, will retry", error=str(exc)[:300])
        await asyncio.sleep(svc.settings.timer_interval_seconds)
