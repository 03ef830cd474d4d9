"""Timers shared between replicas, against the real PostgreSQL: two of escalation's clock loops
firing side by side fire every clock once (their claims skip what the other holds), and two of
notify's senders deliver every notification once (a round's lease keeps the other off its rows)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from services.escalation import store as clocks
from services.escalation.timers import fire_due_once
from services.notify import store as notifications
from services.notify.channels import Channel, Message
from services.notify.sender import Sender
from shared.clock import BusinessClock
from shared.settings import Settings
from tests.integration.databases import fresh_database

pytestmark = pytest.mark.integration
PREFIX = "whistle_test_timers"
CLOCKS = 500  # past a round's claim (200): the loops take a share each
NOTICES = 150  # three rounds' worth


def clock(n: int, kind: str, now: datetime) -> dict[str, Any]:
    return {
        "id": f"D-{n}:{kind}",
        "work_order_id": f"WO-H-{n}",
        "dispatch_id": f"D-{n}",
        "department": "heat",
        "level": "street",
        "area": "夹河社区",
        "urgency": "normal",
        "kind": kind,
        "started_at": now - timedelta(hours=2),
        # Half of them past their deadline (a breach), half only past their reminder.
        "due_at": now - timedelta(minutes=1) if n % 2 else now + timedelta(hours=1),
        "remind_at": now - timedelta(minutes=2),
        "reminded": False,
        "state": "open",
    }


async def test_two_clock_loops_fire_every_clock_once() -> None:
    async with fresh_database(PREFIX, "escalation") as engine:
        now = datetime.now(UTC)
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO business_clock (id, event_time, seen_at) VALUES (1, :t, :t)"), {"t": now}
            )
            await clocks.start(conn, [clock(n, "accept", now) for n in range(CLOCKS)])
        svc = SimpleNamespace(
            engine=engine,
            consumer=SimpleNamespace(outbox=clocks.Outbox.__table__),
            relay=SimpleNamespace(notify=lambda: None),
        )

        async def replica() -> int:
            handled, business = 0, BusinessClock()
            while fired := await fire_due_once(svc, business):  # type: ignore[arg-type]
                handled += fired
            return handled

        handled = await asyncio.wait_for(asyncio.gather(replica(), replica(), replica()), timeout=120)

        async with engine.connect() as conn:
            events = [orjson.loads(p) for (p,) in await conn.execute(text("SELECT payload FROM outbox"))]
            states = Counter(tuple(r) for r in await conn.execute(text("SELECT state, reminded FROM clocks")))
    assert sum(handled) == CLOCKS  # each clock claimed by one replica, once
    ids = Counter(e["id"] for e in events)
    assert all(n == 1 for n in ids.values()), [i for i, n in ids.items() if n > 1]
    per_order = Counter((e["type"], e["data"].get("work_order_id", e["subject"])) for e in events)
    assert all(n == 1 for n in per_order.values()), [k for k, n in per_order.items() if n > 1]
    assert {wo for _, wo in per_order} == {f"WO-H-{n}" for n in range(CLOCKS)}  # none left out
    assert states[("open", False)] == 0 and sum(states.values()) == CLOCKS


class Gateway:
    """A channel both senders share, as two replicas share one SMS gateway; slow enough that their
    rounds overlap."""

    name = "webhook"

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, message: Message) -> None:
        await asyncio.sleep(0.002)  # a send takes a moment: the other sender's round overlaps it
        self.sent.append(message.notification_id)


async def test_two_senders_deliver_every_notification_once() -> None:
    settings = Settings(database_prefix=PREFIX, notify_rate_per_second=100_000)
    async with fresh_database(PREFIX, "notify") as engine:
        now = datetime.now(UTC)
        rows = [
            {
                "id": f"N-{n}",
                "work_order_id": f"WO-H-{n}",
                "audience": "department",
                "recipient": "heat",
                "channel": "webhook",
                "template": "received",
                "body": "新工单",
                "status": "pending",
                "attempts": 0,
                "event_time": now,
                "hold_until": None,
            }
            for n in range(NOTICES)
        ]
        async with engine.begin() as conn:
            await notifications.add(conn, rows)
        gateway = Gateway()
        channels: dict[str, Channel] = {"webhook": gateway}

        async def replica() -> int:
            sender = Sender(settings, channels, engine, notifications.Outbox.__table__, lambda: None)  # type: ignore[arg-type]
            sent = 0
            while n := await sender.send_pending_once():
                sent += n
            return sent

        sent = await asyncio.wait_for(asyncio.gather(replica(), replica()), timeout=120)
        async with engine.connect() as conn:
            statuses = Counter((await conn.execute(text("SELECT status FROM notifications"))).scalars().all())
    assert sum(sent) == NOTICES
    assert sorted(gateway.sent) == sorted(str(r["id"]) for r in rows)  # each delivered once
    assert statuses == Counter({"sent": NOTICES})
