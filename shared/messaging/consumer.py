"""The batch consumer: a consumed batch applied in one transaction (inbox, the handlers' state,
outbox rows), a message that fails rolled back alone and dead-lettered, a transient failure retried."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import ConsumerRecord
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.schema import Table

from shared import metrics, tracing
from shared.contract import WORKORDER_EVENTS, CloudEvent
from shared.db import json_keys, keys_table
from shared.logs import get_logger
from shared.retry import transient_retries

from .decoding import Decoder, dead_letter
from .failures import NeedsCare, careful_on_failure, is_transient
from .handling import BatchUnit, Decoded, Delivery, LocksFirst, Refused, Route, Tx, Unprepared, WritesBehind
from .outbox import OutboxMessage, outbox_insert

log = get_logger(__name__)

PREPARE_CHUNK = 64  # records prepared between two yields to the event loop
WRITE_BEHIND_EVERY = 250  # messages decided between two writes (WritesBehind)
# While a write behind is in flight, the handlers yield to it every so many messages: its
# statements are sent one after the other, each when the event loop gets to it.
WRITE_BEHIND_YIELD = 16


@dataclass(slots=True)
class Prepared:
    """A consumed batch, decoded: what its transaction will apply."""

    decoded: list[Decoded]
    dead: list[OutboxMessage]  # dead letters, staged with the batch
    reasons: list[tuple[Delivery, str]]  # why, logged and counted once the batch has committed
    ignored: Counter[str]  # per topic: records of types we have no handler for
    records: int
    seconds: float = 0.0  # spent preparing it

    @property
    def nothing_to_apply(self) -> bool:
        """Every record of no type a handler takes: the batch needs no transaction."""
        return not self.decoded and not self.dead and sum(self.ignored.values()) == self.records


@dataclass(slots=True)
class _Staged:
    """What a batch's transaction has staged: outbox rows (dead letters first), and what to count
    once it commits."""

    rows: list[dict[str, Any]]
    written: int = 0  # of rows, written behind (WritesBehind)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    lifecycle: Counter[str] = field(default_factory=Counter)  # work-order events, by type
    escalations: Counter[tuple[str, str]] = field(default_factory=Counter)  # (cause, to_level)

    def add(self, tx: Tx[Any]) -> None:
        self.rows.extend(o.row() for o in tx.outbox)
        for o in tx.outbox:
            if o.topic == WORKORDER_EVENTS:
                self.lifecycle[o.type] += 1
                if o.type == "workorder.escalated":  # rare: worth reading back its reason
                    self.escalations[_escalation_labels(o.payload)] += 1
        self.outcomes[(tx.delivery.topic, "applied")] += 1

    def dead(self, topic: str, letter: OutboxMessage) -> None:
        self.rows.append(letter.row())
        self.outcomes[(topic, "deadlettered")] += 1


LINKS = 128  # a batch span's links: OpenTelemetry's default limit, past which the SDK drops them


def _came_from(event: CloudEvent) -> tracing.Trace | None:
    """The span an event came from: its ``traceparent`` extension, when it has a valid one."""
    extra = event.__pydantic_extra__
    return tracing.parse(extra.get(tracing.TRACEPARENT)) if extra else None


@contextlib.contextmanager
def _traced(tx: Tx[Any], service: str) -> Iterator[None]:
    from opentelemetry import trace as otel

    batch = otel.get_current_span().get_span_context()
    parent = _came_from(tx.event)
    links = [tracing.Trace(f"{batch.trace_id:032x}", f"{batch.span_id:016x}")] if batch.is_valid else []
    with tracing.span(
        f"process {tx.delivery.topic}",
        kind="consumer",
        parent=parent,
        links=links,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": tx.delivery.topic,
            "messaging.destination.partition.id": str(tx.delivery.partition),
            "messaging.kafka.offset": tx.delivery.offset,
            "messaging.message.id": tx.event.id,
            "cloudevents.event_type": tx.event.type,
            "whistle.service": service,
        },
    ) as trace:
        tx.trace = trace
        yield


def _escalation_labels(payload: bytes) -> tuple[str, str]:
    """Every escalation, whoever asked for it, is one workorder.escalated staged by dispatch: counted
    there, each is counted once, and only when it happened."""
    data = orjson.loads(payload).get("data") or {}
    return metrics.escalation_cause(str(data.get("reason", ""))), str(data.get("to_level", ""))


class _Behind:
    """At most one write in flight on the batch's connection, started before the handlers go on."""

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        return self.task is not None and not self.task.done()

    async def start(self, write: Callable[[], Awaitable[None]]) -> None:
        await self.wait()
        self.task = asyncio.ensure_future(write())
        await asyncio.sleep(0)  # the write sends its first statement; the handlers go on meanwhile

    async def wait(self) -> None:
        task, self.task = self.task, None
        if task is not None:
            await task

    async def settle(self) -> None:
        """The write in flight has ended (its failure, if any, set aside): the batch is failing
        already, and its rollback must not overlap a statement."""
        with contextlib.suppress(Exception):
            await self.wait()


