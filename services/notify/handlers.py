"""Notify's subscribers plan notifications (recorded before anything is sent); ``send_pending``
delivers them with retries, a circuit breaker per channel and a rate limit, recording every attempt."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

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
from shared.messaging import Decoded, OutboxMessage, Route, Tx, outbox_message, stage
from shared.service import Service
from shared.settings import Settings

from . import store
from .channels import Channel, Message, channels
from .domain import CHANNEL_FOR, RESIDENT_STATE, RULES, plan, quiet_until, residents_to_tell
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


@dataclass
class NotifyBatch:
    """What a consumed batch knows of the orders it is about, and what it will write."""

    latest: datetime | None  # for the business clock
    residents: dict[str, dict[str, str | None]]  # order -> reporter -> state last told of
    contacts: dict[store.Pair, tuple[str | None, str | None]] = field(default_factory=dict)
    told: dict[store.Pair, str] = field(default_factory=dict)
    notifications: list[dict[str, Any]] = field(default_factory=list)


class NotifyUnit:
    """Loads the residents of a batch's orders in one query; writes contacts, notifications and
    who was told what in a few statements; advances the business clock."""

    def __init__(self) -> None:
        self.clock = BusinessClock()

    async def open(self, conn: AsyncConnection, messages: list[Decoded]) -> NotifyBatch:
        orders = sorted({o for m in messages if (o := getattr(m.data, "work_order_id", None))})
        return NotifyBatch(await self.clock.open(conn, messages), await store.residents(conn, orders))

    async def close(self, conn: AsyncConnection, batch: NotifyBatch) -> list[OutboxMessage]:
        await store.save_contacts(conn, batch.contacts)
        await store.mark_told(conn, batch.told)
        await store.add(conn, batch.notifications)
        return await self.clock.close(conn, batch.latest)


def _plan(
    tx: Tx,
    manners: Manners,
    work_order_id: str,
    data: dict[str, Any],
    kind: str | None = None,
    reporter: str | None = None,
) -> None:
    """Record the notifications an event calls for (to all the order's residents, or to one)."""
    batch: NotifyBatch = tx.batch
    kind = kind or tx.event.type
    residents = batch.residents.setdefault(work_order_id, {})
    candidates = {reporter: residents.get(reporter)} if reporter else residents
    to_tell = residents_to_tell(kind, data, candidates)
    for resident in to_tell:
        residents[resident] = batch.told[(work_order_id, resident)] = RESIDENT_STATE[kind]
    urgency = str(data.get("urgency") or "normal")
    batch.notifications += [
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
        for p in plan(kind, data, to_tell)
    ]


def routes(department_topics: list[str], settings: Settings, timezone: str) -> list[Route]:
    manners = Manners(settings.notify_quiet_hours, timezone)
    retention = timedelta(days=settings.notify_contact_retention_days)

    async def on_contact(tx: Tx, c: ContactRecorded) -> None:
        batch: NotifyBatch = tx.batch
        batch.contacts[(c.work_order_id, c.reporter_id)] = (c.name, c.phone)
        batch.residents.setdefault(c.work_order_id, {}).setdefault(c.reporter_id, None)
        kind = "intake.contact.recorded" if c.reporter_id == c.work_order_id else "intake.contact.merged"
        data = {"work_order_id": c.work_order_id, "urgency": c.urgency}
        _plan(tx, manners, c.work_order_id, data, kind, reporter=c.reporter_id)  # the newcomer only

    async def on_event(
        tx: Tx, e: WorkOrderData | DispatchAssigned | DispatchReminder | DispatchCancelled | SlaBreached
    ) -> None:
        _plan(tx, manners, e.work_order_id, e.model_dump(mode="json"))

    async def on_closed(tx: Tx, e: WorkOrderData) -> None:
        await store.forget_contacts_after(tx.conn, e.work_order_id, tx.time + retention)

    async def on_cluster(tx: Tx, a: ClusterDetected) -> None:
        _plan(tx, manners, f"cluster:{a.community}:{a.category}", a.model_dump(mode="json"))

    lifecycle_types = [t for t in RULES if t.startswith("workorder.")]
    department_types: dict[str, type[BaseModel]] = {
        "dispatch.assigned": DispatchAssigned,
        "dispatch.reminder": DispatchReminder,
        "dispatch.cancelled": DispatchCancelled,
    }
    return [
        Route(contract.INTAKE_CONTACTS, "intake.contact.recorded", ContactRecorded, on_contact),
        *(Route(contract.WORKORDER_EVENTS, t, WorkOrderData, on_event) for t in lifecycle_types),
        Route(contract.WORKORDER_EVENTS, "workorder.closed", WorkOrderData, on_closed),
        *(
            Route(topic, t, model, on_event)
            for topic in department_topics
            for t, model in department_types.items()
        ),
        Route(contract.ALERTS, "alert.sla_breached", SlaBreached, on_event),
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
            residents = [(n.work_order_id, n.recipient) for n in pending if n.audience == "resident"]
            phones = await store.phones(conn, residents)
            messages: list[OutboxMessage] = []
            attempts: list[dict[str, Any]] = []
            for n in pending:
                channel = self.channels[n.channel]
                if not self.breaker.closed(channel.name) or not self.limit.take(channel.name):
                    continue  # left pending for a later round; the others go on
                address = n.recipient
                if n.audience == "resident":  # none once forgotten: the gateway is not called
                    address = phones.get((n.work_order_id, n.recipient)) or ""
                tries = n.attempts + 1
                message = Message(n.id, n.work_order_id, n.audience, address, versioned(n.template), n.body)
                error: str | None = None
                try:
                    await channel.send(message)
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"[:300]
                self.breaker.result(channel.name, ok=error is None)
                attempts.append(_attempt(n.id, tries, channel.name, now, error))
                if error is None:
                    await store.finish(conn, n.id, status="sent", attempts=tries, sent_at=n.event_time)
                    kind = "notification.sent"
                else:
                    metrics.NOTIFICATIONS.labels(channel.name, "retry").inc()
                    if tries < self.settings.notify_max_attempts:
                        retry_at = now + self.backoff(tries)
                        await store.finish(conn, n.id, attempts=tries, last_error=error, retry_at=retry_at)
                        continue
                    await store.finish(conn, n.id, status="failed", attempts=tries, last_error=error)
                    kind = "notification.failed"
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
