"""The 12345 practice over the real stack: a call answered on the call (直接答复) is closed and never
dispatched; a complaint has 15 working days to be resolved."""

from __future__ import annotations

from datetime import datetime

import pytest

from shared import contract
from tests.integration.bus import Bus, cloud_event
from tests.integration.flows import PHONE, call, dispatched, eventually, of_order, own_caller, uid
from tools.report import timeline
from tools.stack import Stack

pytestmark = pytest.mark.integration


async def test_an_inquiry_answered_on_the_call_is_closed_and_never_dispatched(bus: Bus, stack: Stack) -> None:
    call_id, later = uid(), uid()
    order = f"WO-H-{call_id}"
    answer = f"居住证带身份证和租房合同到社区服务中心办理，有问题打{PHONE}"
    event = call(
        call_id,
        "天山小区",
        "请问居住证怎么办理，需要什么材料",
        answered_directly=True,
        answer=answer,
        request_type="inquiry",
    )
    await bus.send(contract.HOTLINE_CALLS, call_id, event)
    created = (await bus.wait_for(of_order(order, "workorder.created")))[0]
    assert created.data["request_type"] == "inquiry"
    closed = (await bus.wait_for(of_order(order, "workorder.closed")))[0]
    assert closed.data["closure"] == "answered_directly" and closed.data["status"] == "closed"
    assert closed.data["result"] == answer.replace(PHONE, PHONE[:3] + "****" + PHONE[-4:])
    assert closed.data["request_type"] == "inquiry" and closed.data["reason"]

    # The resident's rating of the answer is recorded, not refused, and reopens nothing.
    feedback = cloud_event(
        "resident.feedback.received",
        {"work_order_id": order, "satisfaction": "satisfied", "resolved": True},
        subject=order,
    )
    await bus.send(contract.FEEDBACK, order, feedback)

    async def rated() -> bool:
        rows = await timeline(stack.settings, order)
        return any(r.event == "feedback.recorded" and r.caused_by == feedback["id"] for r in rows)

    await eventually(rated)

    # A later order goes all the way to its department: what was sent before it has passed through
    # dispatch, and nothing of the answered order was dispatched, reopened or refused.
    await bus.send(
        contract.HOTLINE_CALLS, later, call(later, "福新一区", "家里暖气不热", caller=own_caller())
    )
    await dispatched(bus, f"WO-H-{later}")
    after = ("dispatch.assigned", "workorder.dispatched", "workorder.reopened")
    assert not bus.matching(lambda s: s.type in after and s.data.get("work_order_id") == order)
    assert not bus.matching(lambda s: s.topic == contract.DEADLETTER and s.key == order)


@pytest.mark.parametrize(
    ("compound", "called_at", "resolve_by"),
    [
        # Friday 09-25 10:00: Sat off, Sun 09-27 worked (调休), 10-01..07 the National Day holidays,
        # Sat 10-10 worked: 15 working days end on Wednesday 10-21 at 10:00.
        ("金水湾", "2026-09-25T10:00:00+08:00", "2026-10-21T10:00:00+08:00"),
    ],
)
async def test_a_complaints_deadline_is_15_working_days_across_a_weekend_and_a_holiday(
    bus: Bus, compound: str, called_at: str, resolve_by: str
) -> None:
    call_id = uid()
    order = f"WO-H-{call_id}"
    event = call(call_id, compound, "楼上天天半夜拖椅子，吵得睡不着", request_type="complaint") | {
        "time": called_at
    }
    await bus.send(contract.HOTLINE_CALLS, call_id, event)
    [assigned] = (await dispatched(bus, order))[:1]
    assert assigned.data["request_type"] == "complaint" and assigned.data["urgency"] == "normal"
    assert datetime.fromisoformat(assigned.data["resolve_by"]) == datetime.fromisoformat(resolve_by)
    # The accept limit is the urgency's (120 s here, counted in working time).
    assert datetime.fromisoformat(assigned.data["accept_by"]) == datetime.fromisoformat(
        "2026-09-25T10:02:00+08:00"
    )
