"""A batch's clock changes written together (``store.ClockChanges``) leave the clocks as the same
changes written one by one, against the real PostgreSQL; and the stops find their orders' clocks in
the index however many ended clocks the table holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.escalation import store
from shared.db import json_keys
from tests.integration.databases import fresh_database

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def _clock(order: str, dispatch: str, kind: str) -> dict[str, Any]:
    return {
        "id": f"{dispatch}:{kind}",
        "work_order_id": order,
        "dispatch_id": dispatch,
        "department": "heat",
        "level": "community",
        "area": "x",
        "urgency": "normal",
        "kind": kind,
        "started_at": NOW,
        "due_at": NOW + timedelta(hours=1),
        "remind_at": NOW + timedelta(minutes=45),
        "reminded": False,
        "state": "open",
    }


# As a batch's handlers make them: dispatched, accepted, resolved (the feedback clock starts),
# merged, dispatched again after an escalation, a return under review.
CHANGES: list[store.Change] = [
    ("start", _clock("A", "A-D1", "accept")),
    ("start", _clock("A", "A-D1", "resolve")),
    ("start", _clock("B", "B-D1", "accept")),
    ("start", _clock("B", "B-D1", "resolve")),
    ("stop", ("A", "accept", "A-D1")),
    ("start", _clock("C", "C-D1", "accept")),
    ("stop", ("B", None, None)),
    ("start", _clock("B", "B-D2", "accept")),
    ("start", _clock("B", "B-D2", "resolve")),
    ("stop", ("A", None, None)),
    ("start", _clock("A", "A", "feedback")),
    ("stop", ("C", None, None)),
    ("start", _clock("C", "C-D1", "accept")),  # the same clock again: not started twice
    ("stop", ("B", None, "B-D2")),
    ("start", _clock("B", "B-D2", "review")),
]


async def _state(engine: AsyncEngine) -> set[tuple[str, str]]:
    async with engine.connect() as conn:
        return {(r[0], r[1]) for r in await conn.execute(text("SELECT id, state FROM clocks"))}


async def test_a_batch_s_changes_written_together_leave_what_one_by_one_leaves() -> None:
    async with fresh_database("whistle_test_clocks", "escalation") as engine:
        async with engine.begin() as conn:
            for change in CHANGES:
                if change[0] == "start":
                    await store.start(conn, [change[1]])
                else:
                    await store.stop_many(conn, [change[1]])
        one_by_one = await _state(engine)
    async with fresh_database("whistle_test_clocks", "escalation") as engine:
        changes = store.ClockChanges(list(CHANGES))
        async with engine.begin() as conn:
            await changes.flush(conn)
        together = await _state(engine)

    assert together == one_by_one
    assert together == {
        ("A-D1:accept", "stopped"),
        ("A-D1:resolve", "stopped"),
        ("A:feedback", "open"),
        ("B-D1:accept", "stopped"),
        ("B-D1:resolve", "stopped"),
        ("B-D2:accept", "stopped"),
        ("B-D2:resolve", "stopped"),
        ("B-D2:review", "open"),
        ("C-D1:accept", "stopped"),
    }
    assert changes.changes == []


@pytest.mark.parametrize("statistics", ["none yet", "from when few clocks were open"])
async def test_the_stops_find_clocks_by_order_whatever_the_planner_believes(statistics: str) -> None:
    """A burst leaves tens of thousands of clocks open: found with the state, the stops' clocks
    were read out of every open one (the open clocks' partial index) until statistics caught up."""
    rows = (
        "INSERT INTO clocks (id, work_order_id, dispatch_id, department, level, area, kind, "
        "started_at, due_at, remind_at, reminded, state) SELECT :p || i, 'WO-' || :p || i, 'D' || i, "
        "'heat', 'community', 'x', 'accept', :at, :at, :at, true, :state "
        "FROM generate_series(1, CAST(:n AS int)) AS i"
    )
    stops = json_keys([(f"WO-o{i}", None, None) for i in range(1, 300)])
    async with fresh_database("whistle_test_clocks", "escalation") as engine, engine.begin() as conn:
        await conn.execute(text(rows), {"p": "s", "at": NOW, "state": "stopped", "n": 20_000})
        if statistics != "none yet":
            await conn.execute(text(rows), {"p": "f", "at": NOW, "state": "open", "n": 10})
            await conn.execute(text("ANALYZE clocks"))
        await conn.execute(text(rows), {"p": "o", "at": NOW, "state": "open", "n": 20_000})
        explained = await conn.execute(text(f"EXPLAIN {store._STOP}"), {"stops": stops})
        plan = "\n".join(r[0] for r in explained)
        await store.stop_many(conn, [(f"WO-o{i}", None, None) for i in range(1, 300)])
        counted = await conn.execute(text("SELECT count(*) FROM clocks WHERE state = 'open'"))
        open_left = counted.scalar_one()
    assert "ix_clocks_work_order_id" in plan, plan
    assert "ix_clocks_open_due_at" not in plan and "Seq Scan on clocks" not in plan, plan
    assert open_left == 20_000 - 299 + (0 if statistics == "none yet" else 10)
