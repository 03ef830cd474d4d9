"""One clock interface: business time comes from events; timers ask the service clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class WallClock:
    """The service clock for timers; handlers use the event's ``time`` instead."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """For tests: time moves only when told to."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, value: datetime) -> None:
        self._now = value
