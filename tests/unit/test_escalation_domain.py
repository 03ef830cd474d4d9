"""Escalation's rules: when to remind (督办) and where a breached order goes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.escalation.domain import Breach, Deadline, on_breach, remind_at
from shared.contract import Level

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
    from shared.clock import business_now

    event_time = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)  # a replayed morning, hours in the past
    seen_at = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)
    ahead = timedelta(minutes=5)
    assert business_now(None, seen_at, ahead) == seen_at  # nothing seen yet: the wall clock
    assert business_now((event_time, seen_at), seen_at, ahead) == event_time
    assert business_now(
        (event_time, seen_at), seen_at + timedelta(seconds=3), ahead
    ) == event_time + timedelta(seconds=3)
    future = seen_at + timedelta(hours=2)  # a source whose clock runs two hours fast
    assert business_now((future, seen_at), seen_at, ahead) == seen_at + ahead
