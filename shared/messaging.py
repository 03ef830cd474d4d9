"""Messaging kit: Kafka client settings, the batch consumer (inbox, dead letters), the outbox relay.

The rules (ARCHITECTURE.md) in one place:
- a consumed batch is one database transaction: inbox rows, state changes and outbox rows commit
  together, and its offsets are committed only after that commit (BatchPipeline, which prepares
  the next batch meanwhile);
- the inbox dedupes by CloudEvent ``id``; a message already in the inbox is skipped;
- a message the domain refuses, or one that breaks a handler, is rolled back alone and
  dead-lettered, and the rest of the batch goes on: the batch is applied without savepoints first,
  and when one message fails, again from the start with a savepoint per message;
- dead letters are outbox rows like every other event, so they commit with the batch;
- a transient failure (database or network) retries the whole batch with bounded backoff; after a
  few tries the batch is rewound and comes again from the broker, never skipped;
- the relay claims outbox rows in batches by deleting them, publishes them with ``acks=all`` and
  commits the delete only once every ack is in.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import ssl
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, cast, runtime_checkable

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import BaseModel, ValidationError, create_model
from sqlalchemy import BigInteger, DateTime, Identity, LargeBinary, String, TextClause, func, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.schema import Table

from shared import metrics
from shared.contract import (
    CONTENT_TYPE,
    DEADLETTER,
    WORKORDER_EVENTS,
    CloudEvent,
    DeadLetter,
    derived_id,
    encode_event,
)
from shared.db import json_keys, keys_table
from shared.logs import get_logger
from shared.settings import Settings

log = get_logger(__name__)
HEADERS = [("content-type", CONTENT_TYPE.encode())]
# Beside the content type, what we publish carries its event type in ``ce_type`` (as CloudEvents'
# binary mode names it): a consumer can pass over a type it has no use for unparsed. Intake reads
# its own lifecycle events back from the topic where the ones it follows arrive, half its input.
TYPE_HEADER = "ce_type"
_PARTITIONER = DefaultPartitioner()  # the producer's default


# ---- Kafka clients ----------------------------------------------------------------------------


def _ssl(settings: Settings) -> ssl.SSLContext | None:
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        context: ssl.SSLContext = create_ssl_context(cafile=settings.kafka_ssl_cafile)
        return context
    return None


def client_options(settings: Settings) -> dict[str, Any]:
    """aiokafka options shared by the relay's producer, admin clients and tools."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
        "ssl_context": _ssl(settings),
    }
    if settings.kafka_sasl_mechanism:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = (
            settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
        )
    return options


def _broker_security(settings: Settings) -> BaseSecurity | None:
    context = _ssl(settings)
    user = settings.kafka_sasl_username or ""
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    use_ssl = settings.kafka_security_protocol == "SASL_SSL"
    match settings.kafka_sasl_mechanism:
        case "PLAIN":
            return SASLPlaintext(user, password, ssl_context=context, use_ssl=use_ssl)
        case "SCRAM-SHA-256":
            return SASLScram256(user, password, ssl_context=context, use_ssl=use_ssl)
        case "SCRAM-SHA-512":
            return SASLScram512(user, password, ssl_context=context, use_ssl=use_ssl)
    return BaseSecurity(ssl_context=context) if context else None


def make_broker(settings: Settings, service: str) -> KafkaBroker:
    """The faststream broker of a service: it consumes; the relay's own producer publishes."""
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=f"whistle-{service}",
        security=_broker_security(settings),
        acks="all",
        enable_idempotence=False,  # not supported by every Kafka-compatible broker; the inbox dedupes
        allow_auto_create_topics=False,
        logger=get_logger(f"faststream.{service}"),
    )


def make_consumer(settings: Settings, group_id: str | None, **overrides: Any) -> AIOKafkaConsumer:
    """A plain consumer for tools and tests (the services consume through faststream)."""
    options: dict[str, Any] = {
        "group_id": group_id,
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": 20,
        "metadata_max_age_ms": 1000,
        "session_timeout_ms": 6000,  # what Tansu needs to form a group quickly; real Kafka's minimum
        "heartbeat_interval_ms": 1000,
    }
    return AIOKafkaConsumer(**client_options(settings), **(options | overrides))


