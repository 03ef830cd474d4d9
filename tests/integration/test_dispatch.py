"""Dispatch through Kafka alone: joint handling, returns, extensions, reopening, the three rates."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from shared import contract
from shared.reference import calendars_of, load_jurisdiction
from tests.integration.bus import Bus, Seen, cloud_event
from tests.integration.flows import call, dead_letters, dispatched, eventually, of_order, respond, uid
from tools.stack import Stack

pytestmark = pytest.mark.integration

NORMAL_ACCEPT = timedelta(seconds=120)  # a normal order's time to sign for it (conftest's TIME_LIMITS)


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


async def returned(
    bus: Bus, compound: str, problem: str, reason: str, at: datetime | None = None
) -> tuple[str, dict[str, Any], dict[str, Any], Seen]:
    """A call; its lead returns it (at ``at``, else now): the order, the lead's dispatch, the
    return sent, and the review it waits for."""
    call_id = uid()
    order = f"WO-H-{call_id}"
    # A caller of its own: one caller's open report of a category absorbs the next (并单).
    caller = {"name": "退单测试", "phone": f"139{int(call_id[-8:], 16) % 10**8:08d}"}
    await bus.send(contract.HOTLINE_CALLS, call_id, call(call_id, compound, problem, caller=caller))
    first = lead_of(await dispatched(bus, order))
    data = {k: first[k] for k in ("dispatch_id", "work_order_id", "department")}
    rejection = cloud_event(
        "dispatch.rejected", data | {"reason": reason, "note": "不归我们管"}, subject=order
    )
    if at is not None:
        rejection["time"] = at.isoformat()
    await bus.send(contract.DISPATCH_RESPONSES, order, rejection)
    [requested] = await bus.wait_for(of_order(order, "workorder.return_requested"))
    return order, first, rejection, requested


def review(type: str, dispatch: dict[str, Any], **data: Any) -> dict[str, Any]:
    """The centre's decision on a return, as the api sends it."""
    fields = {k: dispatch[k] for k in ("work_order_id", "dispatch_id")} | {"operator": "centre-1"}
    return cloud_event(type, fields | data, subject=dispatch["work_order_id"])


async def clocks(stack: Stack, dispatch_id: str) -> dict[str, tuple[str, datetime]]:
    """Escalation's clocks of a dispatch: kind -> (state, due)."""
    url = stack.settings.database_url_for("escalation").replace("+asyncpg", "")
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT kind, state, due_at FROM clocks WHERE dispatch_id = $1", dispatch_id)
    finally:
        await conn.close()
    return {r["kind"]: (r["state"], r["due_at"]) for r in rows}


async def test_a_return_waits_for_the_centre_and_once_approved_moves_on_once(bus: Bus, stack: Stack) -> None:
    order, first, rejection, requested = await returned(
        bus, "嵩山小区", "门口乱停车，把消防通道出口都堵住了", "not_our_responsibility"
    )
    returned_at = datetime.fromisoformat(rejection["time"])
    assert (requested.data["dispatch_id"], requested.data["return_reason"], requested.data["status"]) == (
        first["dispatch_id"],
        "not_our_responsibility",
        "dispatched",
    )
    assert datetime.fromisoformat(requested.data["review_by"]) == returned_at + timedelta(seconds=60)
    # While it waits, the department's clocks stand still and the review's runs.
    review_by = datetime.fromisoformat(requested.data["review_by"])

    async def waiting() -> bool:
        found = await clocks(stack, first["dispatch_id"])
        return found.get("review") == ("open", review_by) and found["accept"][0] == "stopped"

    await eventually(waiting)

    approve = review("order.return.approve", first, note="同意退单")
    await bus.send(contract.ORDER_COMMANDS, order, approve)
    await bus.send(contract.ORDER_COMMANDS, order, approve)  # delivered again: applied once
    [approved] = await bus.wait_for(of_order(order, "workorder.return_approved"))
    assert (approved.data["operator"], approved.data["automatic"]) == ("centre-1", False)
    again = (await bus.wait_for(of_order(order, "workorder.dispatched"), count=2))[-1]
    leads = [d for d in again.data["dispatches"] if d["role"] == "lead"]
    assert leads and leads[0]["department"] != first["department"]
    assert first["department"] not in {d["department"] for d in again.data["dispatches"]}

    # Deciding it again, and the same department returning it again, are refused.
    await bus.send(contract.ORDER_COMMANDS, order, approve | {"id": uid("late")})
    await bus.send(contract.DISPATCH_RESPONSES, order, rejection | {"id": uid("again")})
    errors = sorted(letter["error"] for letter in await dead_letters(bus, order, count=2))
    assert "already returned this order once" in errors[0]
    assert f"data.dispatch_id: dispatch {first['dispatch_id']} has no return waiting for review" in errors[1]
    assert len(bus.matching(of_order(order, "workorder.return_approved"))) == 1
    assert (await clocks(stack, first["dispatch_id"]))["review"][0] == "stopped"


