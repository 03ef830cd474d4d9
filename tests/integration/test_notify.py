"""Notify against a real local HTTP sink: signed webhooks, SMS, retries, exactly-once delivery."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable

import pytest

from shared import contract
from tests.integration.bus import Bus
from tests.integration.conftest import WEBHOOK_SECRET
from tests.integration.flows import PHONE, call, dispatched, uid
from tests.integration.sink import Received, Sink

pytestmark = pytest.mark.integration


def about(order: str, path: str) -> Callable[[Received], bool]:
    return lambda r: r.path == path and order.encode() in r.body


async def test_departments_get_signed_webhooks_and_residents_get_sms(bus: Bus, sink: Sink) -> None:
    call_id = uid()
    order = f"WO-H-{call_id}"
    await bus.send(contract.HOTLINE_CALLS, call_id, call(call_id, "马山花园", "3号楼暖气一点都不热"))
    lead = (await dispatched(bus, order))[0].data

    [webhook] = await asyncio.to_thread(sink.wait_for, about(order, "/webhook"))
    timestamp = webhook.headers["x-whistle-timestamp"]
    expected = hmac.new(WEBHOOK_SECRET.encode(), timestamp.encode() + b"." + webhook.body, hashlib.sha256)
    assert webhook.headers["x-whistle-signature"] == "sha256=" + expected.hexdigest()
    assert abs(time.time() - int(timestamp)) < 120  # fresh: a receiver rejects old timestamps
    body = webhook.json
    assert body["audience"] == "department" and body["recipient"] == lead["department"]
    assert body["template"].startswith("new_work@") and order in body["text"]
    assert webhook.key == body["notification_id"]

    [sms] = await asyncio.to_thread(sink.wait_for, about(order, "/sms"))
    assert sms.json["to"] == PHONE  # the one place the number goes in clear: the SMS gateway
    assert order in sms.json["text"] and sms.json["text"].startswith("【12345】")
    [sent] = await bus.wait_for(
        lambda s: s.type == "notification.sent" and s.data["notification_id"] == sms.key
    )
    assert (
        sent.data["channel"] == "sms" and sent.data["audience"] == "resident" and sent.data["attempts"] == 1
    )


async def test_a_failing_gateway_recovers_and_every_notification_arrives_once(bus: Bus, sink: Sink) -> None:
    call_id = uid()
    order = f"WO-H-{call_id}"
    mine = about(order, "/sms")
    sink.fail(mine, times=4)  # more than the breaker allows: the SMS channel pauses, then recovers
    await bus.send(contract.HOTLINE_CALLS, call_id, call(call_id, "山水龙城", "家里暖气片冰凉"))

    [sms] = await asyncio.to_thread(sink.wait_for, mine, 1, 60)
    [sent] = await bus.wait_for(
        lambda s: s.type == "notification.sent" and s.data["notification_id"] == sms.key
    )
    assert sent.data["attempts"] == 5  # four 500s, then delivered
    failures = [r for r in sink.received if r.status == 500 and order.encode() in r.body]
    assert len(failures) == 4 and {r.key for r in failures} == {sms.key}
    # The department's webhook was not held up by the failing SMS channel, and nothing came twice.
    webhooks = sink.delivered(about(order, "/webhook"))
    assert webhooks
    keys = [r.key for r in sink.delivered(lambda r: order.encode() in r.body)]
    assert len(keys) == len(set(keys)), "a notification was delivered twice"
