"""The console's routes: sign-in, the centre's board, triage queue, orders and rates, a
department's inbox and dispatches, and the public board. Server-rendered pages (Jinja2), a little
JavaScript for live fragments and countdowns, static files served from this package.

Every action goes through the JSON API's own route functions (``departments``' steps, ``desk``'s
改派) with the session's key, so that the checks, the record of what was sent and the event are the
same whichever way a person acts. Not in the OpenAPI document: these answer HTML."""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import jinja2
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError

from shared.logs import get_logger

from .. import departments, desk, queries
from ..access import may
from ..keys import ApiKey
from ..rates import RATE_WINDOW
from ..schemas import (
    AcceptBody,
    ExtendBody,
    ProgressBody,
    ReassignBody,
    RejectBody,
    ResolveBody,
    dispatch_out,
    rate_rows,
)
from ..web import Api, Refusal, api_of, parse_fields
from . import labels, live, views
from .session import COOKIE, Session, Sessions, csrf_ok, same_origin

log = get_logger(__name__)
HERE = Path(__file__).resolve().parent
STATIC = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}
# Every page: nothing but this origin's own scripts, styles and images, no framing.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
CENTRE, DEPARTMENT = "use the centre's desk", "answer dispatches"
PUBLIC_WINDOW = timedelta(days=30)
WEEKS = 8

router = APIRouter(include_in_schema=False)


class Console:
    """What the pages share, made once per app on first use."""

    def __init__(self, api: Api) -> None:
        settings = api.service.settings
        secret = settings.console_secret.get_secret_value().encode() if settings.console_secret else None
        self.sessions = Sessions(
            secret or secrets.token_bytes(32), int(settings.console_session_hours * 3600)
        )
        url = api.service.engine.url.set(drivername="postgresql")
        self.hub = live.Hub(url.render_as_string(hide_password=False))
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(L=labels, timedelta_seconds=lambda s: timedelta(seconds=float(s)))
        self.env.filters.update(
            clock=lambda at, with_date=True: labels.clock(at.astimezone(api.zone) if at else None, with_date),
            iso=lambda at: at.isoformat() if at else "",
            duration=labels.duration,
            percent=labels.percent,
            department=lambda code: api.department_name(code) or "–",
            category=lambda code: (
                api.ref.category_by_code[code].name if code in api.ref.category_by_code else code
            ),
        )


def console_of(request: Request) -> Console:
    state = request.app.state
    if getattr(state, "console", None) is None:
        state.console = Console(api_of(request))
    return state.console  # type: ignore[no-any-return]


@functools.cache
def _static(name: str) -> bytes:
    return (HERE / "static" / name).read_bytes()


class Visitor:
    """Who is asking: the session and its key, if signed in (and the key still stands)."""

    def __init__(self, request: Request, api: Api, console: Console) -> None:
        self.request, self.api, self.console = request, api, console
        self.session: Session | None = None
        self.key: ApiKey | None = None
        found = console.sessions.read(request.cookies.get(COOKIE), time.time())
        current = api.keys.named(found.name) if found else None
        if found is not None and console.sessions.still_valid(
            found, (current[0], current[1].role) if current else None
        ):
            assert current is not None
            self.session, self.key = found, current[1]

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.console.env.get_template(template).render(
            me=self.session, path=self.request.url.path, request_query=self.request.query_params, **context
        )
        return HTMLResponse(html, status, headers=HEADERS)

    def refuse(self, status: int, title: str, *problems: str) -> HTMLResponse:
        return self.render("problem.html.j2", status, title=title, problems=problems)

    def sign_in_first(self) -> Response:
        target = quote(self.request.url.path, safe="/")
        return Response(status_code=303, headers={"Location": f"/console/login?next={target}"} | HEADERS)

    def home(self) -> str:
        return "/console/inbox" if self.session and self.session.department else "/console/"


def visitor(request: Request) -> Visitor:
    return Visitor(request, api_of(request), console_of(request))


Who = Annotated[Visitor, Depends(visitor)]


