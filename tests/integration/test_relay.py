"""The outbox relay against the real PostgreSQL and a Tansu broker of its own (port 19191,
databases ``whistle_test_relay_*``): two relays (two replicas) keep every key's events in order on
its partition with nothing lost; a broker restarted empty is noticed and the rows for its vanished
topics are held, not sent into the void, until the topic is back; a round that partly fails lets
go only what was acknowledged; and a relay wakes on another replica's commit (LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiokafka import TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.store import Outbox
from shared.messaging import OutboxRelay, make_consumer, outbox_insert
from shared.messaging.relay import PartlySent
from shared.settings import Settings
from shared.topics import ensure_topics
from tests.integration.databases import fresh_database
from tests.integration.flows import eventually
from tools.stack import ROOT, Stack

pytestmark = pytest.mark.integration
PORT = 19191
PREFIX = "whistle_test_relay"
ENV = {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{PORT}", "DATABASE_PREFIX": PREFIX, "TOPIC_PARTITIONS": "3"}
SETTINGS = Settings(
    kafka_bootstrap_servers=f"127.0.0.1:{PORT}",
    database_prefix=PREFIX,
    topic_partitions=3,
    relay_batch_size=100,
)
OUTBOX = Outbox.__table__


@pytest.fixture(scope="module")
def broker() -> Iterator[Stack]:
    stack = Stack(home=ROOT / ".whistle" / "test-relay", env=ENV)
    stack.stop("broker")
    stack.start_broker()
    try:
        yield stack
    finally:
        stack.stop("broker")


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[AsyncEngine]:
    async with fresh_database(PREFIX) as engine:
        yield engine


@pytest.fixture(autouse=True)
async def empty(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE outbox"))


def topic() -> str:
    return f"relay.{uuid.uuid4().hex[:8]}.v1"


async def stage(engine: AsyncEngine, rows: list[tuple[str, str | None, bytes]]) -> None:
    """A staging transaction as a handler's (its NOTIFY included), in another process's stead."""
    async with engine.begin() as conn:
        await outbox_insert(OUTBOX).execute(conn, [{"topic": t, "key": k, "payload": p} for t, k, p in rows])


async def pending(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM outbox"))).scalar_one())


async def until_pending(engine: AsyncEngine, count: int, within: float = 30) -> None:
    async def reached() -> bool:
        return await pending(engine) == count

    await eventually(reached, within)


async def until(condition: Any, within: float = 30) -> None:
    async def holds() -> bool:
        return bool(condition())

    await eventually(holds, within)


@contextlib.asynccontextmanager
async def running(engine: AsyncEngine, settings: Settings = SETTINGS) -> AsyncIterator[OutboxRelay]:
    relay = OutboxRelay(service="intake", engine=engine, outbox=OUTBOX, settings=settings)  # type: ignore[arg-type]
    await relay.start()
    task = asyncio.create_task(relay.run())
    try:
        yield relay
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await relay.stop()


async def read(topics: list[str], count: int, within: float = 60) -> list[tuple[str, int, str | None, bytes]]:
    """Every record of these topics, (topic, partition, key, value) in each partition's order, once
    ``count`` have come."""
    consumer = make_consumer(SETTINGS, None)
    await consumer.start()
    try:
        await consumer.topics()  # metadata
        consumer.assign(
            [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        )
        await consumer.seek_to_beginning()
        seen: list[tuple[str, int, str | None, bytes]] = []
        async with asyncio.timeout(within):
            while len(seen) < count:
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    seen += [
                        (tp.topic, tp.partition, r.key.decode() if r.key else None, r.value) for r in records
                    ]
        return seen
    finally:
        await consumer.stop()


async def test_two_relays_keep_every_keys_order_on_its_partition_and_lose_nothing(
    broker: Stack, engine: AsyncEngine
) -> None:
    topics = [topic(), topic()]
    await ensure_topics(SETTINGS, topics)
    stagers, keys, per_key = 4, 20, 15

    async def stager(s: int) -> None:
        # An order's events come one transaction after another; the stagers run side by side.
        for i in range(per_key):
            await stage(
                engine,
                [(topics[k % 2], f"WO-{s}-{k}", f"WO-{s}-{k}:{i}".encode()) for k in range(keys)],
            )

    async with running(engine) as one, running(engine) as two:
        await asyncio.gather(*(stager(s) for s in range(stagers)))
        await until_pending(engine, 0, within=60)
    total = stagers * keys * per_key
    seen = await read(topics, total)

    assert len(seen) == total  # none lost, none twice
    by_key: dict[str, list[tuple[str, int, int]]] = {}
    for t, partition, key, value in seen:
        assert key is not None and value.decode().startswith(f"{key}:")
        by_key.setdefault(key, []).append((t, partition, int(value.split(b":")[1])))
    assert len(by_key) == stagers * keys
    for key, events in by_key.items():
        assert len({(t, p) for t, p, _ in events}) == 1, key  # one partition per key
        assert [i for _, _, i in events] == list(range(per_key)), key
    assert one.healthy and two.healthy


async def test_a_broker_restarted_empty_gets_nothing_until_the_topic_is_back(
    broker: Stack, engine: AsyncEngine
) -> None:
    kept, other = topic(), topic()
    await ensure_topics(SETTINGS, [kept])
    async with running(engine) as relay:
        await stage(engine, [(kept, "WO-1", b"before")])
        await until_pending(engine, 0)

        # Tansu keeps its topics in memory: it comes back with none.
        await asyncio.to_thread(broker.stop, "broker")
        await asyncio.to_thread(broker.start_broker)
        await ensure_topics(SETTINGS, [other])
        await stage(
            engine, [(kept, "WO-1", b"after-1"), (other, "WO-1", b"other"), (kept, "WO-2", b"after-2")]
        )

        # The topic the broker forgot is held: its rows stay; the other's go.
        await until(lambda: relay.held == {kept})
        assert [v for *_, v in await read([other], 1)] == [b"other"]
        await until_pending(engine, 2)
        await stage(engine, [(kept, "WO-1", b"after-3")])  # staged while held: held too
        assert await pending(engine) == 3

        await ensure_topics(SETTINGS, [kept])
        await until_pending(engine, 0)
        assert relay.held == frozenset() and relay.healthy
    seen = await read([kept], 3)
    assert sorted(v for *_, v in seen) == [b"after-1", b"after-2", b"after-3"]
    assert [v for _, _, k, v in seen if k == "WO-1"] == [b"after-1", b"after-3"]


class Failing:
    """The real producer, but the sends to one partition of a topic fail while ``down``."""

    def __init__(self, relay: OutboxRelay, partition: tuple[str, int]) -> None:
        self.real, self.partition, self.down = relay.producer, partition, True
        self.client = self.real.client

    def create_batch(self) -> Any:
        return self.real.create_batch()

    async def send_batch(self, batch: Any, topic: str, partition: int) -> asyncio.Future[Any]:
        if self.down and (topic, partition) == self.partition:
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(ConnectionError("not acknowledged"))
            return failed
        return await self.real.send_batch(batch, topic, partition=partition)  # type: ignore[no-any-return]


async def test_a_round_that_partly_fails_sends_again_only_what_was_not_acknowledged(
    broker: Stack, engine: AsyncEngine
) -> None:
    t = topic()
    await ensure_topics(SETTINGS, [t])
    relay = OutboxRelay(service="intake", engine=engine, outbox=OUTBOX, settings=SETTINGS)  # type: ignore[arg-type]
    await relay.start()
    producer = Failing(relay, (t, 1))
    relay._producer = producer
    rows: list[tuple[str, str | None, bytes]] = [
        (t, f"WO-{k}", f"WO-{k}:{i}".encode()) for i in range(5) for k in range(12)
    ]
    try:
        await stage(engine, rows)
        async with engine.connect() as conn:
            ids: dict[bytes, int] = dict((await conn.execute(text("SELECT payload, id FROM outbox"))).all())

        with pytest.raises(PartlySent):
            await relay.publish_once()
        async with engine.connect() as conn:
            left: dict[bytes, int] = dict((await conn.execute(text("SELECT payload, id FROM outbox"))).all())
        assert 0 < len(left) < len(rows)
        assert all(ids[p] == i for p, i in left.items())  # kept with their ids: their place in line
        sent = await read([t], len(rows) - len(left))
        assert {p for _, p, _, _ in sent} == {0, 2}  # every other partition's share, acknowledged

        producer.down = False
        assert await relay.publish_once() == len(left)
        assert await pending(engine) == 0
    finally:
        relay._producer = producer.real
        await relay.stop()
    seen = await read([t], len(rows))
    assert len(seen) == len(rows)  # each once: what was acknowledged was not sent again
    for k in range(12):
        assert [v for _, _, key, v in seen if key == f"WO-{k}"] == [f"WO-{k}:{i}".encode() for i in range(5)]


async def test_a_relay_wakes_on_another_replicas_commit(broker: Stack, engine: AsyncEngine) -> None:
    t = topic()
    await ensure_topics(SETTINGS, [t])
    # Polling an hour apart: only the NOTIFY of the staging commit can wake it within the test.
    quiet = SETTINGS.model_copy(update={"relay_idle_seconds": 3600.0})
    async with running(engine, quiet) as relay:
        await until(lambda: relay.listening)
        await stage(engine, [(t, "WO-1", b"first")])
        await until_pending(engine, 0)

        # The listening connection lost (a PostgreSQL restart, a proxy's timeout): it listens again.
        async with engine.connect() as conn:
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
            )
        await until(lambda: not relay.listening)
        await until(lambda: relay.listening)
        await stage(engine, [(t, "WO-1", b"second")])
        await until_pending(engine, 0)
    assert [v for *_, v in await read([t], 2)] == [b"first", b"second"]
