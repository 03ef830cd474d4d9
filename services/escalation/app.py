"""Wiring of the escalation service."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from shared import contract
from shared.reference import calendars_of, load_jurisdiction
from shared.service import Service, build_service
from shared.settings import Settings

from . import handlers, store, timers
from .unit import EscalationUnit

NAME = "escalation"


def create_app(settings: Settings) -> tuple[AsgiFastStream, Service]:
    ref = load_jurisdiction(settings.jurisdiction_file)
    return build_service(
        NAME,
        settings,
        inbox=store.Inbox.__table__,  # type: ignore[arg-type]
        outbox=store.Outbox.__table__,  # type: ignore[arg-type]
        routes=handlers.routes(settings.reminder_at, calendars_of(ref, settings.time_counting)),
        strict_topics=[],
        publishes=[
            contract.ALERTS,
            contract.ESCALATION_COMMANDS,
            contract.DEADLETTER,
            *(contract.department_topic(d.code) for d in ref.departments),
        ],
        tasks=[timers.fire_due],
        remember_traces=True,  # its timers publish in the trace of the order's call
        unit=EscalationUnit(),
        prunable=store.PRUNABLE,
    )
