"""Counting time limits in calendar time and in working days (weekends, holidays, 调休)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.dispatch.routing import deadlines
from services.escalation.domain import Deadline, remind_at
from shared.calendar import Calendar
from shared.reference import TimeLimit

CST = ZoneInfo("Asia/Shanghai")
# 2026-10-01 (Thursday) and 10-02 (Friday) are holidays; Sunday 10-11 is a make-up working day.
WORKING = Calendar(
    counting="working",
    holidays=frozenset({date(2026, 10, 1), date(2026, 10, 2)}),
    workdays=frozenset({date(2026, 10, 11)}),
)


def at(day: int, hour: int = 9, month: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=CST)


def test_calendar_time_is_plain_addition() -> None:
    assert Calendar().add(at(2), timedelta(days=5)) == at(7)


@pytest.mark.parametrize(
    ("start", "limit", "due"),
    [
        (at(28, month=9), timedelta(days=1), at(29, month=9)),  # Monday -> Tuesday
        (at(30, month=9), timedelta(days=1), at(5)),  # Wednesday: holidays Thu-Fri, weekend, Monday
        (at(30, month=9), timedelta(hours=20), at(5, 5)),  # 15 h left on Wednesday, 5 h on Monday
        (at(9), timedelta(days=1), at(11)),  # Friday: Saturday off, Sunday 10-11 is worked
        (at(9), timedelta(days=5), at(15)),  # Fri 15 h, Sat off, Sun 10-11 worked, Mon-Wed, Thu 9 h
    ],
)
def test_working_days_skip_weekends_and_holidays(start: datetime, limit: timedelta, due: datetime) -> None:
    assert WORKING.add(start, limit) == due
    assert WORKING.elapsed(start, due) == limit


def test_a_limit_started_on_a_rest_day_starts_counting_on_the_next_working_day() -> None:
    assert WORKING.add(at(3, 15), timedelta(hours=2)) == at(5, 2)  # Saturday afternoon -> Monday 02:00


def test_deadlines_and_reminders_count_the_same_way() -> None:
    accept_by, resolve_by = deadlines(
        at(30, month=9), TimeLimit(accept=timedelta(days=1), resolve=timedelta(days=5)), WORKING
    )
    # Wed 15 h, holidays Thu-Fri, weekend, then Mon-Thu (96 h), Fri 9 h: 120 working hours.
    assert accept_by == at(5) and resolve_by == at(9)
    reminder = remind_at(Deadline("accept", at(30, month=9), accept_by), 0.75, WORKING)
    assert reminder == at(5, 3)  # 75% of 24 working hours: Wednesday's 15, then 3 on Monday
