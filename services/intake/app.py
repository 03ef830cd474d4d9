"""Wiring of the intake service."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from shared import contract
from shared.reference import load_jurisdiction
from shared.service import Service, build_service
from shared.settings import Settings

from . import handlers, store
from .unit import IntakeUnit

NAME = "intake"


def create_app(settings: Settings) -> tuple[AsgiFastStream, Service]:
    ref = load_jurisdiction(settings.jurisdiction_file)
    unit = IntakeUnit(ref, settings, settings.tag_processes)
    return build_service(
        NAME,
        settings,
        inbox=store.Inbox.__table__,  # type: ignore[arg-type]
        outbox=store.Outbox.__table__,  # type: ignore[arg-type]
        routes=handlers.routes(unit),
        unit=unit,
        prepare_messages=unit.prepare,  # tagging and placing need no database: done ahead (BatchPipeline)
        lifespan=[unit.tagger],  # its processes started before the first batch, stopped after the last
        write_behind=True,  # its handlers only stage: the batch's rows are written as it is decided
        strict_topics=[contract.HOTLINE_CALLS, contract.GRID_REPORTS],
        publishes=[
            contract.WORKORDER_EVENTS,
            contract.INTAKE_ORDERS,
            contract.INTAKE_CONTACTS,
            contract.ALERTS,
            contract.DEADLETTER,
        ],
    )
