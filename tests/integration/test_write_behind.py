"""Intake's batch consumer against the real PostgreSQL, with a batch large enough for its writes to go
behind its decisions (WritesBehind): what a batch writes, in order, once, even when one of its
messages is refused after some of its rows were already written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.intake.handlers import routes
from services.intake.store import Inbox, Outbox
from services.intake.unit import IntakeBatch, IntakeUnit
from shared import contract
from shared.messaging import HEADERS, WRITE_BEHIND_EVERY, BatchConsumer, Tx, WritesBehind
from shared.reference import DEFAULT_JURISDICTION, load_jurisdiction
from shared.settings import Settings
from tests.integration.bus import cloud_event
from tests.integration.databases import fresh_database
from tools.bench import synthetic_calls

pytestmark = pytest.mark.integration
REF = load_jurisdiction(DEFAULT_JURISDICTION)
CALLS = 2 * WRITE_BEHIND_EVERY + 200


class Watched(IntakeUnit):
    """Intake's unit, noting how many orders had been decided at each write behind."""

    def __init__(self) -> None:
        super().__init__(REF, Settings())
        self.flushed_at: list[int] = []

    async def flush(self, conn: AsyncConnection, batch: IntakeBatch) -> None:
        self.flushed_at.append(len(batch.new_rows))
        await super().flush(conn, batch)


class Faulty(Watched):
    """Intake's unit, with one order's row made one the database refuses (its id too long)."""

    def __init__(self, call_id: str) -> None:
        super().__init__()
        self.call_id = call_id

    async def take(self, tx: Tx[IntakeBatch]) -> None:
        await super().take(tx)
        if tx.event.subject == self.call_id:
            tx.batch.new_rows[-1]["id"] = "W" * 81


@pytest.fixture
async def engine() -> AsyncIterator[AsyncEngine]:
    async with fresh_database("whistle_test_behind") as engine:
        yield engine


def records(values: list[tuple[str, str, bytes]]) -> list[ConsumerRecord[Any, Any]]:
    return [
        ConsumerRecord(topic, 0, offset, 0, 0, key.encode(), value, None, len(key), len(value), HEADERS)
        for offset, (topic, key, value) in enumerate(values)
    ]


async def apply(engine: AsyncEngine, unit: IntakeUnit, batch: list[ConsumerRecord[Any, Any]]) -> None:
    consumer = BatchConsumer(
        service="intake",
        engine=engine,
        inbox=Inbox.__table__,  # type: ignore[arg-type]
        outbox=Outbox.__table__,  # type: ignore[arg-type]
        routes=routes(unit),
        strict_topics=[contract.HOTLINE_CALLS, contract.GRID_REPORTS],
        unit=unit,
        prepare_messages=unit.prepare,
        write_behind=True,
    )
    await consumer.apply(await consumer.prepare(batch))


async def outbox_subjects(engine: AsyncEngine, type: str) -> list[str]:
    """The subjects of the outbox's events of this type, in the order of their rows."""
    async with engine.connect() as conn:
        payloads = (await conn.execute(text("SELECT payload FROM outbox ORDER BY id"))).scalars()
        events = [orjson.loads(p) for p in payloads]
    return [e["subject"] for e in events if e["type"] == type]


async def test_a_large_batch_is_written_behind_its_decisions_in_order_and_once(engine: AsyncEngine) -> None:
    calls = synthetic_calls(REF, "wb", CALLS)
    unit = Watched()
    assert isinstance(unit, WritesBehind)
    await apply(engine, unit, records([(contract.HOTLINE_CALLS, key, value) for key, value in calls]))

    # Written twice while the rest was decided, the last part with the batch's close.
    assert unit.flushed_at == [WRITE_BEHIND_EVERY, 2 * WRITE_BEHIND_EVERY]
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM work_orders"))).scalar_one() == CALLS
    taken = await outbox_subjects(engine, "workorder.created") + await outbox_subjects(
        engine, "workorder.merged"
    )
    assert sorted(taken) == sorted(f"WO-H-{key}" for key, _ in calls)
    # The outbox holds the events in the order they were decided: one order's come out in order.
    created = await outbox_subjects(engine, "workorder.created")
    order = {f"WO-H-{key}": i for i, (key, _) in enumerate(calls)}
    assert [order[s] for s in created] == sorted(order[s] for s in created)


async def test_a_message_refused_after_rows_were_written_behind_is_dead_lettered_alone(
    engine: AsyncEngine,
) -> None:
    calls = [(contract.HOTLINE_CALLS, key, value) for key, value in synthetic_calls(REF, "wr", CALLS)]
    unknown_grid = {
        "report_id": "GR-unknown",
        "grid_id": "NO-SUCH-GRID",
        "worker_id": "W-1",
        "category": "环境卫生",
        "description": "楼道堆放杂物",
    }
    bad = (
        contract.GRID_REPORTS,
        "GR-unknown",
        orjson.dumps(cloud_event("grid.issue.reported", unknown_grid)),
    )
    late = 2 * WRITE_BEHIND_EVERY + 10  # after two writes behind
    unit = Watched()
    await apply(engine, unit, records([*calls[:late], bad, *calls[late:]]))

    assert unit.flushed_at == [WRITE_BEHIND_EVERY, 2 * WRITE_BEHIND_EVERY]  # then the careful way
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM work_orders"))).scalar_one() == CALLS
    taken = await outbox_subjects(engine, "workorder.created") + await outbox_subjects(
        engine, "workorder.merged"
    )
    assert len(taken) == len(set(taken)) == CALLS  # what was written behind was rolled back, then once
    [dead] = await outbox_subjects(engine, "deadletter.recorded")
    assert dead.startswith(f"{contract.GRID_REPORTS}/0/")


async def test_a_row_the_database_refuses_in_a_write_behind_is_its_message_dead_lettered_alone(
    engine: AsyncEngine,
) -> None:
    calls = synthetic_calls(REF, "wf", CALLS)
    faulty = calls[WRITE_BEHIND_EVERY // 2][0]  # in the first write behind
    unit = Faulty(faulty)
    await apply(engine, unit, records([(contract.HOTLINE_CALLS, key, value) for key, value in calls]))

    assert unit.flushed_at == [WRITE_BEHIND_EVERY]  # it failed; then each message alone
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM work_orders"))).scalar_one() == CALLS - 1
    taken = await outbox_subjects(engine, "workorder.created") + await outbox_subjects(
        engine, "workorder.merged"
    )
    assert len(taken) == len(set(taken)) == CALLS - 1 and f"WO-H-{faulty}" not in taken
    assert len(await outbox_subjects(engine, "deadletter.recorded")) == 1
