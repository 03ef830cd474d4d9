"""Intake's queries against the real PostgreSQL: what they find, and the plans they are given."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake import store
from services.intake.domain import NewOrder, Place
from services.intake.unit import _minute
from shared.reference import DEFAULT_JURISDICTION, load_jurisdiction
from tests.integration.databases import fresh_database

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[AsyncEngine]:
    async with fresh_database("whistle_test_store") as engine:
        yield engine


REF = load_jurisdiction(DEFAULT_JURISDICTION)


def _order(n: int, category: str, at: datetime, **where: str | None) -> NewOrder:
    place = Place(
        street="福莱山街道",
        community=where.get("community", "夹河社区"),
        grid=where.get("grid"),
        compound=where.get("compound"),
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
async def test_a_batch_probes_its_own_keys_in_the_indexes_whatever_the_planner_believes(
    statistics: str,
) -> None:
    """Merge candidates, cluster counts, statuses and orders seen before are probed by the batch's
    keys in the orders' indexes, whatever the planner believes of the table: a new table has no
    statistics, and autovacuum may have taken them from the morning's first few orders. Both made
    plans that read every open order (or every order since the window's start, or every order
    seen before), or scanned an index by category alone."""
    now = datetime(2026, 11, 21, 8, 15, tzinfo=UTC)
    # A busy day: 20,000 open orders in 400 other communities, which the batch's keys must not read.
    others = [
        _order(
            100_000 + i, "heating", now - timedelta(minutes=i % 600), grid=f"G{i}", community=f"C{i % 400}"
        )
        for i in range(20_000)
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
        "compound": store.category_keys({("heating", "菁华公寓")}),
        "grid": store.category_keys({("heating", "G-bare")}),
        "caller_phone": store.category_keys({("heating", "13912345678")}),
    }
    window = now - timedelta(hours=1)
    clusters = {"clusters": store.category_keys({("heating", "C7")}), "since": window}
    async with fresh_database("whistle_test_merge_keys") as engine:
        if statistics != "none yet":
            async with engine.begin() as conn:
                first = [
                    _order(i, "heating", now - timedelta(hours=3), grid=f"G-early{i}") for i in range(10)
                ]
                await store.save(conn, [store.order_row(o, "open", None) for o in first])
                await conn.execute(text("ANALYZE work_orders"))
        async with engine.begin() as conn:
            rows = [store.order_row(o, "open", None) for o in others]
            rows += [store.order_row(o, status, None) for o, status in wanted + unwanted]
            await store.save(conn, rows)
        async with engine.begin() as conn:
            found = await store.open_orders(conn, batch, since)
            counts = await store.recent_counts(conn, [("C7", "heating")], window)
            members = await store.cluster_members(conn, [("C7", "heating")], window)

            async def plan(query: TextClause, values: dict[str, Any]) -> str:
                return "\n".join(r[0] for r in await conn.execute(text(f"EXPLAIN {query}"), values))

            merge_plan = await plan(store._OPEN, params)
            cluster_plans = [await plan(q, clusters) for q in (store._COUNTS, store._CLUSTER_IDS)]
            status_plan = await plan(store._SET_STATUS, {"status": "done", "ids": ["WO-H-9001"]})
            known = await store.existing_orders(conn, ["WO-H-9001", "WO-H-9101"])
            known_plan = await plan(store._KNOWN, {"ids": ["WO-H-9001", "WO-H-9101"]})

    assert [o.id for o in found] == ["WO-H-9001", "WO-H-9002", "WO-H-9003"]  # oldest first
    for column in ("compound", "grid", "caller_phone"):
        # Its own index, with the whole key and the window's start as the condition (an index scan
        # or a bitmap of one): a key's orders of the window, not of the year.
        key = f"((((category)::text || '/'::text) || ({column})::text) = ANY ("
        assert f"Index Cond: ({key}" in merge_plan and ") AND (received_at >= " in merge_plan, merge_plan
        assert f"ix_work_orders_merge_{column}" in merge_plan, merge_plan
    in_cluster = [o for o in others if o.place.community == "C7" and o.received_at >= window]
    assert len(members) == sum(n for *_, n in counts) == len(in_cluster) > 0
    assert known == {"WO-H-9001"}
    for p in (status_plan, known_plan):
        # An index-only scan prints the condition without the cast.
        probed = "Index Cond: ((id)::text = ANY (" in p or "Index Cond: (id = ANY (" in p
        assert probed and "pk_work_orders" in p, p
    for p in [merge_plan, *cluster_plans, status_plan, known_plan]:
        assert "Hash Join" not in p and "Seq Scan on work_orders" not in p, p
    for p in cluster_plans:
        assert "ix_work_orders_cluster" in p, p
        assert "Index Cond: (((((category)::text || '/'::text) || (community)::text) = " in p, p


async def test_the_cluster_window_counts_the_orders_of_the_batch_pairs_per_minute(
    engine: AsyncEngine,
) -> None:
    eight = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    at = {
        1: ("夹河社区", "heating", eight + timedelta(seconds=30)),
        2: ("夹河社区", "heating", eight + timedelta(seconds=59.9)),
        3: ("夹河社区", "heating", eight + timedelta(minutes=1)),
        4: ("夹河社区", "heating", eight - timedelta(minutes=50)),  # before the window read
        5: ("夹河社区", "water_supply", eight),  # a category the batch does not have there
        6: ("恒祥社区", "heating", eight + timedelta(seconds=1)),
        7: ("墨翠府社区", "heating", eight),  # a community the batch does not have
    }
    orders = [_order(n, category, when, community=community) for n, (community, category, when) in at.items()]
    async with engine.begin() as conn:
        await store.save(conn, [store.order_row(o, "open", None) for o in orders])
        counts = await store.recent_counts(
            conn, [("夹河社区", "heating"), ("恒祥社区", "heating")], eight - timedelta(minutes=30)
        )
    minute = _minute(eight)
    assert sorted(counts) == [
        ("夹河社区", "heating", minute, 2),
        ("夹河社区", "heating", minute + 1, 1),
        ("恒祥社区", "heating", minute, 1),
    ]


async def test_statuses_follow_the_lifecycle_but_a_merged_order_stays_merged(engine: AsyncEngine) -> None:
    at = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    rows = [store.order_row(_order(n, "heating", at), "open", None) for n in (21, 22, 23)]
    rows += [store.order_row(_order(24, "heating", at), "merged", "WO-H-21")]
    rows += [store.order_row(_order(25, "heating", at), "done", None)]
    async with engine.begin() as conn:
        await store.save(conn, rows)
        statuses = {"WO-H-21": "done", "WO-H-22": "done", "WO-H-24": "done", "WO-H-25": "open"}
        await store.save(conn, [], statuses=statuses)
        result = await conn.execute(text("SELECT id, status FROM work_orders WHERE id LIKE 'WO-H-2_'"))
        stored = {order_id: status for order_id, status in result}
    assert stored == {
        "WO-H-21": "done",
        "WO-H-22": "done",
        "WO-H-23": "open",
        "WO-H-24": "merged",
        "WO-H-25": "open",
    }