def make_producer(settings: Settings, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **client_options(settings),
        client_id=client_id,
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
        request_timeout_ms=15000,
    )


# ---- Tables every service has -----------------------------------------------------------------


class InboxRow:
    """Mixin: ``class Inbox(InboxRow, Model): __tablename__ = "inbox"``."""

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OutboxRow:
    """Mixin: ``class Outbox(OutboxRow, Model): __tablename__ = "outbox"``."""

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255))
    key: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # No "sent" mark: the relay deletes what Kafka has acknowledged, so the table holds only what
    # is still to be sent.


# ---- Consuming --------------------------------------------------------------------------------


class Refused(Exception):
    """The domain refuses a well-formed message; it goes to dead letters with this reason."""


@dataclass(slots=True)  # not frozen: one per record, and a frozen one costs four times to make
class Delivery:
    """One consumed record, as the broker gave it (treated as immutable)."""

    topic: str
    partition: int
    offset: int
    key: str | None
    raw: bytes

    @classmethod
    def of(cls, record: ConsumerRecord[Any, Any]) -> Delivery:
        key = record.key.decode("utf-8", "replace") if isinstance(record.key, bytes) else record.key
        return cls(record.topic, record.partition, record.offset, key, record.value or b"")


@dataclass(slots=True)
class OutboxMessage:
    topic: str
    key: str | None
    payload: bytes
    type: str = ""

    def row(self) -> dict[str, Any]:
        return {"topic": self.topic, "key": self.key, "payload": self.payload}


@dataclass(slots=True)
class Tx:
    """What a handler works with: the batch's connection, the event being applied, and its outbox."""

    conn: AsyncConnection
    event: CloudEvent
    delivery: Delivery
    source: str
    batch: Any = None  # what the consumer's BatchUnit loaded for this batch, if it has one
    outbox: list[OutboxMessage] = field(default_factory=list)
    _time_text: str | None = None  # the event's time as RFC 3339, formatted once for its events

    @property
    def time(self) -> datetime:
        """Business time: the event's own time, never the wall clock."""
        return self.event.time

    def publish(
        self,
        topic: str,
        key: str,
        type: str,
        data: BaseModel | dict[str, Any],
        *,
        subject: str | None = None,
        time: datetime | None = None,
    ) -> str:
        """Stage an event for the outbox; it commits with the batch. Returns the event id."""
        event_id = derived_id(self.event.id, str(len(self.outbox)))
        if time is None:
            if self._time_text is None:
                self._time_text = self.event.time.isoformat()
            stamp: datetime | str = self._time_text
        else:
            stamp = time
        body = encode_event(
            type=type, source=self.source, subject=subject or key, time=stamp, data=data, id=event_id
        )
        self.outbox.append(OutboxMessage(topic, key, body, type))
        return event_id


Handler = Callable[[Tx, Any], Awaitable[None]]


class BatchUnit(Protocol):
    """Set-based work around a batch: ``open`` loads in a few queries what the batch's handlers
    need (they then decide in memory); ``close`` writes what they staged, in a few statements.
    In the careful path (a message of the batch failed) each message gets a unit of its own."""

    async def open(self, conn: AsyncConnection, messages: list[Decoded]) -> Any: ...

    async def close(self, conn: AsyncConnection, context: Any) -> list[OutboxMessage]:
        """Write what was staged; returns events that could only be built with the batch's data."""


@runtime_checkable
class WritesBehind(BatchUnit, Protocol):
    """A BatchUnit whose handlers only stage, never using the connection themselves. With
    ``BatchConsumer(write_behind=True)``, what they have staged so far (``flush``, then the outbox
    rows) is written every WRITE_BEHIND_EVERY messages while the next ones are decided: the
    database works while the service decides, where it waited for the whole batch to be decided."""

    async def flush(self, conn: AsyncConnection, context: Any) -> None:
        """Write what the handlers have staged since the last flush (``close`` writes the rest)."""


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


