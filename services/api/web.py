"""The api's HTTP side, whatever the routes: the FastAPI app, its errors (in Open311's form,
``[{"code", "description"}]``, under /open311/; elsewhere ``{"detail": ["field: message", …]}``),
the body cap, keys and rate limits, and a count of answers. The routes are in their own modules:
``open311``, ``departments`` (the department API), ``desk`` (the centre's)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, cast
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import Counter
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import metrics
from shared.messaging import outbox_message, stage
from shared.reference import Jurisdiction
from shared.service import Service

from . import store
from .access import may
from .keys import ApiKey, KeyRing, RateLimits
from .queries import Cursor

ANSWERS = Counter(
    "whistle_api_requests",
    "HTTP requests the api answered, by route (its template) and status code",
    ["route", "code"],
    registry=metrics.REGISTRY,
)
# A body over the cap is still read (and dropped) up to this many times the cap, so that the client
# hears the 413: a server that closes on unread bytes resets the connection under the answer.
DRAIN_FACTOR = 16
# FastAPI's 400 for a body it failed to read for a model (other than as invalid JSON).
UNPARSED_BODY = "There was an error parsing the body"


@dataclass(frozen=True)
class Api:
    """What the routes work with, on ``app.state.api``."""

    service: Service
    ref: Jurisdiction
    keys: KeyRing
    limits: RateLimits

    async def publish(
        self,
        topic: str,
        key: str,
        type: str,
        data: BaseModel | dict[str, Any],
        *,
        id: str,
        time: datetime,
        record: Callable[[AsyncConnection], Awaitable[None]],
    ) -> None:
        """The one way the api publishes: what ``record`` writes and the event, staged in one
        transaction (the outbox), then the relay woken."""
        svc = self.service
        event = outbox_message(topic, key, type, data, source=svc.consumer.source, time=time, id=id)
        async with svc.engine.begin() as conn:
            await record(conn)
            await stage(conn, svc.consumer.outbox, [event])
        svc.relay.notify()

    async def send(
        self, topic: str, type: str, data: BaseModel, work_order_id: str, dispatch_id: str | None, key: ApiKey
    ) -> str:
        """A response or a command on a key's behalf, recorded as sent (its refusal, if dispatch
        refuses it, is matched to it by event id); returns the event id."""
        event_id, now = str(uuid.uuid4()), datetime.now(UTC)
        row = {
            "event_id": event_id,
            "topic": topic,
            "type": type,
            "work_order_id": work_order_id,
            "dispatch_id": dispatch_id,
            "key_name": key.name,
            "sent_at": now,
        }
        await self.publish(
            topic, work_order_id, type, data, id=event_id, time=now, record=lambda c: store.add_sent(c, row)
        )
        return event_id

    @functools.cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.ref.timezone)

    @functools.cached_property
    def department_names(self) -> dict[str, str]:
        return {d.code: d.name for d in self.ref.departments}

    @functools.cached_property
    def streets(self) -> frozenset[str]:
        return frozenset(street.name for street, _ in self.ref.communities)

    def department_name(self, code: str | None) -> str | None:
        department = self.ref.department_by_code.get(code or "")
        return department.name if department else code


def api_of(request: Request) -> Api:
    return cast(Api, request.app.state.api)


class Refusal(Exception):
    """An answer with an error: one problem (``field: message``) per entry."""

    def __init__(self, status: int, *problems: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__("; ".join(problems))
        self.status, self.problems, self.headers = status, problems, dict(headers or {})


def problems(status: int, descriptions: Iterable[str], headers: Mapping[str, str] | None = None) -> Response:
    body = orjson.dumps([{"code": status, "description": d} for d in descriptions])
    return Response(body, status, headers=dict(headers or {}), media_type="application/json")


def answer(
    request: Request, status: int, descriptions: Iterable[str], headers: Mapping[str, str] | None = None
) -> Response:
    """An error in the form of the API it is about: Open311's under /open311/, else ``detail``."""
    if _open311(request):
        return problems(status, descriptions, headers)
    body = orjson.dumps({"detail": list(descriptions)})
    return Response(body, status, headers=dict(headers or {}), media_type="application/json")


def _open311(request: Request) -> bool:
    return request.url.path.startswith("/open311/")


async def _refused(request: Request, exc: Exception) -> Response:
    refusal = cast(Refusal, exc)
    return answer(request, refusal.status, refusal.problems, refusal.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    error = cast(HTTPException, exc)
    if error.status_code == 404 and request.url.path.endswith(".xml") and _open311(request):
        return problems(404, ["format: only .json is served"])
    if error.status_code == 400 and error.detail == UNPARSED_BODY:
        # FastAPI's for a JSON body it could not even decode (not UTF-8): as unreadable as invalid JSON.
        return answer(request, 400 if _open311(request) else 422, ["body: not valid JSON"])
    what = {404: "no such resource", 405: "method not allowed here"}.get(error.status_code, str(error.detail))
    return answer(request, error.status_code, [what], error.headers)


async def _invalid(request: Request, exc: Exception) -> Response:
    """A field FastAPI could not read: 400 as Open311 says, 422 elsewhere; never the value."""
    errors = cast(RequestValidationError, exc).errors()
    named = [
        "body: not valid JSON"  # its place in the text is no field's name
        if e["type"] == "json_invalid"
        else f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}"
        for e in errors
    ]
    return answer(request, 400 if _open311(request) else 422, named)


async def _failed(request: Request, exc: Exception) -> Response:
    return answer(request, 500, ["the service failed to answer; see its log"])


