"""Escalation's rules: when to remind (督办) and where a breached order goes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.escalation.domain import (
    Breach,
    Deadline,
    DueClock,
    Event,
    alert_area,
    feedback_clock_id,
    fire,
    on_breach,
    remind_at,
)
from shared import contract
from shared.contract import (
    DispatchReminder,
    EscalationRequested,
    Level,
    SlaBreached,
)
from shared.events import derived_id

START = datetime(2026, 11, 21, 8, 0, tzinfo=timezone(timedelta(hours=8)))


@pytest.mark.parametrize(
    ("due_in", "share", "expected"),
    [
        (timedelta(hours=24), 0.5, timedelta(hours=12)),
        (timedelta(hours=24), 0.75, timedelta(hours=18)),
        (timedelta(minutes=30), 0.8, timedelta(minutes=24)),
        (timedelta(days=7), 0.0, timedelta(0)),
        (timedelta(days=7), 1.0, timedelta(days=7)),
    ],
)
def test_remind_at_a_share_of_the_time_allowed(due_in: timedelta, share: float, expected: timedelta) -> None:
    deadline = Deadline("resolve", START, START + due_in)
    assert remind_at(deadline, share) == START + expected


@pytest.mark.parametrize(
    ("kind", "level", "to_level", "reason"),
    [
        ("accept", "property", "community", "not signed for by yeda_wuye in time"),
        ("accept", "grid", "community", "not signed for by yeda_wuye in time"),
        ("resolve", "community", "street", "not resolved by yeda_wuye in time"),
        ("resolve", "street", "district", "not resolved by yeda_wuye in time"),
        ("accept", "district", None, "not signed for by yeda_wuye in time"),  # top: supervisors are alerted
    ],
)
def test_on_breach(kind: str, level: Level, to_level: Level | None, reason: str) -> None:
    assert on_breach(kind, level, "yeda_wuye") == Breach(to_level, reason)


def test_business_time_follows_the_events_then_the_wall_clock_since() -> None:
    from shared.clock import BEGINNING, business_now

    event_time = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)  # a replayed morning, hours in the past
    seen_at = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)
    ahead = timedelta(minutes=5)
    assert business_now(None, seen_at, ahead) == BEGINNING  # nothing seen yet: nothing is due
    assert business_now((event_time, seen_at), seen_at, ahead) == event_time
    assert business_now(
        (event_time, seen_at), seen_at + timedelta(seconds=3), ahead
    ) == event_time + timedelta(seconds=3)
    future = seen_at + timedelta(hours=2)  # a source whose clock runs two hours fast
    assert business_now((future, seen_at), seen_at, ahead) == seen_at + ahead


@pytest.mark.parametrize(
    ("community", "street", "area"),
    [("中信公寓", "大连路街道", "中信公寓"), (None, "大连路街道", "大连路街道"), (None, None, "unplaced")],
)
def test_alerts_are_keyed_by_the_community_else_the_street(
    community: str | None, street: str | None, area: str
) -> None:
    assert alert_area(community, street) == area


# ---- A round of the clock loop -----------------------------------------------------------------

NOW = START + timedelta(hours=10)
SOON = NOW + timedelta(hours=2)  # a deadline still ahead: only its reminder can be due
PAST = NOW - timedelta(hours=1)


def due(
    dispatch: str,
    kind: str = "accept",
    *,
    order: str = "WO-1",
    due_at: datetime = PAST,
    level: Level = "community",
) -> DueClock:
    return DueClock(
        id=f"{dispatch}:{kind}",
        work_order_id=order,
        dispatch_id=dispatch,
        department="yeda_wuye",
        level=level,
        area="中信公寓",
        kind=kind,
        due_at=due_at,
        remind_at=due_at - timedelta(hours=3),
    )


@pytest.mark.parametrize(
    ("clocks", "fired", "stopped"),
    [
        pytest.param([due("D1", due_at=SOON)], [("D1:accept", {"reminded": True})], [], id="reminder only"),
        pytest.param([due("D1")], [("D1:accept", {"state": "fired"})], ["WO-1"], id="breach"),
        pytest.param(
            [due("D1", due_at=NOW)], [("D1:accept", {"state": "fired"})], ["WO-1"], id="due right now"
        ),
        pytest.param(
            [due("D1"), due("D1", "resolve")],
            [("D1:accept", {"state": "fired"})],
            ["WO-1"],
            id="one breach per order climbs once",
        ),
        pytest.param(
            [due("D1"), due("D2", due_at=SOON)],
            [("D1:accept", {"state": "fired"})],
            ["WO-1"],
            id="a breached order's reminder is passed over",
        ),
        pytest.param(
            [due("D2", due_at=SOON), due("D1")],
            [("D2:accept", {"reminded": True}), ("D1:accept", {"state": "fired"})],
            ["WO-1"],
            id="a reminder before the breach goes",
        ),
        pytest.param(
            [due("D1"), due("D2", order="WO-2"), due("D1", "resolve"), due("D3", order="WO-3", due_at=SOON)],
            [
                ("D1:accept", {"state": "fired"}),
                ("D2:accept", {"state": "fired"}),
                ("D3:accept", {"reminded": True}),
            ],
            ["WO-1", "WO-2"],
            id="orders apart",
        ),
        pytest.param([], [], [], id="nothing due"),
        pytest.param(
            [due("WO-1", "feedback")], [("WO-1:feedback", {"state": "fired"})], [], id="a command clock"
        ),
        pytest.param(
            [due("D1"), due("D1", "review")],
            [("D1:accept", {"state": "fired"}), ("D1:review", {"state": "fired"})],
            ["WO-1"],
            id="a command clock fires beside a breach",
        ),
    ],
)
def test_a_round_reminds_or_breaches_each_clock_once_per_order(
    clocks: list[DueClock], fired: list[tuple[str, dict[str, object]]], stopped: list[str]
) -> None:
    decided = fire(clocks, NOW)
    assert [(f.clock.id, f.changes) for f in decided.fired] == fired
    assert list(decided.stopped) == stopped


def test_a_reminder_is_sent_at_its_time_and_keeps_the_clock_running() -> None:
    clock = due("D1", "resolve", due_at=SOON)
    [fired] = fire([clock], NOW).fired
    assert fired.breach is None
    assert fired.events == (
        Event(
            "dispatch.yeda_wuye.v1",
            "WO-1",
            "dispatch.reminder",
            DispatchReminder(
                dispatch_id="D1",
                work_order_id="WO-1",
                department="yeda_wuye",
                deadline="resolve",
                due=SOON,
                overdue=False,
            ),
            clock.remind_at,
            derived_id("D1:resolve", "remind", SOON.isoformat()),
        ),
    )


@pytest.mark.parametrize(
    ("kind", "level", "to_level", "reason"),
    [
        ("accept", "property", "community", "not signed for by yeda_wuye in time"),
        ("resolve", "street", "district", "not resolved by yeda_wuye in time"),
        ("accept", "district", None, "not signed for by yeda_wuye in time"),  # supervisors are alerted
    ],
)
def test_a_breach_is_told_alerted_and_climbs_one_level_below_the_top(
    kind: str, level: Level, to_level: Level | None, reason: str
) -> None:
    """Also a clock whose reminder went already: the deadline's events go at the deadline's time."""
    clock = due("D1", kind, level=level)
    [fired] = fire([clock], NOW).fired
    ids = (f"D1:{kind}", "breach", PAST.isoformat())
    expected = [
        Event(
            "dispatch.yeda_wuye.v1",
            "WO-1",
            "dispatch.reminder",
            DispatchReminder(
                dispatch_id="D1",
                work_order_id="WO-1",
                department="yeda_wuye",
                deadline=kind,
                due=PAST,
                overdue=True,
            ),
            PAST,
            derived_id(*ids, "r"),
        ),
        Event(
            contract.ALERTS,
            "中信公寓",
            "alert.sla_breached",
            SlaBreached(work_order_id="WO-1", department="yeda_wuye", deadline=kind, due=PAST, level=level),
            PAST,
            derived_id(*ids, "a"),
        ),
    ]
    if to_level:
        command = EscalationRequested(
            work_order_id="WO-1", from_level=level, to_level=to_level, reason=reason, dispatch_id="D1"
        )
        expected.append(
            Event(
                contract.ESCALATION_COMMANDS,
                "WO-1",
                "escalation.requested",
                command,
                PAST,
                derived_id(*ids, "e"),
            )
        )
    assert fired.breach == Breach(to_level, reason)
    assert list(fired.events) == expected
    assert fired.changes == {"state": "fired"}


def test_a_rounds_events_come_in_the_order_of_its_clocks() -> None:
    decided = fire([due("D1", due_at=SOON, order="WO-2"), due("D2"), due("D2", "resolve")], NOW)
    assert [(e.key, e.type) for e in decided.events] == [
        ("WO-2", "dispatch.reminder"),
        ("WO-1", "dispatch.reminder"),
        ("中信公寓", "alert.sla_breached"),
        ("WO-1", "escalation.requested"),
    ]


@pytest.mark.parametrize(
    ("kind", "type", "data"),
    [
        ("feedback", "feedback.expired", {"work_order_id": "WO-1", "feedback_by": PAST}),
        (
            "review",
            "return.review.expired",
            {"work_order_id": "WO-1", "dispatch_id": "D1", "review_by": PAST},
        ),
    ],
)
def test_a_command_clock_sends_its_command_to_dispatch_at_its_due_time(
    kind: str, type: str, data: dict[str, object]
) -> None:
    """No reminder, no alert: the wait was on the centre or the resident, not on a department."""
    clock = due("D1", kind)
    [fired] = fire([clock], NOW).fired
    [event] = fired.events
    assert (event.topic, event.key, event.type, event.time) == (
        contract.ESCALATION_COMMANDS,
        "WO-1",
        type,
        PAST,
    )
    assert event.data.model_dump() == data
    assert event.id == derived_id(clock.id, "expired")
    assert fired.breach is None


def test_a_feedback_clock_is_one_per_resolution() -> None:
    first = feedback_clock_id("WO-1", PAST)
    assert first == f"WO-1:feedback:{int(PAST.timestamp())}"
    assert feedback_clock_id("WO-1", NOW) != first
