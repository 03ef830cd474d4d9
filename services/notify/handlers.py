"""Notify's subscribers plan notifications (recorded before anything is sent); ``send_pending``
delivers them with retries, a circuit breaker per channel and a rate limit, recording every attempt."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import BaseModel

from shared import contract, metrics
from shared.clock import BusinessClock
from shared.contract import (
    ClusterDetected,
    ContactRecorded,
    DispatchAssigned,
    DispatchCancelled,
    DispatchReminder,
    NotificationRecord,
    SlaBreached,
    WorkOrderData,
    derived_id,
)
from shared.logs import get_logger
from shared.messaging import OutboxMessage, Route, Tx, outbox_message, stage
from shared.service import Service
from shared.settings import Settings

from . import store
from .channels import Channel, Message, channels
from .domain import CHANNEL_FOR, RULES, plan, quiet_until
from .templates import render, versioned

log = get_logger(__name__)
SOURCE = "whistle/notify"


@dataclass(frozen=True)
class Manners:
    """Quiet hours for residents, in the jurisdiction's local time."""

    quiet_hours: str
    timezone: str

    def hold(self, audience: str, urgency: str, at: datetime) -> datetime | None:
        if audience != "resident" or urgency == "emergency":
            return None
        return quiet_until(at, self.quiet_hours, self.timezone)


async def _plan(
    tx: Tx,
    manners: Manners,
    work_order_id: str,
    data: dict[str, Any],
    residents: list[str] | None = None,
    kind: str | None = None,
) -> None:
    if residents is None:
        residents = await store.reporters(tx.conn, work_order_id)
    urgency = str(data.get("urgency") or "normal")
    rows = [
        {
            "id": derived_id(tx.event.id, p.audience, p.recipient, p.template),
            "work_order_id": work_order_id,
            "audience": p.audience,
            "recipient": p.recipient,
            "channel": CHANNEL_FOR[p.audience],
            "template": p.template,
            "body": render(p.template, p.data),
            "status": "pending",
            "attempts": 0,
            "event_time": tx.time,
            "hold_until": manners.hold(p.audience, urgency, tx.time),
        }
        for p in plan(kind or tx.event.type, data, residents)
    ]
    await store.add(tx.conn, rows)


def routes(department_topics: list[str], settings: Settings, timezone: str) -> list[Route]:
    manners = Manners(settings.notify_quiet_hours, timezone)
    retention = timedelta(days=settings.notify_contact_retention_days)

    async def on_contact(tx: Tx, c: ContactRecorded) -> None:
        await store.save_contact(tx.conn, c.work_order_id, c.reporter_id, c.name, c.phone)
        kind = "intake.contact.recorded" if c.reporter_id == c.work_order_id else "intake.contact.merged"
        data = {"work_order_id": c.work_order_id, "urgency": c.urgency}
        await _plan(tx, manners, c.work_order_id, data, [c.reporter_id], kind)

    async def on_lifecycle(tx: Tx, e: WorkOrderData) -> None:
        await _plan(tx, manners, e.work_order_id, e.model_dump(mode="json"))

    async def on_closed(tx: Tx, e: WorkOrderData) -> None:
        await store.forget_contacts_after(tx.conn, e.work_order_id, tx.time + retention)

    async def on_department(tx: Tx, d: DispatchAssigned | DispatchReminder | DispatchCancelled) -> None:
        await _plan(tx, manners, d.work_order_id, d.model_dump(mode="json"), residents=[])

    async def on_sla(tx: Tx, a: SlaBreached) -> None:
        await _plan(tx, manners, a.work_order_id, a.model_dump(mode="json"))

    async def on_cluster(tx: Tx, a: ClusterDetected) -> None:
        key = f"cluster:{a.community}:{a.category}"
        await _plan(tx, manners, key, a.model_dump(mode="json"), residents=[])

    lifecycle_types = [t for t in RULES if t.startswith("workorder.")]
    department_types: dict[str, type[BaseModel]] = {
        "dispatch.assigned": DispatchAssigned,
        "dispatch.reminder": DispatchReminder,
        "dispatch.cancelled": DispatchCancelled,
    }
    return [
        Route(contract.INTAKE_CONTACTS, "intake.contact.recorded", ContactRecorded, on_contact),
        *(Route(contract.WORKORDER_EVENTS, t, WorkOrderData, on_lifecycle) for t in lifecycle_types),
        Route(contract.WORKORDER_EVENTS, "workorder.closed", WorkOrderData, on_closed),
        *(
            Route(topic, t, model, on_department)
            for topic in department_topics
            for t, model in department_types.items()
        ),
        Route(contract.ALERTS, "alert.sla_breached", SlaBreached, on_sla),
        Route(contract.ALERTS, "alert.cluster_detected", ClusterDetected, on_cluster),
    ]