class BatchConsumer:
    """Applies a consumed batch in one transaction, per the rules of ``shared.messaging``."""

    def __init__(
        self,
        *,
        service: str,
        engine: AsyncEngine,
        inbox: Table,
        outbox: Table,
        routes: Iterable[Route],
        strict_topics: Iterable[str],
        after_commit: Callable[[], None] = lambda: None,
        max_attempts: int = 5,
        unit: BatchUnit[Any] | None = None,
        prepare_messages: Callable[[list[Decoded]], Awaitable[Sequence[Any]]] | None = None,
        write_behind: bool = False,
    ) -> None:
        self.unit = unit
        if write_behind and not isinstance(unit, WritesBehind):
            raise TypeError("write_behind needs a unit that writes behind (WritesBehind: flush)")
        self.write_behind = unit if write_behind and isinstance(unit, WritesBehind) else None
        self.locks_first = unit if isinstance(unit, LocksFirst) else None
        # Work on a batch's messages that needs no database (intake tags and places calls): done
        # once they are decoded, and so, in the pipeline, while the batch before is in its
        # transaction. Each message's result goes to its ``prepared``; an exception instead
        # dead-letters that message alone.
        self.prepare_messages = prepare_messages
        self.service = service
        self.source = f"whistle/{service}"
        self.engine = engine
        self.inbox = inbox
        self.outbox = outbox
        self.decoder = Decoder(routes, strict_topics)
        self.after_commit = after_commit
        self._stage = outbox_insert(outbox)
        self.max_attempts = max_attempts
        self._claim_sql = text(
            f"INSERT INTO {inbox.name} (event_id, topic) "
            f"SELECT * FROM {keys_table('claims', 'event_id', 'topic')} AS c "
            "ON CONFLICT DO NOTHING RETURNING event_id"
        )

    @property
    def topics(self) -> list[str]:
        return self.decoder.topics

    async def prepare(self, records: Sequence[ConsumerRecord[Any, Any]]) -> Prepared:
        """Decode a batch, and do what needs no database (``prepare_messages``). It yields to the
        event loop every so often, so that the transaction of the batch before (BatchPipeline)
        goes on meanwhile."""
        started = time.perf_counter()
        batch = Prepared([], [], [], Counter(), len(records))
        decoder = self.decoder
        for i, record in enumerate(records, 1):
            if i % PREPARE_CHUNK == 0:
                await asyncio.sleep(0)
            if decoder.unrouted(record):
                batch.ignored[record.topic] += 1
                continue
            delivery = Delivery.of(record)
            try:
                result = decoder.decode(delivery)
            except Exception as exc:  # a bug or a message no rule foresaw: park it, like a handler's
                result = self._unprepared(delivery, exc)
            if isinstance(result, Decoded):
                batch.decoded.append(result)
            elif isinstance(result, str):
                self._dead(batch, delivery, result)
            else:
                batch.ignored[delivery.topic] += 1
        if self.prepare_messages is not None and batch.decoded:
            decoded, batch.decoded = batch.decoded, []
            for m, prepared in zip(decoded, await self.prepare_messages(decoded), strict=True):
                if isinstance(prepared, Exception):
                    self._dead(batch, m.delivery, self._unprepared(m.delivery, prepared))
                else:
                    m.prepared = prepared
                    batch.decoded.append(m)
        batch.seconds = time.perf_counter() - started
        return batch

    def _dead(self, batch: Prepared, delivery: Delivery, reason: str) -> None:
        batch.dead.append(dead_letter(delivery, reason, self.source))
        batch.reasons.append((delivery, reason))

    @staticmethod
    def _unprepared(delivery: Delivery, exc: Exception) -> str:
        where = f"{delivery.topic}/{delivery.partition}/{delivery.offset}"
        log.error("could not prepare", at=where, exc_info=exc)
        what = str(exc) if isinstance(exc, Unprepared) else type(exc).__name__
        return f"could not be prepared ({what}); see the service log for {where}"

    async def apply(self, batch: Prepared) -> None:
        """The batch's transaction, retried while the database is unreachable; raises when it
        stays so (the caller rewinds the batch)."""
        started = time.perf_counter()
        with self._batch_span(batch):
            async for attempt in transient_retries(
                is_transient, attempts=self.max_attempts, initial=0.2, cap=5.0, on_retry=self._retrying
            ):
                with attempt:
                    await self._apply(batch.decoded, batch.dead)
        # Counted once the batch has committed: a batch rewound comes again and would count twice.
        for delivery, reason in batch.reasons:
            log.warning("dead letter", topic=delivery.topic, offset=delivery.offset, error=reason)
            metrics.DEADLETTERS.labels(self.service, delivery.topic).inc()
            metrics.MESSAGES.labels(self.service, delivery.topic, "deadlettered").inc()
        self._count_ignored(batch)
        metrics.BATCH_SECONDS.labels(self.service).observe(time.perf_counter() - started + batch.seconds)
        metrics.BATCH_SIZE.labels(self.service).observe(batch.records)
        self.after_commit()

    def passed_over(self, batch: Prepared) -> None:
        """A batch with nothing to apply, taken without a transaction (BatchPipeline)."""
        self._count_ignored(batch)
        metrics.BATCH_SIZE.labels(self.service).observe(batch.records)

    def _count_ignored(self, batch: Prepared) -> None:
        for topic, n in batch.ignored.items():  # counted per topic, not per message: labels() costs
            metrics.MESSAGES.labels(self.service, topic, "ignored").inc(n)

    def _batch_span(self, batch: Prepared) -> contextlib.AbstractContextManager[Any]:
        """Exporting, the batch's span: linked to the spans its messages came from (as
        OpenTelemetry's messaging conventions have a batch's processing); its queries are its
        children. Not exporting, nothing."""
        if tracing.TRACER is None:
            return contextlib.nullcontext()
        links = [t for m in batch.decoded[:LINKS] if (t := _came_from(m.event))]
        topics = sorted({m.delivery.topic for m in batch.decoded})
        return tracing.span(
            f"process {topics[0]}" if len(topics) == 1 else "process",
            kind="consumer",
            links=links,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.batch.message_count": batch.records,
                "messaging.consumer.group.name": f"whistle-{self.service}",
            },
        )

    def _message_span(self, tx: Tx[Any]) -> contextlib.AbstractContextManager[Any]:
        """Exporting, a message's span: the child of the span it came from (a new trace when it
        came with none), linked to its batch; what its handler publishes carries it."""
        if tracing.TRACER is None:
            return contextlib.nullcontext()
        return _traced(tx, self.service)

    def _remember(self, tx: Tx[Any]) -> None:
        """For the timers of this process, which publish on behalf of an order (tracing.MEMORY):
        the span the order's first event came from (its handling's, if it came with none)."""
        if tracing.MEMORY is not None and tx.delivery.key not in tracing.MEMORY:
            tracing.MEMORY.note(tx.delivery.key, _came_from(tx.event) or tx.context())

    def _retrying(self, exc: BaseException, attempt: int) -> None:
        metrics.TRANSIENT_RETRIES.labels(self.service).inc()
        log.warning("transient failure, retrying batch", attempt=attempt, error=str(exc)[:300])

    async def _apply(self, decoded: list[Decoded], dead_before: list[OutboxMessage]) -> None:
        """The whole batch in one transaction. First without savepoints (the common case: every
        message applies); if one is refused or fails, the transaction is rolled back and the batch
        applied again with a savepoint per message, so that message alone is dead-lettered."""
        try:
            await self._apply_once(decoded, dead_before, careful=False)
        except NeedsCare:
            await self._apply_once(decoded, dead_before, careful=True)

    async def _apply_once(
        self, decoded: list[Decoded], dead_before: list[OutboxMessage], careful: bool
    ) -> None:
        staged = _Staged([m.row() for m in dead_before])
        async with self.engine.begin() as conn:
            todo = await self._claim(conn, decoded, staged)
            if todo and self.locks_first is not None:
                await self.locks_first.lock(conn, todo)  # in the careful path too: all, before any savepoint
            if careful:
                for m in todo:
                    await self._apply_carefully(conn, m, staged)
            elif todo:
                with careful_on_failure:  # a message the unit cannot load (an id too long to store)
                    context = await self.unit.open(conn, todo) if self.unit else None
                await self._apply_all(conn, todo, context, staged)
                if self.unit is not None:
                    with careful_on_failure:  # a row the database refuses: whose is found alone
                        staged.rows += [m.row() for m in await self.unit.close(conn, context)]
            await self._stage.execute(conn, staged.rows[staged.written :])
        for event_type, n in staged.lifecycle.items():
            metrics.WORKORDERS.labels(event_type).inc(n)
        for (cause, to_level), n in staged.escalations.items():
            metrics.ESCALATIONS.labels(cause, to_level).inc(n)
        for (topic, outcome), n in staged.outcomes.items():
            metrics.MESSAGES.labels(self.service, topic, outcome).inc(n)
            if outcome == "deadlettered":
                metrics.DEADLETTERS.labels(self.service, topic).inc(n)

    async def _claim(self, conn: AsyncConnection, decoded: list[Decoded], staged: _Staged) -> list[Decoded]:
        """The inbox: the batch's messages not seen before, each once."""
        if not decoded:
            return []
        claims = json_keys((m.event.id, m.delivery.topic) for m in decoded)
        fresh = {row[0] for row in await conn.execute(self._claim_sql, {"claims": claims})}
        todo = []
        for m in decoded:
            if m.event.id in fresh:
                fresh.discard(m.event.id)
                todo.append(m)
            else:  # seen before, or twice in this batch
                staged.outcomes[(m.delivery.topic, "duplicate")] += 1
        return todo

    async def _apply_all(
        self, conn: AsyncConnection, todo: list[Decoded], context: Any, staged: _Staged
    ) -> None:
        """Every message without savepoints: one that fails sends the batch down the careful path.
        Writing behind, what is staged is written every WRITE_BEHIND_EVERY messages while the next
        ones are decided."""
        behind = _Behind() if self.write_behind is not None else None
        try:
            for i, m in enumerate(todo, 1):
                tx = Tx(conn, m.event, m.delivery, self.source, context)
                with careful_on_failure, self._message_span(tx):
                    await m.route.handler(tx, m.data)
                self._remember(tx)
                staged.add(tx)
                if behind is None:
                    continue
                if i % WRITE_BEHIND_EVERY == 0 and i < len(todo):
                    rows, staged.written = staged.rows[staged.written :], len(staged.rows)
                    await behind.start(functools.partial(self._write_behind, conn, context, rows))
                elif i % WRITE_BEHIND_YIELD == 0 and behind.busy:
                    await asyncio.sleep(0)
            if behind is not None:
                await behind.wait()  # before close uses the connection
        except BaseException:
            if behind is not None:
                await behind.settle()
            raise

    async def _write_behind(self, conn: AsyncConnection, context: Any, rows: list[dict[str, Any]]) -> None:
        assert self.write_behind is not None
        with careful_on_failure:
            await self.write_behind.flush(conn, context)
            await self._stage.execute(conn, rows)

    async def _apply_carefully(self, conn: AsyncConnection, m: Decoded, staged: _Staged) -> None:
        """One message in a savepoint of its own, with a unit of its own: refused or failed, it is
        rolled back alone and dead-lettered."""
        tx: Tx[Any] = Tx(conn, m.event, m.delivery, self.source, None)
        try:
            async with conn.begin_nested():
                if self.unit:
                    tx.batch = await self.unit.open(conn, [m])
                with self._message_span(tx):
                    await m.route.handler(tx, m.data)
                if self.unit:
                    tx.outbox += await self.unit.close(conn, tx.batch)
        except Refused as exc:
            reason = f"refused {m.event.type}: {exc}"
            staged.dead(m.delivery.topic, dead_letter(m.delivery, reason, self.source))
            log.warning("refused", event_id=m.event.id, type=m.event.type, error=str(exc))
        except Exception as exc:
            if is_transient(exc):
                raise
            # A bug or a message no rule foresaw: park it, keep the partition moving.
            log.exception("handler failed", event_id=m.event.id, type=m.event.type)
            reason = f"could not be applied ({type(exc).__name__}); see the service log for {m.event.id}"
            staged.dead(m.delivery.topic, dead_letter(m.delivery, reason, self.source))
        else:
            self._remember(tx)
            staged.add(tx)
