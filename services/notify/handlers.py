"""Notify's subscribers plan notifications; ``send_pending`` delivers them and records each attempt."""

from __future__ import annotations

import asyncio
from typing import Any

from shared import contract
from shared.contract import (
    ClusterDetected,
    ContactRecorded,
    NotificationRecord,
    SlaBreached,
    WorkOrderData,
    derived_id,
)
from shared.logs import get_logger
from shared.messaging import Route, Tx, outbox_message, stage
from shared.service import Service

from . import store
from .channels import CHANNELS, Recipient
from .domain import RULES, plan, render

log = get_logger(__name__)
SOURCE = "whistle/notify"
CHANNEL = "log"


async def _plan(
    tx: Tx,
    work_order_id: str,
    data: dict[str, Any],
    residents: list[str] | None = None,
    kind: str | None = None,
) -> None:
    if residents is None:
        residents = await store.reporters(tx.conn, work_order_id)
    rows = [
        {
            "id": derived_id(tx.event.id, p.audience, p.recipient, p.template),
            "work_order_id": work_order_id,
            "audience": p.audience,
            "recipient": p.recipient,
            "channel": CHANNEL,
            "template": p.template,
            "body": render(p.template, p.data),
            "status": "pending",
            "attempts": 0,
            "event_time": tx.time,
        }
        for p in plan(kind or tx.event.type, data, residents)
    ]
    await store.add(tx.conn, rows)


def routes() -> list[Route]:
    async def on_contact(tx: Tx, c: ContactRecorded) -> None:
        await store.save_contact(tx.conn, c.work_order_id, c.reporter_id, c.name, c.phone)
        kind = "intake.contact.recorded" if c.reporter_id == c.work_order_id else "intake.contact.merged"
        await _plan(tx, c.work_order_id, {"work_order_id": c.work_order_id}, [c.reporter_id], kind)

    async def on_lifecycle(tx: Tx, e: WorkOrderData) -> None:
        await _plan(tx, e.work_order_id, e.model_dump(mode="json"))

    async def on_sla(tx: Tx, a: SlaBreached) -> None:
        await _plan(tx, a.work_order_id, a.model_dump(mode="json"))

    async def on_cluster(tx: Tx, a: ClusterDetected) -> None:
        key = f"cluster:{a.community}:{a.category}"
        await _plan(tx, key, a.model_dump(mode="json"))

    lifecycle_types = [t for t in RULES if t.startswith("workorder.")]
    return [
        Route(contract.INTAKE_CONTACTS, "intake.contact.recorded", ContactRecorded, on_contact),
        *(Route(contract.WORKORDER_EVENTS, t, WorkOrderData, on_lifecycle) for t in lifecycle_types),
        Route(contract.ALERTS, "alert.sla_breached", SlaBreached, on_sla),
        Route(contract.ALERTS, "alert.cluster_detected", ClusterDetected, on_cluster),
    ]


async def send_pending_once(svc: Service) -> int:
    async with svc.engine.begin() as conn:
        pending = await store.claim_pending(conn)
        messages = []
        for n in pending:
            address = n.recipient
            if n.audience == "resident":
                who = await store.contact(conn, n.work_order_id, n.recipient)
                address = (who.phone if who else None) or ""
            attempts = n.attempts + 1
            error: str | None = None
            try:
                await CHANNELS[n.channel].send(Recipient(n.audience, address, n.work_order_id), n.body)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
                await store.finish(conn, n.id, status="failed", attempts=attempts, last_error=error)
                kind = "notification.failed"
            else:
                await store.finish(conn, n.id, status="sent", attempts=attempts, sent_at=n.event_time)
                kind = "notification.sent"
            record = NotificationRecord(
                notification_id=n.id,
                work_order_id=n.work_order_id,
                audience=n.audience,
                channel=n.channel,
                template=n.template,
                attempts=attempts,
                error=error,
            )
            messages.append(
                outbox_message(
                    contract.NOTIFICATIONS,
                    n.work_order_id,
                    kind,
                    record,
                    source=SOURCE,
                    time=n.event_time,
                    id=derived_id(n.id, kind),
                )
            )
        await stage(conn, svc.consumer.outbox, messages)
    if messages:
        svc.relay.notify()
    return len(pending)


async def send_pending(svc: Service) -> None:
    """Background task: deliver what was planned; rows are claimed, so replicas never send twice."""
    while True:
        try:
            if await send_pending_once(svc):
                continue
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("send round failed, will retry", error=str(exc)[:300])
        await asyncio.sleep(svc.settings.timer_interval_seconds)
