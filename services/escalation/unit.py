"""Escalation's batches: the business clock advanced once a batch, and the clocks of the batch's
orders locked before anything changes (``store.lock``)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from shared.clock import BusinessClock
from shared.messaging import Decoded

from . import store


class EscalationUnit(BusinessClock):
    async def lock(self, conn: AsyncConnection, messages: list[Decoded]) -> None:
        ids = (getattr(m.data, "work_order_id", None) for m in messages)
        await store.lock(conn, {i for i in ids if isinstance(i, str)})
