"""Two relays of one service's outbox (two replicas) against the real PostgreSQL: every key's
events reach the broker in the order they were staged, whichever relay sends them and however
slow its sends are. The broker is a recorder here: what is tested is the claim race."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.store import Outbox
from shared.messaging import OutboxRelay, outbox_insert
from shared.settings import Settings
from tests.integration.databases import fresh_database

pytestmark = pytest.mark.integration
SETTINGS = Settings(database_prefix="whistle_test_replicas", relay_batch_size=100)
KEYS, PER_KEY = 40, 25


class Batch:
    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes]] = []

    def append(self, *, timestamp: Any, key: bytes | None, value: bytes, headers: Any) -> object:
        self.records.append((key, value))
        return object()  # the batch had room


class Cluster:
    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}


class Client:
    """The producer's view of the broker: every topic there, with one partition."""

    cluster = Cluster()

    async def force_metadata_update(self) -> bool:
        return True

    def add_topic(self, topic: str) -> None:
        pass


class Recorder:
    """Stands for the producer: a batch counts as published once its send has taken ``delay``."""

    def __init__(self, published: list[tuple[bytes | None, bytes]], delay: float) -> None:
        self.published, self.delay = published, delay
        self.client = Client()

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def create_batch(self) -> Batch:
        return Batch()

    async def send_batch(self, batch: Batch, topic: str, partition: int) -> asyncio.Future[None]:
        await asyncio.sleep(self.delay)  # a slow broker or network, for this relay only
        self.published.extend(batch.records)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[AsyncEngine]:
    async with fresh_database("whistle_test_replicas") as engine:
        yield engine


def relay(engine: AsyncEngine, published: list[tuple[bytes | None, bytes]], delay: float) -> OutboxRelay:
    r = OutboxRelay(service="intake", engine=engine, outbox=Outbox.__table__, settings=SETTINGS)  # type: ignore[arg-type]
    r._producer = Recorder(published, delay)
    return r


async def drain(r: OutboxRelay, engine: AsyncEngine) -> int:
    """Rounds until the outbox is empty; a round that finds the other relay's turn sends nothing."""
    sent = 0
    while True:
        sent += await r.publish_once()
        async with engine.connect() as conn:
            if (await conn.execute(text("SELECT count(*) FROM outbox"))).scalar_one() == 0:
                return sent
        await asyncio.sleep(0.01)


async def test_two_relays_keep_every_keys_events_in_order(engine: AsyncEngine) -> None:
    rows = [
        {"topic": "t", "key": f"WO-{k}", "payload": f"{k}:{i}".encode()}
        for i in range(PER_KEY)
        for k in range(KEYS)
    ]
    async with engine.begin() as conn:
        await outbox_insert(Outbox.__table__).execute(conn, rows)

    published: list[tuple[bytes | None, bytes]] = []
    slow, fast = relay(engine, published, delay=0.05), relay(engine, published, delay=0)
    sent = await asyncio.wait_for(asyncio.gather(drain(slow, engine), drain(fast, engine)), timeout=60)

    assert sum(sent) == len(rows) == len(published)
    seen: dict[bytes | None, list[int]] = {}
    for key, value in published:
        seen.setdefault(key, []).append(int(value.split(b":")[1]))
    assert all(order == list(range(PER_KEY)) for order in seen.values()), seen
