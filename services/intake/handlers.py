"""Intake's subscribers: the events it takes and the IntakeUnit method (unit.py) that applies each.
A call or a grid report makes a new order, a repeat that joins one, or nothing; the lifecycle
events it follows tell it which orders may still absorb repeats."""

from __future__ import annotations

from dataclasses import dataclass

from shared import contract
from shared.contract import GridReport, HotlineCall, WorkOrderData
from shared.messaging import Route, Tx

from .domain import STATUS_AFTER
from .unit import IntakeBatch, IntakeUnit


@dataclass(frozen=True, slots=True)
class Subscribers:
    unit: IntakeUnit

    async def on_call(self, tx: Tx[IntakeBatch], call: HotlineCall) -> None:
        await self.unit.take(tx)  # its order is the batch's already, made ahead or by open

    async def on_report(self, tx: Tx[IntakeBatch], report: GridReport) -> None:
        await self.unit.take(tx)

    async def on_lifecycle(self, tx: Tx[IntakeBatch], e: WorkOrderData) -> None:
        await self.unit.follow(tx, e)


def routes(unit: IntakeUnit) -> list[Route]:
    subscribers = Subscribers(unit)
    return [
        Route(contract.HOTLINE_CALLS, "hotline.call.received", HotlineCall, subscribers.on_call),
        Route(contract.GRID_REPORTS, "grid.issue.reported", GridReport, subscribers.on_report),
        *(Route(contract.WORKORDER_EVENTS, t, WorkOrderData, subscribers.on_lifecycle) for t in STATUS_AFTER),
    ]
