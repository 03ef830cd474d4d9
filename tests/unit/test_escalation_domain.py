"""Escalation's rules: when to remind (督办) and where a breached order goes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

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
