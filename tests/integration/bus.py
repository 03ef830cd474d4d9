"""The tests' view of Kafka: publish as outside systems do, and see everything on every topic."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from shared.messaging import HEADERS, client_options, make_consumer
from shared.settings import Settings


@dataclass(frozen=True)
class Seen:
    topic: str
    key: str | None
    value: bytes
    headers: dict[str, bytes]

    @property
    def event(self) -> dict[str, Any]:
        return orjson.loads(self.value)  # type: ignore[no-any-return]

    @property
    def type(self) -> str:
        return str(self.event.get("type"))

    @property
    def data(self) -> dict[str, Any]:
        return self.event["data"]  # type: ignore[no-any-return]


def cloud_event(
    type: str, data: dict[str, Any], *, id: str | None = None, subject: str | None = None
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": id or str(uuid.uuid4()),
        "source": "tests",
        "type": type,
        "time": datetime.now(UTC).isoformat(),
        "subject": subject,
        "datacontenttype": "application/json",
        "data": data,
    }


class Bus:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.seen: list[Seen] = []
        # A rebalance (a new topic matching the pattern) rewinds to the last auto-commit, so the
        # same record can come twice; the tests see each record once.
        self._positions: set[tuple[str, int, int]] = set()
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(**client_options(self.settings), acks="all", linger_ms=2)
        self.consumer = make_consumer(self.settings, f"tests-{uuid.uuid4().hex[:8]}")
        self.consumer.subscribe(pattern=r"^[a-z].*\.v1$")
        await self.producer.start()
        await self.consumer.start()
        self._task = asyncio.create_task(self._collect())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        await self.consumer.stop()
        await self.producer.stop()

    async def _collect(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=100)
            records = [r for rs in batches.values() for r in rs]
            if records:
                async with self._changed:
                    for r in records:
                        if (position := (r.topic, r.partition, r.offset)) in self._positions:
                            continue
                        self._positions.add(position)
                        key = r.key.decode() if r.key else None
                        self.seen.append(Seen(r.topic, key, r.value or b"", dict(r.headers)))
                    self._changed.notify_all()

    async def send(self, topic: str, key: str | None, event: dict[str, Any] | bytes) -> None:
        value = event if isinstance(event, bytes) else orjson.dumps(event)
        await self.producer.send_and_wait(topic, value, key=key.encode() if key else None, headers=HEADERS)

    def matching(self, predicate: Callable[[Seen], bool]) -> list[Seen]:
        return [s for s in self.seen if _safe(predicate, s)]

    async def wait_for(
        self, predicate: Callable[[Seen], bool], within: float = 45, count: int = 1
    ) -> list[Seen]:
        """The first ``count`` messages that match, waiting for them up to ``within`` seconds."""
        async with asyncio.timeout(within), self._changed:
            while len(found := self.matching(predicate)) < count:
                await self._changed.wait()
        return found


def _safe(predicate: Callable[[Seen], bool], seen: Seen) -> bool:
    try:
        return predicate(seen)
    except (ValueError, KeyError, TypeError, AttributeError):
        return False  # not JSON, or not the shape the predicate looks for
