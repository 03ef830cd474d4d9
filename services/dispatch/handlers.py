"""Dispatch's subscribers: each loads the order (locked), asks the domain, writes state and events."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from shared import contract, metrics
from shared.contract import (
    ClusterDetected,
    DeadlineMoved,
    DispatchAccepted,
    DispatchAssigned,
    DispatchCancelled,
    DispatchExtensionRequested,
    DispatchProgress,
    DispatchRejected,
    DispatchResolved,
    EscalationRequested,
    Level,
    MaskedContact,
    OrderOpened,
    ResidentFeedback,
    WorkOrderData,
)
from shared.logs import get_logger
from shared.messaging import Decoded, OutboxMessage, Refused, Route, Tx
from shared.reference import LEVELS, Jurisdiction, TimeLimit, calendars_of, next_level
from shared.service import Service
from shared.settings import Settings

from . import store
from .domain import (
    InvalidTransition,
    OrderFacts,
    assignees,
    deadlines,
    extension_allowed,
    initial_level,
    respond,
    time_limit,
    triage_desk,
)

OPEN_STATUSES = ("new", "dispatched", "accepted")
log = get_logger(__name__)


def lifecycle(order: Row[Any], caused_by: str, **changes: Any) -> WorkOrderData:
    values = {
        "work_order_id": order.id,
        "status": order.status,
        "level": order.level,
        "category": order.category,
        "category_name": order.category_name,
        "street": order.street,
        "community": order.community,
        "grid": order.grid,
        "source": order.source,
        "urgency": order.urgency,
        "caused_by": caused_by,
    }
    return WorkOrderData.model_validate(values | changes)


@dataclass
class DispatchBatch:
    """New orders of one batch, decided in memory and written together (DispatchUnit.close)."""

    existing: set[str]
    clustered: set[tuple[str, str]]
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dispatches: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)


class DispatchUnit:
    """The hot path, new orders from intake, set-based: which already exist and which clusters are
    active are loaded once per batch; the rows are written once per batch."""

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

    async def close(self, conn: AsyncConnection, batch: DispatchBatch) -> list[OutboxMessage]:
        await store.save_new(conn, list(batch.orders.values()), batch.dispatches, batch.history)
        return []


class Dispatcher:
    """The decisions that touch several tables: dispatching at a level, escalating, closing."""

    def __init__(self, ref: Jurisdiction, settings: Settings) -> None:
        self.ref = ref
        self.limits = settings.time_limits
        self.limits_by_category = settings.category_time_limits
        self.extension_max_factor = settings.extension_max_factor
        self.cluster_window = timedelta(minutes=settings.cluster_window_minutes)
        self.calendars = calendars_of(ref, settings.time_counting)

    async def dispatch_at(
        self,
        tx: Tx,
        order: Row[Any],
        level: Level,
        *,
        shorter: bool = False,
        new: bool = False,
        triage: bool = False,
    ) -> None:
        """Send the order to whoever acts at that level (the triage desk with ``triage``). When every
        candidate there has returned it, it goes up a level; at the top, to the triage desk."""
        facts = OrderFacts(order.category, order.urgency, order.community, order.property_company)
        returned = frozenset() if new else await store.returned_by(tx.conn, order.id)
        who = (
            [(triage_desk(facts, level, self.ref), "lead")]
            if triage
            else assignees(facts, level, self.ref, returned)
        )
        if not who:
            higher = next_level(level)
            if higher is not None:
                event = lifecycle(
                    order,
                    tx.event.id,
                    from_level=level,
                    to_level=higher,
                    reason="every department at this level returned it",
                )
                tx.publish(contract.WORKORDER_EVENTS, order.id, "workorder.escalated", event)
                await self.record(
                    tx, order.id, "workorder.escalated", order.status, higher, {"reason": "all returned"}
                )
                await self.dispatch_at(tx, order, higher, shorter=shorter)
                return
            who = [(triage_desk(facts, level, self.ref), "lead")]
        limit = time_limit(order.urgency, self.ref, self.limits, order.category, self.limits_by_category)
        if shorter:  # 重办: a reopened order gets half the time
            limit = TimeLimit(accept=limit.accept / 2, resolve=limit.resolve / 2)
        accept_by, resolve_by = deadlines(tx.time, limit, self.calendars[order.urgency])
        attempts = {} if new else await store.attempts_by_department(tx.conn, order.id)
        number = sum(attempts.values())
        rows, summaries = [], []
        for department, role in who:
            number += 1
            dispatch = DispatchAssigned(
                dispatch_id=f"{order.id}-D{number}",
                work_order_id=order.id,
                department=department,
                role=role,
                level=level,
                category=order.category,
                category_name=order.category_name,
                summary=order.summary,
                address=order.address,
                location=order.location,
                urgency=order.urgency,
                accept_by=accept_by,
                resolve_by=resolve_by,
                contact=MaskedContact.model_validate(order.contact) if order.contact else None,
                attempt=attempts.get(department, 0) + 1,
            )
            tx.publish(contract.department_topic(department), order.id, "dispatch.assigned", dispatch)
            rows.append(
                {
                    "id": dispatch.dispatch_id,
                    "work_order_id": order.id,
                    "department": department,
                    "role": role,
                    "level": level,
                    "attempt": dispatch.attempt,
                    "status": "assigned",
                    "accept_by": accept_by,
                    "resolve_by": resolve_by,
                    "created_at": tx.time,
                    "extended": False,
                }
            )
            summaries.append(
                {
                    "dispatch_id": dispatch.dispatch_id,
                    "department": department,
                    "role": role,
                    "accept_by": accept_by.isoformat(),
                    "resolve_by": resolve_by.isoformat(),
                }
            )
        staged: DispatchBatch | None = tx.batch if new else None
        if staged is not None:  # a new order of this batch: written with the batch
            staged.dispatches += rows
            staged.orders[order.id].update(status="dispatched", level=level)
        else:
            await store.add_dispatches(tx.conn, rows)
            await store.update_order(tx.conn, order.id, status="dispatched", level=level, updated_at=tx.time)
        tx.publish(
            contract.WORKORDER_EVENTS,
            order.id,
            "workorder.dispatched",
            lifecycle(order, tx.event.id, status="dispatched", level=level, dispatches=summaries),
        )
        detail = {"dispatches": summaries}
        await self.record(tx, order.id, "workorder.dispatched", "dispatched", level, detail, staged)

    async def cancel_open(self, tx: Tx, order_id: str, reason: str) -> None:
        for d in await store.open_dispatches(tx.conn, order_id):
            await store.set_dispatch_status(tx.conn, d.id, "cancelled")
            cancelled = DispatchCancelled(
                dispatch_id=d.id, work_order_id=order_id, department=d.department, reason=reason
            )
            tx.publish(contract.department_topic(d.department), order_id, "dispatch.cancelled", cancelled)

    async def escalate(self, tx: Tx, order: Row[Any], to_level: Level, reason: str) -> None:
        await self.cancel_open(tx, order.id, f"escalated to {to_level}: {reason}")
        event = lifecycle(order, tx.event.id, from_level=order.level, to_level=to_level, reason=reason)
        tx.publish(contract.WORKORDER_EVENTS, order.id, "workorder.escalated", event)
        await self.record(tx, order.id, "workorder.escalated", order.status, to_level, {"reason": reason})
        await self.dispatch_at(tx, order, to_level)

    async def record(
        self,
        tx: Tx,
        order_id: str,
        event: str,
        status: str,
        level: str,
        detail: dict[str, Any] | None = None,
        staged: DispatchBatch | None = None,
    ) -> None:
        row = {
            "work_order_id": order_id,
            "at": tx.time,
            "event": event,
            "status": status,
            "level": level,
            "caused_by": tx.event.id,
            "detail": detail,
        }
        if staged is not None:
            staged.history.append(row)
        else:
            await store.record(tx.conn, **row)


async def _order(tx: Tx, order_id: str) -> Row[Any]:
    order = await store.lock_order(tx.conn, order_id)
    if order is None:
        raise Refused(f"data.work_order_id: no work order {order_id!r} is known to dispatch")
    return order


async def _checked_dispatch(tx: Tx, response: Any) -> tuple[Row[Any], Row[Any], str]:
    """The dispatch a department response is about, after checking that it may say so."""
    dispatch = await store.get_dispatch(tx.conn, response.dispatch_id)
    if dispatch is None:
        raise Refused(f"data.dispatch_id: no dispatch {response.dispatch_id!r}")
    if dispatch.work_order_id != response.work_order_id:
        raise Refused(
            f"data.work_order_id: dispatch {dispatch.id} belongs to {dispatch.work_order_id}, "
            f"not {response.work_order_id}"
        )
    if dispatch.department != response.department:
        raise Refused(
            f"data.department: dispatch {dispatch.id} went to {dispatch.department!r}, "
            f"not {response.department!r}"
        )
    order = await _order(tx, dispatch.work_order_id)
    try:
        status = respond(dispatch.status, tx.event.type)
    except InvalidTransition as exc:
        raise Refused(str(exc)) from exc
    return dispatch, order, status


def routes(ref: Jurisdiction, settings: Settings) -> list[Route]:
    d = Dispatcher(ref, settings)

    async def on_opened(tx: Tx, o: OrderOpened) -> None:
        batch: DispatchBatch = tx.batch
        if o.work_order_id in batch.existing:
            return  # dispatch has it already (intake re-sent it)
        batch.existing.add(o.work_order_id)
        clustered = (o.community, o.category) in batch.clustered
        level = initial_level(
            OrderFacts(o.category, o.urgency, o.community, o.property_company), ref, clustered
        )
        values = o.model_dump(exclude={"work_order_id", "contact"}) | {
            "id": o.work_order_id,
            "status": "new",
            "level": level,
            "contact": o.contact.model_dump() if o.contact else None,
            "reopen_count": 0,
            "opened_at": tx.time,
            "updated_at": tx.time,
        }
        batch.orders[o.work_order_id] = values
        await d.dispatch_at(tx, SimpleNamespace(**values), level, new=True)  # type: ignore[arg-type]

    async def on_accepted(tx: Tx, r: DispatchAccepted) -> None:
        dispatch, order, status = await _checked_dispatch(tx, r)
        await store.set_dispatch_status(tx.conn, dispatch.id, status, accepted_at=tx.time)
        order_status = "accepted" if dispatch.role == "lead" else order.status
        await store.update_order(tx.conn, order.id, status=order_status, updated_at=tx.time)
        event = lifecycle(
            order, tx.event.id, status=order_status, department=r.department, dispatch_id=r.dispatch_id
        )
        tx.publish(contract.WORKORDER_EVENTS, order.id, "workorder.accepted", event)
        await d.record(
            tx, order.id, "dispatch.accepted", order_status, order.level, {"department": r.department}
        )

    async def on_progress(tx: Tx, r: DispatchProgress) -> None:
        _, order, _ = await _checked_dispatch(tx, r)
        detail = {"department": r.department, "note": r.note}
        await d.record(tx, order.id, "dispatch.progress", order.status, order.level, detail)

    async def on_extension(tx: Tx, r: DispatchExtensionRequested) -> None:
        dispatch, order, _ = await _checked_dispatch(tx, r)
        refusal = extension_allowed(
            dispatch.created_at, dispatch.resolve_by, r.resolve_by, dispatch.extended, d.extension_max_factor
        )
        if refusal:
            raise Refused(refusal)
        await store.set_dispatch_status(
            tx.conn, dispatch.id, dispatch.status, resolve_by=r.resolve_by, extended=True
        )
        moved = DeadlineMoved(work_order_id=order.id, dispatch_id=dispatch.id, resolve_by=r.resolve_by)
        tx.publish(contract.DISPATCH_DEADLINES, order.id, "dispatch.deadline.moved", moved)
        detail = moved.model_dump(mode="json")
        await d.record(tx, order.id, "dispatch.extension_granted", order.status, order.level, detail)

    async def on_rejected(tx: Tx, r: DispatchRejected) -> None:
        """退单. A department returns an order once. Not ours: the next candidate of the duty list
        leads (up a level when none is left). Not enough to act on, a duplicate, or other: the
        triage desk looks at it. An assisting department that returns its part just drops out."""
        if r.department in await store.returned_by(tx.conn, r.work_order_id):
            raise Refused(f"data.department: {r.department} has already returned this order once")
        dispatch, order, status = await _checked_dispatch(tx, r)
        await store.set_dispatch_status(tx.conn, dispatch.id, status)
        detail = {"department": r.department, "reason": r.reason, "note": r.note}
        await d.record(tx, order.id, "dispatch.rejected", order.status, order.level, detail)
        if dispatch.role != "lead":
            return
        await d.cancel_open(tx, order.id, f"returned by {r.department}: {r.reason}")
        await d.dispatch_at(tx, order, order.level, triage=r.reason != "not_our_responsibility")

    async def on_resolved(tx: Tx, r: DispatchResolved) -> None:
        dispatch, order, status = await _checked_dispatch(tx, r)
        await store.set_dispatch_status(tx.conn, dispatch.id, status, resolved_at=tx.time)
        detail = {"department": r.department, "result": r.result}
        if dispatch.role != "lead":  # 协同处置: assisting departments' results are recorded
            await d.record(tx, order.id, "dispatch.resolved", order.status, order.level, detail)
            return
        await store.update_order(tx.conn, order.id, status="resolved", updated_at=tx.time)
        event = lifecycle(order, tx.event.id, status="resolved", department=r.department, result=r.result)
        tx.publish(contract.WORKORDER_EVENTS, order.id, "workorder.resolved", event)
        await d.record(tx, order.id, "workorder.resolved", "resolved", order.level, detail)

    async def on_feedback(tx: Tx, f: ResidentFeedback) -> None:
        order = await _order(tx, f.work_order_id)
        if order.status != "resolved":
            raise Refused(f"work order {order.id} is {order.status}; feedback applies to a resolved order")
        detail = {"satisfaction": f.satisfaction, "resolved": f.resolved}
        await store.update_order(tx.conn, order.id, satisfaction=f.satisfaction)
        if f.resolved and f.satisfaction != "dissatisfied":
            await d.cancel_open(tx, order.id, "closed")
            await store.update_order(tx.conn, order.id, status="closed", updated_at=tx.time)
            tx.publish(
                contract.WORKORDER_EVENTS,
                order.id,
                "workorder.closed",
                lifecycle(order, tx.event.id, status="closed"),
            )
            await d.record(tx, order.id, "workorder.closed", "closed", order.level, detail)
            return
        await store.update_order(tx.conn, order.id, reopen_count=order.reopen_count + 1, updated_at=tx.time)
        event = lifecycle(order, tx.event.id, status="dispatched", reason=f"resident: {f.satisfaction}")
        tx.publish(contract.WORKORDER_EVENTS, order.id, "workorder.reopened", event)
        await d.record(tx, order.id, "workorder.reopened", "dispatched", order.level, detail)
        higher = next_level(order.level)
        if order.reopen_count >= 1 and higher:  # a second dissatisfaction climbs the ladder
            await d.escalate(tx, order, higher, "resident dissatisfied twice")
        else:
            await d.dispatch_at(tx, order, order.level, shorter=True)

    async def on_cluster(tx: Tx, a: ClusterDetected) -> None:
        """工单预警: the street coordinates a concentrated cluster; its open orders go up to it now,
        and new ones of the cluster start there."""
        if a.community is None:
            return
        await store.note_cluster(tx.conn, a.community, a.category, tx.time)
        tx.batch.clustered.add((a.community, a.category))
        reason = f"cluster: {a.count} reports of {a.category} in {a.window_minutes} minutes"
        for order_id in a.work_order_ids:
            order = await store.lock_order(tx.conn, order_id)
            if order and order.status in OPEN_STATUSES and LEVELS.index(order.level) < LEVELS.index("street"):
                await d.escalate(tx, order, "street", reason)

    async def on_escalation(tx: Tx, c: EscalationRequested) -> None:
        order = await _order(tx, c.work_order_id)
        if order.status not in OPEN_STATUSES or order.level != c.from_level:
            await d.record(tx, order.id, "escalation.stale", order.status, order.level, {"reason": c.reason})
            return  # the order moved on since the clock fired
        await d.escalate(tx, order, c.to_level, c.reason)

    responses = contract.DISPATCH_RESPONSES
    return [
        Route(contract.INTAKE_ORDERS, "intake.order.opened", OrderOpened, on_opened),
        Route(responses, "dispatch.accepted", DispatchAccepted, on_accepted),
        Route(responses, "dispatch.progress", DispatchProgress, on_progress),
        Route(responses, "dispatch.extension_requested", DispatchExtensionRequested, on_extension),
        Route(responses, "dispatch.rejected", DispatchRejected, on_rejected),
        Route(responses, "dispatch.resolved", DispatchResolved, on_resolved),
        Route(contract.FEEDBACK, "resident.feedback.received", ResidentFeedback, on_feedback),
        Route(contract.ESCALATION_COMMANDS, "escalation.requested", EscalationRequested, on_escalation),
        Route(contract.ALERTS, "alert.cluster_detected", ClusterDetected, on_cluster),
    ]


async def publish_rates(svc: Service) -> None:
    """Background task: keep the three rates (三率) current as Prometheus gauges."""
    while True:
        try:
            async with svc.engine.connect() as conn:
                counts = await store.rate_counts(conn)
            for scope in ("department", "community"):
                for name, dispatched, signed, due, resolved in counts[scope]:
                    metrics.RATES.labels("response", scope, name).set(
                        signed / dispatched if dispatched else 1
                    )
                    metrics.RATES.labels("resolution", scope, name).set(resolved / due if due else 1)
                for name, rated, satisfied in counts[f"{scope}_satisfaction"]:
                    metrics.RATES.labels("satisfaction", scope, name).set(satisfied / rated if rated else 1)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("rates not updated", error=str(exc)[:300])
        await asyncio.sleep(svc.settings.rates_interval_seconds)
