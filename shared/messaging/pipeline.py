"""The pipeline: batch N+1 is decoded and prepared while batch N is in its transaction; each
batch's offsets are committed only once its transaction has, and a batch that fails is rewound."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, Protocol

from aiokafka import ConsumerRecord, TopicPartition

from shared import metrics, retry
from shared.logs import get_logger

from .consumer import BatchConsumer, Prepared

log = get_logger(__name__)
PIPELINE_MIN_RECORDS = 200  # smaller batches are applied before the next poll (BatchPipeline)


class KafkaPositions(Protocol):
    """What the pipeline needs of a Kafka consumer: its partitions, commit offsets, move a position."""

    def assignment(self) -> set[TopicPartition]: ...

    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...


def _first_offsets(records: Sequence[ConsumerRecord[Any, Any]]) -> dict[TopicPartition, int]:
    first: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        if tp not in first or r.offset < first[tp]:
            first[tp] = r.offset
    return first


def _next_offsets(records: Sequence[ConsumerRecord[Any, Any]]) -> dict[TopicPartition, int]:
    after: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        if r.offset + 1 > after.get(tp, -1):
            after[tp] = r.offset + 1
    return after


class BatchPipeline:
    """Batch N+1 is decoded and prepared (``BatchConsumer.prepare``) while batch N is in its
    transaction; transactions still follow one another, in order, and each batch's offsets are
    committed, explicitly, only once its transaction has. The database's time is no longer idle
    time for the service: the next batch's decoding, tagging and placing fill it.

    A batch whose transaction fails for good is rewound (its partitions sought back to its first
    records). The batch prepared behind it, whether read before or after that rewind, is not
    applied: its partitions are sought back too, and everything comes again in order. Partitions
    no longer assigned are left alone: their new owner starts from the committed offsets, which
    are never past an uncommitted transaction."""

    def __init__(
        self,
        consumer: BatchConsumer,
        backoff: float = 1.0,
        grace: float = 10.0,
        overlap_from: int = PIPELINE_MIN_RECORDS,
    ) -> None:
        self.consumer = consumer
        self.overlap_from = overlap_from  # records: a smaller batch is applied before the next poll
        self.backoff = backoff  # after a failed batch, before it comes again
        self.grace = grace  # for the batch in its transaction, when stopping
        self.running: asyncio.Task[None] | None = None
        # Where to rewind to: the batch in flight's first offsets until its transaction commits
        # (so that any other ending rewinds it), cleared by the take that rewinds.
        self.rewind_to: dict[TopicPartition, int] = {}
        self.closing = False
        self.failures = 0  # batches failed in a row: the pause before the next grows with them
        self.lag_reported: set[TopicPartition] = set()

    async def take(self, records: Sequence[ConsumerRecord[Any, Any]], kafka: KafkaPositions) -> None:
        if self.closing:  # stopping: not even prepared; it comes again
            self._seek(kafka, _first_offsets(records))
            return
        try:
            batch: Prepared | None = await self.consumer.prepare(records)
        except Exception:
            log.exception("a batch could not be prepared; rewinding it")
            batch = None
        if batch is not None and await self._passed_over(batch, records, kafka):
            return
        if self.running is not None:
            await asyncio.wait([self.running])  # its outcome is in self.rewind_to
            if not self.running.cancelled() and self.running.exception() is not None:
                log.error("batch task ended abnormally", error=repr(self.running.exception())[:300])
        if batch is None or self.rewind_to or self.closing:
            self._seek(kafka, self.rewind_to, _first_offsets(records))
            self.rewind_to = {}
            return
        # Until its transaction has committed, the batch counts as one to rewind: however its task
        # ends (failed, cancelled, or by surprise), the next take rewinds rather than skips it.
        self.rewind_to = _first_offsets(records)
        self.running = asyncio.create_task(self._apply(batch, records, kafka))
        if len(records) < self.overlap_from:
            # A light load: applied before the next poll; there is little to overlap.
            await asyncio.wait([self.running])

    async def _passed_over(
        self, batch: Prepared, records: Sequence[ConsumerRecord[Any, Any]], kafka: KafkaPositions
    ) -> bool:
        """A batch of records no handler takes (a service reading back its own events, say) has
        no transaction to wait for. While another batch is in its transaction on other partitions
        it is not held behind it: its offsets are committed at once, and the next poll comes (a
        batch waiting behind it would otherwise be prepared only once that transaction is over,
        and the two would no longer overlap). Nothing earlier on its partitions is uncommitted:
        the only batch not committed is the one in flight, on other partitions."""
        if self.closing or self.running is None or self.running.done() or not batch.nothing_to_apply:
            return False
        after = _next_offsets(records)
        if not after.keys().isdisjoint(self.rewind_to):
            return False  # partitions of the batch in flight: committed after it, as ever
        self.consumer.passed_over(batch)
        assigned = kafka.assignment()
        offsets = {tp: o for tp, o in after.items() if tp in assigned}
        try:
            if offsets:
                await kafka.commit(offsets)
        except Exception as exc:  # they come again, and are passed over again
            log.warning("offsets of a batch passed over not committed", error=str(exc)[:300])
            return True
        self._report_lag(kafka, offsets, assigned)
        return True

    async def close(self) -> None:
        """Stop taking batches; let the one in its transaction finish. Past ``grace`` (the broker
        unreachable for its offset commit, say) it is cancelled: it comes again."""
        self.closing = True
        if self.running is not None:
            done, _ = await asyncio.wait([self.running], timeout=self.grace)
            if not done:
                self.running.cancel()
                await asyncio.wait([self.running], timeout=self.grace)  # its rollback

    async def _apply(
        self, batch: Prepared, records: Sequence[ConsumerRecord[Any, Any]], kafka: KafkaPositions
    ) -> None:
        try:
            await self.consumer.apply(batch)
        except asyncio.CancelledError:
            raise  # stopping: its offsets were not committed, so the broker gives it again
        except Exception:
            log.exception("batch failed; rewinding it", records=len(records))
            metrics.BATCHES_REWOUND.labels(self.consumer.service).inc()
            self._seek(kafka, self.rewind_to)  # now, so that it comes again even if nothing follows
            self.failures += 1
            await asyncio.sleep(retry.backoff(self.failures, initial=self.backoff, cap=10 * self.backoff))
            return
        self.rewind_to = {}
        self.failures = 0
        assigned = kafka.assignment()
        offsets = {tp: o for tp, o in _next_offsets(records).items() if tp in assigned}
        try:
            if offsets:
                await kafka.commit(offsets)
        except Exception as exc:
            # The partitions moved to another member, say: it gets them again; the inbox dedupes.
            log.warning("offsets not committed after the batch's transaction", error=str(exc)[:300])
            return
        self._report_lag(kafka, offsets, assigned)

    def _report_lag(
        self, kafka: KafkaPositions, offsets: dict[TopicPartition, int], assigned: set[TopicPartition]
    ) -> None:
        """How far behind the partitions' ends this replica is, as of the batch just committed. A
        partition no longer assigned loses its series: its new owner reports it, and a stale
        value here would keep an alert firing."""
        highwater = getattr(kafka, "highwater", None)  # aiokafka's consumer; test fakes may lack it
        if highwater is None:
            return
        service = self.consumer.service
        for tp in self.lag_reported - assigned:
            with contextlib.suppress(KeyError):
                metrics.CONSUMER_LAG.remove(service, tp.topic, str(tp.partition))
        self.lag_reported &= assigned
        for tp, committed in offsets.items():
            end = highwater(tp)
            if end is not None:
                metrics.CONSUMER_LAG.labels(service, tp.topic, str(tp.partition)).set(max(end - committed, 0))
                self.lag_reported.add(tp)

    @staticmethod
    def _seek(kafka: KafkaPositions, *positions: dict[TopicPartition, int]) -> None:
        """Each assigned partition back to the earliest of these positions."""
        earliest: dict[TopicPartition, int] = {}
        for offsets in positions:
            for tp, offset in offsets.items():
                earliest[tp] = min(offset, earliest.get(tp, offset))
        assigned = kafka.assignment()
        for tp, offset in earliest.items():
            if tp in assigned:
                kafka.seek(tp, offset)
