"""The bulk inserts against the real PostgreSQL: every column type we use comes back as it went in,
rows keep their order, and a value too long for its column is refused, not cut short."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.store import _ORDER_COLUMNS, ClusterAlert, Outbox, WorkOrder
from shared.db import bulk_insert
from shared.messaging import outbox_insert
from tests.integration.databases import fresh_database

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[AsyncEngine]:
    async with fresh_database("whistle_test_bulk") as engine:
        yield engine


def order(i: int, **overrides: object) -> dict[str, object]:
    return {
        "id": f"WO-H-{i}",
        "source": "hotline",
        "source_id": str(i),
        "event_id": f"ev-{i}",
        "received_at": datetime(2026, 11, 21, 8, 15, tzinfo=timezone(timedelta(hours=8))),
        "category": "heating",
        "confidence": 0.875,
        "street": "福莱山街道",
        "community": "夹河社区",
        "grid": "370613-001-01",
        "compound": "菁华公寓",
        "urgency": "normal",
        "summary": '菁华公寓3号楼暖气不热，"引号"和\\反斜杠',
        "address": None,
        "location": {"street": "福莱山街道", "nested": {"n": [1, 2]}},
        "caller_name": "孙大爷",
        "caller_phone": "13912345678",
        "closed_on_site": False,
        "status": "open",
        "merged_into": None,
    } | overrides


async def test_every_type_comes_back_as_it_went_in(engine: AsyncEngine) -> None:
    rows = [order(1), order(2, location=None, confidence=1.0, closed_on_site=True, address="3号楼")]
    async with engine.begin() as conn:
        await bulk_insert(WorkOrder.__table__, _ORDER_COLUMNS).execute(conn, rows)  # type: ignore[arg-type]
        stored = (await conn.execute(select(WorkOrder.__table__).order_by(WorkOrder.id))).mappings().all()
    assert [{c: r[c] for c in _ORDER_COLUMNS} for r in stored] == rows
    assert stored[0]["received_at"] == datetime(2026, 11, 21, 0, 15, tzinfo=UTC)


async def test_rows_keep_their_order_and_bytes_their_bytes(engine: AsyncEngine) -> None:
    payloads = [f'{{"n": {i}, "text": "供暖\\u0001"}}'.encode() + bytes([0, 255]) for i in range(500)]
    async with engine.begin() as conn:
        await conn.execute(delete(Outbox))
        keys = [f"k{i}" if i % 2 == 0 else None for i in range(len(payloads))]
        rows = [{"topic": "t", "key": k, "payload": p} for k, p in zip(keys, payloads, strict=True)]
        await outbox_insert(Outbox.__table__).execute(conn, rows)
        stored = (await conn.execute(select(Outbox.key, Outbox.payload).order_by(Outbox.id))).all()
    assert [p for _, p in stored] == payloads  # in the order staged: ids ascend with it
    assert stored[1][0] is None and stored[2][0] == "k2"


async def test_the_conflict_clause_applies(engine: AsyncEngine) -> None:
    at = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    upsert = bulk_insert(
        ClusterAlert.__table__,  # type: ignore[arg-type]
        ("community", "category", "step", "alerted_at"),
        "ON CONFLICT (community, category) DO UPDATE SET step = cluster_alerts.step + EXCLUDED.step",
    )
    row = {"community": "夹河社区", "category": "heating", "step": 2, "alerted_at": at}
    async with engine.begin() as conn:
        await upsert.execute(conn, [row])
        await upsert.execute(conn, [row | {"step": 3}])
        step = (await conn.execute(select(ClusterAlert.step))).scalar_one()
    assert step == 5


async def test_a_value_too_long_for_its_column_is_refused(engine: AsyncEngine) -> None:
    with pytest.raises(DBAPIError, match="too long"):
        async with engine.begin() as conn:
            await bulk_insert(WorkOrder.__table__, _ORDER_COLUMNS).execute(  # type: ignore[arg-type]
                conn, [order(3, id="W" * 81)]
            )


def test_bytes_are_left_to_the_outbox_insert() -> None:
    with pytest.raises(ValueError, match="bytes"):
        bulk_insert(Outbox.__table__, ("topic", "key", "payload"))  # type: ignore[arg-type]


async def test_a_row_without_one_of_the_columns_is_refused(engine: AsyncEngine) -> None:
    row = order(4)
    del row["urgency"]
    async with engine.begin() as conn:
        with pytest.raises(KeyError, match="urgency"):
            await bulk_insert(WorkOrder.__table__, _ORDER_COLUMNS).execute(conn, [row])  # type: ignore[arg-type]
