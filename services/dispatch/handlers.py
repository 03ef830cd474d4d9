"""Dispatch's subscribers: each loads the order (locked), asks it to change, saves it and stages
the events it left. The rules are the order's (``domain``); nothing is decided here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from shared import contract, metrics
from shared.contract import (
    ClusterDetected,
    DispatchAccepted,
    DispatchExtensionRequested,
    DispatchProgress,
    DispatchRejected,
    DispatchResolved,
    EscalationRequested,
    FeedbackExpired,
    OrderOpened,
    ReassignRequested,
    ResidentFeedback,
    ReturnApprove,
    ReturnRefuse,
    ReviewExpired,
)
from shared.messaging import Refused, Route, Tx

from . import store
from .dispatches import Refusal, Response
from .domain import Order
from .routing import Policy
from .unit import DispatchBatch

Answer = (
    DispatchAccepted | DispatchProgress | DispatchExtensionRequested | DispatchRejected | DispatchResolved
)


def _stage(tx: Tx[Any], order: Order) -> None:
    for e in order.events:
        tx.publish(e.topic, order.id, e.type, e.data)


@asynccontextmanager
async def changing(tx: Tx[Any], order_id: str | None) -> AsyncIterator[Order]:
    """The unit of work of one order: loaded and locked, changed by the domain, then saved with its
    events staged; a refusal of the domain's is the message's dead letter."""
    order = await store.load(tx.conn, order_id) if order_id else None
    if order is None:
        raise Refused(f"data.work_order_id: no work order {order_id!r} is known to dispatch")
    try:
        yield order.begin(tx.event.id, tx.time)
    except Refusal as exc:
        raise Refused(str(exc)) from exc
    await store.save(tx.conn, order)
    _stage(tx, order)


async def _answered(tx: Tx[Any], r: Answer) -> str:
    """The order a department's response is about, found by its dispatch."""
    order_id = await store.order_of(tx.conn, r.dispatch_id)
    if order_id is None:
        raise Refused(f"data.dispatch_id: no dispatch {r.dispatch_id!r}")
    return order_id


def _response(tx: Tx[Any], r: Answer) -> Response:
    return Response(tx.event.type, r.dispatch_id, r.work_order_id, r.department)


