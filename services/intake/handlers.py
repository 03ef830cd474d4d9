"""Intake's subscribers. A batch is read whole first (IntakeUnit.open: tag and place every message,
load what is known of them in a few queries); each message is then decided in memory; the batch's
new rows are written as it is decided (IntakeUnit.flush, behind the decisions) and at its end
(IntakeUnit.close)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from shared import contract
from shared.classifier import CategoryModel, load_examples
from shared.contract import (
    ClusterDetected,
    ContactRecorded,
    GridReport,
    HotlineCall,
    WorkOrderData,
    derived_id,
)
from shared.messaging import Decoded, OutboxMessage, Refused, Route, Tx, outbox_message
from shared.reference import Jurisdiction
from shared.settings import Settings

from . import store
from .domain import (
    NewOrder,
    OpenOrder,
    OpenOrders,
    UnknownReference,
    cluster_step,
    merge_target,
    order_from_call,
    order_from_report,
)

SOURCE = "whistle/intake"


def lifecycle(order: NewOrder, status: str, caused_by: str, **extra: Any) -> dict[str, Any]:
    return WorkOrderData.trusted(
        work_order_id=order.work_order_id,
        status=status,
        level=order.level,
        category=order.category.code,
        category_name=order.category.name,
        street=order.place.street,
        community=order.place.community,
        grid=order.place.grid,
        source=order.source,
        caused_by=caused_by,
        urgency=order.urgency,
        **extra,
    )


def _minute(at: datetime) -> int:
    """Minutes since the epoch: the cluster window's unit, an int to compare and hash cheaply."""
    return int(at.timestamp()) // 60


@dataclass(frozen=True, slots=True)
class Raised:
    """A cluster alert decided while applying a message, published when the batch is written."""

    cause: str  # the event id of the report that reached the step
    community: str
    street: str | None
    category: str
    count: int
    at: datetime


@dataclass
class IntakeBatch:
    """What one batch knows and what it will write."""

    orders: dict[str, NewOrder | str]  # event id -> the order it makes, or why it is refused
    known: set[str]  # order ids made already: a call or report seen before
    open_orders: OpenOrders
    counts: dict[tuple[str, str], dict[int, int]]  # reports per minute (_minute)
    alerts: dict[tuple[str, str], tuple[int, datetime]]
    new_rows: list[dict[str, Any]] = field(default_factory=list)
    new_alerts: dict[tuple[str, str], tuple[int, datetime]] = field(default_factory=dict)
    raised: list[Raised] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)  # order id -> open or done, as last heard
    written: int = 0  # of new_rows, by flush

    def count(self, community: str, category: str, at: datetime, window_minutes: int) -> int:
        """Record one report and return how many the window ending now holds."""
        minute = _minute(at)
        per_minute = self.counts.setdefault((community, category), {})
        per_minute[minute] = per_minute.get(minute, 0) + 1
        since = minute - window_minutes
        return sum(n for m, n in per_minute.items() if since < m <= minute)


