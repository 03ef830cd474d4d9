"""Notify's rules: who is told about which event, and the rendered text."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.notify.domain import (
    RESIDENT_STATE,
    Planned,
    catch_up,
    hold_until,
    kept_for_residents_to_come,
    outcome,
    plan,
    residents_to_tell,
)
from services.notify.templates import SOURCES, VERSION, render, versioned


def order(**fields: Any) -> dict[str, Any]:
    return {
        "work_order_id": "WO-H-1",
        "status": "dispatched",
        "level": "community",
        "category": "heating",
    } | fields


def who(planned: list[Planned]) -> list[tuple[str, str, str]]:
    return [(p.audience, p.recipient, p.template) for p in planned]


@pytest.mark.parametrize(
    ("event_type", "data", "expected"),
    [
        ("intake.contact.recorded", {"work_order_id": "WO-H-1"}, [("resident", "WO-H-1", "received")]),
        ("workorder.accepted", order(status="accepted"), [("resident", "WO-H-1", "accepted")]),
        (
            "workorder.resolved",
            order(status="resolved"),
            [("resident", "WO-H-1", "resolved"), ("resident", "WO-H-1", "follow_up")],
        ),
        ("workorder.reopened", order(), [("resident", "WO-H-1", "reopened")]),
    ],
)
def test_resident_is_told_when_a_contact_is_known(
    event_type: str, data: dict[str, Any], expected: list[tuple[str, str, str]]
) -> None:
    assert who(plan(event_type, data, residents=["WO-H-1"])) == expected
    assert plan(event_type, data, residents=[]) == []


def test_resident_not_told_of_an_acceptance_that_did_not_accept_the_order() -> None:
    # An assisting department signing for its part leaves the order in its status.
    assert residents_to_tell("workorder.accepted", order(status="dispatched"), {"WO-H-1": "received"}) == []
    assert residents_to_tell("workorder.accepted", order(status="accepted"), {"WO-H-1": "received"}) == [
        "WO-H-1"
    ]


def test_a_resident_hears_of_each_state_once_until_the_state_changes() -> None:
    accepted = order(status="accepted")
    # The second department to sign after a return: nothing new for a resident told "accepted".
    told = {"WO-H-1": "accepted", "WO-H-2": "received"}  # WO-H-2 joined after the first acceptance
    assert residents_to_tell("workorder.accepted", accepted, told) == ["WO-H-2"]
    # After a reopening, a new resolution is news again.
    assert residents_to_tell("workorder.resolved", order(status="resolved"), {"WO-H-1": "reopened"}) == [
        "WO-H-1"
    ]
    assert residents_to_tell("workorder.resolved", order(status="resolved"), {"WO-H-1": "resolved"}) == []
    # Events that tell residents nothing.
    assert residents_to_tell("workorder.escalated", order(), {"WO-H-1": None}) == []
    assert residents_to_tell("dispatch.assigned", order(), {"WO-H-1": None}) == []


@pytest.mark.parametrize(
    ("event_type", "data", "recipient", "template"),
    [
        (
            "workorder.escalated",
            order(level="street", from_level="community", to_level="street"),
            "supervisor:street",
            "escalated",
        ),
        (
            "alert.sla_breached",
            {"work_order_id": "WO-H-1", "level": "district"},
            "supervisor:district",
            "sla_breached",
        ),
        (
            "alert.cluster_detected",
            {"category": "heating", "community": "夹河社区"},
            "supervisor:street",
            "cluster_detected",
        ),
    ],
)
def test_supervisors_are_told_of_escalations_and_alerts(
    event_type: str, data: dict[str, Any], recipient: str, template: str
) -> None:
    assert who(plan(event_type, data, residents=[])) == [("supervisor", recipient, template)]


@pytest.mark.parametrize("event_type", ["workorder.created", "workorder.merged", "workorder.closed", "x.y"])
def test_other_events_tell_nobody(event_type: str) -> None:
    assert plan(event_type, order(), residents=["WO-H-1"]) == []


def test_render_fills_the_template() -> None:
    text = render("accepted", {"work_order_id": "WO-H-1", "department": "热力公司"})
    assert text == "【12345】您的工单WO-H-1已由热力公司签收，正在处理。"


def test_render_leaves_out_what_is_missing() -> None:
    assert render("resolved", {"work_order_id": "WO-H-1"}) == "【12345】您的工单WO-H-1已办结。"
    assert (
        render("resolved", {"work_order_id": "WO-H-1", "result": "已修复"})
        == "【12345】您的工单WO-H-1已办结：已修复。"
    )


def test_render_department_and_supervisor_texts() -> None:
    cluster = {"community": "夹河社区", "category": "供暖", "count": 12, "window_minutes": 60}
    assert render("cluster_detected", cluster) == "预警：夹河社区60分钟内12件供暖类诉求"
    lead = {
        "work_order_id": "WO-H-1",
        "category_name": "供暖",
        "role": "lead",
        "accept_by": "08:45",
        "resolve_by": "次日",
    }
    assert render("new_work", lead).startswith("新工单WO-H-1（供暖，主办）请于08:45前签收")
    assert "协办" in render("new_work", lead | {"role": "assist"})
    late = {"work_order_id": "WO-H-1", "overdue": True, "deadline": "accept", "due": "08:45"}
    assert render("reminder", late) == "督办：工单WO-H-1已超过签收时限（08:45）。"


@pytest.mark.parametrize("template", sorted(SOURCES))
def test_every_template_renders_without_data(template: str) -> None:
    assert "{" not in render(template, {})


def test_templates_are_versioned() -> None:
    assert versioned("accepted") == f"accepted@{VERSION}"


@pytest.mark.parametrize(
    ("event_type", "template"),
    [
        ("dispatch.assigned", "new_work"),
        ("dispatch.reminder", "reminder"),
        ("dispatch.cancelled", "cancelled"),
    ],
)
def test_departments_hear_of_new_work_reminders_and_cancellations(event_type: str, template: str) -> None:
    assert who(plan(event_type, {"work_order_id": "WO-H-1", "department": "heat"}, residents=[])) == [
        ("department", "heat", template)
    ]


def test_every_reporter_of_a_merged_order_is_told() -> None:
    planned = plan("workorder.resolved", order(status="resolved"), residents=["WO-H-1", "WO-H-2"])
    assert sorted(who(planned)) == [
        ("resident", "WO-H-1", "follow_up"),
        ("resident", "WO-H-1", "resolved"),
        ("resident", "WO-H-2", "follow_up"),
        ("resident", "WO-H-2", "resolved"),
    ]


def test_a_merged_reporter_hears_that_the_problem_is_already_in_hand() -> None:
    assert who(plan("intake.contact.merged", {"work_order_id": "WO-H-1"}, residents=["WO-H-2"])) == [
        ("resident", "WO-H-2", "joined")
    ]


@pytest.mark.parametrize(
    ("local", "held_until"),
    [
        ("2026-11-21T21:59:00", None),
        ("2026-11-21T22:00:00", "2026-11-22T07:00:00"),
        ("2026-11-21T23:30:00", "2026-11-22T07:00:00"),
        ("2026-11-22T03:00:00", "2026-11-22T07:00:00"),
        ("2026-11-22T07:00:00", None),
        ("2026-11-22T12:00:00", None),
    ],
)
def test_quiet_hours_hold_resident_messages_until_morning(local: str, held_until: str | None) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from services.notify.domain import quiet_until

    cst = ZoneInfo("Asia/Shanghai")
    at = datetime.fromisoformat(local).replace(tzinfo=cst)
    expected = datetime.fromisoformat(held_until).replace(tzinfo=cst) if held_until else None
    assert quiet_until(at, "22:00-07:00", "Asia/Shanghai") == expected
    assert quiet_until(at, "", "Asia/Shanghai") is None  # quiet hours turned off


@pytest.mark.parametrize(
    ("audience", "urgency", "local", "held_until"),
    [
        ("resident", "normal", "2026-11-21T23:30:00", "2026-11-22T07:00:00"),
        ("resident", "urgent", "2026-11-21T23:30:00", "2026-11-22T07:00:00"),
        ("resident", "emergency", "2026-11-21T23:30:00", None),  # told at once, night or not
        ("resident", "normal", "2026-11-21T12:00:00", None),
        ("department", "normal", "2026-11-21T23:30:00", None),  # departments and supervisors work nights
        ("supervisor", "normal", "2026-11-21T23:30:00", None),
    ],
)
def test_only_residents_wait_for_the_end_of_the_quiet_hours_and_not_in_an_emergency(
    audience: str, urgency: str, local: str, held_until: str | None
) -> None:
    cst = ZoneInfo("Asia/Shanghai")
    at = datetime.fromisoformat(local).replace(tzinfo=cst)
    expected = datetime.fromisoformat(held_until).replace(tzinfo=cst) if held_until else None
    assert hold_until(audience, urgency, at, "22:00-07:00", "Asia/Shanghai") == expected


@pytest.mark.parametrize(
    ("error", "attempts", "expected"),
    [
        (None, 1, "sent"),
        (None, 8, "sent"),
        ("HTTPStatusError: 500", 1, "retry"),
        ("HTTPStatusError: 500", 7, "retry"),
        ("HTTPStatusError: 500", 8, "failed"),  # the last attempt allowed
        ("HTTPStatusError: 500", 9, "failed"),
    ],
)
def test_a_failed_attempt_is_tried_again_until_the_last_allowed(
    error: str | None, attempts: int, expected: str
) -> None:
    assert outcome(error, attempts, max_attempts=8) == expected


# ---- the contact race: states seen before the resident's contact ------------------------------

ACCEPTED = ("workorder.accepted", order(status="accepted", source="hotline"))
ASSIST_ACCEPTED = ("workorder.accepted", order(status="dispatched", source="hotline"))
RESOLVED = ("workorder.resolved", order(status="resolved", source="hotline"))
REOPENED = ("workorder.reopened", order(status="dispatched", source="hotline"))
ESCALATED = ("workorder.escalated", order(status="dispatched", source="hotline"))


@pytest.mark.parametrize(
    ("seen", "told"),
    [
        ([], []),
        ([ACCEPTED], ["accepted"]),
        ([ASSIST_ACCEPTED], []),  # an assisting department's part: no news for the resident
        ([ACCEPTED, ACCEPTED], ["accepted"]),  # signed for again after a return: once
        ([ACCEPTED, RESOLVED], ["accepted", "resolved"]),
        ([RESOLVED, REOPENED, ACCEPTED, RESOLVED], ["resolved", "reopened", "accepted", "resolved"]),
        ([ESCALATED, ACCEPTED, ESCALATED, ACCEPTED], ["accepted"]),  # re-dispatched: no new state
    ],
)
def test_a_resident_whose_contact_comes_late_hears_of_each_state_seen_once(
    seen: list[tuple[str, dict[str, Any]]], told: list[str]
) -> None:
    heard = catch_up([(kind, data, f"ev-{i}") for i, (kind, data) in enumerate(seen)])
    assert [RESIDENT_STATE[kind] for kind, _, _ in heard] == told
    # Each with the event that caused it: its notifications' ids are those the resident would have had.
    assert all(seen[int(cause.removeprefix("ev-"))][1] is data for _, data, cause in heard)


@pytest.mark.parametrize(
    ("event_type", "data", "residents", "kept"),
    [
        (*ACCEPTED, {}, True),  # the call's contact is not here yet
        (*RESOLVED, {}, True),
        (*REOPENED, {}, True),
        (*ACCEPTED, {"WO-H-1": "received"}, False),  # told now instead
        (*ASSIST_ACCEPTED, {}, False),  # nothing a resident would hear of
        (*ESCALATED, {}, False),
        ("workorder.accepted", order(status="accepted", source="grid"), {}, False),  # no contact ever
    ],
)
def test_which_states_are_kept_for_a_resident_to_come(
    event_type: str, data: dict[str, Any], residents: dict[str, str | None], kept: bool
) -> None:
    assert kept_for_residents_to_come(event_type, data, residents) is kept
