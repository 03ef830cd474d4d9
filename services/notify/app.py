"""Wiring of the notify service."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from shared import contract
from shared.reference import load_jurisdiction
from shared.service import Service, build_service
from shared.settings import Settings

from . import handlers, store

NAME = "notify"


def create_app(settings: Settings) -> tuple[AsgiFastStream, Service]:
    ref = load_jurisdiction(settings.jurisdiction_file)
    departments = [contract.department_topic(d.code) for d in ref.departments]
    return build_service(
        NAME,
        settings,
        inbox=store.Inbox.__table__,  # type: ignore[arg-type]
        outbox=store.Outbox.__table__,  # type: ignore[arg-type]
        routes=handlers.routes(departments, settings, ref.timezone),
        unit=handlers.NotifyUnit(),
        strict_topics=[],
        publishes=[contract.NOTIFICATIONS, contract.DEADLETTER, *departments],
        tasks=[handlers.send_pending],
    )
