"""The batch pipeline's delivery rules, with a fake consumer and fake Kafka positions: offsets are
committed only after their batch's transaction, in order; a failed batch and the one prepared
behind it are rewound and neither is committed. (That deliveries go through at all is shown by the
integration tests, over the real broker.)"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from shared.messaging import BatchPipeline, Prepared

T = "hotline.calls.v1"


def records(*positions: tuple[int, int]) -> tuple[ConsumerRecord[bytes, bytes], ...]:
    return tuple(ConsumerRecord(T, p, o, 0, 0, None, b"{}", None, 0, 2, []) for p, o in positions)


class FakeKafka:
    def __init__(self, log: list[str], partitions: range = range(8)) -> None:
        self.log = log
        self.assigned = {TopicPartition(T, p) for p in partitions}

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.log.append("commit " + ",".join(f"{tp.partition}:{o}" for tp, o in sorted(offsets.items())))

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.log.append(f"seek {partition.partition}:{offset}")


class FakeConsumer:
    """Applies a batch when its gate opens; fails the batches named in ``failing``."""

    service = "test"

    def __init__(self, log: list[str], failing: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        self.log = log
        self.failing = failing
        self.ignoring: set[int] = set()  # batches (by first offset) of records no handler takes
        self.gates: dict[int, asyncio.Event] = {}
        self.prepared: dict[int, asyncio.Event] = defaultdict(asyncio.Event)

    async def prepare(self, batch: Sequence[ConsumerRecord[Any, Any]]) -> Prepared:
        first = batch[0].offset
        self.log.append(f"prepare {first}")
        self.gates.setdefault(first, asyncio.Event())
        self.prepared[first].set()
        ignored = Counter({T: len(batch)}) if first in self.ignoring else Counter()
        return Prepared([], [], [], ignored, len(batch), first)  # seconds: the first offset, here

    def passed_over(self, batch: Prepared) -> None:
        self.log.append(f"passed over {int(batch.seconds)}")

    async def apply(self, batch: Prepared) -> None:
        first = int(batch.seconds)
        await self.gates[first].wait()
        if first in self.failing:
            self.log.append(f"failed {first}")
            raise RuntimeError("the database stays unreachable")
        self.log.append(f"applied {first}")


def pipeline(consumer: FakeConsumer) -> BatchPipeline:
    return BatchPipeline(consumer, backoff=0, overlap_from=1)  # type: ignore[arg-type]


async def settled(pipe: BatchPipeline) -> None:
    if pipe.running is not None:
        await asyncio.wait([pipe.running])


async def test_the_next_batch_is_prepared_while_one_applies_and_offsets_follow_transactions() -> None:
    log: list[str] = []
    consumer, kafka = FakeConsumer(log), FakeKafka(log)
    pipe = pipeline(consumer)
    await pipe.take(records((0, 10), (1, 20), (0, 11)), kafka)
    assert log == ["prepare 10"]  # handed back at once: in its transaction, not yet committed

    second = asyncio.create_task(pipe.take(records((0, 12), (1, 21)), kafka))
    await asyncio.wait_for(consumer.prepared[12].wait(), 5)
    assert "applied 10" not in log and not any(e.startswith("commit") for e in log)
    consumer.gates[10].set()
    await second
    consumer.gates[12].set()
    await settled(pipe)
    assert log == [
        "prepare 10",
        "prepare 12",
        "applied 10",
        "commit 0:12,1:21",
        "applied 12",
        "commit 0:13,1:22",
    ]


async def test_a_failed_batch_and_the_one_behind_it_are_rewound_and_not_committed() -> None:
    log: list[str] = []
    consumer, kafka = FakeConsumer(log, failing={10}), FakeKafka(log)
    pipe = pipeline(consumer)
    await pipe.take(records((0, 10), (1, 20)), kafka)
    behind = asyncio.create_task(pipe.take(records((0, 11), (1, 21), (2, 5)), kafka))
    consumer.gates[10].set()
    await behind
    assert not any(e.startswith("applied") for e in log)  # the batch behind was not applied
    assert "commit" not in " ".join(log)
    # The failed batch's partitions back to its first records, at once (so it comes again even if
    # nothing follows), then every partition of the two batches back to the earliest: nothing is
    # skipped, whether the batch behind was read before or after that first rewind.
    assert [e for e in log if e.startswith("seek")] == [
        *("seek 0:10", "seek 1:20"),
        *("seek 0:10", "seek 1:20", "seek 2:5"),
    ]

    consumer.failing.clear()  # the database is back: the batch comes again and applies
    await pipe.take(records((0, 10), (1, 20)), kafka)
    consumer.gates[10].set()
    await settled(pipe)
    assert log[-2:] == ["applied 10", "commit 0:11,1:21"]


async def test_a_batch_that_cannot_be_prepared_is_rewound() -> None:
    log: list[str] = []
    consumer, kafka = FakeConsumer(log), FakeKafka(log)

    async def broken(batch: Sequence[ConsumerRecord[Any, Any]]) -> Prepared:
        raise ValueError("a bug")

    consumer.prepare = broken  # type: ignore[method-assign]
    await pipeline(consumer).take(records((3, 7), (3, 8)), kafka)
    assert log == ["seek 3:7"]


async def test_a_batch_taken_while_stopping_is_rewound_even_if_the_one_before_fails() -> None:
    log: list[str] = []
    consumer, kafka = FakeConsumer(log, failing={10}), FakeKafka(log)
    pipe = pipeline(consumer)
    await pipe.take(records((0, 10), (0, 11)), kafka)
    behind = asyncio.create_task(pipe.take(records((0, 12), (0, 13)), kafka))
    await asyncio.wait_for(consumer.prepared[12].wait(), 5)
    closing = asyncio.create_task(pipe.close())  # SIGTERM: the consume loop still runs meanwhile
    await asyncio.sleep(0)
    consumer.gates[10].set()
    await asyncio.gather(behind, closing)
    assert "applied 12" not in log and "commit" not in " ".join(log)
    assert log[-1] == "seek 0:10"  # back to the failed batch: 10 to 13 all come again, in order


async def test_partitions_moved_to_another_member_are_neither_sought_nor_committed() -> None:
    log: list[str] = []
    consumer, kafka = FakeConsumer(log, failing={10}), FakeKafka(log, partitions=range(1))
    pipe = pipeline(consumer)
    await pipe.take(records((1, 10)), kafka)  # partition 1 is revoked while it is in its transaction
    behind = asyncio.create_task(pipe.take(records((0, 50), (0, 51)), kafka))
    consumer.gates[10].set()
    await behind
    assert [e for e in log if e.startswith("seek")] == ["seek 0:50"]  # partition 1: its new owner's

    consumer.failing.clear()
    await pipe.take(records((0, 50), (1, 11)), kafka)
    consumer.gates[50].set()
    await settled(pipe)
    assert log[-1] == "commit 0:51"


async def test_a_small_batch_is_applied_before_the_next_poll() -> None:
    log: list[str] = []
    consumer, kafka = FakeConsumer(log), FakeKafka(log)
    pipe = BatchPipeline(consumer, backoff=0, overlap_from=3)  # type: ignore[arg-type]
    taking = asyncio.create_task(pipe.take(records((0, 10), (0, 11)), kafka))
    await asyncio.wait_for(consumer.prepared[10].wait(), 5)
    await asyncio.sleep(0)
    assert not taking.done()  # a light load: no overlap, so no idle poll in between
    consumer.gates[10].set()
    await taking
    assert log == ["prepare 10", "applied 10", "commit 0:12"]


async def test_a_batch_with_nothing_to_apply_is_not_held_behind_a_transaction_on_other_partitions() -> None:
    log: list[str] = []
    consumer, kafka = FakeConsumer(log, failing={10}), FakeKafka(log)
    consumer.ignoring = {30, 40}
    pipe = pipeline(consumer)
    await pipe.take(records((0, 10), (0, 11)), kafka)  # in its transaction until its gate opens
    await pipe.take(records((1, 30), (1, 31)), kafka)  # returns at once: the next poll is not held
    # Committed at once: nothing before it on partition 1 is uncommitted, whatever becomes of 10.
    assert log == ["prepare 10", "prepare 30", "passed over 30", "commit 1:32"]
    # On the partition of the batch in flight it waits, as any batch does: its offsets must not be
    # committed before that transaction's, which fails here.
    behind = asyncio.create_task(pipe.take(records((0, 40)), kafka))
    await asyncio.wait_for(consumer.prepared[40].wait(), 5)
    await asyncio.sleep(0)
    assert not behind.done()
    consumer.gates[10].set()
    await behind
    assert log[4:] == ["prepare 40", "failed 10", "seek 0:10", "seek 0:10"]  # 40 not committed


async def test_with_nothing_in_flight_a_batch_with_nothing_to_apply_goes_the_usual_way() -> None:
    log: list[str] = []
    consumer, kafka = FakeConsumer(log), FakeKafka(log)
    consumer.ignoring = {30}
    pipe = pipeline(consumer)
    taking = asyncio.create_task(pipe.take(records((1, 30)), kafka))  # nothing in flight: as ever
    await asyncio.wait_for(consumer.prepared[30].wait(), 5)
    consumer.gates[30].set()
    await taking
    await settled(pipe)
    assert log == ["prepare 30", "applied 30", "commit 1:31"]
