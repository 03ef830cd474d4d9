"""Replay a JSONL event log to the broker: one record a line, ``{"topic", "key", "event"}``, in order.

As fast as possible by default; with ``speed`` the gaps between the events' ``time`` are kept
(divided by speed), so a morning can be replayed in minutes with its rhythm intact.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from shared.messaging import HEADERS, client_options
from shared.settings import Settings


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    key: str | None
    event: dict[str, Any] | str  # a string is sent as it is (bad input, for tests)

    @property
    def time(self) -> datetime | None:
        if isinstance(self.event, dict) and isinstance(self.event.get("time"), str):
            return datetime.fromisoformat(self.event["time"])
        return None

    def value(self, retime: bool = False) -> bytes:
        if isinstance(self.event, str):
            return self.event.encode()
        if retime:  # the event happens now: business time and the wall clock agree
            return orjson.dumps(self.event | {"time": datetime.now(UTC).isoformat()})
        return orjson.dumps(self.event)


class LogError(ValueError):
    """A line of the log is not a record; the message names the line."""


def read_log(path: Path) -> Iterator[Record]:
    """The records of a log, plain or gzipped (``.gz``: the sample month is written so)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                yield Record(obj["topic"], obj.get("key"), obj["event"])
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise LogError(f"{path}:{number}: not a record {{topic, key, event}}: {exc}") from exc


async def publish(
    settings: Settings,
    records: Iterable[Record],
    speed: float | None = None,
    retime: bool = False,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Publish the records in order; returns how many were sent (all acknowledged, acks=all).
    With ``retime`` each event's ``time`` becomes the moment it is sent (a live rehearsal).
    ``progress(sent)`` is told how many have been handed to the producer so far."""
    producer = AIOKafkaProducer(**client_options(settings), acks="all", linger_ms=5, enable_idempotence=False)
    await producer.start()
    sent = 0
    try:
        pending: list[asyncio.Future[Any]] = []
        first: datetime | None = None
        started = asyncio.get_running_loop().time()
        for record in records:
            if speed and record.time:
                first = first or record.time
                due = started + (record.time - first).total_seconds() / speed
                delay = due - asyncio.get_running_loop().time()
                if delay > 0:
                    await asyncio.gather(*pending)
                    pending.clear()
                    await asyncio.sleep(delay)  # pacing a replay, not synchronising a test
            key = record.key.encode() if record.key else None
            pending.append(await producer.send(record.topic, record.value(retime), key=key, headers=HEADERS))
            sent += 1
            if progress:
                progress(sent)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent
