"""Publishing a round of events: one record batch per partition, each event to its key's partition
as the producer's own partitioner chooses it, with the content-type, ce_type and trace context
(``traceparent``, ``tracestate``) headers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner, murmur2
from aiokafka.producer.message_accumulator import BatchBuilder

from .kafka import HEADERS, TRACEPARENT_HEADER, TRACESTATE_HEADER, TYPE_HEADER

_PARTITIONER = DefaultPartitioner()  # the producer's default: murmur2 of the key, as Java clients


def event_type(payload: bytes) -> bytes:
    """The type of an event as encode_event wrote it (its fourth key, after strings that cannot
    hold an unescaped quote), found without parsing the event; empty if there is none."""
    start = payload.find(b'"type":"')
    if start < 0:
        return b""
    start += 8
    end = payload.find(b'"', start)
    return payload[start:end] if end > 0 else b""


_TRACEPARENT = b',"traceparent":"'
_TRACESTATE = b'"tracestate":"'


def event_headers(payload: bytes) -> tuple[bytes, bytes | None, bytes | None]:
    """The type of an event, its ``traceparent`` and ``tracestate``, as encode_event wrote them
    (the trace context right after the type), found without parsing the event: empty and None
    where there are none."""
    start = payload.find(b'"type":"')
    if start < 0:
        return b"", None, None
    start += 8
    end = payload.find(b'"', start)
    if end < 0:
        return b"", None, None
    if not payload.startswith(_TRACEPARENT, end + 1):
        return payload[start:end], None, None
    at = end + 1 + len(_TRACEPARENT)
    parent = payload[at : at + 55]  # version 00, the one we write: 55 characters
    state = None
    if payload.startswith(_TRACESTATE, at + 57):  # past the value's quote and the comma
        begin = at + 57 + len(_TRACESTATE)
        state = payload[begin : payload.find(b'"', begin)]
    return payload[start:end], parent, state


def partition_for(key: bytes | None, partitions: list[int], hashes: dict[bytes, int]) -> int:
    """The partition the producer's default partitioner chooses for a key (its murmur2, modulo
    the partitions). ``hashes`` keeps a round's hashes across topics: a key's events go out
    together (an order's created, opened and contact), and murmur2 is pure Python."""
    if key is None:
        return int(_PARTITIONER(None, partitions, partitions))
    h = hashes.get(key)
    if h is None:
        h = hashes[key] = murmur2(key) & 0x7FFFFFFF
    return partitions[h % len(partitions)]


class _Headers:
    """A round's record headers: one list per event type, a list of its own where the event carries
    a trace context (the record's)."""

    def __init__(self) -> None:
        self.of: dict[bytes, list[tuple[str, bytes]]] = {}

    def __call__(self, payload: bytes) -> list[tuple[str, bytes]]:
        kind, parent, state = event_headers(payload)
        headers = self.of.get(kind)
        if headers is None:
            headers = self.of[kind] = [*HEADERS, (TYPE_HEADER, kind)] if kind else HEADERS
        if parent is not None:
            headers = [*headers, (TRACEPARENT_HEADER, parent)]
            if state is not None:
                headers.append((TRACESTATE_HEADER, state))
        return headers


async def send_batched(
    producer: AIOKafkaProducer, messages: Iterable[tuple[str, str | None, bytes]]
) -> list[asyncio.Future[Any]]:
    """Queue events, in order, as one record batch per partition (send() per message costs twice
    the CPU). Returns one future per batch: await them all for the acks. The bench's load
    generator's way to publish; the relay's is ``send_round``."""
    partitions: dict[str, list[int]] = {}
    batches: dict[tuple[str, int], BatchBuilder] = {}
    futures = []
    hashes: dict[bytes, int] = {}
    headers_of = _Headers()
    for topic, key, payload in messages:
        if topic not in partitions:
            partitions[topic] = sorted(await producer.partitions_for(topic))
        key_bytes = key.encode() if key else None
        tp = (topic, partition_for(key_bytes, partitions[topic], hashes))
        headers = headers_of(payload)
        batch = batches.get(tp)
        if batch is None:
            batch = batches[tp] = producer.create_batch()
        if batch.append(key=key_bytes, value=payload, timestamp=None, headers=headers) is None:
            futures.append(await producer.send_batch(batch, tp[0], partition=tp[1]))  # full
            batch = batches[tp] = producer.create_batch()
            batch.append(key=key_bytes, value=payload, timestamp=None, headers=headers)  # takes a first
    for (topic, partition), batch in batches.items():
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures


@dataclass(slots=True)
class Batch:
    """One partition's record batch of a round: the positions of its messages, and its ack."""

    topic: str
    partition: int
    messages: list[int]
    acked: asyncio.Future[Any]


@dataclass(slots=True)
class Round:
    """What a relay round queued: one batch per partition, and the positions of the messages it
    left for the next round (a partition's batch full, or a topic the broker does not list)."""

    batches: list[Batch]
    left: list[int]

    async def outcome(self) -> tuple[list[int], list[int], BaseException | None]:
        """Once every batch is answered: the positions of the messages acknowledged and of those
        to keep for the next round, in order, and the first failure, if any."""
        results = await asyncio.gather(*(b.acked for b in self.batches), return_exceptions=True)
        acked: list[int] = []
        keep = list(self.left)
        failure = None
        for batch, result in zip(self.batches, results, strict=True):
            if isinstance(result, BaseException):
                keep += batch.messages
                failure = failure or result
            else:
                acked += batch.messages
        return sorted(acked), sorted(keep), failure


async def send_round(
    producer: AIOKafkaProducer,
    messages: Sequence[tuple[str, str | None, bytes]],
    partitions: Mapping[str, list[int]],
) -> Round:
    """Queue a relay round: each message, in order, to its key's partition, at most one record
    batch per partition. A batch's fate is its partition's alone, so a round that partly fails
    keeps, on each partition, exactly a tail of what was claimed for it: what was acknowledged
    can be let go without any key's later event overtaking an earlier one. A message that does
    not fit its partition's batch is left, and every later one for that partition with it; so
    are the messages of a topic missing from ``partitions`` (the broker does not list it)."""
    builders: dict[tuple[str, int], BatchBuilder] = {}
    positions: dict[tuple[str, int], list[int]] = {}
    full: set[tuple[str, int]] = set()
    left: list[int] = []
    hashes: dict[bytes, int] = {}
    headers_of = _Headers()
    for n, (topic, key, payload) in enumerate(messages):
        known = partitions.get(topic)
        if not known:
            left.append(n)
            continue
        key_bytes = key.encode() if key else None
        tp = (topic, partition_for(key_bytes, known, hashes))
        if tp in full:
            left.append(n)
            continue
        builder = builders.get(tp)
        if builder is None:
            builder = builders[tp] = producer.create_batch()
            positions[tp] = []
        # An empty batch takes a first message whatever its size (max_request_size bounds it).
        if builder.append(key=key_bytes, value=payload, timestamp=None, headers=headers_of(payload)) is None:
            full.add(tp)
            left.append(n)
            continue
        positions[tp].append(n)
    batches = [
        Batch(
            topic,
            partition,
            positions[(topic, partition)],
            await producer.send_batch(b, topic, partition=partition),
        )
        for (topic, partition), b in builders.items()
    ]
    return Round(batches, sorted(left))
