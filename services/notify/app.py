"""Wiring of the notify service."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from shared import contract
from shared.reference import load_jurisdiction
from shared.service import Service, build_service
from shared.settings import Settings

from . import channels, handlers, sender, store, unit

NAME = "notify"


def create_app(settings: Settings) -> tuple[AsgiFastStream, Service]:
    if problems := channels.production_problems(settings):
        raise channels.NoChannel(
            "notify refuses to start with ENVIRONMENT=production: " + "; ".join(problems)
        )
    ref = load_jurisdiction(settings.jurisdiction_file)
    departments = [contract.department_topic(d.code) for d in ref.departments]
    return build_service(
        NAME,
        settings,
        inbox=store.Inbox.__table__,  # type: ignore[arg-type]
        outbox=store.Outbox.__table__,  # type: ignore[arg-type]
        routes=handlers.routes(departments, settings, ref.timezone),
        unit=unit.NotifyUnit(),
        strict_topics=[],
        publishes=[contract.NOTIFICATIONS, contract.DEADLETTER],
        tasks=[sender.send_pending],
        remember_traces=True,  # its timers publish in the trace of the order's call
        prunable=store.PRUNABLE,
    )