async def test_a_refused_return_is_the_departments_again_with_its_clocks_anew(bus: Bus, stack: Stack) -> None:
    order, first, _, _ = await returned(bus, "珠江花园", "3号楼暖气不热", "other")
    refuse = review("order.return.refuse", first, note="供暖属于贵单位职责，请签收")
    await bus.send(contract.ORDER_COMMANDS, order, refuse)

    [back] = await bus.wait_for(
        lambda s: s.type == "dispatch.return_refused" and s.data["dispatch_id"] == first["dispatch_id"]
    )
    assert back.topic == contract.department_topic(first["department"])
    assert back.data["note"] == "供暖属于贵单位职责，请签收"
    accept_by, resolve_by = (datetime.fromisoformat(back.data[k]) for k in ("accept_by", "resolve_by"))
    # Counted anew from the refusal, in working time (the stack's TIME_COUNTING): on a weekend in
    # the jurisdiction both deadlines fall at the same moment of Monday, so the span says it.
    working = calendars_of(load_jurisdiction(stack.settings.jurisdiction_file), {"normal": "working"})
    assert working["normal"].elapsed(datetime.fromisoformat(refuse["time"]), accept_by) == NORMAL_ACCEPT
    assert accept_by >= datetime.fromisoformat(first["accept_by"])
    [refused] = await bus.wait_for(of_order(order, "workorder.return_refused"))
    assert datetime.fromisoformat(refused.data["accept_by"]) == accept_by
    assert refused.data["operator"] == "centre-1"

    async def running_again() -> bool:
        found = await clocks(stack, first["dispatch_id"])
        return found.get("accept") == ("open", accept_by) and found.get("resolve") == ("open", resolve_by)

    await eventually(running_again)
    await respond(bus, "dispatch.accepted", first, note="收到")
    [accepted] = await bus.wait_for(of_order(order, "workorder.accepted"))
    assert accepted.data["dispatch_id"] == first["dispatch_id"]
    assert len(bus.matching(of_order(order, "workorder.dispatched"))) == 1


async def test_a_return_nobody_reviews_in_time_is_approved_automatically(bus: Bus) -> None:
    """The department's system reports a return made two minutes ago, so its minute's review
    (RETURN_REVIEW_WITHIN here) has passed in business time: no test waits it out."""
    at = datetime.now().astimezone() - timedelta(minutes=2)
    order, first, _, requested = await returned(bus, "天山小区", "门口乱停车，堵住了消防通道", "other", at)
    [expired] = await bus.wait_for(
        lambda s: s.type == "return.review.expired" and s.data["work_order_id"] == order
    )
    assert expired.data["review_by"] == requested.data["review_by"]
    [approved] = await bus.wait_for(of_order(order, "workorder.return_approved"))
    assert (approved.data["operator"], approved.data["automatic"]) == ("system", True)
    again = (await bus.wait_for(of_order(order, "workorder.dispatched"), count=2))[-1]
    assert first["department"] not in {d["department"] for d in again.data["dispatches"]}


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
    event = call(call_id, "长江小区", "家里停水了一整天", request_type="help")
    await bus.send(contract.HOTLINE_CALLS, call_id, event)
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
        'whistle_rate{name="help",rate="satisfaction",scope="request_type"}',  # and split by type
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
    assert 0.0 < values[wanted[4]] <= 1.0
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


