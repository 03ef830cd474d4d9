"""The whole system through Kafka alone: real broker, real PostgreSQL, the services as processes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shared import contract
from tests.integration.bus import Bus, Seen, cloud_event
from tests.integration.flows import (
    PHONE,
    about,
    call,
    dead_letters,
    dispatched,
    eventually,
    of_order,
    own_caller,
    respond,
    uid,
)
from tools.stack import Stack

pytestmark = pytest.mark.integration


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
    assert lead.headers["ce_type"] == b"dispatch.assigned"  # the type, for consumers that skip unparsed
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
    event = call(call_id, "海信慧园")
    await bus.send(contract.HOTLINE_CALLS, call_id, event)
    await bus.send(contract.HOTLINE_CALLS, call_id, event)  # redelivery: same event id
    await bus.send(contract.HOTLINE_CALLS, call_id, call(call_id, "海信慧园"))  # a retry: new id, same call
    sentinel = uid()
    await bus.send(contract.HOTLINE_CALLS, call_id, call(sentinel, "金城公寓"))  # same partition, behind them
    await bus.wait_for(of_order(f"WO-H-{sentinel}", "workorder.created"))
    await dispatched(bus, order)

    assert len(bus.matching(of_order(order, "workorder.created"))) == 1
    # Dispatched once for the call; again only when raised (a cluster alert of other tests' calls
    # in its community can raise it), each time after an escalation of its own, on its partition.
    raised = len(bus.matching(of_order(order, "workorder.escalated")))
    await bus.wait_for(of_order(order, "workorder.dispatched"), count=1 + raised)
    assert len(bus.matching(of_order(order, "workorder.dispatched"))) == 1 + raised


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
    "content too long": (orjson.dumps(call("c3", problem="暖" * 4001)), "data.content"),
    "time without offset": (orjson.dumps(call("c4") | {"time": "2026-11-21T08:00:00"}), "time"),
}


async def test_bad_input_is_dead_lettered_and_the_next_message_flows(bus: Bus) -> None:
    key = uid("BAD")
    for raw, _ in BAD_CALLS.values():
        await bus.send(contract.HOTLINE_CALLS, key, raw)
    good = uid()
    await bus.send(contract.HOTLINE_CALLS, key, call(good, "万科城"))

    await bus.wait_for(of_order(f"WO-H-{good}", "workorder.created"))
    letters = await dead_letters(bus, key, count=len(BAD_CALLS))
    assert len(letters) == len(BAD_CALLS)
    for letter, (name, (raw, reason)) in zip(letters, BAD_CALLS.items(), strict=True):
        assert reason in letter["error"], name
        assert letter["raw"] == raw.decode()
        assert letter["original_topic"] == contract.HOTLINE_CALLS
        assert letter["original_key"] == key and letter["original_offset"] >= 0


async def test_a_call_with_an_unreadable_header_is_taken_like_any_other(bus: Bus) -> None:
    # An outside producer's header that is not UTF-8: faststream failed the whole batch on it.
    odd, after = uid(), uid()
    await bus.producer.send_and_wait(
        contract.HOTLINE_CALLS,
        orjson.dumps(call(odd, "渔港小区")),
        key=odd.encode(),
        headers=[("content-type", b"application/cloudevents+json"), ("x-trace", b"\xff\xfe")],
    )
    await bus.send(contract.HOTLINE_CALLS, after, call(after, "蓝湾小区"))
    await bus.wait_for(of_order(f"WO-H-{odd}", "workorder.created"))
    await bus.wait_for(of_order(f"WO-H-{after}", "workorder.created"))


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
    await bus.send(contract.HOTLINE_CALLS, call_id, call(call_id, "天马相城"))
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
    gas = call(call_id, "丽景苑", "5号楼楼道里煤气味特别大，是不是燃气泄漏了", urgency="normal")
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


async def test_a_repeat_report_joins_the_open_order_and_its_reporter_is_told(bus: Bus) -> None:
    first, repeat, other_kind, other_place = uid(), uid(), uid(), uid()
    noise = "楼上半夜装修电钻声，吵得睡不着"
    await bus.send(contract.HOTLINE_CALLS, first, call(first, "国奥天地", noise))
    await bus.wait_for(of_order(f"WO-H-{first}", "workorder.created"))
    second_caller = {"name": "王女士", "phone": "13900001111"}
    await bus.send(
        contract.HOTLINE_CALLS, repeat, call(repeat, "国奥天地", "装修噪音太吵了", caller=second_caller)
    )
    await bus.send(contract.HOTLINE_CALLS, other_kind, call(other_kind, "国奥天地", "小区门口乱停车堵住出口"))
    await bus.send(contract.HOTLINE_CALLS, other_place, call(other_place, "枫林苑", noise))

    [merged] = await bus.wait_for(of_order(f"WO-H-{repeat}", "workorder.merged"))
    assert merged.data["merged_into"] == f"WO-H-{first}" and merged.data["status"] == "merged"
    await bus.wait_for(of_order(f"WO-H-{other_kind}", "workorder.created"))  # never across categories
    await bus.wait_for(of_order(f"WO-H-{other_place}", "workorder.created"))  # nor across places
    assert bus.matching(of_order(f"WO-H-{repeat}", "workorder.dispatched")) == []
    # The second resident is linked to the first order and told it is in hand.
    await bus.wait_for(
        lambda s: (
            s.type == "notification.sent"
            and s.data["work_order_id"] == f"WO-H-{first}"
            and s.data["template"].startswith("joined@")
        )
    )


async def test_a_resolved_order_absorbs_no_repeat_and_a_reopened_one_does_again(
    bus: Bus, stack: Stack
) -> None:
    first, after_resolved, after_reopened = uid(), uid(), uid()
    leak = "楼道里暖气管子漏水"
    order = f"WO-H-{first}"
    await bus.send(contract.HOTLINE_CALLS, first, call(first, "门楼小区", leak))
    lead = next(s.data for s in await dispatched(bus, order) if s.data["role"] == "lead")
    await respond(bus, "dispatch.accepted", lead, note="收到")
    await respond(bus, "dispatch.resolved", lead, result="已处理")
    await bus.wait_for(of_order(order, "workorder.resolved"))
    engine = create_async_engine(stack.settings.database_url_for("intake"))

    async def status() -> str:
        async with engine.connect() as conn:
            return str((await conn.execute(SELECT_STATUS, {"id": order})).scalar_one())

    try:
        # Intake follows the lifecycle on a topic of its own: once it has, a repeat is a new order.
        await eventually(lambda: _is(status, "done"))
        await bus.send(contract.HOTLINE_CALLS, after_resolved, call(after_resolved, "门楼小区", leak))
        await bus.wait_for(of_order(f"WO-H-{after_resolved}", "workorder.created"))

        unhappy = {"work_order_id": order, "satisfaction": "dissatisfied", "resolved": False}
        await bus.send(contract.FEEDBACK, order, cloud_event("resident.feedback.received", unhappy))
        await bus.wait_for(of_order(order, "workorder.reopened"))
        await eventually(lambda: _is(status, "open"))
        await bus.send(contract.HOTLINE_CALLS, after_reopened, call(after_reopened, "门楼小区", leak))
        [merged] = await bus.wait_for(of_order(f"WO-H-{after_reopened}", "workorder.merged"))
    finally:
        await engine.dispose()
    assert merged.data["merged_into"] == order  # the earliest open order at the compound


SELECT_STATUS = text("SELECT status FROM work_orders WHERE id = :id")


async def _is(probe: Callable[[], Awaitable[str]], wanted: str) -> bool:
    return await probe() == wanted


def _made(order: str) -> Callable[[Seen], bool]:
    """The order's first lifecycle event: created, or merged into another."""
    return lambda s: (
        s.data.get("work_order_id") == order and s.type in ("workorder.created", "workorder.merged")
    )


