"""Dispatch's subscribers: each loads the order (locked), asks the domain, writes state and events."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Row

from shared import contract
from shared.contract import (
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
from shared.messaging import Refused, Route, Tx
from shared.reference import Jurisdiction, TimeLimit, Urgency, next_level

from . import store
from .domain import (
    InvalidTransition,
    OrderFacts,
    assignees,
    deadlines,
    initial_level,
    respond,
    time_limit,
)

OPEN_STATUSES = ("new", "dispatched", "accepted")


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


class Dispatcher:
    """The decisions that touch several tables: dispatching at a level, escalating, closing."""

    def __init__(self, ref: Jurisdiction, limits: dict[Urgency, TimeLimit]) -> None:
        self.ref = ref
        self.limits = limits

    async def dispatch_at(
        self, tx: Tx, order: Row[Any], level: Level, *, shorter: bool = False, new: bool = False
    ) -> None:
        facts = OrderFacts(order.category, order.urgency, order.community, order.property_company)
        limit = time_limit(order.urgency, self.ref, self.limits)
        if shorter:  # 重办: a reopened order gets half the time
            limit = TimeLimit(accept=limit.accept / 2, resolve=limit.resolve / 2)
        accept_by, resolve_by = deadlines(tx.time, limit)
        attempts = {} if new else await store.attempts_by_department(tx.conn, order.id)
        number = sum(attempts.values())
        rows, summaries = [], []
        for department, role in assignees(facts, level, self.ref):
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
        await store.add_dispatches(tx.conn, rows)
        await store.update_order(tx.conn, order.id, status="dispatched", level=level, updated_at=tx.time)
        tx.publish(
            contract.WORKORDER_EVENTS,
            order.id,
            "workorder.dispatched",
            lifecycle(order, tx.event.id, status="dispatched", level=level, dispatches=summaries),
        )
        await self.record(
            tx, order.id, "workorder.dispatched", "dispatched", level, {"dispatches": summaries}
        )

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
        self, tx: Tx, order_id: str, event: str, status: str, level: str, detail: dict[str, Any] | None = None
    ) -> None:
        await store.record(
            tx.conn,
            work_order_id=order_id,
            at=tx.time,
            event=event,
            status=status,
            level=level,
            caused_by=tx.event.id,
            detail=detail,
        )


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


def routes(ref: Jurisdiction, limits: dict[Urgency, TimeLimit]) -> list[Route]:
    d = Dispatcher(ref, limits)

    async def on_opened(tx: Tx, o: OrderOpened) -> None:
        level = initial_level(OrderFacts(o.category, o.urgency, o.community, o.property_company), ref)
        values = o.model_dump(exclude={"work_order_id", "contact"}) | {
            "id": o.work_order_id,
            "status": "new",
            "level": level,
            "contact": o.contact.model_dump() if o.contact else None,
            "opened_at": tx.time,
            "updated_at": tx.time,
        }
        order = await store.insert_order(tx.conn, values)
        if order is not None:  # else: dispatch has it already (intake re-sent it)
            await d.dispatch_at(tx, order, level, new=True)

    async def on_accepted(tx: Tx, r: DispatchAccepted) -> None:
        dispatch, order, status = await _checked_dispatch(tx, r)
        await store.set_dispatch_status(tx.conn, dispatch.id, status)
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
        if r.resolve_by <= dispatch.resolve_by:
            raise Refused(
                f"data.resolve_by: {r.resolve_by.isoformat()} is not later than the current "
                f"resolve-by {dispatch.resolve_by.isoformat()}"
            )
        await store.set_dispatch_status(tx.conn, dispatch.id, dispatch.status, resolve_by=r.resolve_by)
        moved = DeadlineMoved(work_order_id=order.id, dispatch_id=dispatch.id, resolve_by=r.resolve_by)
        tx.publish(contract.DISPATCH_DEADLINES, order.id, "dispatch.deadline.moved", moved)
        detail = moved.model_dump(mode="json")
        await d.record(tx, order.id, "dispatch.extension_granted", order.status, order.level, detail)

    async def on_rejected(tx: Tx, r: DispatchRejected) -> None:
        dispatch, order, status = await _checked_dispatch(tx, r)
        await store.set_dispatch_status(tx.conn, dispatch.id, status)
        detail = {"department": r.department, "reason": r.reason, "note": r.note}
        await d.record(tx, order.id, "dispatch.rejected", order.status, order.level, detail)
        if dispatch.role == "lead":
            to_level = next_level(order.level) or order.level
            await d.escalate(tx, order, to_level, f"returned by {r.department}: {r.reason}")

    async def on_resolved(tx: Tx, r: DispatchResolved) -> None:
        dispatch, order, status = await _checked_dispatch(tx, r)
        await store.set_dispatch_status(tx.conn, dispatch.id, status)
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
    ]
