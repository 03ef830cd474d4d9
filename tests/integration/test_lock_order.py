"""Batches at the edge of their transaction, against the real PostgreSQL: two of dispatch's batches
naming the same orders in opposite orders queue rather than deadlock (each locks its orders, sorted,
first); escalation's clock loop never waits for a clock a batch holds (it leaves that order for a
round); and a message its batch's unit cannot load is dead-lettered alone."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api import handlers as api_handlers
from services.api import store as views
from services.api.unit import ApiUnit
from services.dispatch import handlers as dispatch_handlers
from services.dispatch import store as orders
from services.dispatch.routing import Policy
from services.dispatch.unit import DispatchUnit
from services.escalation import store as clocks
from services.escalation.timers import fire_due_once
from shared import contract, metrics
from shared.clock import BusinessClock
from shared.messaging import HEADERS, BatchConsumer
from shared.reference import DEFAULT_JURISDICTION, load_jurisdiction
from shared.settings import Settings
from tests.integration.bus import cloud_event
from tests.integration.databases import fresh_database

pytestmark = pytest.mark.integration
PREFIX = "whistle_test_locks"
ORDERS = 12
ROUNDS = 4


def opened(n: int) -> dict[str, Any]:
    return {
        "work_order_id": f"WO-L-{n}",
        "source": "hotline",
        "category": "heating",
        "category_name": "供暖",
        "summary": "暖气不热",
        "address": None,
        "location": None,
        "street": "福新街道",
        "community": "福新社区",
        "grid": None,
        "property_company": None,
        "urgency": "normal",
        "contact": None,
    }


def alert(n: int, ids: list[str]) -> dict[str, Any]:
    # Each alert of its own area (its own cluster row): only the orders are shared.
    return {
        "category": "heating",
        "street": "福新街道",
        "community": f"社区{n}",
        "count": len(ids),
        "window_minutes": 60,
        "work_order_ids": ids,
    }


class Records:
    def __init__(self) -> None:
        self.offset = 0

    def __call__(
        self, topic: str, events: list[tuple[str, dict[str, Any]]]
    ) -> list[ConsumerRecord[Any, Any]]:
        out = []
        for key, event in events:
            value = orjson.dumps(event)
            out.append(
                ConsumerRecord(topic, 0, self.offset, 0, 0, key.encode(), value, None, 0, len(value), HEADERS)
            )
            self.offset += 1
        return out


def dispatch_consumer(engine: AsyncEngine) -> BatchConsumer:
    settings = Settings(database_prefix=PREFIX)
    return BatchConsumer(
        service="dispatch",
        engine=engine,
        inbox=orders.Inbox.__table__,  # type: ignore[arg-type]
        outbox=orders.Outbox.__table__,  # type: ignore[arg-type]
        routes=dispatch_handlers.routes(Policy.of(load_jurisdiction(DEFAULT_JURISDICTION), settings)),
        strict_topics=[],
        unit=DispatchUnit(timedelta(minutes=60)),
    )


def retries() -> float:
    return float(metrics.TRANSIENT_RETRIES.labels("dispatch")._value.get())


async def test_two_replicas_batches_over_the_same_orders_never_deadlock() -> None:
    async with fresh_database(PREFIX, "dispatch") as engine:
        one, other = dispatch_consumer(engine), dispatch_consumer(engine)
        records = Records()
        ids = [f"WO-L-{n}" for n in range(ORDERS)]
        new = [(i, cloud_event("intake.order.opened", opened(n))) for n, i in enumerate(ids)]
        await one.apply(await one.prepare(records(contract.INTAKE_ORDERS, new)))
        before = retries()
        for r in range(ROUNDS):
            # Alerts name many orders: one replica's in one order, the other's in the reverse. Each
            # batch locking its orders as its messages came, they took one each and waited.
            forward = [(f"a{r}", cloud_event("alert.cluster_detected", alert(2 * r, ids)))]
            backward = [(f"b{r}", cloud_event("alert.cluster_detected", alert(2 * r + 1, ids[::-1])))]
            batches = [
                await c.prepare(records(contract.ALERTS, b)) for c, b in ((one, forward), (other, backward))
            ]
            await asyncio.wait_for(asyncio.gather(one.apply(batches[0]), other.apply(batches[1])), timeout=60)
        async with engine.connect() as conn:
            levels = set((await conn.execute(text("SELECT level FROM orders"))).scalars())
            cancelled = (
                await conn.execute(text("SELECT count(*) FROM dispatches WHERE status = 'cancelled'"))
            ).scalar_one()
    assert retries() == before  # no batch was retried: none deadlocked
    assert levels == {"street"}  # the first alert raised every order, once
    assert cancelled == ORDERS  # each order's community dispatch, cancelled once


def clock(kind: str, due_at: datetime, started: datetime) -> dict[str, Any]:
    return {
        "id": f"D-X:{kind}",
        "work_order_id": "WO-X",
        "dispatch_id": "D-X",
        "department": "heat",
        "level": "community",
        "area": "夹河社区",
        "urgency": "normal",
        "kind": kind,
        "started_at": started,
        "due_at": due_at,
        "remind_at": due_at - timedelta(minutes=30),
        "reminded": False,
        "state": "open",
    }


async def fire_round(svc: Any) -> int:
    return await fire_due_once(svc, BusinessClock())


async def test_the_clock_loop_leaves_an_order_a_batch_holds_and_never_waits() -> None:
    async with fresh_database(PREFIX, "escalation") as engine:
        now = datetime.now(UTC)
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO business_clock (id, event_time, seen_at) VALUES (1, :t, :t)"), {"t": now}
            )
            # Past its accept deadline (a breach, which stops the order's clocks), not its resolve.
            started = now - timedelta(hours=3)
            await clocks.start(
                conn,
                [
                    clock("accept", now - timedelta(minutes=1), started),
                    clock("resolve", now + timedelta(days=1), started),
                ],
            )
        svc = SimpleNamespace(
            engine=engine,
            consumer=SimpleNamespace(outbox=clocks.Outbox.__table__),
            relay=SimpleNamespace(notify=lambda: None),
        )
        async with engine.connect() as batch:
            await batch.begin()
            # A batch of the order's events has its resolve clock (a deadline moved, say).
            await batch.execute(text("SELECT id FROM clocks WHERE id = 'D-X:resolve' FOR UPDATE"))
            # Holding the accept clock and waiting for the resolve one, it would wait on the batch
            # for good once the batch waited on it.
            fired = await asyncio.wait_for(fire_round(svc), timeout=10)
            await batch.rollback()
        assert fired == 0
        fired = await asyncio.wait_for(fire_round(svc), timeout=10)
        async with engine.connect() as conn:
            states = {i: st for i, st in (await conn.execute(text("SELECT id, state FROM clocks"))).all()}
            sent = (await conn.execute(text("SELECT count(*) FROM outbox"))).scalar_one()
    assert fired == 1
    assert states == {"D-X:accept": "fired", "D-X:resolve": "stopped"}
    assert sent > 0


def created(order_id: str) -> dict[str, Any]:
    return {
        "work_order_id": order_id,
        "status": "new",
        "level": "community",
        "category": "heating",
        "category_name": "供暖",
        "street": "福新街道",
        "community": "福新社区",
        "grid": None,
        "source": "hotline",
        "caused_by": "tests",
    }


async def test_a_message_the_unit_cannot_load_is_dead_lettered_and_the_rest_applied() -> None:
    async with fresh_database(PREFIX, "api") as engine:
        consumer = BatchConsumer(
            service="api",
            engine=engine,
            inbox=views.Inbox.__table__,  # type: ignore[arg-type]
            outbox=views.Outbox.__table__,  # type: ignore[arg-type]
            routes=api_handlers.routes([], {}),
            strict_topics=[],
            unit=ApiUnit(),
        )
        # An id longer than the read model stores: the unit's loading of the batch (which makes
        # every order's row first, to lock it) fails. That failure was the whole batch's, for good:
        # it was rewound and came again, and its partition stood still behind it.
        long_id = "WO-H-" + "9" * 100
        events = [(i, cloud_event("workorder.created", created(i))) for i in ("WO-H-L1", long_id, "WO-H-L2")]
        await asyncio.wait_for(
            consumer.apply(await consumer.prepare(Records()(contract.WORKORDER_EVENTS, events))), 30
        )
        async with engine.connect() as conn:
            stored = set((await conn.execute(text("SELECT id FROM orders"))).scalars())
            letters = [
                orjson.loads(p) for p in (await conn.execute(text("SELECT payload FROM outbox"))).scalars()
            ]
    assert stored == {"WO-H-L1", "WO-H-L2"}
    assert [(e["type"], e["data"]["original_offset"]) for e in letters] == [("deadletter.recorded", 1)]


async def test_an_alert_raises_the_orders_opened_before_it_in_its_own_batch() -> None:
    """Intake stages a cluster's orders and its alert together; dispatch may take both in one batch,
    the orders first. They are not written until the batch ends: the alert raises them where they
    are staged (before, it found none, and they stayed below the street)."""
    async with fresh_database(PREFIX, "dispatch") as engine:
        consumer = dispatch_consumer(engine)
        records = Records()
        ids = ["WO-L-s0", "WO-L-s1"]
        batch = [
            *records(
                contract.INTAKE_ORDERS,
                [(i, cloud_event("intake.order.opened", opened(0) | {"work_order_id": i})) for i in ids],
            ),
            *records(
                contract.ALERTS,
                [
                    (
                        "福新社区",
                        cloud_event("alert.cluster_detected", alert(0, ids) | {"community": "福新社区"}),
                    )
                ],
            ),
        ]
        await consumer.apply(await consumer.prepare(batch))
        async with engine.connect() as conn:
            levels: dict[str, str] = dict((await conn.execute(text("SELECT id, level FROM orders"))).all())
            dispatches = (
                await conn.execute(text("SELECT work_order_id, level, status FROM dispatches ORDER BY id"))
            ).all()
            history = (await conn.execute(text("SELECT work_order_id, event FROM history ORDER BY id"))).all()
            payloads = (await conn.execute(text("SELECT payload FROM outbox ORDER BY id"))).scalars()
            events = [(e["type"], e["subject"]) for e in map(orjson.loads, payloads)]
    assert levels == dict.fromkeys(ids, "street")
    for order in ids:
        first, *raised = [(lv, st) for o, lv, st in dispatches if o == order]
        assert first == ("community", "cancelled") and raised and set(raised) == {("street", "assigned")}
        assert ("workorder.escalated", order) in events
        # Opened once, raised once: nothing of the opening is recorded or published again.
        assert [e for o, e in history if o == order] == [
            "workorder.dispatched",
            "workorder.escalated",
            "workorder.dispatched",
        ]
        mine = [t for t, o in events if o == order]
        assert (mine.count("workorder.dispatched"), mine.count("dispatch.cancelled")) == (2, 1)
