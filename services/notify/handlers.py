"""Notify's subscribers: they plan notifications (recorded before anything is sent, by the batch
unit); ``sender.send_pending`` delivers them."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel

from shared import contract
from shared.contract import (
    ClusterDetected,
    ContactRecorded,
    DispatchAssigned,
    DispatchCancelled,
    DispatchReminder,
    SlaBreached,
    WorkOrderData,
)
from shared.messaging import Route, Tx
from shared.settings import Settings

from . import store
from .domain import RULES
from .unit import Manners, NotifyBatch, plan_notifications


class Handlers:
    """The subscribers, with what they are configured with: quiet hours and contact retention."""

    def __init__(self, manners: Manners, retention: timedelta) -> None:
        self.manners, self.retention = manners, retention

    async def on_contact(self, tx: Tx[NotifyBatch], c: ContactRecorded) -> None:
        batch = tx.batch
        batch.contacts[(c.work_order_id, c.reporter_id)] = (c.name, c.phone)
        batch.residents.setdefault(c.work_order_id, {}).setdefault(c.reporter_id, None)
        kind = "intake.contact.recorded" if c.reporter_id == c.work_order_id else "intake.contact.merged"
        data = {"work_order_id": c.work_order_id, "urgency": c.urgency}
        # The newcomer only: the order's other residents have heard of it already.
        plan_notifications(tx, self.manners, c.work_order_id, data, kind, reporter=c.reporter_id)

    async def on_event(
        self,
        tx: Tx[NotifyBatch],
        e: WorkOrderData | DispatchAssigned | DispatchReminder | DispatchCancelled | SlaBreached,
    ) -> None:
        plan_notifications(tx, self.manners, e.work_order_id, e.model_dump(mode="json"))

    async def on_closed(self, tx: Tx[NotifyBatch], e: WorkOrderData) -> None:
        await store.forget_contacts_after(tx.conn, e.work_order_id, tx.time + self.retention)

    async def on_cluster(self, tx: Tx[NotifyBatch], a: ClusterDetected) -> None:
        plan_notifications(tx, self.manners, f"cluster:{a.community}:{a.category}", a.model_dump(mode="json"))


_DEPARTMENT_TYPES: dict[str, type[BaseModel]] = {
    "dispatch.assigned": DispatchAssigned,
    "dispatch.reminder": DispatchReminder,
    "dispatch.cancelled": DispatchCancelled,
}


def routes(department_topics: list[str], settings: Settings, timezone: str) -> list[Route]:
    h = Handlers(
        Manners(settings.notify_quiet_hours, timezone),
        timedelta(days=settings.notify_contact_retention_days),
    )
    lifecycle_types = [t for t in RULES if t.startswith("workorder.")]
    return [
        Route(contract.INTAKE_CONTACTS, "intake.contact.recorded", ContactRecorded, h.on_contact),
        *(Route(contract.WORKORDER_EVENTS, t, WorkOrderData, h.on_event) for t in lifecycle_types),
        Route(contract.WORKORDER_EVENTS, "workorder.closed", WorkOrderData, h.on_closed),
        *(
            Route(topic, t, model, h.on_event)
            for topic in department_topics
            for t, model in _DEPARTMENT_TYPES.items()
        ),
        Route(contract.ALERTS, "alert.sla_breached", SlaBreached, h.on_event),
        Route(contract.ALERTS, "alert.cluster_detected", ClusterDetected, h.on_cluster),
    ]
