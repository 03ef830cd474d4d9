"""Traces through the real stack: an Open311 request with a traceparent becomes a call, an order,
dispatches, notifications, a missed deadline, an alert and an escalation, and every one of those
events, in every service's topics, carries the request's trace id (body and Kafka header alike).
`whistle trace` draws the same path from the topics."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shared import contract, tracing
from tests.integration.bus import Bus, Seen
from tests.integration.flows import PHONE, dispatched, of_order
from tools.stack import Stack
from tools.trace import about, order_events, render

pytestmark = pytest.mark.integration
COMPOUND = "海悦府"  # no other test's: repeats at one compound are merged


@pytest.fixture
async def open311(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    base = f"http://127.0.0.1:{stack.port('api')}/open311/v2"
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        yield client


def the_order(order: str) -> Any:
    call_id = order.removeprefix("WO-H-")
    return lambda s: about(order, s.key if s.key != call_id else call_id, s.event)


async def test_one_request_is_one_trace_in_every_services_topics(
    bus: Bus, stack: Stack, open311: httpx.AsyncClient
) -> None:
    keys = json.loads((stack.home / "api-keys.json").read_text(encoding="utf-8"))
    caller = tracing.root()  # the web site's span, as its own tracer would send it
    posted = await open311.post(
        "/requests.json",
        headers={"traceparent": caller.traceparent},
        data={
            "api_key": keys["channel"],
            "service_code": "gas",
            "description": f"{COMPOUND}2号楼厨房里一股煤气味，怕是漏气了",
            "address_string": f"{COMPOUND}2号楼",
            "first_name": "大爷",
            "last_name": "孙",
            "phone": PHONE,
        },
    )
    assert posted.status_code == 201, posted.text
    order = posted.json()[0]["service_request_id"]

    # An emergency: signed for by nobody within 4 s (the test stack's limit), it is reminded,
    # breached, alerted and escalated by escalation's clocks, and dispatched again one level up.
    [lead] = [s.data for s in await dispatched(bus, order) if s.data["role"] == "lead"]
    assert lead["urgency"] == "emergency"
    await bus.wait_for(of_order(order, "alert.sla_breached"), within=30)
    await bus.wait_for(lambda s: s.topic == contract.ESCALATION_COMMANDS and s.data["work_order_id"] == order)
    [escalated] = await bus.wait_for(of_order(order, "workorder.escalated"))
    await bus.wait_for(
        lambda s: (
            s.type == "dispatch.assigned"
            and s.data["work_order_id"] == order
            and s.data["level"] == escalated.data["to_level"]
        )
    )
    await bus.wait_for(
        lambda s: s.topic == contract.NOTIFICATIONS and s.data["work_order_id"] == order, count=2
    )

    seen: list[Seen] = bus.matching(the_order(order))
    by_service = {s.event["source"].removeprefix("whistle/") for s in seen}
    assert by_service == {"api", "intake", "dispatch", "escalation", "notify"}
    topics = {s.topic for s in seen}
    assert {
        contract.HOTLINE_CALLS,
        contract.INTAKE_ORDERS,
        contract.INTAKE_CONTACTS,
        contract.WORKORDER_EVENTS,
        contract.department_topic(lead["department"]),
        contract.ALERTS,
        contract.ESCALATION_COMMANDS,
        contract.NOTIFICATIONS,
    } <= topics

    # One trace: the request's. Each event's header is its body's attribute.
    traces = {s.event["traceparent"]: tracing.parse(s.event["traceparent"]) for s in seen}
    assert {t.trace_id for t in traces.values() if t} == {caller.trace_id}, sorted(traces)
    for s in seen:
        assert s.headers["traceparent"] == s.event["traceparent"].encode()
        assert s.headers.get("tracestate") == (
            s.event["tracestate"].encode() if "tracestate" in s.event else None
        )

    # Every span but the api's came from a span whose events are on the topics; the api's from the
    # web site's. The tree `whistle trace` draws from them has one root.
    spans = {t.span_id for t in traces.values() if t}
    for s in seen:
        parent = tracing.parent_of(s.event.get("tracestate"))
        assert parent == caller.span_id if s.event["source"] == "whistle/api" else parent in spans, s.type
    lines = render(await order_events(stack.settings, order))
    assert lines[0] == f"trace {caller.trace_id}"
    assert [line for line in lines if line.startswith("trace ")] == [lines[0]]
    assert sum("not on the topics" in line for line in lines) == 1  # the api's span: the web site's parent
    assert "without a traceparent" not in "\n".join(lines)