class _CarefulOnFailure:
    """A failure that is not transient sends the batch down the careful path, where each message is
    applied alone and the one at fault is dead-lettered; a transient one retries the batch. A class,
    not a generator: the fast path enters it once per message."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, Exception) and not isinstance(exc, _NeedsCare) and not is_transient(exc):
            raise _NeedsCare from exc


_careful_on_failure = _CarefulOnFailure()


@dataclass(frozen=True, slots=True)
class Route:
    topic: str
    event_type: str
    model: type[BaseModel]
    handler: Handler


@dataclass(slots=True)
class Decoded:
    delivery: Delivery
    event: CloudEvent
    data: BaseModel
    route: Route
    prepared: Any = None  # what the consumer's ``prepare`` made of it, before the transaction


@functools.cache
def _typed_envelope(model: type[BaseModel]) -> type[CloudEvent]:
    """CloudEvent with its ``data`` typed as ``model``, to validate both in one pass."""
    return create_model(f"{model.__name__}Event", __base__=CloudEvent, data=(model, ...))


def describe_validation(exc: ValidationError, prefix: str = "") -> str:
    """Name each wrong field and what is wrong with it, never echoing the value (it may be personal)."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "(body)"
        parts.append(f"{prefix}{where}: {err['msg']}")
    return "; ".join(parts)


def dead_letter(delivery: Delivery, error: str, source: str) -> OutboxMessage:
    try:
        raw, encoding = delivery.raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        raw, encoding = base64.b64encode(delivery.raw).decode("ascii"), "base64"
    data = DeadLetter(
        original_topic=delivery.topic,
        original_partition=delivery.partition,
        original_offset=delivery.offset,
        original_key=delivery.key,
        error=error,
        raw=raw,
        raw_encoding=encoding,
    )
    origin = f"{delivery.topic}/{delivery.partition}/{delivery.offset}"
    body = encode_event(
        type="deadletter.recorded",
        source=source,
        subject=origin,
        time=datetime.now().astimezone(),
        data=data,
        id=derived_id("deadletter", origin),
    )
    return OutboxMessage(DEADLETTER, delivery.key, body)


def _nul_in(value: Any) -> str | None:
    """Where in a decoded message a string holds NUL (PostgreSQL's text cannot), or None. A walk
    with a stack of its own: JSON nested a thousand deep would exhaust Python's."""
    todo: list[tuple[Any, str]] = [(value, "")]
    while todo:
        item, path = todo.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path or "(body)"
            continue
        pairs = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
        todo.extend(reversed([(v, f"{path}.{k}" if path else str(k)) for k, v in pairs]))
    return None


