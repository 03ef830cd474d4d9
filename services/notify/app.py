"""Wiring of the notify service."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from shared import contract
from shared.service import Service, build_service
from shared.settings import Settings

from . import handlers, store

NAME = "notify"


def create_app(settings: Settings) -> tuple[AsgiFastStream, Service]:
    return build_service(
        NAME,
        settings,
        inbox=store.Inbox.__table__,  # type: ignore[arg-type]
        outbox=store.Outbox.__table__,  # type: ignore[arg-type]
        routes=handlers.routes(),
        strict_topics=[],
        publishes=[contract.NOTIFICATIONS, contract.DEADLETTER],
        tasks=[handlers.send_pending],
    )
