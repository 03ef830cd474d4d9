"""Escalation's own database: one row per running deadline (the clocks)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Boolean, DateTime, Index, String, func, select, text, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from shared.clock import BusinessClockRow
from shared.db import Base, bulk_insert, json_keys, key_in, keys_table, service_metadata
from shared.housekeeping import Prunable
from shared.messaging import InboxRow, OutboxRow

from .domain import DueClock


class Model(Base):
    __abstract__ = True
    metadata = service_metadata()


class Inbox(InboxRow, Model):
    __tablename__ = "inbox"


class Outbox(OutboxRow, Model):
    __tablename__ = "outbox"


class Clock(Model):
    __tablename__ = "clocks"

    id: Mapped[str] = mapped_column(String(120), primary_key=True)  # <dispatch_id>:<kind>
    work_order_id: Mapped[str] = mapped_column(String(80), index=True)
    dispatch_id: Mapped[str] = mapped_column(String(100))
    department: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(16))
    area: Mapped[str] = mapped_column(String(100))  # the key of its alerts: community, else street
    urgency: Mapped[str] = mapped_column(String(16), default="normal")  # which calendar counts it
    kind: Mapped[str] = mapped_column(String(8))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    remind_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reminded: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(8), default="open")  # open, fired, stopped
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    # The clock loop reads the open clocks alone, however many have ended (a year's are millions);
    # the ended ones are pruned by age (PRUNABLE).
    __table_args__ = (
        Index("ix_clocks_open_due_at", "due_at", postgresql_where=text("state = 'open'")),
        Index(
            "ix_clocks_open_remind_at", "remind_at", postgresql_where=text("state = 'open' AND NOT reminded")
        ),
        Index("ix_clocks_ended", "updated_at", postgresql_where=text("state <> 'open'")),
    )


class BusinessClock(BusinessClockRow, Model):
    __tablename__ = "business_clock"


# Ended clocks, once past the redelivery horizon (shared/housekeeping.py): a clock made again by a
# redelivered event would be dropped by its id (start), so they go no sooner than the inbox's ids.
PRUNABLE = (Prunable("clocks", "updated_at", "state <> 'open'"),)

# Due work, claimed so that replicas never fire the same clock twice.
# The clocks due and the reminders due, each read and locked in its own partial index (with the
# two in one OR, every open clock was read each round: tens of thousands in a burst, every half
# second). Each part skips what another replica holds, so replicas share the due clocks; the outer
# WHERE is the claim's whole condition, rechecked on a row changed since the round began.
_DUE = text(
    "SELECT * FROM clocks WHERE ("
    "id = ANY(ARRAY(SELECT id FROM clocks WHERE state = 'open' AND due_at <= :now "
    "ORDER BY due_at LIMIT :n FOR UPDATE SKIP LOCKED)) OR "
    "id = ANY(ARRAY(SELECT id FROM clocks WHERE state = 'open' AND NOT reminded AND remind_at <= :now "
    "ORDER BY remind_at LIMIT :n FOR UPDATE SKIP LOCKED))) "
    "AND state = 'open' AND (due_at <= :now OR (NOT reminded AND remind_at <= :now)) "
    "ORDER BY due_at LIMIT :n FOR UPDATE SKIP LOCKED"
)


# A due clock's order must be the round's alone: its other open clocks are locked too, or the
# clock waits for the next round. A round that waited for them (to stop them, on a breach) while
# holding the clocks it claimed deadlocked with a batch, or the other replica's round, holding
# those and waiting on these. So the clock loop never waits for a lock.
_BUSY = text(
    "WITH mine AS (SELECT id FROM clocks WHERE work_order_id = ANY(CAST(:orders AS text[])) "
    "AND state = 'open' FOR UPDATE SKIP LOCKED) "
    "SELECT DISTINCT work_order_id FROM clocks WHERE work_order_id = ANY(CAST(:orders AS text[])) "
    "AND state = 'open' AND id NOT IN (SELECT id FROM mine)"
)

# A batch's orders' clocks, whatever their state (a refused return opens a stopped one again),
# locked in one order: the clock loop never waits, and batches queue behind one another.
_LOCK = text(
    "SELECT id FROM clocks WHERE work_order_id = ANY(CAST(:orders AS text[])) ORDER BY id FOR UPDATE"
)


async def lock(conn: AsyncConnection, order_ids: set[str]) -> None:
    if order_ids:
        await conn.execute(_LOCK, {"orders": sorted(order_ids)})


_START = bulk_insert(
    Clock.__table__,  # type: ignore[arg-type]
    (
        "id",
        "work_order_id",
        "dispatch_id",
        "department",
        "level",
        "area",
        "urgency",
        "kind",
        "started_at",
        "due_at",
        "remind_at",
        "reminded",
        "state",
    ),
    "ON CONFLICT DO NOTHING",
)


async def start(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    await _START.execute(conn, rows)


_RESTART = bulk_insert(
    Clock.__table__,  # type: ignore[arg-type]
    _START.columns,
    "ON CONFLICT (id) DO UPDATE SET state = 'open', started_at = excluded.started_at, "
    "due_at = excluded.due_at, remind_at = excluded.remind_at, reminded = false, updated_at = now()",
)


async def restart(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Clocks run again from the start to new deadlines (a return refused: the dispatch is back)."""
    await _RESTART.execute(conn, rows)


# What stops an order's open clocks: the order, and the kind and dispatch they must be of (None: any).
Stop = tuple[str, str | None, str | None]

