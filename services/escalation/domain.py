"""Escalation's pure rules: when to remind, when a clock has fired, and where the order goes next."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.calendar import Calendar
from shared.contract import Level
from shared.reference import next_level


@dataclass(frozen=True, slots=True)
class Deadline:
    kind: str  # "accept" | "resolve"
    started_at: datetime
    due_at: datetime


def remind_at(deadline: Deadline, share: float, calendar: Calendar = Calendar()) -> datetime:
    """督办 comes before the deadline, at a share of the time allowed (counted as the limit was)."""
    return calendar.share(deadline.started_at, deadline.due_at, share)


@dataclass(frozen=True, slots=True)
class Breach:
    to_level: Level | None  # None: at the top of the ladder, supervisors are alerted instead
    reason: str


def on_breach(kind: str, level: Level, department: str) -> Breach:
    verb = "signed for" if kind == "accept" else "resolved"
    return Breach(next_level(level), f"not {verb} by {department} in time")
