"""Notify's sender: the background task that delivers planned notifications, with retries, a
circuit breaker and a rate limit per channel, recording every attempt.

A round claims due notifications in a short transaction, leasing them (``retry_at`` pushed past
the round's end) so that no other round or replica takes them meanwhile; sends with no transaction
or connection held, as a slow gateway must not hold row locks or a pooled connection; and records
the outcomes in another short transaction. A crash between the two sends again once the lease has
passed, under the same ``Idempotency-Key`` (the notification id), so a gateway can drop the repeat.

A round's sends go at once, each channel taking up to ``NOTIFY_CONCURRENCY`` of them at a time
(gates.py), and two rounds are in flight, so that a channel's slots stay busy while a round waits
for its slowest send and is recorded: a gateway answering in 100-200 ms then takes hundreds a
second instead of five.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import contract, metrics, retry
from shared.clock import BusinessClock
from shared.contract import (
    NotificationRecord,
)
from shared.events import derived_id
from shared.logs import get_logger
from shared.messaging import OutboxMessage, is_transient, outbox_message, stage
from shared.service import Service
from shared.settings import Settings

from . import store
from .channels import Channel, Clients, Message, channels
from .domain import Outcome, outcome
from .gates import Gates
from .templates import versioned

log = get_logger(__name__)
SOURCE = "whistle/notify"

ROUND = 50  # notifications claimed a round, at least: twice a channel's slots, so as to fill them
ROUNDS_IN_FLIGHT = 2
SEND_TIMEOUT = 10.0  # seconds, a send in all (the HTTP client's 5 s bound each phase of it)
# No send starts later than this into a round (the rest are left for the next), so that a round
# ends well within its lease even when every send times out.
SENDING_BUDGET = 60.0
LEASE = timedelta(seconds=SENDING_BUDGET + SEND_TIMEOUT + 50)


@dataclass(frozen=True, slots=True)
class Tried:
    """A notification sent, or attempted (``error`` says why it did not go), on ``channel``: the
    one that delivers its kind, the log where that is not configured."""

    notification: Row[Any]
    channel: str
    error: str | None


class Sender:
    def __init__(
        self,
        settings: Settings,
        channels: dict[str, Channel],
        engine: AsyncEngine,
        outbox: Table,
        on_staged: Callable[[], None],
    ) -> None:
        self.settings, self.channels = settings, channels
        self.engine, self.outbox, self.on_staged = engine, outbox, on_staged
        self.gates = Gates(
            settings.notify_breaker_failures,
            settings.notify_breaker_cooldown_seconds,
            settings.notify_rate_per_second,
            settings.notify_concurrency,
        )
        self.round = max(ROUND, 2 * settings.notify_concurrency)
        self.clock = BusinessClock()

    async def step(self) -> bool:
        """A round for ``retry.forever``: True (go again at once) when something was tried."""
        return await self.send_pending_once() > 0

    async def send_pending_once(self) -> int:
        """One round: claim due notifications, deliver what may go now, record what happened;
        returns how many were tried."""
        now = datetime.now(UTC)
        lease = now + LEASE
        async with self.engine.begin() as conn:
            business_now = await self.clock.now(conn)
            await store.forget_expired_contacts(conn, business_now)
            claimed = await store.claim_pending(conn, now, business_now, lease, self.round)
            residents = [(n.work_order_id, n.recipient) for n in claimed if n.audience == "resident"]
            phones = await store.phones(conn, residents)  # personal data: in memory, for this round
        if not claimed:
            return 0
        tried = await self._send(claimed, phones)
        await self._record(now, lease, claimed, tried)
        return len(tried)

    async def _send(self, claimed: list[Row[Any]], phones: dict[store.Pair, str | None]) -> list[Tried]:
        deadline = time.monotonic() + SENDING_BUDGET
        tries = await asyncio.gather(*(self._try(n, phones, deadline) for n in claimed))
        return [t for t in tries if t is not None]

    async def _try(self, n: Row[Any], phones: dict[store.Pair, str | None], deadline: float) -> Tried | None:
        """One notification through its channel's gates (waiting for a slot); None if not tried."""
        channel = self.channels[n.channel]
        address = n.recipient
        if n.audience == "resident":  # none once forgotten: the gateway is not called
            address = phones.get((n.work_order_id, n.recipient)) or ""
        message = Message(n.id, n.work_order_id, n.audience, address, versioned(n.template), n.body)
        try:
            went = await self.gates.send(channel.name, partial(_deliver, channel, message), until=deadline)
        except Exception as exc:
            return Tried(n, channel.name, f"{type(exc).__name__}: {exc}"[:300])
        return Tried(n, channel.name, None) if went else None

    async def _record(
        self, now: datetime, lease: datetime, claimed: list[Row[Any]], tried: list[Tried]
    ) -> None:
        """The outcomes, in a transaction of their own; the notifications not tried are released
        for the next round. A database that fails a moment is tried again: losing the record
        would only send again, once the lease has passed."""
        done = {t.notification.id for t in tried}
        untried = [n.id for n in claimed if n.id not in done]
        recorded: list[tuple[Tried, Outcome]] = []
        messages: list[OutboxMessage] = []
        async for attempt in retry.transient_retries(
            is_transient, attempts=5, initial=0.2, cap=5.0, on_retry=_record_failed
        ):
            with attempt:
                recorded, messages = await self._record_once(now, lease, tried, untried)
        for t, result in recorded:
            if t.error is not None:
                metrics.NOTIFICATIONS.labels(t.channel, "retry").inc()
            if result != "retry":
                metrics.NOTIFICATIONS.labels(t.channel, result).inc()
        if messages:
            self.on_staged()

    async def _record_once(
        self, now: datetime, lease: datetime, tried: list[Tried], untried: list[str]
    ) -> tuple[list[tuple[Tried, Outcome]], list[OutboxMessage]]:
        recorded: list[tuple[Tried, Outcome]] = []
        attempts: list[dict[str, Any]] = []
        messages: list[OutboxMessage] = []
        results = [
            outcome(t.error, t.notification.attempts + 1, self.settings.notify_max_attempts) for t in tried
        ]
        async with self.engine.begin() as conn:
            outcomes = [self._values(result, t, now) for t, result in zip(tried, results, strict=True)]
            held = await store.finish(conn, outcomes, lease)
            for t, result in zip(tried, results, strict=True):
                n, tries = t.notification, t.notification.attempts + 1
                if n.id not in held:
                    continue  # the lease passed and another round took it: that round records it
                recorded.append((t, result))
                attempts.append(_attempt(n.id, tries, t.channel, now, t.error))
                if result != "retry":
                    messages.append(_event(t, f"notification.{result}", tries))
            await store.release(conn, untried, lease, now)
            await store.record_attempts(conn, attempts)
            await stage(conn, self.outbox, messages)
        return recorded, messages

    def _values(self, result: Outcome, t: Tried, now: datetime) -> dict[str, Any]:
        """The notification's row after the attempt (what is left out stays as it was)."""
        n = t.notification
        values: dict[str, Any] = {"id": n.id, "attempts": n.attempts + 1}
        if result == "sent":
            return values | {"status": "sent", "sent_at": n.event_time}
        if result == "failed":
            return values | {"status": "failed", "last_error": t.error}
        delay = retry.backoff(
            n.attempts + 1,
            initial=self.settings.notify_backoff_seconds,
            cap=self.settings.notify_backoff_cap_seconds,
        )
        return values | {
            "status": "pending",
            "last_error": t.error,
            "retry_at": now + timedelta(seconds=delay),
        }


