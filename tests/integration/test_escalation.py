"""Escalation through Kafka alone: clocks that survive a crash, and business time under replay."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared import contract
from tests.integration.bus import Bus, Seen, cloud_event
from tests.integration.flows import call, dispatched, of_order, uid
from tools.replay import publish, read_log
from tools.stack import Stack

pytestmark = pytest.mark.integration


def for_dispatch(dispatch_id: str, type: str, **data: Any) -> Any:
    return lambda s: (
        s.type == type
        and s.data.get("dispatch_id") == dispatch_id
        and all(s.data.get(k) == v for k, v in data.items())
    )


async def test_a_missed_accept_is_reminded_breached_and_escalated_once_across_a_crash(
    bus: Bus, stack: Stack
) -> None:
    call_id = uid()
    order = f"WO-H-{call_id}"
    await bus.send(contract.HOTLINE_CALLS, call_id, call(call_id, "中信公寓", "厨房里一股煤气味，怕是漏气了"))
    first = (await dispatched(bus, order))[0].data
    assert first["urgency"] == "emergency"  # 4 s to sign for, in the test stack

    # The reminder comes at 75% of the limit; the deadline is a second later. Kill the service now.
    await bus.wait_for(for_dispatch(first["dispatch_id"], "dispatch.reminder", overdue=False), within=30)
    await asyncio.to_thread(stack.kill, "escalation")
    await asyncio.to_thread(stack.start_service, "escalation")
    await asyncio.to_thread(stack.wait_ready, ("escalation",))

    [escalated] = await bus.wait_for(of_order(order, "workorder.escalated"), within=60)
    assert escalated.data["from_level"] == first["level"]
    await bus.wait_for(
        lambda s: (
            s.type == "dispatch.assigned"
            and s.data["work_order_id"] == order
            and s.data["level"] == escalated.data["to_level"]
        )
    )

    # Nothing of the first deadline happens twice. A kill between sending an outbox row and
    # committing its deletion may publish a message again, under the same event id: one event, as
    # the contract says.
    def events(predicate: Any) -> int:
        return len({s.event["id"] for s in bus.matching(predicate)})

    assert events(for_dispatch(first["dispatch_id"], "dispatch.reminder", overdue=False)) == 1
    assert events(for_dispatch(first["dispatch_id"], "dispatch.reminder", overdue=True)) == 1
    breaches = bus.matching(
        lambda s: (
            s.type == "alert.sla_breached"
            and s.data["work_order_id"] == order
            and s.data["level"] == first["level"]
        )
    )
    assert len(breaches) == 1
    escalations = [
        s
        for s in bus.matching(of_order(order, "workorder.escalated"))
        if s.data["from_level"] == first["level"]
    ]
    assert len(escalations) == 1


def gas_log(path: Path, start: datetime, tag: str) -> Path:
    """Three emergency calls a second and a half apart, unplaced and anonymous (so none can merge):
    the ladder runs on deadlines alone, street -> district -> the supervisors' alert."""
    lines = []
    for i in range(3):
        call_id = f"{tag}-{i}"
        event = cloud_event(
            "hotline.call.received",
            {"call_id": call_id, "channel": "phone", "content": "楼道里燃气管子有股煤气味，好像漏气了"},
            subject=call_id,
        )
        event["time"] = (start + timedelta(seconds=1.5 * i)).isoformat()
        lines.append(
            json.dumps({"topic": contract.HOTLINE_CALLS, "key": call_id, "event": event}, ensure_ascii=False)
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def ladder(bus: Bus, tag: str, start: datetime) -> list[tuple[int, str, str, str, float]]:
    """What the clocks did to the log's orders: (call, event, from, to, business seconds after start)."""
    steps: list[tuple[int, str, str, str, float]] = []
    for i in range(3):
        order = f"WO-H-{tag}-{i}"

        def top_breach(s: Seen, order: str = order) -> bool:
            return (
                s.type == "alert.sla_breached"
                and s.data["work_order_id"] == order
                and s.data["level"] == "district"
            )

        await bus.wait_for(top_breach, within=90)
        for s in bus.matching(of_order(order, "workorder.escalated")):
            offset = (datetime.fromisoformat(s.event["time"]) - start).total_seconds()
            steps.append((i, "escalated", s.data["from_level"], s.data["to_level"], round(offset, 3)))
        for s in bus.matching(top_breach):
            offset = (datetime.fromisoformat(s.data["due"]) - start).total_seconds()
            steps.append((i, "breached", s.data["level"], s.data["deadline"], round(offset, 3)))
    return sorted(steps)


async def test_one_log_replayed_at_two_speeds_gives_the_same_escalations(
    bus: Bus, stack: Stack, tmp_path: Path
) -> None:
    paced_tag, fast_tag = uid("RT"), uid("FAST")
    start = datetime.now(UTC) + timedelta(seconds=1)
    paced = gas_log(tmp_path / "paced.jsonl", start, paced_tag)
    await publish(stack.settings, list(read_log(paced)), speed=1.0)  # in real time
    fast_start = datetime.now(UTC)
    fast = gas_log(tmp_path / "fast.jsonl", fast_start, fast_tag)
    await publish(stack.settings, list(read_log(fast)))  # as fast as possible

    in_real_time = await ladder(bus, paced_tag, start)
    as_fast_as_possible = await ladder(bus, fast_tag, fast_start)
    assert in_real_time == as_fast_as_possible
    # Unplaced, so the street first: 4 s to sign for there, then 4 s at the district, then the alert.
    assert [s for s in in_real_time if s[0] == 0] == [
        (0, "breached", "district", "accept", 8.0),
        (0, "escalated", "street", "district", 4.0),
    ]


@pytest.mark.parametrize(
    ("compound", "called_at", "accept_by", "resolve_by"),
    [
        # Wednesday before the National Day week: 10 s that night, then the holidays, then Thursday 10-08.
        ("衡山雅苑", "2026-09-30T23:59:50+08:00", "2026-10-08T00:01:50+08:00", "2026-10-08T00:04:50+08:00"),
        # Friday night: 60 s, the weekend, then Monday.
        ("北城家园", "2026-10-16T23:59:00+08:00", "2026-10-19T00:01:00+08:00", "2026-10-19T00:04:00+08:00"),
        # Friday 10-09 night: Saturday 10-10 is a make-up working day (调休), so it counts.
        ("北城新苑", "2026-10-09T23:59:00+08:00", "2026-10-10T00:01:00+08:00", "2026-10-10T00:04:00+08:00"),
    ],
)
async def test_complaints_count_working_days_across_weekends_and_holidays(
    bus: Bus, compound: str, called_at: str, accept_by: str, resolve_by: str
) -> None:
    call_id = uid()
    order = f"WO-H-{call_id}"
    # normal: 120 s / 300 s here for help (a complaint has its real 15 working days).
    event = call(call_id, compound, "楼下饭店油烟太大，熏得没法开窗", request_type="help") | {
        "time": called_at
    }
    await bus.send(contract.HOTLINE_CALLS, call_id, event)
    [assigned] = (await dispatched(bus, order))[:1]
    assert assigned.data["urgency"] == "normal"
    assert datetime.fromisoformat(assigned.data["accept_by"]) == datetime.fromisoformat(accept_by)
    assert datetime.fromisoformat(assigned.data["resolve_by"]) == datetime.fromisoformat(resolve_by)