def _assigned_at(order: str, level: str) -> Callable[[Seen], bool]:
    return lambda s: (
        s.type == "dispatch.assigned" and s.data["work_order_id"] == order and s.data["level"] == level
    )


async def test_concentrated_complaints_raise_one_early_warning(bus: Bus) -> None:
    compounds = ["古现一区", "古现二区", "古现三区", "古现新苑", "古现一区", "古现二区"]
    ids = [uid() for _ in compounds]
    for call_id, compound in zip(ids, compounds, strict=True):
        await bus.send(contract.HOTLINE_CALLS, call_id, call(call_id, compound, "家里暖气不热"))
    for call_id in ids:
        await bus.wait_for(about(f"WO-H-{call_id}"))

    def cluster(s: Seen) -> bool:
        return (
            s.type == "alert.cluster_detected"
            and s.data["community"] == "古现社区"
            and s.data["category"] == "heating"
        )

    [alert] = await bus.wait_for(cluster)
    assert alert.topic == contract.ALERTS and alert.key == "古现社区"
    # Calls on different partitions may be applied in any order, so the alert may already see six.
    assert alert.data["count"] in (5, 6) and alert.data["window_minutes"] == 60
    assert set(alert.data["work_order_ids"]) <= {f"WO-H-{c}" for c in ids}
    assert len(alert.data["work_order_ids"]) == alert.data["count"]
    # Dispatch puts the cluster's open orders under the street: raised if it had them already
    # (heating starts at the community), sent there at once if the alert came first (the calls
    # and the alert reach it on different topics). A repeat merged into another is not dispatched.
    for order in alert.data["work_order_ids"]:
        [made] = await bus.wait_for(_made(order))
        if made.type == "workorder.created":
            await bus.wait_for(_assigned_at(order, "street"))
    # The sixth report is in the same step: no second alert until the cluster doubles.
    sentinel = uid()
    await bus.send(contract.HOTLINE_CALLS, ids[-1], call(sentinel, "银座公寓", "暖气不热"))
    await bus.wait_for(of_order(f"WO-H-{sentinel}", "workorder.created"))
    assert len(bus.matching(cluster)) == 1


