"""The api's batch unit: the orders a consumed batch is about, with their dispatches, loaded and
locked in a few queries; changed in memory by the handlers (``domain``); written in a few
statements.

Set-based rather than per message: the api reads every lifecycle and department event of the
city, several per order, and one or two round trips for each would make it the slowest reader of
those topics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from shared import contract
from shared.messaging import Decoded, OutboxMessage

from . import store
from .domain import OrderView, merge_return, newer_notification

# Topics whose events change no order: kept as they come, or matched to what the api sent.
# Notifications too: a cluster alert's (``cluster:<community>:<category>``) names no order.
NO_ORDER = frozenset({contract.ALERTS, contract.FEEDBACK, contract.DEADLETTER, contract.NOTIFICATIONS})


@dataclass
class ApiBatch:
    """What a batch knows of its orders, and the rows it will add or change beside them."""

    orders: dict[str, OrderView]
    timeline: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    refusals: list[dict[str, Any]] = field(default_factory=list)
    notifications: dict[str, dict[str, Any]] = field(default_factory=dict)  # by notification_id
    returns: dict[str, dict[str, Any]] = field(default_factory=dict)  # by dispatch_id

    def order(self, work_order_id: str) -> OrderView:
        return self.orders[work_order_id]  # loaded, or made, by ApiUnit.open

    def returned(self, row: dict[str, Any]) -> None:
        merge_return(self.returns, row)

    def notified(self, row: dict[str, Any]) -> None:
        """The newest of a batch's events of each notification: one upsert may not touch a row twice."""
        if newer_notification(row, self.notifications.get(row["notification_id"])):
            self.notifications[row["notification_id"]] = row


class ApiUnit:
    async def open(self, conn: AsyncConnection, messages: list[Decoded]) -> ApiBatch:
        ids = [
            order
            for m in messages
            if m.delivery.topic not in NO_ORDER
            and isinstance(order := getattr(m.data, "work_order_id", None), str)
        ]
        return ApiBatch(await store.lock_orders(conn, ids))

    async def close(self, conn: AsyncConnection, batch: ApiBatch) -> list[OutboxMessage]:
        await store.save(conn, batch.orders.values())
        await store.add_timeline(conn, batch.timeline)
        await store.add_alerts(conn, batch.alerts)
        await store.add_feedback(conn, batch.feedback)
        await store.record_refusals(conn, batch.refusals)
        await store.upsert_notifications(conn, list(batch.notifications.values()))
        await store.save_returns(conn, list(batch.returns.values()))
        await store.announce_change(conn)
        return []
