"""The api's subscribers: each finds its order in the batch (``unit``), lets the read model's rules
change it (``domain``), and leaves the rest to the batch's writes. The api publishes nothing for
what it reads. Beside the read model: the residents' answers (for the rates), dispatch's dead
letters of the responses and 改派 the api sent, and notify's notifications (one row each)."""

from __future__ import annotations

from collections.abc import Mapping

from shared import contract
from shared.contract import (
    ClusterDetected,
    DeadLetter,
    DeadlineMoved,
    DispatchAssigned,
    DispatchCancelled,
    DispatchReminder,
    NotificationRecord,
    ResidentFeedback,
    SlaBreached,
    WorkOrderData,
    WorkOrderReassigned,
)
from shared.messaging import Route, Tx

from .access import refused_event
from .domain import NOTIFIED, decision_row, notification_row, return_row, timeline_entry
from .unit import ApiBatch

# Every type of workorders.events.v1, with the model of its data.
LIFECYCLE: dict[str, type[WorkOrderData]] = {
    "workorder.created": WorkOrderData,
    "workorder.merged": WorkOrderData,
    "workorder.dispatched": WorkOrderData,
    "workorder.accepted": WorkOrderData,
    "workorder.escalated": WorkOrderData,
    "workorder.reassigned": WorkOrderReassigned,
    "workorder.resolved": WorkOrderData,
    "workorder.reopened": WorkOrderData,
    "workorder.closed": WorkOrderData,
    "workorder.return_requested": WorkOrderData,
    "workorder.return_approved": WorkOrderData,
    "workorder.return_refused": WorkOrderData,
}


class Handlers:
    """The subscribers, with the departments' names (for status notes)."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = names

    async def on_lifecycle(self, tx: Tx[ApiBatch], e: WorkOrderData) -> None:
        tx.batch.order(e.work_order_id).lifecycle(tx.event.type, e, tx.time, self.names)
        tx.batch.timeline.append(timeline_entry(tx.event.type, e, tx.event.id, tx.time))
        row = return_row(tx.event.type, e, tx.time)
        if row is not None:
            tx.batch.returned(row)

    async def on_assigned(self, tx: Tx[ApiBatch], a: DispatchAssigned) -> None:
        tx.batch.order(a.work_order_id).assigned(a, tx.time)

    async def on_cancelled(self, tx: Tx[ApiBatch], c: DispatchCancelled) -> None:
        tx.batch.order(c.work_order_id).cancelled(c, tx.time)
        # A return still under review whose dispatch is cancelled: the order moved on without it.
        tx.batch.returned(decision_row(c.dispatch_id, "cancelled", tx.time))

    async def on_reminder(self, tx: Tx[ApiBatch], r: DispatchReminder) -> None:
        tx.batch.order(r.work_order_id).reminded(r)

    async def on_deadline_moved(self, tx: Tx[ApiBatch], m: DeadlineMoved) -> None:
        tx.batch.order(m.work_order_id).deadline_moved(m, tx.time)

    async def on_alert(self, tx: Tx[ApiBatch], a: SlaBreached | ClusterDetected) -> None:
        tx.batch.alerts.append(
            {
                "id": tx.event.id,
                "type": tx.event.type,
                "area": tx.delivery.key,
                "at": tx.time,
                "work_order_id": getattr(a, "work_order_id", None),
                "data": a.model_dump(mode="json"),
            }
        )

    async def on_feedback(self, tx: Tx[ApiBatch], f: ResidentFeedback) -> None:
        """Kept by its event id: it counts once a lifecycle event names it as its cause."""
        row = {"event_id": tx.event.id, "work_order_id": f.work_order_id, "satisfaction": f.satisfaction}
        tx.batch.feedback.append(row | {"at": tx.time})

    async def on_notification(self, tx: Tx[ApiBatch], n: NotificationRecord) -> None:
        tx.batch.notified(notification_row(tx.event.type, n, tx.time))

    async def on_dead_letter(self, tx: Tx[ApiBatch], d: DeadLetter) -> None:
        event_id = refused_event(d)
        if event_id is not None:  # matched, in the batch's write, to what the api sent itself
            tx.batch.refusals.append({"event_id": event_id, "refusal": d.error, "refused_at": tx.time})


def routes(department_topics: list[str], names: Mapping[str, str]) -> list[Route]:
    h = Handlers(names)
    return [
        *(Route(contract.WORKORDER_EVENTS, t, model, h.on_lifecycle) for t, model in LIFECYCLE.items()),
        *(
            route
            for topic in department_topics
            for route in (
                Route(topic, "dispatch.assigned", DispatchAssigned, h.on_assigned),
                Route(topic, "dispatch.cancelled", DispatchCancelled, h.on_cancelled),
                Route(topic, "dispatch.reminder", DispatchReminder, h.on_reminder),
            )
        ),
        # A granted extension (延期) moves the expected date; only this internal topic says so.
        Route(contract.DISPATCH_DEADLINES, "dispatch.deadline.moved", DeadlineMoved, h.on_deadline_moved),
        Route(contract.ALERTS, "alert.sla_breached", SlaBreached, h.on_alert),
        Route(contract.ALERTS, "alert.cluster_detected", ClusterDetected, h.on_alert),
        # The residents' answers, for the satisfaction rate; dispatch's refusals of what was sent.
        Route(contract.FEEDBACK, "resident.feedback.received", ResidentFeedback, h.on_feedback),
        Route(contract.DEADLETTER, "deadletter.recorded", DeadLetter, h.on_dead_letter),
        # What notify told whom about an order; a cluster alert's names no order and makes none.
        *(Route(contract.NOTIFICATIONS, t, NotificationRecord, h.on_notification) for t in NOTIFIED),
    ]