def is_transient(exc: BaseException) -> bool:
    """Failures worth retrying: the database or the network, not the message."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError | InterfaceError | OSError | asyncio.TimeoutError):
        return True
    orig = getattr(exc, "orig", None)
    cause = getattr(orig, "__cause__", None) or orig
    return isinstance(
        cause,
        asyncpg.PostgresConnectionError
        | asyncpg.CannotConnectNowError
        | asyncpg.SerializationError
        | asyncpg.DeadlockDetectedError
        | asyncpg.InterfaceError,
    )


PREPARE_CHUNK = 64  # records prepared between two yields to the event loop
WRITE_BEHIND_EVERY = 250  # messages decided between two writes (WritesBehind)
# While a write behind is in flight, the handlers yield to it every so many messages: its
# statements are sent one after the other, each when the event loop gets to it.
WRITE_BEHIND_YIELD = 16
PIPELINE_MIN_RECORDS = 200  # smaller batches are applied before the next poll (BatchPipeline)


@dataclass(slots=True)
class Prepared:
    """A consumed batch, decoded: what its transaction will apply."""

    decoded: list[Decoded]
    dead: list[OutboxMessage]  # dead letters, staged with the batch
    reasons: list[tuple[Delivery, str]]  # why, logged and counted once the batch has committed
    ignored: Counter[str]  # per topic: records of types we have no handler for
    records: int
    seconds: float = 0.0  # spent preparing it


class BatchConsumer:
    """Applies a consumed batch in one transaction, per the rules at the top of this module."""

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
        unit: BatchUnit | None = None,
        prepare_message: Callable[[Decoded], Any] | None = None,
        write_behind: bool = False,
    ) -> None:
        self.unit = unit
        if write_behind and not isinstance(unit, WritesBehind):
            raise TypeError("write_behind needs a unit that writes behind (WritesBehind: flush)")
        self.write_behind = unit if write_behind and isinstance(unit, WritesBehind) else None
        # Work on a message that needs no database (intake tags and places a call): done while
        # decoding, and so, in the pipeline, while the batch before is in its transaction.
        self.prepare_message = prepare_message
        self.service = service
        self.source = f"whistle/{service}"
        self.engine = engine
        self.inbox = inbox
        self.outbox = outbox
        self.routes = {(r.topic, r.event_type): r for r in routes}
        self._routed = {(topic, kind.encode()) for topic, kind in self.routes}  # as ce_type carries them
        # Topics of the external contract: an unknown type there is an error. On topics we only
        # listen to (e.g. the lifecycle stream), types we have no handler for are skipped.
        self.strict_topics = set(strict_topics)
        # The contract's inbound topics that carry one type: decoded in one pass (decode).
        per_topic = Counter(topic for topic, _ in self.routes)
        self._single_route = {
            topic: route
            for (topic, _), route in self.routes.items()
            if topic in self.strict_topics and per_topic[topic] == 1
        }
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
        return sorted({topic for topic, _ in self.routes})

    def unrouted(self, record: ConsumerRecord[Any, Any]) -> bool:
        """A record of a type we have no handler for, on a topic we only listen to, known from its
        ``ce_type`` header without parsing it. On the contract's inbound topics every record is
        decoded: an unknown type there is a dead letter."""
        if record.topic in self.strict_topics:
            return False
        for name, value in record.headers or ():
            if name == TYPE_HEADER:
                return (record.topic, value) not in self._routed
        return False

    def decode(self, delivery: Delivery) -> Decoded | str | None:
        """A decoded message, the reason it is a dead letter, or None when it is not for us."""
        if not delivery.raw:
            return "empty message: expected a CloudEvent in structured JSON mode"
        try:
            obj = orjson.loads(delivery.raw)
        except orjson.JSONDecodeError as exc:
            return f"not valid JSON (UTF-8 expected): {exc}"
        route = self._single_route.get(delivery.topic)
        if route is not None and b"\\u0000" not in delivery.raw:
            # The common case: the envelope and its data validated in one pass from the JSON text,
            # a third less than validating the envelope and then its data (the event's data is
            # then the model). orjson has said the text is JSON: pydantic's parser would also take
            # NaN, Infinity or 1e400. Whatever else is wrong is named by the way below.
            try:
                event = _typed_envelope(route.model).model_validate_json(delivery.raw)
            except ValidationError:
                pass
            else:
                if event.type == route.event_type:
                    return Decoded(delivery, event, cast(BaseModel, event.data), route)
        if not isinstance(obj, dict):
            return f"expected a JSON object (a CloudEvent), got {type(obj).__name__}"
        kind = obj.get("type")
        unrouted = isinstance(kind, str) and (delivery.topic, kind) not in self.routes
        if unrouted and delivery.topic not in self.strict_topics:
            # Not for us (e.g. our own events read back from a topic we listen to): known without
            # validating the envelope, which costs more than the rest of this.
            return None
        if b"\\u0000" in delivery.raw:  # rare: only then walk the message for the field
            where = _nul_in(obj)
            if where is not None:
                return f"{where}: holds a NUL character (\\u0000), which no text field can store"
        try:
            event = CloudEvent.model_validate(obj)
        except ValidationError as exc:
            return "not a valid CloudEvent: " + describe_validation(exc)
        route = self.routes.get((delivery.topic, event.type))
        if route is None:
            if delivery.topic in self.strict_topics:
                known = sorted(t for topic, t in self.routes if topic == delivery.topic)
                return f"unknown event type {event.type!r} on {delivery.topic}; expected one of {known}"
            return None
        try:
            data = route.model.model_validate(event.data)
        except ValidationError as exc:
            return f"invalid {event.type}: " + describe_validation(exc, "data.")
        return Decoded(delivery, event, data, route)

    async def prepare(self, records: Sequence[ConsumerRecord[Any, Any]]) -> Prepared:
        """Decode a batch, and do what needs no database. It yields to the event loop every so
        often, so that the transaction of the batch before (BatchPipeline) goes on meanwhile."""
        started = time.perf_counter()
        batch = Prepared([], [], [], Counter(), len(records))
        prepare_message = self.prepare_message
        for i, record in enumerate(records, 1):
            if i % PREPARE_CHUNK == 0:
                await asyncio.sleep(0)
            if self.unrouted(record):
                batch.ignored[record.topic] += 1
                continue
            delivery = Delivery.of(record)
            try:
                result = self.decode(delivery)
                if isinstance(result, Decoded) and prepare_message is not None:
                    result.prepared = prepare_message(result)
            except Exception as exc:  # a bug or a message no rule foresaw: park it, like a handler's
                where = f"{delivery.topic}/{delivery.partition}/{delivery.offset}"
                log.exception("could not prepare", at=where)
                result = f"could not be prepared ({type(exc).__name__}); see the service log for {where}"
            if isinstance(result, Decoded):
                batch.decoded.append(result)
            elif isinstance(result, str):
                batch.dead.append(dead_letter(delivery, result, self.source))
                batch.reasons.append((delivery, result))
            else:
                batch.ignored[delivery.topic] += 1
        batch.seconds = time.perf_counter() - started
        return batch

    async def apply(self, batch: Prepared) -> None:
        """The batch's transaction, retried while the database is unreachable; raises when it
        stays so (the caller rewinds the batch)."""
        started = time.perf_counter()
        delay = 0.2
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self._apply(batch.decoded, batch.dead)
                break
            except Exception as exc:
                if not is_transient(exc) or attempt == self.max_attempts:
                    raise
                metrics.TRANSIENT_RETRIES.labels(self.service).inc()
                log.warning("transient failure, retrying batch", attempt=attempt, error=str(exc)[:300])
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        # Counted once the batch has committed: a batch rewound comes again and would count twice.
        for delivery, reason in batch.reasons:
            log.warning("dead letter", topic=delivery.topic, offset=delivery.offset, error=reason)
            metrics.DEADLETTERS.labels(self.service, delivery.topic).inc()
            metrics.MESSAGES.labels(self.service, delivery.topic, "deadlettered").inc()
        for topic, n in batch.ignored.items():  # counted per topic, not per message: labels() costs
            metrics.MESSAGES.labels(self.service, topic, "ignored").inc(n)
        metrics.BATCH_SECONDS.labels(self.service).observe(time.perf_counter() - started + batch.seconds)
        metrics.BATCH_SIZE.labels(self.service).observe(batch.records)
        self.after_commit()

    async def _apply(self, decoded: list[Decoded], dead_before: list[OutboxMessage]) -> None:
        """The whole batch in one transaction. First without savepoints (the common case: every
        message applies); if one is refused or fails, the transaction is rolled back and the batch
        applied again with a savepoint per message, so that message alone is dead-lettered."""
        try:
            await self._apply_once(decoded, dead_before, careful=False)
        except _NeedsCare:
            await self._apply_once(decoded, dead_before, careful=True)

    async def _apply_once(
        self, decoded: list[Decoded], dead_before: list[OutboxMessage], careful: bool
    ) -> None:
        staged = _Staged([m.row() for m in dead_before])
        async with self.engine.begin() as conn:
            fresh: set[str] = set()
            if decoded:
                claims = json_keys((m.event.id, m.delivery.topic) for m in decoded)
                claimed = await conn.execute(self._claim_sql, {"claims": claims})
                fresh = {row[0] for row in claimed}
            todo = []
            for m in decoded:
                if m.event.id in fresh:
                    fresh.discard(m.event.id)
                    todo.append(m)
                else:  # seen before, or twice in this batch
                    staged.outcomes[(m.delivery.topic, "duplicate")] += 1
            if careful:
                for m in todo:
                    await self._apply_carefully(conn, m, staged)
            elif todo:
                context = await self.unit.open(conn, todo) if self.unit else None
                await self._apply_all(conn, todo, context, staged)
                if context is not None:
                    with _careful_on_failure:  # a row the database refuses: whose is found alone
                        staged.rows += [m.row() for m in await self.unit.close(conn, context)]  # type: ignore[union-attr]
            await self._stage.execute(conn, staged.rows[staged.written :])
        for event_type, n in staged.lifecycle.items():
            metrics.WORKORDERS.labels(event_type).inc(n)
        for (topic, outcome), n in staged.outcomes.items():
            metrics.MESSAGES.labels(self.service, topic, outcome).inc(n)
            if outcome == "deadlettered":
                metrics.DEADLETTERS.labels(self.service, topic).inc(n)

    async def _apply_all(
        self, conn: AsyncConnection, todo: list[Decoded], context: Any, staged: _Staged
    ) -> None:
        """Every message without savepoints: one that fails sends the batch down the careful path.
        Writing behind, what is staged is written every WRITE_BEHIND_EVERY messages while the next
        ones are decided."""
        behind = _Behind() if self.write_behind is not None and context is not None else None
        try:
            for i, m in enumerate(todo, 1):
                tx = Tx(conn, m.event, m.delivery, self.source, context)
                with _careful_on_failure:
                    await m.route.handler(tx, m.data)
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
        with _careful_on_failure:
            await self.write_behind.flush(conn, context)
            await self._stage.execute(conn, rows)

    async def _apply_carefully(self, conn: AsyncConnection, m: Decoded, staged: _Staged) -> None:
        """One message in a savepoint of its own, with a unit of its own: refused or failed, it is
        rolled back alone and dead-lettered."""
        tx = Tx(conn, m.event, m.delivery, self.source)
        try:
            async with conn.begin_nested():
                if self.unit:
                    tx.batch = await self.unit.open(conn, [m])
                await m.route.handler(tx, m.data)
                if self.unit:
                    tx.outbox += await self.unit.close(conn, tx.batch)
        except Refused as exc:
            staged.rows.append(dead_letter(m.delivery, f"refused {m.event.type}: {exc}", self.source).row())
            staged.outcomes[(m.delivery.topic, "deadlettered")] += 1
            log.warning("refused", event_id=m.event.id, type=m.event.type, error=str(exc))
        except Exception as exc:
            if is_transient(exc):
                raise
            # A bug or a message no rule foresaw: park it, keep the partition moving.
            log.exception("handler failed", event_id=m.event.id, type=m.event.type)
            reason = f"could not be applied ({type(exc).__name__}); see the service log for {m.event.id}"
            staged.rows.append(dead_letter(m.delivery, reason, self.source).row())
            staged.outcomes[(m.delivery.topic, "deadlettered")] += 1
        else:
            staged.add(tx)


@dataclass(slots=True)
class _Staged:
    """What a batch's transaction has staged: outbox rows (dead letters first), and what to count
    once it commits."""

    rows: list[dict[str, Any]]
    written: int = 0  # of rows, written behind (WritesBehind)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    lifecycle: Counter[str] = field(default_factory=Counter)  # work-order events, by type

    def add(self, tx: Tx) -> None:
        self.rows.extend(o.row() for o in tx.outbox)
        self.lifecycle.update(o.type for o in tx.outbox if o.topic == WORKORDER_EVENTS)
        self.outcomes[(tx.delivery.topic, "applied")] += 1


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

    async def take(self, records: Sequence[ConsumerRecord[Any, Any]], kafka: KafkaPositions) -> None:
        if self.closing:  # stopping: not even prepared; it comes again
            self._seek(kafka, _first_offsets(records))
            return
        try:
            batch: Prepared | None = await self.consumer.prepare(records)
        except Exception:
            log.exception("a batch could not be prepared; rewinding it")
            batch = None
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
            # A light load: applied before the next poll. There is little to overlap, and a poll
            # that finds nothing idles a while (faststream), which the next call would wait out.
            await asyncio.wait([self.running])

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
            await asyncio.sleep(self.backoff)
            return
        self.rewind_to = {}
        assigned = kafka.assignment()
        offsets = {tp: o for tp, o in _next_offsets(records).items() if tp in assigned}
        try:
            if offsets:
                await kafka.commit(offsets)
        except Exception as exc:
            # The partitions moved to another member, say: it gets them again; the inbox dedupes.
            log.warning("offsets not committed after the batch's transaction", error=str(exc)[:300])

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


class _NeedsCare(Exception):
    """A message of the batch could not be applied: go again, one savepoint per message."""


@dataclass(frozen=True)
class OutboxInsert:
    """The outbox rows of a batch in one statement, in the order they were staged (ids ascend):
    a typed array per column, as the payloads are bytes (the domain's rows go as JSON, BulkInsert)."""

    statement: TextClause

    async def execute(self, conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            params = {c: [r[c] for r in rows] for c in ("topic", "key", "payload")}
            await conn.execute(self.statement, params)


@functools.cache
def outbox_insert(outbox: Table) -> OutboxInsert:
    return OutboxInsert(
        text(
            f"INSERT INTO {outbox.name} (topic, key, payload) SELECT topic, key, payload FROM unnest("
            "CAST(:topic AS text[]), CAST(:key AS text[]), CAST(:payload AS bytea[])) "
            "WITH ORDINALITY AS u(topic, key, payload, _n) ORDER BY _n"
        )
    )


async def stage(conn: AsyncConnection, outbox: Table, messages: Sequence[OutboxMessage]) -> None:
    """Write outbox rows from code that is not a message handler (timers), in the caller's transaction."""
    await outbox_insert(outbox).execute(conn, [m.row() for m in messages])


def outbox_message(
    topic: str, key: str, type: str, data: BaseModel | dict[str, Any], *, source: str, time: datetime, id: str
) -> OutboxMessage:
    body = encode_event(type=type, source=source, subject=key, time=time, data=data, id=id)
    return OutboxMessage(topic, key, body)


# ---- Publishing -------------------------------------------------------------------------------


def event_type(payload: bytes) -> bytes:
    """The type of an event as encode_event wrote it (its fourth key, after strings that cannot
    hold an unescaped quote), found without parsing the event; empty if there is none."""
    start = payload.find(b'"type":"')
    if start < 0:
        return b""
    start += 8
    end = payload.find(b'"', start)
    return payload[start:end] if end > 0 else b""


def partition_for(key: bytes | None, partitions: list[int], hashes: dict[bytes, int]) -> int:
    """The partition the producer's default partitioner would choose: murmur2 of the key, as Java
    clients do. ``hashes`` keeps a relay round's hashes: a key's events go out together (an
    order's created, opened and contact), and murmur2 is pure Python."""
    if key is None:
        return int(_PARTITIONER(None, partitions, partitions))
    h = hashes.get(key)
    if h is None:
        h = hashes[key] = murmur2(key) & 0x7FFFFFFF
    return partitions[h % len(partitions)]


_M = 0x5BD1E995  # murmur2's mixing constant
_MASK = 0xFFFFFFFF


@functools.cache
def _words(n: int) -> Callable[[bytes], tuple[int, ...]]:
    """The first ``n`` little-endian 32-bit words of a key."""
    return struct.Struct(f"<{n}I").unpack_from


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's ``Utils.murmur2``), as aiokafka's ``murmur2`` computes it,
    at a third of its cost: the key's 32-bit words are unpacked at once, not assembled byte by byte.
    A unit test holds it to aiokafka's on keys of every length."""
    length = len(data)
    h = 0x9747B28C ^ length
    end = length & ~3
    for k in _words(length >> 2)(data):
        k = (k * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        if tail == 3:
            h ^= data[end + 2] << 16
        if tail >= 2:
            h ^= data[end + 1] << 8
        h = ((h ^ data[end]) * _M) & _MASK
    h = ((h ^ (h >> 13)) * _M) & _MASK
    return h ^ (h >> 15)


async def send_batched(
    producer: AIOKafkaProducer, messages: Iterable[tuple[str, str | None, bytes]]
) -> list[asyncio.Future[Any]]:
    """Queue events, in order, as one record batch per partition (send() per message costs twice
    the CPU); each goes to its key's partition, as the producer's partitioner would put it, with
    the content-type and ce_type headers. Returns one future per batch: await them all for the
    acks. The relay's way to publish, and the bench's load generator's."""
    partitions: dict[str, list[int]] = {}
    batches: dict[tuple[str, int], BatchBuilder] = {}
    futures = []
    hashes: dict[bytes, int] = {}
    headers_of: dict[bytes, list[tuple[str, bytes]]] = {}
    for topic, key, payload in messages:
        if topic not in partitions:
            partitions[topic] = sorted(await producer.partitions_for(topic))
        key_bytes = key.encode() if key else None
        tp = (topic, partition_for(key_bytes, partitions[topic], hashes))
        kind = event_type(payload)
        headers = headers_of.get(kind)
        if headers is None:
            headers = headers_of[kind] = [*HEADERS, (TYPE_HEADER, kind)] if kind else HEADERS
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


class OutboxRelay:
    """Publishes outbox rows: claims a batch (SKIP LOCKED, so replicas share the work) by deleting
    it, sends the rows, awaits every ack (acks=all), and only then commits. A send that fails rolls
    the delete back: the rows stay and are tried again; consumers dedupe the rare repeat by event
    id. Deleting costs the database a fraction of marking rows sent (an update rewrites each row,
    payload included), and Kafka holds what was sent."""

    def __init__(self, *, service: str, engine: AsyncEngine, outbox: Table, settings: Settings) -> None:
        self.service = service
        self.engine = engine
        self.outbox = outbox
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        self.batch_size = settings.relay_batch_size
        self.idle = settings.relay_idle_seconds
        self.wake = asyncio.Event()
        # The claimed rows are deleted by their physical address (ctid, a TID scan), which the
        # planner takes whatever it believes of the table. "id IN (...)" let it choose, from
        # statistics taken while the queue was nearly empty, a nested loop that compared every row
        # with every claimed id: seconds per round once a backlog had built up.
        self._claim = text(
            f"DELETE FROM {outbox.name} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {outbox.name} "
            "ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED)) RETURNING id, topic, key, payload"
        )
        self._pending = text(f"SELECT count(*) FROM {outbox.name}")
        self.healthy = True

    def notify(self) -> None:
        self.wake.set()

    async def start(self) -> None:
        self._producer = make_producer(self.settings, f"whistle-{self.service}-relay")
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    @property
    def producer(self) -> AIOKafkaProducer:
        assert self._producer is not None, "start() the relay first"
        return self._producer

    async def publish_once(self) -> int:
        async with self.engine.begin() as conn:
            rows = sorted((await conn.execute(self._claim, {"n": self.batch_size})).all(), key=lambda r: r[0])
            if not rows:
                return 0
            # In id order (RETURNING has none): one key's events reach its partition in order.
            await asyncio.gather(
                *await send_batched(self.producer, [(topic, key, payload) for _, topic, key, payload in rows])
            )
        for topic, n in Counter(row[1] for row in rows).items():
            metrics.RELAY_PUBLISHED.labels(self.service, topic).inc(n)
        return len(rows)

    async def run(self) -> None:
        delay = 0.2
        rounds = 0
        while True:
            try:
                sent = await self.publish_once()
                self.healthy = True
                delay = 0.2
                rounds += 1
                if rounds % 300 == 0:
                    await self._report_pending()
                if sent >= self.batch_size:
                    continue  # more is waiting
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=self.idle)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.healthy = False
                log.warning("relay round failed, will retry", error=str(exc)[:300], retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _report_pending(self) -> None:
        async with self.engine.connect() as conn:
            pending = (await conn.execute(self._pending)).scalar_one()
        metrics.OUTBOX_PENDING.labels(self.service).set(pending)