def _attempt(
    notification_id: str, attempt: int, channel: str, at: datetime, error: str | None
) -> dict[str, Any]:
    return {
        "notification_id": notification_id,
        "attempt": attempt,
        "channel": channel,
        "at": at,
        "error": error,
    }


class Breaker:
    """A channel that keeps failing is paused for a while, without holding up the others."""

    def __init__(self, failures: int, cooldown: float) -> None:
        self.failures, self.cooldown = failures, cooldown
        self._count: dict[str, int] = {}
        self._open_until: dict[str, float] = {}

    def closed(self, channel: str) -> bool:
        return time.monotonic() >= self._open_until.get(channel, 0.0)

    def result(self, channel: str, ok: bool) -> None:
        if ok:
            self._count[channel] = 0
            return
        self._count[channel] = self._count.get(channel, 0) + 1
        if self._count[channel] >= self.failures:
            self._open_until[channel] = time.monotonic() + self.cooldown
            self._count[channel] = 0
            log.warning("channel paused", channel=channel, seconds=self.cooldown)


class RateLimit:
    """A token bucket per channel: at most ``rate`` messages a second, bursts up to one second's."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._tokens: dict[str, tuple[float, float]] = {}

    def take(self, channel: str) -> bool:
        now = time.monotonic()
        tokens, at = self._tokens.get(channel, (self.rate, now))
        tokens = min(self.rate, tokens + (now - at) * self.rate)
        if tokens < 1:
            self._tokens[channel] = (tokens, now)
            return False
        self._tokens[channel] = (tokens - 1, now)
        return True


class Sender:
    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.channels: dict[str, Channel] = channels(settings, client)
        self.breaker = Breaker(settings.notify_breaker_failures, settings.notify_breaker_cooldown_seconds)
        self.limit = RateLimit(settings.notify_rate_per_second)
        self.clock = BusinessClock()

    def backoff(self, attempts: int) -> timedelta:
        seconds = self.settings.notify_backoff_seconds * 2 ** (attempts - 1)
        return timedelta(seconds=min(seconds, self.settings.notify_backoff_cap_seconds))

    async def send_pending_once(self, svc: Service) -> int:
        """One round: claim due notifications, deliver what may go now; returns how many were tried."""
        now = datetime.now(UTC)
        async with svc.engine.begin() as conn:
            business_now = await self.clock.now(conn)
            await store.forget_expired_contacts(conn, business_now)
            pending = await store.claim_pending(conn, now, business_now)
            messages: list[OutboxMessage] = []
            attempts: list[dict[str, Any]] = []
            for n in pending:
                channel = self.channels[n.channel]
                if not self.breaker.closed(channel.name) or not self.limit.take(channel.name):
                    continue  # left pending for a later round; the others go on
                address = n.recipient
                if n.audience == "resident":
                    who = await store.contact(conn, n.work_order_id, n.recipient)
                    address = (who.phone if who else None) or ""
                tries = n.attempts + 1
                message = Message(n.id, n.work_order_id, n.audience, address, versioned(n.template), n.body)
                error: str | None = None
                try:
                    await channel.send(message)
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"[:300]
                    self.breaker.result(channel.name, ok=False)
                    attempts.append(
                        {
                            "notification_id": n.id,
                            "attempt": tries,
                            "channel": channel.name,
                            "at": now,
                            "error": error,
                        }
                    )
                    metrics.NOTIFICATIONS.labels(channel.name, "retry").inc()
                    if tries < self.settings.notify_max_attempts:
                        await store.finish(
                            conn, n.id, attempts=tries, last_error=error, retry_at=now + self.backoff(tries)
                        )
                        continue
                    await store.finish(conn, n.id, status="failed", attempts=tries, last_error=error)
                    kind = "notification.failed"
                else:
                    self.breaker.result(channel.name, ok=True)
                    attempts.append(
                        {
                            "notification_id": n.id,
                            "attempt": tries,
                            "channel": channel.name,
                            "at": now,
                            "error": None,
                        }
                    )
                    await store.finish(conn, n.id, status="sent", attempts=tries, sent_at=n.event_time)
                    kind = "notification.sent"
                metrics.NOTIFICATIONS.labels(channel.name, kind.split(".")[1]).inc()
                record = NotificationRecord(
                    notification_id=n.id,
                    work_order_id=n.work_order_id,
                    audience=n.audience,
                    channel=channel.name,
                    template=versioned(n.template),
                    attempts=tries,
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
            await store.record_attempts(conn, attempts)
            await stage(conn, svc.consumer.outbox, messages)
        if messages:
            svc.relay.notify()
        return len(attempts)


async def send_pending(svc: Service) -> None:
    """Background task: deliver what was planned; rows are claimed, so replicas never send twice."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        sender = Sender(svc.settings, client)
        while True:
            try:
                if await sender.send_pending_once(svc):
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("send round failed, will retry", error=str(exc)[:300])
            await asyncio.sleep(svc.settings.timer_interval_seconds)
