"""Intake's subscribers: decode (done by the kit), call the domain, stage the events."""

from __future__ import annotations

from shared import contract
from shared.contract import (
    ContactRecorded,
    GridReport,
    HotlineCall,
    WorkOrderData,
)
from shared.messaging import Refused, Route, Tx
from shared.reference import Jurisdiction

from . import store
from .domain import NewOrder, UnknownReference, order_from_call, order_from_report


def lifecycle(order: NewOrder, status: str, caused_by: str) -> WorkOrderData:
    return WorkOrderData(
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
    )


async def _open(tx: Tx, order: NewOrder) -> None:
    if not await store.insert_order(tx.conn, order):
        return  # the same call or report, redelivered under a new event id: one work order
    key = order.work_order_id
    tx.publish(contract.WORKORDER_EVENTS, key, "workorder.created", lifecycle(order, "new", tx.event.id))
    if order.closed_on_site:
        tx.publish(
            contract.WORKORDER_EVENTS, key, "workorder.closed", lifecycle(order, "closed", tx.event.id)
        )
        return
    if order.caller_phone or order.caller_name:
        contact = ContactRecorded(work_order_id=key, name=order.caller_name, phone=order.caller_phone)
        tx.publish(contract.INTAKE_CONTACTS, key, "intake.contact.recorded", contact)
    tx.publish(contract.INTAKE_ORDERS, key, "intake.order.opened", order.opened())


def routes(ref: Jurisdiction) -> list[Route]:
    async def on_call(tx: Tx, call: HotlineCall) -> None:
        await _open(tx, order_from_call(call, tx.event.id, tx.time, ref))

    async def on_report(tx: Tx, report: GridReport) -> None:
        try:
            order = order_from_report(report, tx.event.id, tx.time, ref)
        except UnknownReference as exc:
            raise Refused(str(exc)) from exc
        await _open(tx, order)

    return [
        Route(contract.HOTLINE_CALLS, "hotline.call.received", HotlineCall, on_call),
        Route(contract.GRID_REPORTS, "grid.issue.reported", GridReport, on_report),
    ]
