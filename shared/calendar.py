"""Counting time limits: in calendar time, or in working time (Shanghai's street rules count working
days). Working time skips whole non-working days: weekends and holidays, except make-up working days
(调休). Days are the jurisdiction's local days."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Counting = Literal["calendar", "working"]


@dataclass(frozen=True)
class Calendar:
    counting: Counting = "calendar"
    timezone: str = "Asia/Shanghai"
    holidays: frozenset[date] = field(default_factory=frozenset)
    workdays: frozenset[date] = field(default_factory=frozenset)  # weekend days worked (调休)

    def is_working(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def add(self, start: datetime, limit: timedelta) -> datetime:
        """The moment ``limit`` has elapsed after ``start``, counting as configured."""
        if self.counting == "calendar":
            return start + limit
        zone = ZoneInfo(self.timezone)
        cursor = start.astimezone(zone)
        remaining = limit
        while True:
            next_midnight = datetime.combine(cursor.date() + timedelta(days=1), time(0), zone)
            if self.is_working(cursor.date()):
                span = next_midnight - cursor
                if remaining <= span:
                    return (cursor + remaining).astimezone(start.tzinfo)
                remaining -= span
            cursor = next_midnight

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Time counted between two moments (the inverse of ``add``)."""
        if self.counting == "calendar" or end <= start:
            return end - start
        zone = ZoneInfo(self.timezone)
        cursor, end_local = start.astimezone(zone), end.astimezone(zone)
        counted = timedelta(0)
        while cursor < end_local:
            next_midnight = datetime.combine(cursor.date() + timedelta(days=1), time(0), zone)
            stop = min(next_midnight, end_local)
            if self.is_working(cursor.date()):
                counted += stop - cursor
            cursor = stop
        return counted

    def share(self, start: datetime, due: datetime, fraction: float) -> datetime:
        """The moment ``fraction`` of the time from start to due has been counted (reminders)."""
        return self.add(start, self.elapsed(start, due) * fraction)
