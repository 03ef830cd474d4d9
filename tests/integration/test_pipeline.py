"""The whole system through Kafka alone: real broker, real PostgreSQL, the services as processes."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest

from shared import contract
from tests.integration.bus import Bus, Seen, cloud_event

pytestmark = pytest.mark.integration
PHONE = "13812345678"


def uid(prefix: str = "T") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def call(call_id: str, content: str = "菁华公寓3号楼暖气不热，屋里才十五度", **data: Any) -> dict[str, Any]:
    body = {
        "call_id": call_id,
        "channel": "phone",
        "content": content,
        "caller": {"name": "孙大爷", "phone": PHONE},
        "address": "福莱山街道夹河社区菁华公寓3号楼",
    } | data
    return cloud_event("hotline.call.received", body, subject=call_id)


def of_order(order: str, type: str) -> Any:
    return lambda s: s.type == type and s.data["work_order_id"] == order


async def dispatched(bus: Bus, order: str) -> list[Seen]:
    """The lifecycle event of the first dispatch and the dispatches it sent."""
    [event] = await bus.wait_for(of_order(order, "workorder.dispatched"))
    count = len(event.data["dispatches"])
    return await bus.wait_for(of_order(order, "dispatch.assigned"), count=count)


async def respond(bus: Bus, type: str, dispatch: dict[str, Any], **extra: Any) -> dict[str, Any]:
    data = {k: dispatch[k] for k in ("dispatch_id", "work_order_id", "department")} | extra
    event = cloud_event(type, data, subject=dispatch["work_order_id"])
    await bus.send(contract.DISPATCH_RESPONSES, dispatch["work_order_id"], event)
    return event


async def dead_letters(bus: Bus, key: str, count: int) -> list[dict[str, Any]]:
    found = await bus.wait_for(lambda s: s.topic == contract.DEADLETTER and s.key == key, count=count)
    return [s.data for s in found]


async def test_a_call_reaches_a_department_and_ends_closed(bus: Bus) -> None:
    call_id = uid()
    order = f"WO-H-{call_id}"
    await bus.send(contract.HOTLINE_CALLS, call_id, call(call_id))

    [created] = await bus.wait_for(of_order(order, "workorder.created"))
    assert created.data["category"] == "heating" and created.data["category_name"] == "供暖"
    assert created.data["community"] == "夹河社区" and created.data["source"] == "hotline"
    assigned = await dispatched(bus, order)
    lead = next(s for s in assigned if s.data["role"] == "lead")
    assert lead.topic == contract.department_topic(lead.data["department"])
    assert lead.headers["content-type"] == b"application/cloudevents+json"
    assert lead.data["attempt"] == 1
    assert lead.data["contact"] == {"name": "孙**", "phone": "138****5678"}

    accepted = await respond(bus, "dispatch.accepted", lead.data, note="已签收")
    await bus.send(contract.DISPATCH_RESPONSES, order, accepted)  # the same event again: one effect
    await bus.wait_for(of_order(order, "workorder.accepted"))
    await respond(bus, "dispatch.resolved", lead.data, result="已更换暖气阀门，室温22度")
    [resolved] = await bus.wait_for(of_order(order, "workorder.resolved"))
    assert resolved.data["status"] == "resolved"

    feedback = {"work_order_id": order, "satisfaction": "satisfied", "resolved": True}
    await bus.send(contract.FEEDBACK, order, cloud_event("resident.feedback.received", feedback))
    [closed] = await bus.wait_for(of_order(order, "workorder.closed"))
    assert closed.data["status"] == "closed"
    assert len(bus.matching(of_order(order, "workorder.accepted"))) == 1

    # The resident hears of it; the phone number is clear only where the contract allows.
    await bus.wait_for(lambda s: s.type == "notification.sent" and s.data["work_order_id"] == order)
    allowed = {contract.HOTLINE_CALLS, contract.INTAKE_CONTACTS}
    leaks = bus.matching(lambda s: PHONE.encode() in s.value and s.topic not in allowed)
    assert leaks == []


async def test_the_same_call_delivered_twice_has_one_effect(bus: Bus) -> None:
    call_id = uid()
    order = f"WO-H-{call_id}"
    event = call(call_id)
    await bus.send(contract.HOTLINE_CALLS, call_id, event)
    await bus.send(contract.HOTLINE_CALLS, call_id, event)  # redelivery: same event id
    await bus.send(contract.HOTLINE_CALLS, call_id, call(call_id))  # a gateway retry: new id, same call
    sentinel = uid()
    await bus.send(contract.HOTLINE_CALLS, call_id, call(sentinel))  # same partition, behind them
    await bus.wait_for(of_order(f"WO-H-{sentinel}", "workorder.created"))
    await dispatched(bus, order)

    assert len(bus.matching(of_order(order, "workorder.created"))) == 1
    assert len(bus.matching(of_order(order, "workorder.dispatched"))) == 1


BAD_CALLS: dict[str, tuple[bytes, str]] = {
    "not JSON": (b"{not json", "not valid JSON"),
    "not an object": (b"[1, 2, 3]", "expected a JSON object"),
    "not a CloudEvent": (orjson.dumps({"id": "x", "data": {}}), "specversion"),
    "unknown type": (orjson.dumps(cloud_event("hotline.call.updated", {})), "unknown event type"),
    "no content": (
        orjson.dumps(cloud_event("hotline.call.received", {"call_id": "c1", "channel": "phone"})),
        "data.content",
    ),
    "unknown channel": (orjson.dumps(call("c2", channel="fax")), "data.channel"),
    "content too long": (orjson.dumps(call("c3", content="暖" * 4001)), "data.content"),
    "time without offset": (orjson.dumps(call("c4") | {"time": "2026-11-21T08:00:00"}), "time"),
}


async def test_bad_input_is_dead_lettered_and_the_next_message_flows(bus: Bus) -> None:
    key = uid("BAD")
    for raw, _ in BAD_CALLS.values():
        await bus.send(contract.HOTLINE_CALLS, key, raw)
    good = uid()
    await bus.send(contract.HOTLINE_CALLS, key, call(good))

    await bus.wait_for(of_order(f"WO-H-{good}", "workorder.created"))
    letters = await dead_letters(bus, key, count=len(BAD_CALLS))
    assert len(letters) == len(BAD_CALLS)
    for letter, (name, (raw, reason)) in zip(letters, BAD_CALLS.items(), strict=True):
        assert reason in letter["error"], name
        assert letter["raw"] == raw.decode()
        assert letter["original_topic"] == contract.HOTLINE_CALLS
        assert letter["original_key"] == key and letter["original_offset"] >= 0


async def test_a_grid_report_from_an_unknown_grid_is_refused(bus: Bus) -> None:
    report_id = uid("GR")
    report = {
        "report_id": report_id,
        "grid_id": "NO-SUCH-GRID",
        "worker_id": "W-0001",
        "category": "供暖",
        "description": "楼道暖气管漏水",
    }
    await bus.send(contract.GRID_REPORTS, report_id, cloud_event("grid.issue.reported", report))
    [letter] = await dead_letters(bus, report_id, count=1)
    assert "data.grid_id" in letter["error"] and "NO-SUCH-GRID" in letter["error"]


async def test_responses_that_do_not_fit_are_refused_and_change_nothing(bus: Bus) -> None:
    call_id = uid()
    order = f"WO-H-{call_id}"
    await bus.send(contract.HOTLINE_CALLS, call_id, call(call_id))
    lead = next(s for s in await dispatched(bus, order) if s.data["role"] == "lead").data
    other = "gongan" if lead["department"] != "gongan" else "heat"

    await respond(bus, "dispatch.accepted", lead | {"department": other})
    await respond(bus, "dispatch.accepted", lead | {"dispatch_id": f"{order}-D99"})
    await respond(bus, "dispatch.resolved", lead, result="说办完了")  # never accepted
    letters = await dead_letters(bus, order, count=3)
    assert "data.department" in letters[0]["error"] and other in letters[0]["error"]
    assert "data.dispatch_id" in letters[1]["error"]
    assert "cannot apply resolved to a dispatch that is assigned" in letters[2]["error"]
    assert bus.matching(of_order(order, "workorder.accepted")) == []

    await respond(bus, "dispatch.accepted", lead)
    [accepted] = await bus.wait_for(of_order(order, "workorder.accepted"))
    assert accepted.data["status"] == "accepted"


async def test_a_missed_accept_by_climbs_the_ladder_once(bus: Bus) -> None:
    call_id = uid()
    order = f"WO-H-{call_id}"
    gas = call(call_id, content="菁华公寓5号楼楼道里煤气味特别大，是不是燃气泄漏了", urgency="normal")
    await bus.send(contract.HOTLINE_CALLS, call_id, gas)
    first = (await dispatched(bus, order))[0].data
    assert first["urgency"] == "emergency"  # danger words outrank what the caller said

    [escalated] = await bus.wait_for(of_order(order, "workorder.escalated"), within=60)
    assert escalated.data["from_level"] == first["level"]
    assert escalated.data["to_level"] != first["level"]
    assert "not signed for" in escalated.data["reason"]
    await bus.wait_for(
        lambda s: (
            s.topic == contract.ALERTS and s.type == "alert.sla_breached" and s.data["work_order_id"] == order
        )
    )
    await bus.wait_for(
        lambda s: s.type == "dispatch.cancelled" and s.data["dispatch_id"] == first["dispatch_id"]
    )
    await bus.wait_for(
        lambda s: (
            s.type == "dispatch.assigned"
            and s.data["work_order_id"] == order
            and s.data["level"] == escalated.data["to_level"]
        )
    )
    from_first = [
        s
        for s in bus.matching(of_order(order, "workorder.escalated"))
        if s.data["from_level"] == first["level"]
    ]
    assert len(from_first) == 1
