"""Wiring of the dispatch service."""

from __future__ import annotations

from datetime import timedelta

from faststream.asgi import AsgiFastStream

from shared import contract
from shared.reference import load_jurisdiction
from shared.service import Service, build_service
from shared.settings import Settings

from . import handlers, store

NAME = "dispatch"


def create_app(settings: Settings) -> tuple[AsgiFastStream, Service]:
    ref = load_jurisdiction(settings.jurisdiction_file)
    return build_service(
        NAME,
        settings,
        inbox=store.Inbox.__table__,  # type: ignore[arg-type]
        outbox=store.Outbox.__table__,  # type: ignore[arg-type]
        routes=handlers.routes(ref, settings),
        strict_topics=[contract.DISPATCH_RESPONSES, contract.FEEDBACK],
        publishes=[
            contract.WORKORDER_EVENTS,
            contract.DISPATCH_DEADLINES,
            contract.DEADLETTER,
            *(contract.department_topic(d.code) for d in ref.departments),
        ],
        tasks=[handlers.publish_rates],
        unit=handlers.DispatchUnit(timedelta(minutes=settings.cluster_window_minutes)),
    )
