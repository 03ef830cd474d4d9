"""Notify's manners over business time: quiet hours hold a resident's SMS until morning, a resident
hears of each state once, and contacts are forgotten a retention period after the order closes.

Business time comes from event times (notify's clock never runs backwards), so these tests run on
a notify of its own, fed past nights and mornings as the rest of the pipeline would publish them:
no sleeping until 07:00."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared import contract
from tests.integration.bus import Bus, cloud_event
from tests.integration.conftest import TEST_ENV, fresh
from tests.integration.flows import PHONE, eventually, uid
from tests.integration.sink import Received, Sink
from tools.stack import ROOT, Stack

pytestmark = pytest.mark.integration
LOCAL = ZoneInfo("Asia/Shanghai")  # the sample jurisdiction's time zone
ENV = TEST_ENV | {
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19093",
    "HTTP_PORT_BASE": "18290",
    "DATABASE_PREFIX": "whistle_test_manners",
    "NOTIFY_QUIET_HOURS": "22:00-07:00",
    "NOTIFY_CONTACT_RETENTION_DAYS": "1",
    # A retry comes 2 s after a failure: time for a test to kill notify in between.
    "NOTIFY_BACKOFF_SECONDS": "2",
    "NOTIFY_BACKOFF_CAP_SECONDS": "4",
}


@pytest.fixture(scope="module")
def notify_alone(sink: Sink) -> Iterator[Stack]:
    with fresh(Stack(home=ROOT / ".whistle" / "test-manners", env=dict(ENV)), ("notify",)) as stack:
        yield stack


@pytest.fixture(scope="module")
async def feed(notify_alone: Stack) -> AsyncIterator[Bus]:
    bus = Bus(notify_alone.settings)
    await bus.start()
    yield bus
    await bus.stop()


@pytest.fixture(scope="module")
async def notify_db(notify_alone: Stack) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(notify_alone.settings.database_url_for("notify"))
    yield engine
    await engine.dispose()


def local(day: date, hour: int, minute: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=LOCAL)


def at(when: datetime, type: str, data: dict[str, Any]) -> dict[str, Any]:
    return cloud_event(type, data, subject=data["work_order_id"]) | {"time": when.isoformat()}


async def contact(
    bus: Bus, order: str, when: datetime, urgency: str = "normal", reporter: str = "", phone: str = PHONE
) -> None:
    """The contact of the order's own reporter, or (``reporter``) of a repeat merged into it."""
    data = {
        "work_order_id": order,
        "reporter_id": reporter or order,
        "name": "孙大爷",
        "phone": phone,
        "urgency": urgency,
    }
    await bus.send(contract.INTAKE_CONTACTS, order, at(when, "intake.contact.recorded", data))


async def lifecycle(
    bus: Bus, order: str, type: str, when: datetime, status: str, **extra: Any
) -> dict[str, Any]:
    data = {
        "work_order_id": order,
        "status": status,
        "level": "community",
        "category": "heating",
        "category_name": "供暖",
        "street": None,
        "community": None,
        "grid": None,
        "source": "hotline",
        "caused_by": uid("E"),
    } | extra
    event = at(when, type, data)
    await bus.send(contract.WORKORDER_EVENTS, order, event)
    return event


async def tick(bus: Bus, when: datetime) -> None:
    """Business time moves on to ``when``: another order is escalated. Once the supervisors are
    told (``notification.sent`` commits with the round that sent it), notify has had a round of
    sending and housekeeping in business time ``when``."""
    order = uid("WO-H-T")
    extra = {"from_level": "community", "to_level": "street", "reason": "超时"}
    await lifecycle(bus, order, "workorder.escalated", when, "dispatched", **extra)
    await bus.wait_for(lambda s: s.type == "notification.sent" and s.data["work_order_id"] == order)


def sms_about(order: str) -> Callable[[Received], bool]:
    return lambda r: r.path == "/sms" and order in r.json["text"]


