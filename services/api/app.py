"""Wiring of the api service: the read model's subscribers (like any service) and, beside the
kit's /metrics, /healthz and /readyz, an HTTP API of its own (FastAPI)."""

from __future__ import annotations

from faststream.asgi.types import ASGIApp

from shared import contract
from shared.reference import load_jurisdiction
from shared.service import Service, build_service, with_http
from shared.settings import Settings

from . import console, departments, desk, handlers, monthly, open311, store, unit
from .keys import KeyRing, RateLimits
from .web import Api, http_app

NAME = "api"
# The HTTP API: Open311, the department API, the centre's desk and its monthly report
# (docs/openapi.json is their schema); the console's pages beside them (docs/console.md), outside
# the schema.
ROUTERS = (open311.router, departments.router, desk.router, monthly.router, *console.ROUTERS)


def create_app(settings: Settings) -> tuple[ASGIApp, Service]:
    ref = load_jurisdiction(settings.jurisdiction_file)
    departments = [contract.department_topic(d.code) for d in ref.departments]
    names = {d.code: d.name for d in ref.departments}
    keys = KeyRing(settings.api_keys_file)  # a file that cannot be used stops the service here
    app, svc = build_service(
        NAME,
        settings,
        inbox=store.Inbox.__table__,  # type: ignore[arg-type]
        outbox=store.Outbox.__table__,  # type: ignore[arg-type]
        routes=handlers.routes(departments, names),
        unit=unit.ApiUnit(),
        strict_topics=[],  # it only listens: types it does not know are passed over
        publishes=[
            contract.HOTLINE_CALLS,
            contract.DISPATCH_RESPONSES,
            contract.ORDER_COMMANDS,
            contract.DEADLETTER,
        ],
    )
    api = Api(svc, ref, keys, RateLimits(settings.api_rate_per_second))
    return with_http(app, http_app(api, ROUTERS)), svc
