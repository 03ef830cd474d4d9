"""The clock loop: fires what is due in business time, one transaction a round. Timers live in the
database, so a restart loses none."""

from __future__ import annotations

import time

from shared import metrics, retry
from shared.clock import BusinessClock
from shared.messaging import OutboxMessage, outbox_message, stage
from shared.service import Service

from . import metrics as own
from . import store
from .domain import Event, Round, fire

SOURCE = "whistle/escalation"
COUNT_EVERY = 15.0  # seconds between two counts of the open clocks


def _message(e: Event) -> OutboxMessage:
    return outbox_message(e.topic, e.key, e.type, e.data, source=SOURCE, time=e.time, id=e.id)


async def fire_due_once(svc: Service, clock: BusinessClock) -> int:
    """Fire what is due now (business time) in one transaction; returns how many clocks were handled."""
    async with svc.engine.begin() as conn:
        now = await clock.now(conn)
        due = await store.claim_due(conn, now)
        decided = fire(due, now)
        for f in decided.fired:
            await store.mark(conn, f.clock.id, **f.changes)
        await store.stop_many(conn, [(order, None, None) for order in decided.stopped])
        messages = [_message(e) for e in decided.events]
        await stage(conn, svc.consumer.outbox, messages)
        oldest = await store.oldest_overdue(conn, now)
    _count(decided)
    own.OLDEST_OVERDUE.set((now - oldest).total_seconds() if oldest else 0)
    if messages:
        svc.relay.notify()
    return len(due)


def _count(decided: Round) -> None:
    # After the commit: a round that fails is fired again, and would otherwise be counted twice.
    for f in decided.fired:
        if f.breach is not None:
            # Escalations are counted where dispatch applies them (a request may be stale).
            metrics.BREACHES.labels(f.clock.department, f.clock.kind).inc()


async def count_open(svc: Service) -> None:
    """The open clocks' gauge, now and then: a count reads every open clock, tens of thousands in
    a burst, too many for every round of the loop."""
    async with svc.engine.connect() as conn:
        own.OPEN_CLOCKS.set(await store.open_clocks(conn))


async def fire_due(svc: Service) -> None:
    """Background task: the clock loop, and the open clocks counted every COUNT_EVERY seconds."""
    clock = BusinessClock()
    counted = 0.0

    async def step() -> bool:
        nonlocal counted
        if time.monotonic() - counted >= COUNT_EVERY:
            await count_open(svc)
            counted = time.monotonic()
        return await fire_due_once(svc, clock) > 0

    interval = svc.settings.timer_interval_seconds
    # A failed round is tried again within a few intervals: a clock must not fire late for long.
    await retry.forever("clock", step, idle=retry.sleeper(interval), cap=5 * interval)