async def test_a_small_issue_fixed_on_the_spot_is_recorded_closed_and_never_dispatched(bus: Bus) -> None:
    report_id = uid("GR")
    order = f"WO-G-{report_id}"
    report = {
        "report_id": report_id,
        "grid_id": "HB-FLS-JH-01",
        "worker_id": "W-0007",
        "category": "环境卫生",
        "description": "楼道口堆放的杂物已当场清理",
        "handled_on_site": True,
    }
    await bus.send(contract.GRID_REPORTS, report_id, cloud_event("grid.issue.reported", report))
    [created] = await bus.wait_for(of_order(order, "workorder.created"))
    [closed] = await bus.wait_for(of_order(order, "workorder.closed"))
    assert created.data["source"] == "grid" and closed.data["status"] == "closed"
    assert closed.data["closure"] == "handled_on_site" and closed.data["request_type"] == "help"
    sentinel = uid()
    await bus.send(
        contract.GRID_REPORTS,
        report_id,
        cloud_event("grid.issue.reported", report | {"report_id": sentinel, "handled_on_site": False}),
    )
    await bus.wait_for(of_order(f"WO-G-{sentinel}", "workorder.dispatched"))
    assert bus.matching(lambda s: s.topic == contract.INTAKE_ORDERS and s.key == order) == []
    assert bus.matching(of_order(order, "workorder.dispatched")) == []


async def test_a_call_that_cannot_be_placed_goes_to_street_triage_unguessed(bus: Bus) -> None:
    call_id = uid()
    order = f"WO-H-{call_id}"
    event = call(
        call_id, "", "路边的路灯坏了好几天了，晚上黑乎乎的", address="不记得叫什么路了", caller=own_caller()
    )
    await bus.send(contract.HOTLINE_CALLS, call_id, event)
    [created] = await bus.wait_for(of_order(order, "workorder.created"))
    assert (created.data["street"], created.data["community"], created.data["grid"]) == (None, None, None)
    [assigned] = await bus.wait_for(of_order(order, "dispatch.assigned"))
    assert assigned.data["level"] == "street"
    assert assigned.data["department"] == "street_desk"


async def test_no_service_log_carries_a_residents_phone_or_name(bus: Bus, stack: Stack) -> None:
    # Every test before this one sent calls with a name and phone; they went through all four services.
    await bus.wait_for(lambda s: s.type == "notification.sent" and s.data["audience"] == "resident")
    logs = {path.name: path.read_text(encoding="utf-8") for path in (stack.home / "logs").glob("*.log")}
    assert set(logs) >= {"intake.log", "dispatch.log", "escalation.log", "notify.log"}
    for name, content in logs.items():
        assert PHONE not in content, name
        assert "孙大爷" not in content, name