class BodyCap:
    """Every route's body is capped at ``cap`` bytes (413), whoever reads it: a route itself or
    FastAPI for a model. Over the cap it is still read, and dropped, up to ``DRAIN_FACTOR`` times
    the cap before the refusal, so that the client hears it; never more than the cap is kept."""

    def __init__(self, app: ASGIApp, cap: int) -> None:
        self.app, self.cap = app, cap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        await self.app(scope, _Capped(receive, self.cap, int(declared) if declared.isdigit() else 0), send)


class _Capped:
    """A request's ``receive``, counting the body's bytes."""

    def __init__(self, receive: Receive, cap: int, declared: int) -> None:
        self.receive, self.cap, self.declared, self.size = receive, cap, declared, 0

    async def __call__(self) -> Message:
        if self.declared > self.cap * DRAIN_FACTOR:
            raise self._refusal()
        message = await self.receive()
        if message["type"] != "http.request":
            return message
        self.size += len(message.get("body", b""))
        if self.size <= self.cap:
            return message
        while message.get("more_body") and self.size <= self.cap * DRAIN_FACTOR:
            message = await self.receive()
            self.size += len(message.get("body", b""))
        raise self._refusal()

    def _refusal(self) -> HTTPException:
        # An HTTPException: FastAPI passes it on from a body it reads, to the handlers above.
        return HTTPException(413, f"body: larger than {self.cap} bytes")


class RefuseNul:
    """PostgreSQL's text cannot hold a NUL character: a path or query value with one is refused
    here, naming it, before any route reads it (Open311's 400, else 422), not failed in a query."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = _nul(scope) if scope["type"] == "http" else None
        if problem is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        await answer(request, 400 if _open311(request) else 422, [problem])(scope, receive, send)


def _nul(scope: Scope) -> str | None:
    if "\x00" in scope["path"]:
        return "path: holds a NUL character"
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if "\x00" in value or "\x00" in name:
            return f"{name.replace(chr(0), '')}: holds a NUL character"
    return None


class _Status:
    """Notes the status code of an answer as it is sent."""

    def __init__(self, send: Send) -> None:
        self.send, self.code = send, 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.code = message["status"]
        await self.send(message)


class CountAnswers:
    """``whistle_api_requests_total{route, code}``: by the route's template, never the path (which
    holds ids)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = _Status(send)
        try:
            await self.app(scope, receive, status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            ANSWERS.labels(route, str(status.code)).inc()


def http_app(api: Api | None, routers: Iterable[APIRouter]) -> FastAPI:
    """The FastAPI app of the api service (``shared.service.with_http`` serves it beside the kit's
    endpoints); without ``api``, only for its schema. No docs pages: they would load scripts from a
    CDN; the schema is /openapi.json (and docs/openapi.json)."""
    app = FastAPI(title="Whistle API", version="1", docs_url=None, redoc_url=None)
    app.state.api = api
    app.add_exception_handler(Refusal, _refused)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(Exception, _failed)
    if api is not None:
        app.add_middleware(BodyCap, cap=api.service.settings.api_max_body_bytes)
    app.add_middleware(RefuseNul)
    app.add_middleware(CountAnswers)  # outermost: it counts the body cap's refusals too
    for router in routers:
        app.include_router(router)
    return app


# ---- what the routes share -------------------------------------------------------------------


def parse_fields(body: bytes, content_type: str) -> dict[str, object]:
    """A form (``application/x-www-form-urlencoded``, UTF-8, as Open311 posts) or a JSON object,
    as fields; the first of a repeated field counts."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            fields = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise Refusal(400, "body: not valid JSON") from None
        if not isinstance(fields, dict):
            raise Refusal(400, "body: expected a JSON object")
        return fields
    if kind not in ("application/x-www-form-urlencoded", ""):
        raise Refusal(415, "Content-Type: expected application/x-www-form-urlencoded or application/json")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
    except UnicodeDecodeError:
        raise Refusal(400, "body: not UTF-8") from None
    except ValueError:
        raise Refusal(400, "body: more than 200 fields") from None
    found: dict[str, object] = {}
    for name, value in pairs:
        found.setdefault(name, value)
    return found


def presented_key(request: Request, fields: Mapping[str, object] | None = None) -> str | None:
    """``Authorization: Bearer <key>``, else an ``api_key`` field (Open311's way)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    key = (fields or {}).get("api_key")
    return key.strip() if isinstance(key, str) and key.strip() else None


async def authorize(api: Api, presented: str | None, action: str, field: str = "api_key") -> ApiKey:
    """The key presented, if it is known (401), its role may do ``action`` (403, ``domain.MAY``)
    and it is within its rate (429); ``field`` names where a key is presented."""
    bearer = {"WWW-Authenticate": "Bearer"}
    if presented is None:
        raise Refusal(401, f"{field}: required", headers=bearer)
    key = api.keys.find(presented)
    if key is None:
        raise Refusal(401, f"{field}: not a known key", headers=bearer)
    if not may(key.role, action):
        raise Refusal(403, f"{field}: a {key.role} key may not {action}")
    if not await api.limits.take(key):
        raise Refusal(
            429, f"{field}: over {api.limits.rate:g} requests a second", headers={"Retry-After": "1"}
        )
    return key


_BEARER = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer <key>`")


class KeyFor:
    """A dependency: the Bearer key presented, if it may do ``action`` (``authorize``)."""

    def __init__(self, action: str) -> None:
        self.action = action

    async def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> ApiKey:
        presented = credentials.credentials.strip() if credentials else None
        return await authorize(api_of(request), presented or None, self.action, "Authorization")


def cursor_of(value: str | None) -> Cursor | None:
    """A page's ``cursor`` parameter (422 unless this API gave it)."""
    try:
        return Cursor.decode(value) if value is not None else None
    except ValueError as exc:
        raise Refusal(422, str(exc)) from None
