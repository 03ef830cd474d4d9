"""Wiring of the dispatch service."""

from __future__ import annotations

from datetime import timedelta

from faststream.asgi import AsgiFastStream

from shared import contract
from shared.reference import load_jurisdiction
from shared.service import Service, build_service
from shared.settings import Settings

from . import handlers, store
from .rates import publish_rates
from .routing import Policy
from .unit import DispatchUnit

NAME = "dispatch"


def create_app(settings: Settings) -> tuple[AsgiFastStream, Service]:
    ref = load_jurisdiction(settings.jurisdiction_file)
    return build_service(
        NAME,
        settings,
        inbox=store.Inbox.__table__,  # type: ignore[arg-type]
        outbox=store.Outbox.__table__,  # type: ignore[arg-type]
        routes=handlers.routes(Policy.of(ref, settings)),
        strict_topics=[contract.DISPATCH_RESPONSES, contract.FEEDBACK, contract.ORDER_COMMANDS],
        publishes=[
            contract.WORKORDER_EVENTS,
            contract.DISPATCH_DEADLINES,
            contract.DEADLETTER,
            *(contract.department_topic(d.code) for d in ref.departments),
        ],
        tasks=[publish_rates],
        unit=DispatchUnit(timedelta(minutes=settings.cluster_window_minutes)),
    )