async def _deliver(channel: Channel, message: Message) -> None:
    async with asyncio.timeout(SEND_TIMEOUT):
        await channel.send(message)


def _record_failed(exc: BaseException, attempt: int) -> None:
    log.warning("recording sends failed, will retry", error=str(exc)[:300], attempt=attempt)


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


def _event(t: Tried, kind: str, tries: int) -> OutboxMessage:
    n = t.notification
    record = NotificationRecord(
        notification_id=n.id,
        work_order_id=n.work_order_id,
        audience=n.audience,
        channel=t.channel,
        template=versioned(n.template),
        attempts=tries,
        error=t.error,
    )
    return outbox_message(
        contract.NOTIFICATIONS,
        n.work_order_id,
        kind,
        record,
        source=SOURCE,
        time=n.event_time,
        id=derived_id(n.id, kind),
    )


async def send_pending(svc: Service) -> None:
    """Background task: deliver what was planned; rows are claimed, so replicas never send twice."""
    # Every attempt is recorded in notification_attempts; httpx's line per request would cost
    # CPU at hundreds a second and say nothing more.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # A connection for each slot of the two HTTP channels, kept alive between sends.
    client = Clients(2 * svc.settings.notify_concurrency, timeout=5.0)
    try:
        sender = Sender(
            svc.settings, channels(svc.settings, client), svc.engine, svc.consumer.outbox, svc.relay.notify
        )
        interval = svc.settings.timer_interval_seconds
        # A failed round is tried again within a few intervals: what is due must not wait long.
        rounds = [
            retry.forever("send", sender.step, idle=retry.sleeper(interval), cap=5 * interval)
            for _ in range(ROUNDS_IN_FLIGHT)
        ]
        await asyncio.gather(*rounds)
    finally:
        await client.aclose()