def _gate(who: Visitor, action: str) -> Response | None:
    """A page for ``action``'s role: sign in first, or 403 for another role."""
    if who.session is None or who.key is None:
        return who.sign_in_first()
    if not may(who.key.role, action):
        return who.refuse(403, "无权访问 Not allowed", f"这一页不属于 {_role_name(who.key.role)}。")
    return None


def _role_name(role: str) -> str:
    return labels.ROLE_NAME.get(role, role)


async def _form(who: Visitor, action: str | None) -> tuple[dict[str, object], Response | None]:
    """A POSTed form, if it comes from this console's own page (Origin, CSRF token), its role may
    do ``action`` and the key is within its rate; else the refusal to answer with."""
    request = who.request
    host = request.headers.get("host")
    if not same_origin(request.headers.get("origin"), request.url.scheme, host):
        return {}, who.refuse(403, "拒绝 Refused", "跨站提交 (a form from another site)。")
    if action is not None:
        gated = _gate(who, action)
        if gated is not None:
            return {}, gated
    fields = parse_fields(await request.body(), request.headers.get("content-type", ""))
    if action is not None:
        assert who.session is not None and who.key is not None
        if not csrf_ok(who.session, fields.get("csrf")):
            return {}, who.refuse(
                403, "拒绝 Refused", "表单已过期，请刷新页面后重试 (the form's token is stale)。"
            )
        if not await who.api.limits.take(who.key):
            return {}, who.refuse(429, "太快了 Too fast", "请稍后再试 (over the key's rate)。")
    return fields, None


def _text(fields: Mapping[str, object], name: str) -> str | None:
    value = fields.get(name)
    return value.strip() or None if isinstance(value, str) else None


def _invalid(exc: ValidationError) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
        for e in exc.errors(include_input=False, include_url=False)
    ]


# ---- sign-in -------------------------------------------------------------------------------------


@router.get("/console/login")
async def login_page(who: Who) -> Response:
    if who.session is not None:
        return Response(status_code=303, headers={"Location": who.home()})
    return who.render("login.html.j2", title="登录 Sign in", next=_next(who.request.query_params.get("next")))


@router.post("/console/login")
async def login(who: Who) -> Response:
    fields, refused = await _form(who, None)
    if refused is not None:
        return refused
    presented = _text(fields, "key")
    key = who.api.keys.find(presented)
    target = _next(_text(fields, "next"))
    if key is None or presented is None:
        return who.render(
            "login.html.j2", 401, title="登录 Sign in", next=target, error="密钥无效 (not a known key)。"
        )
    if not (may(key.role, CENTRE) or may(key.role, DEPARTMENT)):
        return who.render(
            "login.html.j2",
            403,
            title="登录 Sign in",
            next=target,
            error="这个密钥没有控制台 (a channel key)。",
        )
    cookie, session = who.console.sessions.issue(
        key.name, key.role, hashlib.sha256(presented.encode()).digest(), time.time()
    )
    who.session, who.key = session, key
    log.info("console signed in", key=key.name, role=key.role)
    answer = Response(status_code=303, headers={"Location": target or who.home()})
    answer.set_cookie(
        COOKIE,
        cookie,
        max_age=who.console.sessions.lifetime,
        httponly=True,
        samesite="strict",
        secure=who.request.url.scheme == "https",
        path="/",
    )
    return answer


@router.post("/console/logout")
async def logout(who: Who) -> Response:
    if who.session is not None:
        fields, refused = await _form(who, None)
        if refused is not None:
            return refused
        if not csrf_ok(who.session, fields.get("csrf")):
            return who.refuse(403, "拒绝 Refused", "表单已过期 (the form's token is stale)。")
    answer = Response(status_code=303, headers={"Location": "/console/login"})
    answer.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return answer


def _next(target: str | None) -> str | None:
    """Only a path of the console itself: never another site."""
    ok = target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target
    return target if ok else None


# ---- static files --------------------------------------------------------------------------------


@router.get("/console/static/{name}")
async def static(name: str) -> Response:
    kind = STATIC.get(name)
    if kind is None:
        return Response("not found", 404, media_type="text/plain")
    return Response(_static(name), media_type=kind, headers={"Cache-Control": "max-age=300"})