class IntakeUnit:
    def __init__(self, ref: Jurisdiction, settings: Settings) -> None:
        self.ref = ref
        self.merge_window = timedelta(minutes=settings.merge_window_minutes)
        self.cluster_window = timedelta(minutes=settings.cluster_window_minutes)
        self.cluster_window_minutes = settings.cluster_window_minutes
        self.threshold = settings.tag_threshold
        # Trained here, once (~0.1 s): asked only for the calls the keywords cannot tag.
        self.fallback = CategoryModel(load_examples()) if settings.tag_fallback else None
        self.cluster_threshold = settings.cluster_threshold

    def order_for(self, message: Decoded) -> NewOrder | str | None:
        data, event = message.data, message.event
        if isinstance(data, HotlineCall):
            return order_from_call(data, event.id, event.time, self.ref, self.threshold, self.fallback)
        if isinstance(data, GridReport):
            try:
                return order_from_report(data, event.id, event.time, self.ref)
            except UnknownReference as exc:
                return str(exc)
        return None

    async def open(self, conn: AsyncConnection, messages: list[Decoded]) -> IntakeBatch:
        orders: dict[str, NewOrder | str] = {}
        for m in messages:
            order = m.prepared if m.prepared is not None else self.order_for(m)
            if order is not None:
                orders[m.event.id] = order
        new = [o for o in orders.values() if isinstance(o, NewOrder)]
        if not new:
            return IntakeBatch(orders, set(), OpenOrders(), {}, {})
        earliest = min(o.received_at for o in new)
        # The clusters the batch may grow (_watch_cluster): 其他 (other) is never one.
        keys = sorted(
            {
                (o.place.community, o.category.code)
                for o in new
                if o.place.community and o.category.code != "other"
            }
        )
        counts: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
        if keys:
            for community, category, minute, n in await store.recent_counts(
                conn, keys, earliest - self.cluster_window
            ):
                counts[(community, category)][minute] = n
        return IntakeBatch(
            orders=orders,
            known=await store.existing_orders(conn, [o.work_order_id for o in new]),
            open_orders=OpenOrders(await store.open_orders(conn, new, earliest - self.merge_window)),
            counts=counts,
            alerts=await store.cluster_alerts(conn, keys) if keys else {},
        )

    async def flush(self, conn: AsyncConnection, batch: IntakeBatch) -> None:
        """The orders decided so far, written while the next messages are decided."""
        rows, batch.written = batch.new_rows[batch.written :], len(batch.new_rows)
        await store.save(conn, rows)

    async def close(self, conn: AsyncConnection, batch: IntakeBatch) -> list[OutboxMessage]:
        # The lifecycle's statuses after the orders: an order may be created and resolved in one
        # batch, when its call comes again with the outcome (a replay).
        await store.save(conn, batch.new_rows[batch.written :], batch.new_alerts, batch.statuses)
        if not batch.raised:
            return []
        keys = sorted({(r.community, r.category) for r in batch.raised})
        since = min(r.at for r in batch.raised) - self.cluster_window
        members: dict[tuple[str, str], list[tuple[str, datetime]]] = defaultdict(list)
        for c, k, i, at in await store.cluster_members(conn, keys, since):
            members[(c, k)].append((i, at))
        alerts = []
        for r in batch.raised:
            # Everything of the cluster in the window so far: calls on other partitions may be
            # applied out of business-time order, so no upper bound at the triggering call.
            start = r.at - self.cluster_window
            ids = [i for i, at in members[(r.community, r.category)] if at > start]
            alert = ClusterDetected(
                category=r.category,
                street=r.street,
                community=r.community,
                count=len(ids),
                window_minutes=self.cluster_window_minutes,
                work_order_ids=ids,
            )
            alerts.append(
                outbox_message(
                    contract.ALERTS,
                    r.community,
                    "alert.cluster_detected",
                    alert,
                    source=SOURCE,
                    time=r.at,
                    id=derived_id(r.cause, "cluster", str(r.count)),
                )
            )
        return alerts

    async def take(self, tx: Tx) -> None:
        """A call or a grid report: a new order, a repeat that joins one, or nothing (seen before)."""
        batch: IntakeBatch = tx.batch
        order = batch.orders[tx.event.id]
        if isinstance(order, str):
            raise Refused(order)
        key = order.work_order_id
        if key in batch.known:
            return  # the same call or report, redelivered under a new event id: one work order
        batch.known.add(key)
        target = merge_target(order, batch.open_orders.candidates(order), self.merge_window)
        if target:
            batch.new_rows.append(store.order_row(order, "merged", target))
            merged = lifecycle(order, "merged", tx.event.id, merged_into=target)
            tx.publish(contract.WORKORDER_EVENTS, key, "workorder.merged", merged)
            self._contact(tx, order, target)
        else:
            status = "done" if order.closed_on_site else "open"
            batch.new_rows.append(store.order_row(order, status, None))
            tx.publish(
                contract.WORKORDER_EVENTS, key, "workorder.created", lifecycle(order, "new", tx.event.id)
            )
            if order.closed_on_site:
                closed = lifecycle(order, "closed", tx.event.id)
                tx.publish(contract.WORKORDER_EVENTS, key, "workorder.closed", closed)
            else:
                batch.open_orders.add(
                    OpenOrder(
                        key,
                        order.category.code,
                        order.place.community,
                        order.place.compound,
                        order.place.grid,
                        order.caller_phone,
                        order.received_at,
                    )
                )
                self._contact(tx, order, key)
                tx.publish(contract.INTAKE_ORDERS, key, "intake.order.opened", order.opened())
        self._watch_cluster(tx, batch, order)

    def _contact(self, tx: Tx, order: NewOrder, work_order_id: str) -> None:
        if order.caller_phone or order.caller_name:
            contact = ContactRecorded.trusted(
                work_order_id=work_order_id,
                reporter_id=order.work_order_id,
                name=order.caller_name,
                phone=order.caller_phone,
                urgency=order.urgency,
            )
            tx.publish(contract.INTAKE_CONTACTS, work_order_id, "intake.contact.recorded", contact)

    def _watch_cluster(self, tx: Tx, batch: IntakeBatch, order: NewOrder) -> None:
        """工单预警: alert once when a community's reports of one category reach the threshold in the
        window, and again at each doubling while the cluster keeps growing."""
        community, category, at = order.place.community, order.category.code, order.received_at
        if community is None or category == "other":
            return
        count = batch.count(community, category, at, self.cluster_window_minutes)
        step = cluster_step(count, self.cluster_threshold)
        last_step, last_at = batch.new_alerts.get((community, category)) or batch.alerts.get(
            (community, category), (0, at - 2 * self.cluster_window)
        )
        if last_at < at - self.cluster_window:
            last_step = 0  # that cluster is over; this is a new one
        if step <= last_step:
            return
        batch.new_alerts[(community, category)] = (step, at)
        batch.raised.append(Raised(tx.event.id, community, order.place.street, category, count, at))

    async def follow(self, tx: Tx, e: WorkOrderData) -> None:
        """Only open orders absorb repeats: follow them being resolved, closed or reopened (written
        with the batch's orders, by close)."""
        batch: IntakeBatch = tx.batch
        reopened = tx.event.type == "workorder.reopened"
        batch.statuses[e.work_order_id] = "open" if reopened else "done"
        batch.open_orders.follow(e.work_order_id, is_open=reopened)  # for the batch's next repeats


def routes(unit: IntakeUnit) -> list[Route]:
    async def on_call(tx: Tx, call: HotlineCall) -> None:
        await unit.take(tx)

    async def on_report(tx: Tx, report: GridReport) -> None:
        await unit.take(tx)

    events = contract.WORKORDER_EVENTS
    return [
        Route(contract.HOTLINE_CALLS, "hotline.call.received", HotlineCall, on_call),
        Route(contract.GRID_REPORTS, "grid.issue.reported", GridReport, on_report),
        *(
            Route(events, t, WorkOrderData, unit.follow)
            for t in ("workorder.resolved", "workorder.closed", "workorder.reopened")
        ),
    ]
