"""Intake's housekeeping against the real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake import store
from services.intake.domain import NewOrder, Place
from shared.reference import DEFAULT_JURISDICTION, load_jurisdiction
from tests.integration.databases import fresh_database

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[AsyncEngine]:
    async with fresh_database("whistle_test_store") as engine:
        yield engine


async def test_cluster_counters_a_day_behind_the_newest_are_pruned(engine: AsyncEngine) -> None:
    newest = datetime(2026, 11, 21, 8, 15, tzinfo=UTC)  # business time, not the wall clock
    ages = {"two days": 2 * 24 * 60, "a day and a minute": 24 * 60 + 1, "23 hours": 23 * 60, "newest": 0}
    async with engine.begin() as conn:
        await store.save(
            conn,
            [],
            {
                ("夹河社区", age, int((newest - timedelta(minutes=m)).timestamp()) // 60): 1
                for age, m in ages.items()
            },
            {},
        )
        assert await store.prune_counts(conn, 24 * 60) == 2
        left = (await conn.execute(text("SELECT category FROM order_counts ORDER BY minute"))).scalars().all()
    assert left == ["23 hours", "newest"]


REF = load_jurisdiction(DEFAULT_JURISDICTION)


def _order(n: int, category: str, at: datetime, **where: str | None) -> NewOrder:
    place = Place(
        street="福莱山街道", community="夹河社区", grid=where.get("grid"), compound=where.get("compound")
    )
    return NewOrder(
        work_order_id=f"WO-H-{n}",
        source="hotline",
        source_id=str(n),
        event_id=f"e{n}",
        received_at=at,
        category=REF.category_by_code[category],
        confidence=1.0,
        place=place,
        urgency="normal",
        summary="…",
        address=None,
        location=None,
        caller_name=None,
        caller_phone=where.get("phone"),
    )


@pytest.mark.parametrize("statistics", ["none yet", "of the first ten orders"])
async def test_merge_candidates_are_probed_by_index_not_read_from_every_open_order(statistics: str) -> None:
    """A batch's keys are probed in the open orders' indexes whatever the planner believes of the
    table: a new table has no statistics, and autovacuum may have taken them from the morning's
    first few orders. Both made plans that read every open order, or scanned an index by category."""
    now = datetime(2026, 11, 21, 8, 15, tzinfo=UTC)
    # A busy day: 20,000 open orders elsewhere, which the batch's keys must not read.
    others = [
        _order(100_000 + i, "heating", now - timedelta(minutes=i % 600), grid=f"G{i}") for i in range(20_000)
    ]
    wanted = [
        (_order(9001, "heating", now - timedelta(minutes=30), compound="菁华公寓", grid="G-jh"), "open"),
        (_order(9002, "heating", now - timedelta(minutes=20), grid="G-bare"), "open"),
        (_order(9003, "heating", now - timedelta(minutes=10), phone="13912345678"), "open"),
    ]
    unwanted = [
        (_order(9004, "heating", now - timedelta(minutes=5), compound="菁华公寓", grid="G-jh"), "merged"),
        (_order(9005, "water_supply", now - timedelta(minutes=5), compound="菁华公寓", grid="G-jh"), "open"),
        (_order(9006, "heating", now - timedelta(days=2), compound="菁华公寓", grid="G-jh"), "open"),
        (_order(9007, "heating", now - timedelta(minutes=5), compound="菁华公寓", grid="G-jh"), "done"),
    ]
    batch = [
        _order(9101, "heating", now, compound="菁华公寓", grid="G-jh"),
        _order(9102, "heating", now, grid="G-bare"),
        _order(9103, "heating", now, phone="13912345678"),
    ]
    since = now - timedelta(days=1)
    params = {
        "since": since,
        "compound": store.merge_keys({("heating", "菁华公寓")}),
        "grid": store.merge_keys({("heating", "G-bare")}),
        "caller_phone": store.merge_keys({("heating", "13912345678")}),
    }
    async with fresh_database("whistle_test_merge_keys") as engine:
        if statistics != "none yet":
            async with engine.begin() as conn:
                first = [
                    _order(i, "heating", now - timedelta(hours=3), grid=f"G-early{i}") for i in range(10)
                ]
                await store.save(conn, [store.order_row(o, "open", None) for o in first], {}, {})
                await conn.execute(text("ANALYZE work_orders"))
        async with engine.begin() as conn:
            rows = [store.order_row(o, "open", None) for o in others]
            rows += [store.order_row(o, status, None) for o, status in wanted + unwanted]
            await store.save(conn, rows, {}, {})
        async with engine.begin() as conn:
            found = await store.open_orders(conn, batch, since)
            plan = "\n".join(r[0] for r in await conn.execute(text("EXPLAIN " + str(store._OPEN)), params))

    assert [o.id for o in found] == ["WO-H-9001", "WO-H-9002", "WO-H-9003"]  # oldest first
    for column in ("compound", "grid", "caller_phone"):
        # Its own index, with the whole key as the condition (an index scan or a bitmap of one).
        assert f"Index Cond: ((((category)::text || '/'::text) || ({column})::text) = " in plan, plan
        assert f"ix_work_orders_merge_{column}" in plan, plan
    assert "Hash Join" not in plan and "Seq Scan on work_orders" not in plan, plan
