"""The relay's claim against the real PostgreSQL: the oldest rows, in order, deleted by a plan that
stays the same whatever the planner's statistics say of the queue."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.store import Outbox
from shared.messaging import OutboxRelay, outbox_insert
from shared.settings import Settings
from tests.integration.databases import fresh_database

pytestmark = pytest.mark.integration
SETTINGS = Settings(database_prefix="whistle_test_claim")


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[AsyncEngine]:
    async with fresh_database("whistle_test_claim") as engine:
        yield engine


async def test_a_claim_takes_the_oldest_rows_by_address_even_with_stale_statistics(
    engine: AsyncEngine,
) -> None:
    relay = OutboxRelay(service="intake", engine=engine, outbox=Outbox.__table__, settings=SETTINGS)  # type: ignore[arg-type]
    async with engine.begin() as conn:
        await conn.execute(text("ANALYZE outbox"))  # statistics of an empty queue, as autovacuum may take
        # A backlog: 3,000 events of a realistic size (the table's pages, not its statistics, grow).
        rows = [{"topic": "t", "key": f"k{i}", "payload": b"x" * 500} for i in range(3000)]
        await outbox_insert(Outbox.__table__).execute(conn, rows)

    async with engine.begin() as conn:
        plan = "\n".join(r[0] for r in await conn.execute(text("EXPLAIN " + str(relay._claim)), {"n": 1000}))
        claimed = (await conn.execute(relay._claim, {"n": 1000})).all()
        left = (await conn.execute(text("SELECT key FROM outbox ORDER BY id"))).scalars().all()

    # With "id IN (...)", these statistics gave a nested loop comparing every row with every claimed
    # id: seconds per claim once thousands of rows were waiting.
    assert "Tid Scan" in plan and "Nested Loop" not in plan, plan
    assert [r.key for r in sorted(claimed)] == [f"k{i}" for i in range(1000)]
    assert left == [f"k{i}" for i in range(1000, 3000)]