async def test_an_unplaced_order_at_the_triage_desk_is_reassigned_by_the_centre(bus: Bus) -> None:
    """改派: the street desk's dispatch is cancelled, the order re-tagged and re-placed, and the
    named department has it, with one lifecycle event that says who and why."""
    call_id = uid()
    order = f"WO-H-{call_id}"
    event = call(call_id, "", "家里那个东西又坏了，你们看着办吧", address="记不清了")
    await bus.send(contract.HOTLINE_CALLS, call_id, event)
    [desk] = await dispatched(bus, order)
    assert (desk.data["department"], desk.data["category"]) == ("street_desk", "other")

    command = {
        "work_order_id": order,
        "operator": "centre-operator-7",
        "note": "回访确认：菁华公寓3号楼暖气不热",
        "category": "供暖",
        "community": "夹河社区",
        "lead": "heat",
    }
    bad = cloud_event("order.reassign.requested", command | {"category": "no such"}, subject=order)
    await bus.send(contract.ORDER_COMMANDS, order, bad)
    [letter] = await dead_letters(bus, order, count=1)
    assert "data.category: unknown category 'no such'" in letter["error"]

    await bus.send(
        contract.ORDER_COMMANDS, order, cloud_event("order.reassign.requested", command, subject=order)
    )
    [cancelled] = await bus.wait_for(of_order(order, "dispatch.cancelled"))
    assert (cancelled.topic, cancelled.data["dispatch_id"]) == (
        contract.department_topic("street_desk"),
        desk.data["dispatch_id"],
    )
    [reassigned] = await bus.wait_for(of_order(order, "workorder.reassigned"))
    assert (reassigned.data["category"], reassigned.data["community"]) == ("heating", "夹河社区")
    assert (reassigned.data["operator"], reassigned.data["note"]) == ("centre-operator-7", command["note"])
    [heat] = await bus.wait_for(
        lambda s: of_order(order, "dispatch.assigned")(s) and s.data["department"] == "heat"
    )
    assert (heat.topic, heat.data["role"], heat.data["category"]) == (
        contract.department_topic("heat"),
        "lead",
        "heating",
    )
    # What 改派 changed is saved: the order's next event, loaded anew, carries it.
    await respond(bus, "dispatch.accepted", heat.data, note="收到")
    [accepted] = await bus.wait_for(of_order(order, "workorder.accepted"))
    assert (accepted.data["category"], accepted.data["community"]) == ("heating", "夹河社区")


async def test_a_resolved_order_nobody_rates_closes_as_unrated_at_its_limit(bus: Bus) -> None:
    """回访 that ends. The department's system reports a resolution made a minute ago, so its
    30 s wait (FEEDBACK_WITHIN here) has passed in business time: no test waits it out."""
    call_id = uid()
    order = f"WO-H-{call_id}"
    await bus.send(contract.HOTLINE_CALLS, call_id, call(call_id, "海韵花园", "单元门禁坏了关不上"))
    lead = lead_of(await dispatched(bus, order))
    await respond(bus, "dispatch.accepted", lead, note="收到")
    resolved_at = datetime.now().astimezone() - timedelta(minutes=1)
    data = {k: lead[k] for k in ("dispatch_id", "work_order_id", "department")} | {"result": "已修好"}
    event = cloud_event("dispatch.resolved", data, subject=order) | {"time": resolved_at.isoformat()}
    await bus.send(contract.DISPATCH_RESPONSES, order, event)

    [resolved] = await bus.wait_for(of_order(order, "workorder.resolved"))
    feedback_by = datetime.fromisoformat(resolved.data["feedback_by"])
    assert feedback_by == resolved_at + timedelta(seconds=30)
    [closed] = await bus.wait_for(of_order(order, "workorder.closed"))
    assert (closed.data["closure"], closed.data["satisfaction"]) == ("unrated", None)

    late = {"work_order_id": order, "satisfaction": "satisfied", "resolved": True}
    await bus.send(contract.FEEDBACK, order, cloud_event("resident.feedback.received", late))
    [refused] = await dead_letters(bus, order, 1)
    assert "is closed; feedback applies to a resolved order" in refused["error"]
