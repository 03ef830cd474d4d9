"""Escalation's batches: the clocks of the batch's orders locked before anything changes
(``store.lock``); the clocks its handlers start and stop written together at its end (or before
a handler reads them); the business clock advanced once a batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from shared.clock import BusinessClock
from shared.messaging import Decoded, OutboxMessage

from . import store


@dataclass
class EscalationBatch:
    latest: datetime | None  # the batch's latest event time: the business clock's advance
    clocks: store.ClockChanges = field(default_factory=store.ClockChanges)


class EscalationUnit:
    def __init__(self, clock: BusinessClock | None = None) -> None:
        self.clock = clock or BusinessClock()

    async def lock(self, conn: AsyncConnection, messages: list[Decoded]) -> None:
        ids = (getattr(m.data, "work_order_id", None) for m in messages)
        await store.lock(conn, {i for i in ids if isinstance(i, str)})

    async def open(self, conn: AsyncConnection, messages: list[Decoded]) -> EscalationBatch:
        return EscalationBatch(await self.clock.open(conn, messages))

    async def close(self, conn: AsyncConnection, batch: EscalationBatch) -> list[OutboxMessage]:
        await batch.clocks.flush(conn)
        return await self.clock.close(conn, batch.latest)