class Handlers:
    """One subscriber per event type, with the routing policy they dispatch by."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    async def on_opened(self, tx: Tx[DispatchBatch], o: OrderOpened) -> None:
        batch = tx.batch
        if o.work_order_id in batch.existing:
            return  # dispatch has it already (intake re-sent it)
        batch.existing.add(o.work_order_id)
        clustered = (o.community, o.category) in batch.clustered
        order = Order.opened(o, clustered, self.policy, tx.event.id, tx.time)
        _stage(tx, order)
        batch.add(order)  # written with the batch

    async def on_accepted(self, tx: Tx[Any], r: DispatchAccepted) -> None:
        async with changing(tx, await _answered(tx, r)) as order:
            order.accept(_response(tx, r))

    async def on_progress(self, tx: Tx[Any], r: DispatchProgress) -> None:
        async with changing(tx, await _answered(tx, r)) as order:
            order.progress(_response(tx, r), r.note)

    async def on_extension(self, tx: Tx[Any], r: DispatchExtensionRequested) -> None:
        async with changing(tx, await _answered(tx, r)) as order:
            order.extend(_response(tx, r), r.resolve_by, self.policy)

    async def on_rejected(self, tx: Tx[Any], r: DispatchRejected) -> None:
        async with changing(tx, await _answered(tx, r)) as order:
            order.reject(_response(tx, r), r.reason, r.note, self.policy)

    async def on_resolved(self, tx: Tx[Any], r: DispatchResolved) -> None:
        async with changing(tx, await _answered(tx, r)) as order:
            order.resolve(_response(tx, r), r.result, self.policy)

    async def on_feedback(self, tx: Tx[Any], f: ResidentFeedback) -> None:
        async with changing(tx, f.work_order_id) as order:
            order.feedback(f.satisfaction, f.resolved, self.policy)

    async def on_escalation(self, tx: Tx[Any], c: EscalationRequested) -> None:
        async with changing(tx, c.work_order_id) as order:
            order.escalation_requested(c.from_level, c.to_level, c.reason, self.policy)

    async def on_feedback_expired(self, tx: Tx[Any], c: FeedbackExpired) -> None:
        async with changing(tx, c.work_order_id) as order:
            order.feedback_expired(c.feedback_by)

    async def on_reassign(self, tx: Tx[Any], c: ReassignRequested) -> None:
        async with changing(tx, c.work_order_id) as order:
            order.reassign(c, self.policy)

    async def on_return_approve(self, tx: Tx[Any], c: ReturnApprove) -> None:
        async with changing(tx, c.work_order_id) as order:
            order.approve_return(c.dispatch_id, c.operator, c.note, self.policy, lead=c.lead, assist=c.assist)

    async def on_return_refuse(self, tx: Tx[Any], c: ReturnRefuse) -> None:
        async with changing(tx, c.work_order_id) as order:
            order.refuse_return(c.dispatch_id, c.operator, c.note, self.policy)

    async def on_review_expired(self, tx: Tx[Any], c: ReviewExpired) -> None:
        async with changing(tx, c.work_order_id) as order:
            automatic = order.review_expired(c.dispatch_id, c.review_by, self.policy)
        if automatic:
            # Counted as it is staged: a batch applied again after a failure may count it twice;
            # the event's ``automatic`` flag is the exact figure for reports.
            metrics.RETURNS_AUTO_APPROVED.inc()

    async def on_cluster(self, tx: Tx[DispatchBatch], a: ClusterDetected) -> None:
        """工单预警: new orders of the cluster start at the street; its open orders go up to it."""
        if a.community is None:
            return
        await store.note_cluster(tx.conn, a.community, a.category, tx.time)
        tx.batch.clustered.add((a.community, a.category))
        reason = f"cluster: {a.count} reports of {a.category} in {a.window_minutes} minutes"
        orders = await store.load_many(tx.conn, a.work_order_ids)
        # Orders opened earlier in this batch are not written yet: raised where they are staged.
        staged = tx.batch.staged(a.work_order_ids)
        raised = []
        for order_id in dict.fromkeys(a.work_order_ids):  # each once, in the alert's order
            order = orders.get(order_id) or staged.get(order_id)
            if order is None:
                continue
            order.begin(tx.event.id, tx.time).raise_for_cluster(reason, self.policy)
            if order.history:  # raised: it changed
                raised.append(order)
        await store.save_many(tx.conn, [order for order in raised if order.id not in staged])
        for order in raised:
            if order.id in staged:
                tx.batch.changed(order)
            _stage(tx, order)


def routes(policy: Policy) -> list[Route]:
    h = Handlers(policy)
    responses = contract.DISPATCH_RESPONSES
    return [
        Route(contract.INTAKE_ORDERS, "intake.order.opened", OrderOpened, h.on_opened),
        Route(responses, "dispatch.accepted", DispatchAccepted, h.on_accepted),
        Route(responses, "dispatch.progress", DispatchProgress, h.on_progress),
        Route(responses, "dispatch.extension_requested", DispatchExtensionRequested, h.on_extension),
        Route(responses, "dispatch.rejected", DispatchRejected, h.on_rejected),
        Route(responses, "dispatch.resolved", DispatchResolved, h.on_resolved),
        Route(contract.FEEDBACK, "resident.feedback.received", ResidentFeedback, h.on_feedback),
        Route(contract.ESCALATION_COMMANDS, "escalation.requested", EscalationRequested, h.on_escalation),
        Route(contract.ESCALATION_COMMANDS, "feedback.expired", FeedbackExpired, h.on_feedback_expired),
        Route(contract.ALERTS, "alert.cluster_detected", ClusterDetected, h.on_cluster),
        Route(contract.ORDER_COMMANDS, "order.reassign.requested", ReassignRequested, h.on_reassign),
        Route(contract.ORDER_COMMANDS, "order.return.approve", ReturnApprove, h.on_return_approve),
        Route(contract.ORDER_COMMANDS, "order.return.refuse", ReturnRefuse, h.on_return_refuse),
        Route(contract.ESCALATION_COMMANDS, "return.review.expired", ReviewExpired, h.on_review_expired),
    ]
