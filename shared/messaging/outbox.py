"""Staging events: the outbox rows a transaction writes beside its state, one statement a batch."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.schema import Table

from shared import tracing
from shared.events import encode_event


@dataclass(slots=True)
class OutboxMessage:
    topic: str
    key: str | None
    payload: bytes
    type: str = ""

    def row(self) -> dict[str, Any]:
        return {"topic": self.topic, "key": self.key, "payload": self.payload}


def outbox_message(
    topic: str,
    key: str,
    type: str,
    data: BaseModel | dict[str, Any],
    *,
    source: str,
    time: datetime,
    id: str,
    trace: tracing.Trace | None = None,
) -> OutboxMessage:
    """An event built outside a message handler (timers, a batch's close, the api's requests),
    ready to stage. Its trace, unless given: the current HTTP request's, the one its process
    remembers for its order, or a new one (``tracing.publishing``)."""
    if trace is None:
        trace = tracing.publishing(topic, tracing.order_of(key, data))
    body = encode_event(
        type=type,
        source=source,
        subject=key,
        time=time,
        data=data,
        id=id,
        traceparent=trace.traceparent,
        tracestate=trace.tracestate,
    )
    return OutboxMessage(topic, key, body, type)


@dataclass(frozen=True)
class OutboxInsert:
    """The outbox rows of a batch in one statement, in the order they were staged (ids ascend):
    a typed array per column, as the payloads are bytes (the domain's rows go as JSON, BulkInsert).
    The same statement NOTIFYs the outbox's channel (``staged_channel``): PostgreSQL delivers it
    when the transaction commits, once however many statements sent it, and every replica's relay
    listening wakes (``OutboxRelay.listen``)."""

    statement: TextClause

    async def execute(self, conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            params = {c: [r[c] for r in rows] for c in ("topic", "key", "payload")}
            await conn.execute(self.statement, params)


def staged_channel(outbox: Table) -> str:
    """The NOTIFY channel of an outbox (channels are per database: one service's replicas)."""
    return f"{outbox.name}_staged"


@functools.cache
def outbox_insert(outbox: Table) -> OutboxInsert:
    # A data-modifying WITH runs to completion whether or not the query reads it.
    return OutboxInsert(
        text(
            f"WITH staged AS (INSERT INTO {outbox.name} (topic, key, payload) SELECT topic, key, payload "
            "FROM unnest(CAST(:topic AS text[]), CAST(:key AS text[]), CAST(:payload AS bytea[])) "
            f"WITH ORDINALITY AS u(topic, key, payload, _n) ORDER BY _n) "
            f"SELECT pg_notify('{staged_channel(outbox)}', '')"
        )
    )


async def stage(conn: AsyncConnection, outbox: Table, messages: Sequence[OutboxMessage]) -> None:
    """Write outbox rows from code that is not a message handler (timers), in the caller's transaction."""
    await outbox_insert(outbox).execute(conn, [m.row() for m in messages])
