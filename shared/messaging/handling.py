"""What a handler sees: the delivery, the decoded event, and a ``Tx`` to stage its events in; the
routes that map an event type to its handler; and the ``BatchUnit`` a service may load a batch with."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from aiokafka import ConsumerRecord
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from shared import tracing
from shared.contract import (
    CloudEvent,
)
from shared.events import derived_id, encode_event

from .outbox import OutboxMessage

B = TypeVar("B")


class Refused(Exception):
    """The domain refuses a well-formed message; it goes to dead letters with this reason."""


class Unprepared(Exception):
    """Why a message could not be prepared (``BatchConsumer``'s ``prepare_messages``), in words
    safe to put in its dead letter: no personal data."""


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
class Tx(Generic[B]):
    """What a handler works with: the batch's connection, the event being applied, what the
    service's BatchUnit loaded for the batch (``batch``), and the events it stages."""

    conn: AsyncConnection
    event: CloudEvent
    delivery: Delivery
    source: str
    batch: B
    outbox: list[OutboxMessage] = field(default_factory=list)
    _time_text: str | None = None  # the event's time as RFC 3339, formatted once for its events
    # The span handling the event: set by the consumer when exporting, else made at the first
    # publish (ids only). Everything the handler publishes carries it (``shared.tracing``).
    trace: tracing.Trace | None = None
    _traceparent: str | None = None  # the trace's attributes, formatted once for its events
    _tracestate: str | None = None

    def context(self) -> tracing.Trace:
        if self.trace is None:
            self.trace = tracing.handling(self.event.__pydantic_extra__)
        return self.trace

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
        if self._traceparent is None:
            trace = self.context()
            self._traceparent, self._tracestate = trace.traceparent, trace.tracestate
        body = encode_event(
            type=type,
            source=self.source,
            subject=subject or key,
            time=stamp,
            data=data,
            id=event_id,
            traceparent=self._traceparent,
            tracestate=self._tracestate,
        )
        self.outbox.append(OutboxMessage(topic, key, body, type))
        return event_id


Handler = Callable[[Tx[Any], Any], Awaitable[None]]


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


class BatchUnit(Protocol[B]):
    """Set-based work around a batch: ``open`` loads in a few queries what the batch's handlers
    need (they then decide in memory); ``close`` writes what they staged, in a few statements.
    In the careful path (a message of the batch failed) each message gets a unit of its own."""

    async def open(self, conn: AsyncConnection, messages: list[Decoded]) -> B: ...

    async def close(self, conn: AsyncConnection, context: B) -> list[OutboxMessage]:
        """Write what was staged; returns events that could only be built with the batch's data."""


@runtime_checkable
class WritesBehind(BatchUnit[B], Protocol[B]):
    """A BatchUnit whose handlers only stage, never using the connection themselves. With
    ``BatchConsumer(write_behind=True)``, what they have staged so far (``flush``, then the outbox
    rows) is written every few hundred messages while the next ones are decided: the database
    works while the service decides."""

    async def flush(self, conn: AsyncConnection, context: B) -> None:
        """Write what the handlers have staged since the last flush (``close`` writes the rest)."""


@runtime_checkable
class LocksFirst(BatchUnit[B], Protocol[B]):
    """A BatchUnit whose batches lock what they will change before they change anything, in one
    order (``shared.db.lock_keys``): replicas whose batches share keys (an alert about many
    orders, an answer about one) then queue, where rows locked as the messages came deadlocked."""

    async def lock(self, conn: AsyncConnection, messages: list[Decoded]) -> None:
        """Lock the rows of everything these messages may change, for the transaction. Reads only:
        it runs before the careful path's savepoints, so no message's data may make it fail."""
