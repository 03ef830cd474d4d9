"""Escalation's subscribers keep the clocks in step with the work order's life; ``timers`` fires them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from shared import contract
from shared.calendar import Calendar
from shared.contract import DeadlineMoved, Urgency, WorkOrderData
from shared.messaging import Route, Tx

from . import store
from .domain import Deadline, alert_area, feedback_clock_id, remind_at, review_clock_id
from .unit import EscalationBatch

STOPS_ALL = (
    "workorder.closed",
    "workorder.escalated",
    "workorder.reopened",
    "workorder.merged",
    "workorder.reassigned",
)


@dataclass(frozen=True, slots=True)
class Clocks:
    """Starts and moves clocks; holds how their reminders are counted."""

    reminder_share: float
    calendars: Mapping[Urgency, Calendar]

    def remind_at(self, deadline: Deadline, urgency: Urgency) -> datetime:
        return remind_at(deadline, self.reminder_share, self.calendars[urgency])

    async def on_dispatched(self, tx: Tx[EscalationBatch], e: WorkOrderData) -> None:
        rows = [
            self._deadline_row(
                e,
                d["dispatch_id"],
                d["department"],
                kind,
                Deadline(kind, tx.time, datetime.fromisoformat(d[f"{kind}_by"])),
            )
            for d in e.dispatches or []
            for kind in ("accept", "resolve")
        ]
        tx.batch.clocks.start(rows)

    def _deadline_row(
        self, e: WorkOrderData, dispatch_id: str, department: str, kind: str, deadline: Deadline
    ) -> dict[str, object]:
        return {
            "id": f"{dispatch_id}:{kind}",
            "work_order_id": e.work_order_id,
            "dispatch_id": dispatch_id,
            "department": department,
            "level": e.level,
            "area": alert_area(e.community, e.street),
            "urgency": e.urgency,
            "kind": kind,
            "started_at": deadline.started_at,
            "due_at": deadline.due_at,
            "remind_at": self.remind_at(deadline, e.urgency),
            "reminded": False,
            "state": "open",
        }

    async def on_return_requested(self, tx: Tx[EscalationBatch], e: WorkOrderData) -> None:
        """派单异议审核: the department's clocks stand still while the centre reviews its return;
        the review's own clock runs to review_by and then sends return.review.expired."""
        if e.dispatch_id is None or e.review_by is None:
            return
        tx.batch.clocks.stop(e.work_order_id, dispatch_id=e.dispatch_id)
        # Nobody to remind: the centre's queue shows what is overdue.
        row = _command_clock(e, review_clock_id(e.dispatch_id), e.dispatch_id, "review", tx.time, e.review_by)
        tx.batch.clocks.start([row | {"department": e.department or ""}])

    async def on_return_refused(self, tx: Tx[EscalationBatch], e: WorkOrderData) -> None:
        """The dispatch is the department's again: the review stops, and its accept and resolve
        clocks run again to the new times (the event's, dispatch's rule)."""
        if e.dispatch_id is None:
            return
        tx.batch.clocks.stop(e.work_order_id, kind="review", dispatch_id=e.dispatch_id)
        rows = [
            self._deadline_row(e, e.dispatch_id, e.department or "", kind, Deadline(kind, tx.time, due))
            for kind, due in (("accept", e.accept_by), ("resolve", e.resolve_by))
            if due is not None
        ]
        await tx.batch.clocks.flush(tx.conn)  # the restart writes those clocks itself
        await store.restart(tx.conn, rows)

    async def on_resolved(self, tx: Tx[EscalationBatch], e: WorkOrderData) -> None:
        """The departments' clocks stop; the wait for the resident's rating (回访) starts."""
        tx.batch.clocks.stop(e.work_order_id)
        if e.feedback_by is None:
            return  # resolved by a dispatch that sets no limit: it waits for a rating as before
        # Nobody to remind: the resident is asked by notify.
        clock_id = feedback_clock_id(e.work_order_id, e.feedback_by)
        row = _command_clock(e, clock_id, e.work_order_id, "feedback", tx.time, e.feedback_by)
        tx.batch.clocks.start([row])

    async def on_moved(self, tx: Tx[EscalationBatch], m: DeadlineMoved) -> None:
        await tx.batch.clocks.flush(tx.conn)  # the clock as the batch has left it so far
        clock = await store.get(tx.conn, f"{m.dispatch_id}:resolve")
        if clock is not None:
            deadline = Deadline("resolve", clock.started_at, m.resolve_by)
            await store.move(tx.conn, clock.id, m.resolve_by, self.remind_at(deadline, clock.urgency))


def _command_clock(
    e: WorkOrderData, clock_id: str, dispatch_id: str, kind: str, at: datetime, due: datetime
) -> dict[str, object]:
    """A command clock's row (domain.COMMANDS): due once, at ``due``, with no reminder before."""
    return {
        "id": clock_id,
        "work_order_id": e.work_order_id,
        "dispatch_id": dispatch_id,
        "department": "",
        "level": e.level,
        "area": alert_area(e.community, e.street),
        "urgency": e.urgency,
        "kind": kind,
        "started_at": at,
        "due_at": due,
        "remind_at": due,
        "reminded": True,
        "state": "open",
    }


async def on_accepted(tx: Tx[EscalationBatch], e: WorkOrderData) -> None:
    tx.batch.clocks.stop(e.work_order_id, kind="accept", dispatch_id=e.dispatch_id)


async def on_return_approved(tx: Tx[EscalationBatch], e: WorkOrderData) -> None:
    """The return stands: its review stops (the dispatches that follow start their own clocks)."""
    tx.batch.clocks.stop(e.work_order_id, kind="review", dispatch_id=e.dispatch_id)


async def on_finished(tx: Tx[EscalationBatch], e: WorkOrderData) -> None:
    tx.batch.clocks.stop(e.work_order_id)


def routes(reminder_share: float, calendars: Mapping[Urgency, Calendar]) -> list[Route]:
    clocks = Clocks(reminder_share, calendars)
    events = contract.WORKORDER_EVENTS
    return [
        Route(events, "workorder.dispatched", WorkOrderData, clocks.on_dispatched),
        Route(events, "workorder.accepted", WorkOrderData, on_accepted),
        Route(events, "workorder.resolved", WorkOrderData, clocks.on_resolved),
        Route(events, "workorder.return_requested", WorkOrderData, clocks.on_return_requested),
        Route(events, "workorder.return_approved", WorkOrderData, on_return_approved),
        Route(events, "workorder.return_refused", WorkOrderData, clocks.on_return_refused),
        *(Route(events, t, WorkOrderData, on_finished) for t in STOPS_ALL),
        Route(contract.DISPATCH_DEADLINES, "dispatch.deadline.moved", DeadlineMoved, clocks.on_moved),
    ]