# ---- the centre ----------------------------------------------------------------------------------


async def _board_html(who: Visitor) -> str:
    async with who.api.service.engine.connect() as conn:
        found = await views.board(conn, datetime.now(UTC))
    return who.console.env.get_template("board_live.html.j2").render(board=found, now=datetime.now(UTC))


@router.get("/console/")
async def board(who: Who) -> Response:
    if who.session is not None and who.session.department:
        return Response(status_code=303, headers={"Location": "/console/inbox"})
    gated = _gate(who, CENTRE)
    if gated is not None:
        return gated
    return who.render("board.html.j2", title="总览 Board", live=await _board_html(who))


def _live(who: Visitor, name: str, render: Callable[[], Awaitable[str]]) -> Response:
    return StreamingResponse(
        live.stream(who.console.hub, name, render),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/console/live/board")
async def board_live(who: Who) -> Response:
    gated = _gate(who, CENTRE)
    return gated or _live(who, "update", lambda: _board_html(who))


@router.get("/console/triage")
async def triage(who: Who) -> Response:
    gated = _gate(who, CENTRE)
    if gated is not None:
        return gated
    async with who.api.service.engine.connect() as conn:
        found = await views.triage(conn, set(who.api.ref.triage.values()))
    return who.render("triage.html.j2", title="分拣 Triage", orders=found, **_reassign_choices(who.api))


def _reassign_choices(api: Api) -> dict[str, Any]:
    ref = api.ref
    return {
        "categories": ref.categories,
        "communities": ref.communities,
        "all_departments": ref.departments,
    }


@router.get("/console/orders/{work_order_id}")
async def order(work_order_id: str, who: Who) -> Response:
    gated = _gate(who, CENTRE)
    if gated is not None:
        return gated
    async with who.api.service.engine.connect() as conn:
        found = await queries.order(conn, work_order_id)
        if found is None:
            return who.refuse(404, "没有这个工单 No such order", work_order_id)
        dispatches, timeline, alerts, sent, notified = await queries.order_parts(conn, work_order_id)
    sent_by_id = {s.event_id: s for s in sent}
    return who.render(
        "order.html.j2",
        title=f"工单 {work_order_id}",
        order=found,
        dispatches=dispatches,
        timeline=timeline,
        alerts=alerts,
        sent=sent,
        sent_by_id=sent_by_id,
        notified=notified,
        now=datetime.now(UTC),
        **_reassign_choices(who.api),
    )


@router.post("/console/orders/{work_order_id}/reassign")
async def reassign(work_order_id: str, who: Who) -> Response:
    fields, refused = await _form(who, CENTRE)
    if refused is not None:
        return refused
    assert who.key is not None
    api = who.api
    lead = _department_code(api, _text(fields, "lead"))
    assist = [
        _department_code(api, code) or code
        for code in (_text(fields, "assist") or "").replace("，", ",").split(",")
        if code.strip()
    ]
    try:
        body = ReassignBody(
            category=_text(fields, "category"),
            community=_text(fields, "community"),
            grid=_text(fields, "grid"),
            lead=lead,
            assist=assist,
            note=_text(fields, "note") or "",
        )
        sent = await desk.reassign(work_order_id, body, who.key, api)
    except ValidationError as exc:
        return who.refuse(422, "未发送 Not sent", *_invalid(exc))
    except Refusal as exc:
        return who.refuse(exc.status, "未发送 Not sent", *exc.problems)
    back = (
        "/console/triage" if _text(fields, "back") == "triage" else f"/console/orders/{quote(work_order_id)}"
    )
    return Response(status_code=303, headers={"Location": f"{back}?sent={sent.type}"})


def _department_code(api: Api, value: str | None) -> str | None:
    """A department's code as typed, or its name (the list offers both)."""
    if value is None:
        return None
    by_name = {d.name: d.code for d in api.ref.departments}
    return by_name.get(value, value.split(" ", 1)[0])


@router.get("/console/rates")
async def rates(who: Who) -> Response:
    gated = _gate(who, CENTRE)
    if gated is not None:
        return gated
    api = who.api
    department = who.request.query_params.get("department") or None
    if department is not None and department not in api.ref.department_by_code:
        department = None
    by = who.request.query_params.get("by", "response")
    if by not in ("response", "resolution", "satisfaction"):
        by = "response"
    now = datetime.now(UTC)
    today = now.astimezone(api.zone).date()
    weeks = [today - timedelta(days=today.weekday() + 7 * back) for back in range(WEEKS - 1, -1, -1)]
    async with api.service.engine.connect() as conn:
        by_department, by_community = await queries.rates(conn, now - RATE_WINDOW, now)
        weekly = await views.weekly_rates(conn, weeks, now, api.ref.timezone, department)
    order_by = f"{by}_rate"

    def ranked(rows: list[Any]) -> list[Any]:
        # Unrated rows last; ties by volume, then name.
        return sorted(
            rows,
            key=lambda r: (getattr(r, order_by) is None, -(getattr(r, order_by) or 0), -r.dispatches, r.name),
        )

    series = {
        name: [c.rates()[i] for c in weekly]
        for i, name in enumerate(("response", "resolution", "satisfaction"))
    }
    return who.render(
        "rates.html.j2",
        title="三率 Rates",
        by=by,
        departments=ranked(rate_rows(by_department, api.department_names)),
        communities=ranked(rate_rows(by_community, {})),
        weeks=weeks,
        series=series,
        charts={name: _chart(values, weeks) for name, values in series.items()},
        department=department,
        all_departments=api.ref.departments,
        since=now - RATE_WINDOW,
    )


def _chart(values: list[float | None], weeks: list[date]) -> dict[str, Any]:
    """A line chart's geometry (SVG units: 320 x 120, 0-100% upwards), weeks without a rate
    leaving a gap."""
    width, height, left, top, bottom = 320, 120, 34, 8, 20
    step = (width - left - 8) / max(len(values) - 1, 1)
    points = [
        (left + i * step, top + (1 - v) * (height - top - bottom)) if v is not None else None
        for i, v in enumerate(values)
    ]
    segments: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for p in points:
        if p is None:
            if current:
                segments.append(current)
            current = []
        else:
            current.append(p)
    if current:
        segments.append(current)
    return {
        "width": width,
        "height": height,
        "left": left,
        "top": top,
        "bottom": height - bottom,
        "lines": [" ".join(f"{x:.1f},{y:.1f}" for x, y in s) for s in segments],
        "dots": [(x, y, v) for p, v in zip(points, values, strict=True) if p is not None for x, y in [p]],
        "ticks": [(left + i * step, w.strftime("%m-%d")) for i, w in enumerate(weeks)],
    }


# ---- a department --------------------------------------------------------------------------------


def _dispatches(api: Api, rows: list[Any]) -> list[dict[str, Any]]:
    return [dispatch_out(r, api.zone, api.department_names) | {"row": r} for r in rows]


async def _inbox_html(who: Visitor) -> str:
    assert who.session is not None and who.session.department is not None
    async with who.api.service.engine.connect() as conn:
        found = await views.inbox(conn, who.session.department)
    return who.console.env.get_template("inbox_live.html.j2").render(
        items=_dispatches(who.api, found), me=who.session, now=datetime.now(UTC)
    )


@router.get("/console/inbox")
async def inbox(who: Who) -> Response:
    gated = _gate(who, DEPARTMENT)
    if gated is not None:
        return gated
    assert who.session is not None and who.session.department is not None
    return who.render(
        "inbox.html.j2",
        title="待办 Inbox",
        department_name=who.api.department_name(who.session.department),
        live=await _inbox_html(who),
    )


@router.get("/console/live/inbox")
async def inbox_live(who: Who) -> Response:
    gated = _gate(who, DEPARTMENT)
    return gated or _live(who, "update", lambda: _inbox_html(who))


@router.get("/console/dispatches/{dispatch_id}")
async def dispatch_page(dispatch_id: str, who: Who) -> Response:
    gated = _gate(who, DEPARTMENT)
    if gated is not None:
        return gated
    assert who.session is not None
    async with who.api.service.engine.connect() as conn:
        found = await views.inbox_one(conn, dispatch_id)
        sent = await queries.sent_for(conn, dispatch_id=dispatch_id) if found else []
    # Another department's, or none at all: one answer for both, so that it tells nothing.
    if found is None or found.department != who.session.department:
        return who.refuse(
            403, "无权查看 Not yours", f"{dispatch_id} 不是本部门的派单 (not among your dispatches)。"
        )
    return who.render(
        "dispatch.html.j2",
        title=f"派单 {dispatch_id}",
        d=_dispatches(who.api, [found])[0],
        sent=sent,
        now=datetime.now(UTC),
    )


# Each step's form fields -> the JSON API's body for it (its model names what is wrong).
STEP_FIELDS: dict[str, tuple[type[BaseModel], tuple[str, ...]]] = {
    "accept": (AcceptBody, ("note",)),
    "reject": (RejectBody, ("reason", "note")),
    "progress": (ProgressBody, ("note",)),
    "extend": (ExtendBody, ("resolve_by", "note")),
    "resolve": (ResolveBody, ("result",)),
}


def _step_body(step: str, fields: Mapping[str, object], api: Api) -> BaseModel:
    model, names = STEP_FIELDS[step]
    values: dict[str, object] = {n: v for n in names if (v := _text(fields, n)) is not None}
    if "resolve_by" in values:
        values["resolve_by"] = _local_time(str(values["resolve_by"]), api)
    return model.model_validate(values)


STEP_ROUTES: dict[str, Callable[..., Awaitable[Any]]] = {
    "accept": departments.accept,
    "reject": departments.reject,
    "progress": departments.progress,
    "extend": departments.extend,
    "resolve": departments.resolve,
}


def _local_time(value: str, api: Api) -> datetime | str:
    """A datetime-local field, in the jurisdiction's zone (what the form says it is)."""
    try:
        return datetime.fromisoformat(value).replace(tzinfo=api.zone)
    except ValueError:
        return value  # the body's model names the field


@router.post("/console/dispatches/{dispatch_id}/{step}")
async def answer(dispatch_id: str, step: str, who: Who) -> Response:
    fields, refused = await _form(who, DEPARTMENT)
    if refused is not None:
        return refused
    assert who.key is not None
    if step not in STEP_ROUTES:
        return who.refuse(404, "没有这个操作 No such step", step)
    try:
        body = _step_body(step, fields, who.api)
        sent = await STEP_ROUTES[step](dispatch_id, body, who.key, who.api)
    except ValidationError as exc:
        return who.refuse(422, "未发送 Not sent", *_invalid(exc))
    except Refusal as exc:
        status = 403 if exc.status == 404 else exc.status  # the dispatch page's own answer
        return who.refuse(status, "未发送 Not sent", *exc.problems)
    back = (
        f"/console/dispatches/{quote(dispatch_id)}"
        if _text(fields, "back") == "dispatch"
        else "/console/inbox"
    )
    return Response(status_code=303, headers={"Location": f"{back}?sent={sent.type}"})


# ---- the public board ----------------------------------------------------------------------------

public_router = APIRouter(include_in_schema=False)


@public_router.get("/public/")
async def public(request: Request) -> Response:
    api, console = api_of(request), console_of(request)
    ref = api.ref
    community = request.query_params.get("community") or None
    community = community if community in ref.community_by_name else None
    category = request.query_params.get("category") or None
    category = category if category in ref.category_by_code else None
    now = datetime.now(UTC)
    async with api.service.engine.connect() as conn:
        items, by_community = await views.public(conn, now - PUBLIC_WINDOW, community, category)
    html = console.env.get_template("public.html.j2").render(
        me=None,
        path=request.url.path,
        request_query=request.query_params,
        title="办理公示 Public board",
        items=items,
        by_community=by_community,
        community=community,
        category=category,
        communities=ref.communities,
        categories=ref.categories,
        since=now - PUBLIC_WINDOW,
    )
    return HTMLResponse(html, headers=HEADERS | {"Cache-Control": "max-age=30"})