async def test_quiet_hours_hold_an_sms_until_morning_and_the_contact_is_forgotten_after_retention(
    feed: Bus, sink: Sink, notify_db: AsyncEngine
) -> None:
    night = date.today() - timedelta(days=4)  # business time may not run ahead of the wall clock
    morning = night + timedelta(days=1)
    quiet, emergency = uid("WO-H-Q"), uid("WO-H-E")

    async def held() -> Any:
        async with notify_db.connect() as conn:
            sql = "SELECT hold_until FROM notifications WHERE work_order_id = :o AND status = 'pending'"
            return (await conn.execute(text(sql), {"o": quiet})).scalar()

    async def contacts_left() -> int:
        async with notify_db.connect() as conn:
            sql = "SELECT count(*) FROM contacts WHERE work_order_id = :o"
            return int((await conn.execute(text(sql), {"o": quiet})).scalar_one())

    # 23:30: a resident's call is recorded; the SMS that says so waits for 07:00.
    await contact(feed, quiet, local(night, 23, 30))
    assert await eventually(held) == local(morning, 7, 0)
    # 23:31: an emergency is told at once, night or not; the held SMS still waits.
    await contact(feed, emergency, local(night, 23, 31), urgency="emergency")
    await asyncio.to_thread(sink.wait_for, sms_about(emergency))
    assert not sink.delivered(sms_about(quiet))

    # 07:01: the held SMS goes out, once.
    await tick(feed, local(morning, 7, 1))
    [sms] = await asyncio.to_thread(sink.wait_for, sms_about(quiet))
    assert sms.json["to"] == PHONE and "已受理" in sms.json["text"]
    await feed.wait_for(lambda s: s.type == "notification.sent" and s.data["notification_id"] == sms.key)

    # The order closes at 07:05; the resident's phone is kept for the retention period (a day) ...
    await lifecycle(feed, quiet, "workorder.closed", local(morning, 7, 5), "closed")

    async def kept_until() -> Any:
        async with notify_db.connect() as conn:
            sql = "SELECT delete_after FROM contacts WHERE work_order_id = :o"
            return (await conn.execute(text(sql), {"o": quiet})).scalar()

    assert await eventually(kept_until) == local(morning + timedelta(days=1), 7, 5)
    await tick(feed, local(morning + timedelta(days=1), 7, 4))
    assert await contacts_left() == 1  # 07:04 the next day: not yet
    # ... and forgotten once business time passes it.
    await tick(feed, local(morning + timedelta(days=1), 7, 6))
    assert await contacts_left() == 0


async def test_each_resident_hears_of_each_state_once(feed: Bus, sink: Sink, notify_db: AsyncEngine) -> None:
    # Daytime, before the other test's night: quiet hours and the clock leave these alone.
    day = date.today() - timedelta(days=6)
    order, repeat = uid("WO-H-S"), uid("WO-H-R")
    await contact(feed, order, local(day, 9, 0))
    await asyncio.to_thread(sink.wait_for, sms_about(order))  # (contacts come on a topic of their own)
    first = await lifecycle(
        feed, order, "workorder.accepted", local(day, 9, 10), "accepted", department="heat"
    )
    await feed.send(contract.WORKORDER_EVENTS, order, first)  # redelivered: the inbox drops it
    await asyncio.to_thread(sink.wait_for, sms_about(order), 2)
    # A second resident calls about the same problem; the repeat is merged into the order.
    await contact(feed, order, local(day, 9, 20), reporter=repeat, phone="13900001111")
    await asyncio.to_thread(sink.wait_for, sms_about(order), 3)
    # Returned, and signed for by the next department: only the newcomer has news.
    await lifecycle(feed, order, "workorder.accepted", local(day, 9, 40), "accepted", department="city")
    await lifecycle(feed, order, "workorder.resolved", local(day, 11, 0), "resolved", result="已修复")
    await lifecycle(feed, order, "workorder.reopened", local(day, 12, 0), "dispatched")
    await lifecycle(feed, order, "workorder.resolved", local(day, 15, 0), "resolved", result="再次修复")

    rounds = ["resolved", "follow_up", "reopened", "resolved", "follow_up"]
    told = {order: ["received", "accepted", *rounds], repeat: ["joined", "accepted", *rounds]}
    count = sum(len(t) for t in told.values())
    await asyncio.to_thread(sink.wait_for, sms_about(order), count)
    # All delivered, so every event before the last was applied (one partition, in order): what
    # notify planned for this order is complete.
    async with notify_db.connect() as conn:
        sql = "SELECT recipient, template FROM notifications WHERE work_order_id = :o"
        planned: dict[str, list[str]] = {}
        for recipient, template in await conn.execute(text(sql), {"o": order}):
            planned.setdefault(recipient, []).append(template)
    assert {r: sorted(t) for r, t in planned.items()} == {r: sorted(t) for r, t in told.items()}
    delivered = sink.delivered(sms_about(order))
    assert len(delivered) == count and len({r.key for r in delivered}) == count
    assert {r.json["to"] for r in delivered} == {PHONE, "13900001111"}


