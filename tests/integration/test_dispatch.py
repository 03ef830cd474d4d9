"""Dispatch through Kafka alone: joint handling, returns, extensions, reopening, the three rates."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from shared import contract
from tests.integration.bus import Bus, cloud_event
from tests.integration.flows import call, dead_letters, dispatched, of_order, respond, uid
from tools.stack import Stack

pytestmark = pytest.mark.integration


def lead_of(assigned: list[Any]) -> dict[str, Any]:
    return next(s.data for s in assigned if s.data["role"] == "lead")


async def resolve(bus: Bus, dispatch: dict[str, Any]) -> None:
    await respond(bus, "dispatch.accepted", dispatch, note="收到")
    await respond(bus, "dispatch.resolved", dispatch, result="已处理")


async def test_joint_handling_has_one_lead_and_two_assists_and_follows_the_lead(bus: Bus) -> None:
    call_id = uid()
    order = f"WO-H-{call_id}"
    await bus.send(contract.HOTLINE_CALLS, call_id, call(call_id, "翠湖苑", "顶楼有人私搭乱建加盖彩钢房"))
    assigned = await dispatched(bus, order)
    roles = sorted((s.data["role"], s.data["department"]) for s in assigned)
    assert [r for r, _ in roles] == ["assist", "assist", "lead"]
    assert {s.data["level"] for s in assigned} == {"street"}
    assert all(s.topic == contract.department_topic(s.data["department"]) for s in assigned)
    assists = [s.data for s in assigned if s.data["role"] == "assist"]

    await resolve(bus, assists[0])  # an assisting department's result is recorded, nothing more
    sentinel = await respond(bus, "dispatch.progress", lead_of(assigned), note="已到现场")
    await bus.wait_for(lambda s: s.topic == contract.DISPATCH_RESPONSES and s.event["id"] == sentinel["id"])
    await resolve(bus, lead_of(assigned))
    [resolved] = await bus.wait_for(of_order(order, "workorder.resolved"))
    assert resolved.data["department"] == lead_of(assigned)["department"]
    assert len(bus.matching(of_order(order, "workorder.resolved"))) == 1


async def test_a_return_moves_the_order_to_the_next_department_and_only_once(bus: Bus) -> None:
    call_id = uid()
    order = f"WO-H-{call_id}"
    await bus.send(
        contract.HOTLINE_CALLS, call_id, call(call_id, "嵩山小区", "门口乱停车，把消防通道出口都堵住了")
    )
    first = lead_of(await dispatched(bus, order))
    returned = {"reason": "not_our_responsibility", "note": "小区内部道路不归我们管"}
    rejection = await respond(bus, "dispatch.rejected", first, **returned)

    await bus.wait_for(lambda s: s.type == "dispatch.cancelled" and s.data["work_order_id"] == order)
    again = (await bus.wait_for(of_order(order, "workorder.dispatched"), count=2))[-1]
    leads = [d for d in again.data["dispatches"] if d["role"] == "lead"]
    assert leads and leads[0]["department"] != first["department"]
    assert first["department"] not in {d["department"] for d in again.data["dispatches"]}

    # The same department returning it again is refused.
    await bus.send(contract.DISPATCH_RESPONSES, order, rejection | {"id": uid("again")})
    [letter] = await dead_letters(bus, order, count=1)
    assert "already returned this order once" in letter["error"]


async def test_an_extension_is_granted_once_within_the_policy_and_refused_otherwise(bus: Bus) -> None:
    call_id = uid()
    order = f"WO-H-{call_id}"
    await bus.send(contract.HOTLINE_CALLS, call_id, call(call_id, "金桥花园", "2号楼暖气片冰凉"))
    lead = lead_of(await dispatched(bus, order))
    await respond(bus, "dispatch.accepted", lead)
    await bus.wait_for(of_order(order, "workorder.accepted"))
    due = datetime.fromisoformat(lead["resolve_by"])  # policy: at most the time first allowed, once

    await respond(
        bus, "dispatch.extension_requested", lead, resolve_by=(due + timedelta(days=30)).isoformat()
    )
    await respond(
        bus, "dispatch.extension_requested", lead, resolve_by=(due + timedelta(seconds=60)).isoformat()
    )
    await respond(
        bus, "dispatch.extension_requested", lead, resolve_by=(due + timedelta(seconds=90)).isoformat()
    )
    letters = await dead_letters(bus, order, count=2)
    assert "beyond the longest extension allowed" in letters[0]["error"]
    assert "only one is allowed" in letters[1]["error"]
    [moved] = await bus.wait_for(
        lambda s: s.type == "dispatch.deadline.moved" and s.data["work_order_id"] == order
    )
    assert datetime.fromisoformat(moved.data["resolve_by"]) == due + timedelta(seconds=60)


async def test_a_dissatisfied_resident_reopens_the_order_to_the_same_lead_with_less_time(bus: Bus) -> None:
    call_id = uid()
    order = f"WO-H-{call_id}"
    await bus.send(contract.HOTLINE_CALLS, call_id, call(call_id, "黄河花园", "楼道里暖气管子漏水"))
    first = lead_of(await dispatched(bus, order))
    await resolve(bus, first)
    await bus.wait_for(of_order(order, "workorder.resolved"))
    unhappy = {"work_order_id": order, "satisfaction": "dissatisfied", "resolved": False, "comment": "还在漏"}
    await bus.send(contract.FEEDBACK, order, cloud_event("resident.feedback.received", unhappy))

    [reopened] = await bus.wait_for(of_order(order, "workorder.reopened"))
    assert "dissatisfied" in reopened.data["reason"]
    assigned = await bus.wait_for(of_order(order, "dispatch.assigned"), count=2)
    second = next(s.data for s in assigned if s.data["dispatch_id"] != first["dispatch_id"])
    assert second["department"] == first["department"] and second["attempt"] == 2

    def allowed(d: dict[str, Any]) -> timedelta:
        return datetime.fromisoformat(d["resolve_by"]) - datetime.fromisoformat(d["accept_by"])

    assert allowed(second) < allowed(first)  # 重办: half the time


async def test_the_three_rates_are_exported_per_department_and_community(bus: Bus, stack: Stack) -> None:
    call_id = uid()
    order = f"WO-H-{call_id}"
    await bus.send(contract.HOTLINE_CALLS, call_id, call(call_id, "长江小区", "家里停水了一整天"))
    lead = lead_of(await dispatched(bus, order))
    await resolve(bus, lead)
    await bus.wait_for(of_order(order, "workorder.resolved"))
    happy = {"work_order_id": order, "satisfaction": "satisfied", "resolved": True}
    await bus.send(contract.FEEDBACK, order, cloud_event("resident.feedback.received", happy))
    await bus.wait_for(of_order(order, "workorder.closed"))

    wanted = [
        f'whistle_rate{{name="{lead["department"]}",rate="response",scope="department"}}',
        f'whistle_rate{{name="{lead["department"]}",rate="satisfaction",scope="department"}}',
        'whistle_rate{name="长江路社区",rate="resolution",scope="community"}',
        'whistle_workorders_total{type="workorder.closed"}',  # lifecycle events are counted too
    ]
    url = f"http://127.0.0.1:{stack.port('dispatch')}/metrics"
    text = await metrics_with(url, wanted)
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith(("whistle_rate{", "whistle_workorders_total{"))
    }
    for w in wanted[:3]:
        assert 0.0 <= values[w] <= 1.0
    assert values[wanted[1]] > 0  # a satisfied resident counts for the department that resolved it
    assert values[wanted[3]] >= 1
    async with httpx.AsyncClient() as client:  # one family of series, as Prometheus may ask
        only = (await client.get(url, params={"name[]": "whistle_rate"})).text
    assert wanted[0] in only and "whistle_workorders_total" not in only


async def metrics_with(url: str, wanted: list[str], within: float = 30) -> str:
    """The /metrics text once it shows every wanted series (the gauges refresh every second here)."""
    async with httpx.AsyncClient() as client, asyncio.timeout(within):
        while True:
            text = (await client.get(url)).text
            if all(w in text for w in wanted):
                return text
            await asyncio.sleep(0.2)  # polling for a condition, under the deadline above


async def test_one_command_prints_an_orders_timeline_with_its_causes(bus: Bus, stack: Stack) -> None:
    call_id = uid()
    order = f"WO-H-{call_id}"
    await bus.send(contract.HOTLINE_CALLS, call_id, call(call_id, "泰山小区", "楼上漏水把我家天花板泡了"))
    lead = lead_of(await dispatched(bus, order))
    accepted = await respond(bus, "dispatch.accepted", lead)
    await bus.wait_for(of_order(order, "workorder.accepted"))

    from tools.report import timeline

    rows = await timeline(stack.settings, order)
    assert [r.event for r in rows] == ["workorder.dispatched", "dispatch.accepted"]
    assert rows[-1].caused_by == accepted["id"] and rows[-1].status == "accepted"
