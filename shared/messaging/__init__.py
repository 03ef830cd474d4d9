"""Messaging kit: how every service consumes, applies and publishes events, one module a concern.

The rules (docs/architecture.md) in one place:
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

Modules: ``kafka`` (clients), ``tables`` (inbox and outbox rows), ``handling`` (what a handler
sees: Tx, Route, BatchUnit), ``decoding`` (records to events, or to dead letters), ``failures``
(transient or not), ``consumer`` (the batch's transaction), ``pipeline`` (batches in flight and
their offsets), ``outbox`` (staging), ``publishing`` and ``relay`` (the outbox to Kafka).
"""

from .consumer import WRITE_BEHIND_EVERY, BatchConsumer, Prepared
from .decoding import Decoder, dead_letter, describe_validation
from .failures import is_transient
from .handling import (
    BatchUnit,
    Decoded,
    Delivery,
    Handler,
    LocksFirst,
    Refused,
    Route,
    Tx,
    Unprepared,
    WritesBehind,
)
from .kafka import (
    HEADERS,
    TRACEPARENT_HEADER,
    TRACESTATE_HEADER,
    TYPE_HEADER,
    client_options,
    make_broker,
    make_consumer,
    make_producer,
    prompt_batches,
)
from .outbox import OutboxMessage, outbox_insert, outbox_message, stage
from .pipeline import BatchPipeline, KafkaPositions
from .publishing import event_headers, event_type, partition_for, send_batched
from .relay import OutboxRelay
from .tables import InboxRow, OutboxRow

__all__ = [
    "HEADERS",
    "TRACEPARENT_HEADER",
    "TRACESTATE_HEADER",
    "TYPE_HEADER",
    "WRITE_BEHIND_EVERY",
    "BatchConsumer",
    "BatchPipeline",
    "BatchUnit",
    "Decoded",
    "Decoder",
    "Delivery",
    "Handler",
    "InboxRow",
    "KafkaPositions",
    "LocksFirst",
    "OutboxMessage",
    "OutboxRelay",
    "OutboxRow",
    "Prepared",
    "Refused",
    "Route",
    "Tx",
    "Unprepared",
    "WritesBehind",
    "client_options",
    "dead_letter",
    "describe_validation",
    "event_headers",
    "event_type",
    "is_transient",
    "make_broker",
    "make_consumer",
    "make_producer",
    "outbox_insert",
    "outbox_message",
    "partition_for",
    "prompt_batches",
    "send_batched",
    "stage",
]
