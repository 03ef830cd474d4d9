"""One clock interface: business time comes from events; timers ask the service clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import DateTime, Integer, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column


class Clock(Protocol):
    def now(self) -> datetime: ...


class WallClock:
    """The service clock for timers; handlers use the event's ``time`` instead."""

    def now(self) -> datetime:
        return datetime.now(UTC)


# ---- Business time for timers ----------------------------------------------------------------

MAX_AHEAD = timedelta(minutes=5)
# Business time before a service has seen any event: nothing can be due yet. Not the wall clock:
# a batch that commits the first timer between a round's clock read and its claim would find that
# timer judged by the wall clock, hours or days ahead of a replayed log.
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


def business_now(
    latest: tuple[datetime, datetime] | None, wall: datetime, max_ahead: timedelta = MAX_AHEAD
) -> datetime:
    """Business time for a service's timers: the latest event time it has seen, advanced by the wall
    time since it was seen, never more than ``max_ahead`` past the wall clock (a source with a fast
    clock must not fire everyone's timers). A replayed log thus fires the same timers at the same
    business times, however fast it is replayed; live, it follows the wall clock. Before any event:
    ``BEGINNING`` (every timer comes from an event, committed with the clock's advance)."""
    if latest is None:
        return BEGINNING
    event_time, seen_at = latest
    return min(event_time + (wall - seen_at), wall + max_ahead)


class BusinessClockRow:
    """Mixin: ``class BusinessClock(BusinessClockRow, Model): __tablename__ = "business_clock"``."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


_ADVANCE = text(
    "INSERT INTO business_clock (id, event_time, seen_at) VALUES (1, :event_time, :seen_at) "
    "ON CONFLICT (id) DO UPDATE SET event_time = excluded.event_time, seen_at = excluded.seen_at "
    "WHERE business_clock.event_time < excluded.event_time"
)
_READ = text("SELECT event_time, seen_at FROM business_clock WHERE id = 1")


class BusinessClock:
    """Reads and advances a service's business clock (its ``business_clock`` table). As a
    BatchUnit it advances the clock once per consumed batch, to the batch's latest event time."""

    def __init__(self, wall: Clock | None = None) -> None:
        self.wall = wall or WallClock()

    async def now(self, conn: AsyncConnection) -> datetime:
        row = (await conn.execute(_READ)).first()
        return business_now((row[0], row[1]) if row else None, self.wall.now())

    async def open(self, conn: AsyncConnection, messages: list[Any]) -> datetime | None:
        return max((m.event.time for m in messages), default=None)

    async def close(self, conn: AsyncConnection, latest: datetime | None) -> list[Any]:
        if latest is not None:
            await conn.execute(_ADVANCE, {"event_time": latest, "seen_at": self.wall.now()})
        return []
