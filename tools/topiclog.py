"""A topic read as it is now, and written as a replayable JSONL log (the format ``tools.replay``
reads: ``{"topic", "key", "event"}`` a line), with personal data masked unless asked for in clear."""

from __future__ import annotations

import asyncio
import heapq
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.messaging import client_options
from shared.pii import mask_name, mask_phone, mask_phones_in_text
from shared.settings import Settings

# The keys that hold a resident's name or phone, as shared.logs masks them in log lines.
NAME_KEYS = frozenset({"name", "caller_name", "resident_name"})
PHONE_KEYS = frozenset({"phone", "caller_phone", "resident_phone"})
# The same keys in text that is not JSON (a dead letter's raw bytes that did not parse).
_NAME_IN_TEXT = re.compile(r'("(?:name|caller_name|resident_name)"\s*:\s*")((?:[^"\\]|\\.)*)(")')
_PHONE_IN_TEXT = re.compile(r'("(?:phone|caller_phone|resident_phone)"\s*:\s*"?)([^",}\s]*)')
READ_WITHIN = 30.0  # seconds to fetch a record the broker says it holds


class TopicError(ValueError):
    """The topic does not exist, or the record asked for is not there."""


@dataclass(frozen=True, slots=True)
class Read:
    partition: int
    offset: int
    timestamp: int  # the record's Kafka timestamp (ms)
    key: str | None
    value: bytes | None


def mask(value: Any, key: str = "") -> Any:
    """A decoded message with names and phones masked: by the keys that hold them, phones dictated
    into any text, and a dead letter's ``raw`` (the original bytes) taken apart the same way."""
    if isinstance(value, dict):
        if isinstance(value.get("raw"), str):  # a dead letter: its raw is another message
            encoding = value.get("raw_encoding", "utf-8")
            inner = {k: v for k, v in value.items() if k != "raw"}
            return mask(inner) | {
                "raw": mask_raw(value["raw"], encoding if isinstance(encoding, str) else "")
            }
        return {k: mask(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, key) for v in value]
    if isinstance(value, str):
        if key in NAME_KEYS:
            return mask_name(value)
        if key in PHONE_KEYS:
            return mask_phone(value)
        return mask_phones_in_text(value)
    if isinstance(value, int) and not isinstance(value, bool) and key in PHONE_KEYS:
        return mask_phone(value)
    return value


def mask_raw(raw: str, encoding: str = "utf-8") -> str:
    """A dead letter's raw text masked. JSON is masked field by field and written back as JSON;
    text that is not JSON by the keys' spelling and the phones in it; bytes that were not UTF-8
    (base64) are withheld whole, since nothing in them can be found to mask."""
    if encoding != "utf-8":
        return f"<{len(raw) * 3 // 4} bytes, not UTF-8: withheld; --raw shows them (base64)>"
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = _NAME_IN_TEXT.sub(lambda m: m[1] + (mask_name(m[2]) or "") + m[3], raw)
        text = _PHONE_IN_TEXT.sub(lambda m: m[1] + (mask_phone(m[2]) or ""), text)
        return mask_phones_in_text(text)
    return orjson.dumps(mask(decoded)).decode()


async def _consumer(settings: Settings, topic: str) -> tuple[AIOKafkaConsumer, list[TopicPartition]]:
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)  # no group
    await consumer.start()
    try:
        await consumer.topics()  # metadata
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            raise TopicError(f"no topic {topic!r} on {settings.kafka_bootstrap_servers}")
    except BaseException:
        await consumer.stop()
        raise
    return consumer, partitions


def _read(record: Any) -> Read:
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    return Read(record.partition, record.offset, record.timestamp, key, record.value)


async def read_topic(
    settings: Settings, topic: str, progress: Callable[[int, int], None] | None = None
) -> list[Read]:
    """Every record the topic holds now (up to the end offsets when the read starts), the
    partitions merged by their records' timestamps so that each partition keeps its own order.
    ``progress(done, total)`` is told as the records come."""
    consumer, partitions = await _consumer(settings, topic)
    try:
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        total = sum(ends[tp] - starts[tp] for tp in partitions)
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, starts[tp])
        by_partition: dict[int, list[Read]] = {tp.partition: [] for tp in partitions}
        done = 0
        todo = {tp for tp in partitions if ends[tp] > starts[tp]}
        if progress:
            progress(0, total)
        while todo:
            batches = await consumer.getmany(*todo, timeout_ms=1000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset < ends[tp]:
                        by_partition[tp.partition].append(_read(record))
                        done += 1
                if await consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
            if progress:
                progress(done, total)
        merged = heapq.merge(*by_partition.values(), key=lambda r: r.timestamp)
        return list(merged)
    finally:
        await consumer.stop()


async def read_one(settings: Settings, topic: str, partition: int, offset: int) -> Read:
    """The record at ``partition:offset``, or TopicError when the topic has no such record."""
    consumer, partitions = await _consumer(settings, topic)
    try:
        tp = TopicPartition(topic, partition)
        if tp not in partitions:
            raise TopicError(f"{topic} has no partition {partition}")
        start, end = (await consumer.beginning_offsets([tp]))[tp], (await consumer.end_offsets([tp]))[tp]
        if not start <= offset < end:
            raise TopicError(f"{topic} partition {partition} holds offsets {start}..{end - 1}, not {offset}")
        consumer.assign([tp])
        consumer.seek(tp, offset)
        async with asyncio.timeout(READ_WITHIN):
            while True:
                for record in (await consumer.getmany(tp, timeout_ms=1000, max_records=1)).get(tp, []):
                    return _read(record)
    finally:
        await consumer.stop()


def log_lines(topic: str, records: Iterable[Read], raw: bool = False) -> Iterator[str | None]:
    """One JSONL line a record, ``{"topic", "key", "event"}``, masked unless ``raw``. A value that
    is not a JSON object is written as a string (replay sends it as it is); one that is not UTF-8,
    or a tombstone, has no line (None: counted by the caller)."""
    for record in records:
        if record.value is None:
            yield None
            continue
        try:
            text = record.value.decode("utf-8")
        except UnicodeDecodeError:
            yield None
            continue
        try:
            event: Any = orjson.loads(text)
        except orjson.JSONDecodeError:
            event = text
        if not isinstance(event, dict):
            event = text
        if not raw:
            event = mask(event) if isinstance(event, dict) else mask_raw(event)
        key = record.key if raw or record.key is None else mask_phones_in_text(record.key)
        yield orjson.dumps({"topic": topic, "key": key, "event": event}).decode()
