"""The chaos run's counting (tools.chaos.verdict), on records made by hand: what it calls lost,
doubled, repeated, out of order, excepted, and the latency it reads from the records' times."""

from __future__ import annotations

import itertools
from typing import Any

import orjson

from shared import contract
from tools.chaos import Call, Seen, verdict

RUN = "abc123"
_offsets = itertools.count()


def order_of(call: str) -> str:
    return f"WO-H-B{RUN}-{call}"


def record(
    topic: str, type_: str, data: dict[str, Any], id_: str | None = None, epoch: int = 0, ms: int = 0
) -> Seen:
    event = {"id": id_ or f"id-{next(_offsets)}", "type": type_, "data": data}
    key = data.get("work_order_id")
    return Seen(epoch, topic, 0, next(_offsets), ms, key, orjson.dumps(event))


def lifecycle(call: str, type_: str, status: str, cause: str = "c", **extra: Any) -> dict[str, Any]:
    return {"work_order_id": order_of(call), "status": status, "caused_by": f"{cause}-{call}", **extra}


def whole(call: str, ms: int = 2000) -> list[Seen]:
    """A call's order, its lead dispatch and its resident told."""
    o = order_of(call)
    return [
        record(contract.WORKORDER_EVENTS, "workorder.created", lifecycle(call, "created", "new")),
        record(
            contract.WORKORDER_EVENTS,
            "workorder.dispatched",
            lifecycle(call, "dispatched", "dispatched", "d"),
        ),
        record(
            "dispatch.heat.v1",
            "dispatch.assigned",
            {"work_order_id": o, "dispatch_id": f"D-{call}", "role": "lead"},
            ms=ms,
        ),
        record(
            contract.NOTIFICATIONS,
            "notification.sent",
            {
                "work_order_id": o,
                "notification_id": f"N-{call}",
                "audience": "resident",
                "template": "received@1",
            },
        ),
    ]


def calls(*ids: str) -> list[Call]:
    return [Call(f"B{RUN}-{i}", 1.0) for i in ids]


def test_every_call_whole_is_nothing_lost_nothing_doubled() -> None:
    found = verdict(calls("1", "2"), whole("1") + whole("2"), RUN)
    assert (found["lost"], found["doubled"], found["order_violations"], found["same_id_repeats"]) == (
        0,
        0,
        0,
        0,
    )
    assert found["call_to_dispatch_s"]["p99"] == 1.0  # sent at 1 s, dispatched at 2000 ms


def test_a_missing_order_dispatch_or_notice_is_lost_by_kind() -> None:
    seen = whole("1") + whole("2")[:2] + whole("3")[:3]
    found = verdict(calls("1", "2", "3", "4"), seen, RUN)
    assert found["lost_by_kind"] == {"order": 1, "lead dispatch": 1, "resident told": 2}


def test_excepted_calls_are_counted_apart_not_lost() -> None:
    sent = calls("1", "2")
    sent[1].excepted = "sent while the broker was away"
    found = verdict(sent, whole("1"), RUN)
    assert found["lost"] == 0 and found["excepted"] == {"sent while the broker was away": 1}


def test_the_same_id_twice_is_a_repeat_two_ids_for_one_effect_a_double() -> None:
    seen = whole("1")
    again = Seen(0, seen[0].topic, 0, 999, 0, seen[0].key, seen[0].value)
    found = verdict(calls("1"), [*seen, again], RUN)
    assert (found["same_id_repeats"], found["doubled"]) == (1, 0)
    twice = record(contract.WORKORDER_EVENTS, "workorder.created", lifecycle("1", "created", "new"))
    found = verdict(calls("1"), [*seen, twice], RUN)
    assert found["doubled"] == 1
    told_again = record(
        contract.NOTIFICATIONS,
        "notification.sent",
        {
            "work_order_id": order_of("1"),
            "notification_id": "N-other",
            "audience": "resident",
            "template": "received@1",
        },
    )
    assert verdict(calls("1"), [*seen, told_again], RUN)["doubled"] == 1


def test_statuses_out_of_order_and_steps_after_cancellation_are_violations() -> None:
    o = order_of("1")
    created = whole("1")[:1]
    resolved = record(
        contract.WORKORDER_EVENTS, "workorder.resolved", lifecycle("1", "resolved", "resolved", "r")
    )
    found = verdict(calls("1"), [*created, resolved], RUN)
    assert found["order_violations"] >= 1  # new -> resolved skips dispatch
    first = whole("1")  # records are read in the order they are made (their offsets)
    cancelled = record("dispatch.heat.v1", "dispatch.cancelled", {"work_order_id": o, "dispatch_id": "D-1"})
    assigned = record("dispatch.heat.v1", "dispatch.assigned", {"work_order_id": o, "dispatch_id": "D-1"})
    found = verdict(calls("1"), [*first, cancelled, assigned], RUN)
    assert found["order_violations"] == 1
    # Escalation's reminder after dispatch's cancellation: two producers' race, counted apart.
    reminder = record("dispatch.heat.v1", "dispatch.reminder", {"work_order_id": o, "dispatch_id": "D-1"})
    found = verdict(calls("1"), [*first, cancelled, reminder], RUN)
    assert found["order_violations"] == 0 and found["reminders_after_cancellation"] == 1


def test_after_the_broker_forgot_an_order_may_continue_where_it_was() -> None:
    before = whole("1")
    accepted = record(
        contract.WORKORDER_EVENTS, "workorder.accepted", lifecycle("1", "accepted", "accepted", "a"), epoch=1
    )
    found = verdict(calls("1"), [*before, accepted], RUN)
    assert found["order_violations"] == 0


def test_dead_letters_and_strangers_are_counted() -> None:
    letter = record(contract.DEADLETTER, "deadletter.recorded", {"error": "refused: dispatch cancelled"})
    stranger = record(
        contract.WORKORDER_EVENTS, "workorder.created", {"work_order_id": "WO-H-else", "status": "new"}
    )
    junk = Seen(0, contract.HOTLINE_CALLS, 0, 1, 0, None, b"not json")
    found = verdict(calls("1"), [*whole("1"), letter, stranger, junk], RUN)  # order matters not here
    assert found["dead_letters"] == 1 and sum(found["unexpected"].values()) == 2


def test_a_notice_of_a_cluster_is_no_stranger() -> None:
    notice = record(
        contract.NOTIFICATIONS,
        "notification.sent",
        {"work_order_id": "cluster:JH-01:heating", "notification_id": "N-c", "audience": "supervisor"},
    )
    found = verdict(calls("1"), [*whole("1"), notice], RUN)
    assert found["unexpected"] == {} and found["cluster_notices"] == 1
    assert found["lost"] == 0 and found["doubled"] == 0


def test_one_departments_breaches_at_two_levels_due_at_once_are_two_effects() -> None:
    """A cluster raises an order the instant it is made: its department holds a dispatch at the
    community and one at the street, both due at once; each clock's breach is its own."""
    o = order_of("1")
    breach = {"work_order_id": o, "department": "water", "deadline": "accept", "due": "2026-12-03T22:48:43Z"}
    alerts = [
        record(contract.ALERTS, "alert.sla_breached", breach | {"level": "community"}),
        record(contract.ALERTS, "alert.sla_breached", breach | {"level": "street"}),
    ]
    assert verdict(calls("1"), [*whole("1"), *alerts], RUN)["doubled"] == 0
    again = record(contract.ALERTS, "alert.sla_breached", breach | {"level": "street"})
    assert verdict(calls("1"), [*whole("1"), *alerts, again], RUN)["doubled"] == 1
