"""Intake's batch unit. A batch is read whole first (IntakeUnit.open: tag and place every message,
load what is known of them in a few queries); each message is then decided in memory (take, follow:
the rules are the domain's); the batch's new rows are written as it is decided (flush, behind the
decisions) and at its end (close), which also builds the batch's cluster alerts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from shared import contract
from shared.contract import (
    ClusterDetected,
    ContactRecorded,
    GridReport,
    HotlineCall,
    WorkOrderData,
)
from shared.events import derived_id
from shared.messaging import Decoded, OutboxMessage, Refused, Tx, outbox_message
from shared.reference import Jurisdiction
from shared.settings import Settings

from . import store
from .domain import (
    STATUS_AFTER,
    NewOrder,
    OpenOrder,
    OpenOrders,
    UnknownReference,
    alert_members,
    cluster_alert,
    cluster_key,
    merge_target,
    order_as_judged,
    order_from_report,
    order_status,
    reports_in_window,
)
from .tagger import Tagger, text_of

SOURCE = "whistle/intake"
HANDLED_ON_SITE = "handled on the spot by the grid worker"


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
        request_type=order.request_type,
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
    windows: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)  # (minute, total)

    def count(self, community: str, category: str, at: datetime, window_minutes: int) -> int:
        """Record one report and return how many the window ending now holds."""
        minute, key = _minute(at), (community, category)
        per_minute = self.counts.setdefault(key, {})
        per_minute[minute] = per_minute.get(minute, 0) + 1
        # A batch's reports mostly share their minute: the window ending at it has one more.
        last = self.windows.get(key)
        total = last[1] + 1 if last is not None and last[0] == minute else None
        if total is None:
            total = reports_in_window(per_minute, minute, window_minutes)
        self.windows[key] = (minute, total)
        return total

    def last_alert(self, key: tuple[str, str]) -> tuple[int, datetime] | None:
        """The cluster's last alert (step, at): this batch's, or the one loaded."""
        return self.new_alerts.get(key) or self.alerts.get(key)


class IntakeUnit:
    def __init__(self, ref: Jurisdiction, settings: Settings, tag_processes: int = 0) -> None:
        """``tag_processes``: the processes that read calls (tagger.py), once started; 0, this one."""
        self.ref = ref
        self.merge_window = timedelta(minutes=settings.merge_window_minutes)
        self.cluster_window = timedelta(minutes=settings.cluster_window_minutes)
        self.cluster_window_minutes = settings.cluster_window_minutes
        self.tagger = Tagger(ref, settings, tag_processes)
        self.cluster_threshold = settings.cluster_threshold

    async def prepare(self, messages: list[Decoded]) -> list[NewOrder | str | Exception | None]:
        """The order each message would make, or why it cannot (a refusal's reason, or the error
        that kept it from being made), before the batch's transaction (BatchPipeline): the calls
        read by the tagger, in its processes, the grid reports here."""
        out: list[NewOrder | str | Exception | None] = [None] * len(messages)
        calls = [(i, m.data) for i, m in enumerate(messages) if isinstance(m.data, HotlineCall)]
        judged = await self.tagger.read([call for _, call in calls])
        for (i, call), judgement in zip(calls, judged, strict=True):
            if isinstance(judgement, Exception):
                out[i] = judgement
                continue
            m = messages[i]
            try:
                out[i] = order_as_judged(call, m.event.id, m.event.time, self.ref, judgement)
            except Exception as exc:
                out[i] = exc
        for i, m in enumerate(messages):
            if isinstance(m.data, GridReport):
                try:
                    out[i] = self.order_for(m)
                except Exception as exc:
                    out[i] = exc
        return out

    def order_for(self, message: Decoded) -> NewOrder | str | None:
        """The order a message makes, read in this process."""
        data, event = message.data, message.event
        if isinstance(data, HotlineCall):
            judgement = self.tagger.here.read(text_of(data))
            return order_as_judged(data, event.id, event.time, self.ref, judgement)
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
        # The clusters the batch may grow (_watch_cluster).
        keys = sorted({key for o in new if (key := cluster_key(o)) is not None})
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
            ids = alert_members(members[(r.community, r.category)], r.at, self.cluster_window)
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

    async def take(self, tx: Tx[IntakeBatch]) -> None:
        """A call or a grid report: a new order, a repeat that joins one, or nothing (seen before)."""
        batch = tx.batch
        order = batch.orders[tx.event.id]
        if isinstance(order, str):
            raise Refused(order)
        key = order.work_order_id
        if key in batch.known:
            return  # the same call or report, redelivered under a new event id: one work order
        batch.known.add(key)
        target = merge_target(order, batch.open_orders.candidates(order), self.merge_window)
        status = order_status(order, target)
        batch.new_rows.append(store.order_row(order, status, target))
        if target:
            merged = lifecycle(order, "merged", tx.event.id, merged_into=target)
            tx.publish(contract.WORKORDER_EVENTS, key, "workorder.merged", merged)
            self._contact(tx, order, target)
        else:
            tx.publish(
                contract.WORKORDER_EVENTS, key, "workorder.created", lifecycle(order, "new", tx.event.id)
            )
            if order.closed_on_site:
                closed = lifecycle(
                    order, "closed", tx.event.id, closure="handled_on_site", reason=HANDLED_ON_SITE
                )
                tx.publish(contract.WORKORDER_EVENTS, key, "workorder.closed", closed)
            else:
                if status == "open":
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
                # An order answered on the call goes to dispatch too, which owns its closing: its
                # answer is the order's result, and feedback on it is dispatch's to record.
                tx.publish(contract.INTAKE_ORDERS, key, "intake.order.opened", order.opened())
        self._watch_cluster(tx, batch, order)

    def _contact(self, tx: Tx[IntakeBatch], order: NewOrder, work_order_id: str) -> None:
        if order.caller_phone or order.caller_name:
            contact = ContactRecorded.trusted(
                work_order_id=work_order_id,
                reporter_id=order.work_order_id,
                name=order.caller_name,
                phone=order.caller_phone,
                urgency=order.urgency,
            )
            tx.publish(contract.INTAKE_CONTACTS, work_order_id, "intake.contact.recorded", contact)

    def _watch_cluster(self, tx: Tx[IntakeBatch], batch: IntakeBatch, order: NewOrder) -> None:
        """工单预警: count the report in its cluster's window; cluster_alert decides whether it raises
        an alert, published by close."""
        key = cluster_key(order)
        if key is None:
            return
        community, category = key
        at = order.received_at
        count = batch.count(community, category, at, self.cluster_window_minutes)
        step = cluster_alert(count, self.cluster_threshold, batch.last_alert(key), at, self.cluster_window)
        if step is None:
            return
        batch.new_alerts[key] = (step, at)
        batch.raised.append(Raised(tx.event.id, community, order.place.street, category, count, at))

    async def follow(self, tx: Tx[IntakeBatch], e: WorkOrderData) -> None:
        """Only open orders absorb repeats: follow them being resolved, closed or reopened
        (STATUS_AFTER; written with the batch's orders, by close)."""
        status = STATUS_AFTER[tx.event.type]
        tx.batch.statuses[e.work_order_id] = status
        tx.batch.open_orders.follow(e.work_order_id, is_open=status == "open")  # for the batch's next repeats