# Many orders' stops in one statement. Their clocks are found by order alone (key_in, in the
# orders' index), then filtered: with the state in the same scan, the planner took the partial
# index of every open clock whenever its statistics were stale (a burst leaves tens of thousands).
_STOP = text(
    "WITH theirs AS MATERIALIZED (SELECT id, work_order_id, kind, dispatch_id, state FROM clocks "
    f"WHERE {key_in('work_order_id', 'stops')}) "
    "UPDATE clocks SET state = 'stopped', updated_at = now() "
    f"FROM theirs JOIN {keys_table('stops', 'work_order_id', 'kind', 'dispatch_id')} AS s "
    "ON theirs.work_order_id = s.work_order_id "
    # clocks.state again: a row changed since the CTE's snapshot is rechecked on it alone.
    "WHERE clocks.id = theirs.id AND theirs.state = 'open' AND clocks.state = 'open' "
    "AND (s.kind IS NULL OR theirs.kind = s.kind) "
    "AND (s.dispatch_id IS NULL OR theirs.dispatch_id = s.dispatch_id)"
)


async def stop_many(conn: AsyncConnection, stops: Sequence[Stop]) -> None:
    if stops:
        await conn.execute(_STOP, {"stops": json_keys(stops)})


Change = tuple[Literal["start"], dict[str, Any]] | tuple[Literal["stop"], Stop]


def rounds(changes: Sequence[Change]) -> list[tuple[list[dict[str, Any]], list[Stop]]]:
    """A batch's clock changes as rounds of (clocks started, stops), each round one statement of
    each, its starts written before its stops: an order's changes keep their order (a new round
    where it starts clocks after stopping some), while different orders' clocks, which are apart,
    go in the same rounds."""
    last: dict[str, tuple[int, str]] = {}  # order -> its last change's round and what it did
    out: list[tuple[list[dict[str, Any]], list[Stop]]] = []
    for change in changes:
        order = change[1]["work_order_id"] if change[0] == "start" else change[1][0]
        seen = last.get(order)
        n = 0 if seen is None else seen[0] + (seen[1] == "stop" and change[0] == "start")
        last[order] = (n, change[0])
        if n == len(out):
            out.append(([], []))
        if change[0] == "start":
            out[n][0].append(change[1])
        else:
            out[n][1].append(change[1])
    return out


@dataclass
class ClockChanges:
    """A batch's clocks started and stopped, written together (``flush``): a statement or two an
    order took a good part of escalation's time in a burst."""

    changes: list[Change] = field(default_factory=list)

    def start(self, rows: list[dict[str, Any]]) -> None:
        self.changes += [("start", row) for row in rows]

    def stop(self, work_order_id: str, *, kind: str | None = None, dispatch_id: str | None = None) -> None:
        self.changes.append(("stop", (work_order_id, kind or None, dispatch_id or None)))

    async def flush(self, conn: AsyncConnection) -> None:
        """Each order's changes in their order; called before anything reads the clocks or
        writes them otherwise."""
        changes, self.changes = self.changes, []
        for started, stops in rounds(changes):
            await start(conn, started)
            await stop_many(conn, stops)


async def move(conn: AsyncConnection, clock_id: str, due_at: datetime, remind_at: datetime) -> None:
    stmt = (
        update(Clock)
        .where(Clock.id == clock_id, Clock.state == "open")
        .values(due_at=due_at, remind_at=remind_at, reminded=False, updated_at=func.now())
    )
    await conn.execute(stmt)


async def get(conn: AsyncConnection, clock_id: str) -> Row[Any] | None:
    return (await conn.execute(select(Clock).where(Clock.id == clock_id))).first()


async def claim_due(conn: AsyncConnection, now: datetime, limit: int = 200) -> list[DueClock]:
    """Due clocks no one else is working on, locked for the round with all their orders' open
    clocks (a breach stops them); never waits for a lock."""
    rows = (await conn.execute(_DUE, {"now": now, "n": limit})).all()
    if not rows:
        return []
    orders = sorted({r.work_order_id for r in rows})
    busy = set((await conn.execute(_BUSY, {"orders": orders})).scalars())
    return [
        DueClock(
            id=r.id,
            work_order_id=r.work_order_id,
            dispatch_id=r.dispatch_id,
            department=r.department,
            level=r.level,
            area=r.area,
            kind=r.kind,
            due_at=r.due_at,
            remind_at=r.remind_at,
        )
        for r in rows
        if r.work_order_id not in busy
    ]


async def mark(conn: AsyncConnection, clock_id: str, **values: Any) -> None:
    await conn.execute(update(Clock).where(Clock.id == clock_id).values(updated_at=func.now(), **values))


_OPEN_CLOCKS = text("SELECT count(*) FROM clocks WHERE state = 'open'")
# The first entry of the open clocks' index: one row read, however many run.
_OLDEST = text("SELECT due_at FROM clocks WHERE state = 'open' ORDER BY due_at LIMIT 1")


async def open_clocks(conn: AsyncConnection) -> int:
    """How many clocks run: a count of every open clock, so not asked every round."""
    return int((await conn.execute(_OPEN_CLOCKS)).scalar_one())


async def oldest_overdue(conn: AsyncConnection, now: datetime) -> datetime | None:
    """The deadline of the oldest clock already overdue, if any."""
    oldest = (await conn.execute(_OLDEST)).scalar_one_or_none()
    return oldest if oldest is not None and oldest <= now else None
