"""Intake's housekeeping against the real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake import store
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
