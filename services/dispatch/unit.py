"""The hot path, new orders from intake, set-based: which already exist and which clusters are
active are loaded once per batch; the batch's new orders are written together at its end."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from shared.contract import OrderOpened
from shared.messaging import Decoded, OutboxMessage

from . import store
from .domain import Order


@dataclass
class DispatchBatch:
    """What one batch knows (orders that exist, active clusters) and the new orders it will write."""

    existing: set[str]
    clustered: set[tuple[str, str]]
    new: dict[str, Order] = field(default_factory=dict)  # opened in this batch: written at its end
    history: list[dict[str, Any]] = field(default_factory=list)

    def add(self, order: Order) -> None:
        self.new[order.id] = order
        self.history += store.history_rows(order)

    def staged(self, order_ids: Iterable[str]) -> dict[str, Order]:
        """The batch's own new orders among these, for another command before they are written (a
        cluster alert behind them in the batch): what their last command left is staged already."""
        found = {}
        for order_id in order_ids:
            order = self.new.get(order_id)
            if order is not None:
                order.events.clear()
                order.history.clear()
                found[order_id] = order
        return found

    def changed(self, order: Order) -> None:
        """A staged order's further command: its history now, its rows as they stand at the end."""
        self.history += store.history_rows(order)


class DispatchUnit:
    def __init__(self, cluster_window: timedelta) -> None:
        self.cluster_window = cluster_window

    async def open(self, conn: AsyncConnection, messages: list[Decoded]) -> DispatchBatch:
        opened = [(m.data, m.event.time) for m in messages if isinstance(m.data, OrderOpened)]
        if not opened:
            return DispatchBatch(set(), set())
        pairs = sorted({(o.community, o.category) for o, _ in opened if o.community})
        since = min(at for _, at in opened) - self.cluster_window
        return DispatchBatch(
            existing=await store.existing_orders(conn, [o.work_order_id for o, _ in opened]),
            clustered=await store.clusters_among(conn, pairs, since) if pairs else set(),
        )

    async def lock(self, conn: AsyncConnection, messages: list[Decoded]) -> None:
        """Every order the batch may change, locked at once, in one order (an alert names many, an
        answer its dispatch): two replicas' batches that share orders queue, never deadlock. New
        orders from intake are not there yet: nothing to lock."""
        orders: set[str] = set()
        dispatches: set[str] = set()
        for m in messages:
            data = m.data
            if isinstance(data, OrderOpened):
                continue
            if isinstance(order_id := getattr(data, "work_order_id", None), str):
                orders.add(order_id)
            orders.update(getattr(data, "work_order_ids", None) or ())
            if isinstance(dispatch_id := getattr(data, "dispatch_id", None), str):
                dispatches.add(dispatch_id)
        if orders or dispatches:
            await store.lock(conn, orders, dispatches)

    async def close(self, conn: AsyncConnection, batch: DispatchBatch) -> list[OutboxMessage]:
        orders = batch.new.values()
        dispatches = [d.row() for order in orders for d in order.dispatches]
        await store.save_new(conn, [store.order_row(o) for o in orders], dispatches, batch.history)
        return []