async def test_a_resident_whose_contact_comes_after_the_orders_first_states_hears_of_each_once(
    feed: Bus, sink: Sink, notify_db: AsyncEngine
) -> None:
    # The contact race: the contact comes on a topic of its own, and here after the order was
    # signed for (twice: after a return), and resolved.
    day = date.today() - timedelta(days=6)
    order = uid("WO-H-L")

    async def kept() -> int:
        async with notify_db.connect() as conn:
            sql = "SELECT count(*) FROM unheard_states WHERE work_order_id = :o"
            return int((await conn.execute(text(sql), {"o": order})).scalar_one())

    await lifecycle(feed, order, "workorder.accepted", local(day, 10, 0), "accepted", department="heat")
    await lifecycle(feed, order, "workorder.accepted", local(day, 10, 5), "accepted", department="city")
    await lifecycle(feed, order, "workorder.resolved", local(day, 10, 30), "resolved", result="已修复")

    async def all_kept() -> bool:
        return await kept() == 3

    await eventually(all_kept)
    assert not sink.delivered(sms_about(order))  # nobody to tell yet

    data = {"work_order_id": order, "reporter_id": order, "name": "孙大爷", "phone": PHONE}
    recorded = at(local(day, 10, 40), "intake.contact.recorded", data)
    await feed.send(contract.INTAKE_CONTACTS, order, recorded)
    await feed.send(contract.INTAKE_CONTACTS, order, recorded)  # redelivered: the inbox drops it
    told = ["received", "accepted", "resolved", "follow_up"]
    await asyncio.to_thread(sink.wait_for, sms_about(order), len(told))
    assert await kept() == 0  # told: not kept longer
    # What comes after the contact is told as usual.
    await lifecycle(feed, order, "workorder.reopened", local(day, 11, 0), "dispatched")
    told.append("reopened")
    await asyncio.to_thread(sink.wait_for, sms_about(order), len(told))

    async with notify_db.connect() as conn:
        sql = "SELECT template FROM notifications WHERE work_order_id = :o AND audience = 'resident'"
        planned = sorted(t for (t,) in await conn.execute(text(sql), {"o": order}))
    assert planned == sorted(told)
    delivered = sink.delivered(sms_about(order))
    assert len(delivered) == len(told) and len({r.key for r in delivered}) == len(told)
    assert "heat" in next(r.json["text"] for r in delivered if "签收" in r.json["text"])  # the first to sign


async def test_a_notification_survives_a_crash_of_notify_and_is_delivered_once(
    notify_alone: Stack, feed: Bus, sink: Sink, notify_db: AsyncEngine
) -> None:
    order = uid("WO-H-K")
    sink.fail(sms_about(order), times=1)
    await contact(feed, order, local(date.today() - timedelta(days=6), 10, 0))

    async def first_attempt_recorded() -> bool:
        async with notify_db.connect() as conn:
            sql = "SELECT attempts FROM notifications WHERE work_order_id = :o"
            return (await conn.execute(text(sql), {"o": order})).scalar() == 1

    await eventually(first_attempt_recorded)
    notify_alone.kill("notify")  # SIGKILL before the retry is due: only the database remembers
    notify_alone.start_service("notify")
    await asyncio.to_thread(notify_alone.wait_ready, ("notify",))

    [sms] = await asyncio.to_thread(sink.wait_for, sms_about(order))
    [sent] = await feed.wait_for(
        lambda s: s.type == "notification.sent" and s.data["notification_id"] == sms.key
    )
    assert sent.data["attempts"] == 2  # the 500 before the crash, then delivered after it
    assert len(sink.delivered(sms_about(order))) == 1
