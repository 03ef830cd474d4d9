"""The centre's desk under /v1/, with a ``centre`` key: orders (filtered, a page at a time), one
order with its dispatches, timeline, alerts, what was sent about it and what notify told whom, the
alerts, the three rates (三率) over the read model, and 改派: a reassignment checked against the
jurisdiction and the read model, then published for dispatch on ``internal.dispatch.commands.v1``
through the outbox."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from shared import contract
from shared.contract import Level, ReassignRequested, ReturnApprove, ReturnRefuse
from shared.logs import get_logger

from . import queries
from .access import reassign_refusal
from .domain import return_refusal
from .forms import Invalid, read_order_filters, reassign_problems
from .keys import ApiKey
from .rates import RATE_WINDOW
from .schemas import (
    AlertPage,
    AlertType,
    ApproveBody,
    DispatchOut,
    OrderDetail,
    OrderOut,
    OrderPage,
    OrderStatus,
    Rates,
    ReassignBody,
    RefuseBody,
    ReturnPage,
    ReturnStatus,
    Sent,
    alert_out,
    dispatch_out,
    errors,
    notification_out,
    order_out,
    rate_rows,
    return_out,
    sent_out,
    timeline_out,
)
from .web import Api, KeyFor, Refusal, api_of, cursor_of

log = get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["desk"])
ApiDep = Annotated[Api, Depends(api_of)]
CentreKey = Annotated[ApiKey, Depends(KeyFor("use the centre's desk"))]
OrderId = Annotated[str, Path(min_length=1, max_length=80)]
Limit = Annotated[int, Query(ge=1, le=200)]
PageCursor = Annotated[str | None, Query(max_length=400, description="next_cursor of a page")]
KEYED = errors(
    e401="no key, or an unknown one",
    e403="not the centre's key",
    e422="a field or filter is invalid (each named)",
    e429="over the key's rate",
)
ONE = KEYED | errors(e404="no such order")
REASSIGN = ONE | errors(e409="the order is not open", e413="the body is over the cap")
DECIDE = KEYED | errors(
    e404="no such return", e409="the return is no longer pending", e413="the body is over the cap"
)
DispatchId = Annotated[str, Path(min_length=1, max_length=100)]


@router.get("/orders", responses=KEYED)
async def list_orders(
    key: CentreKey,
    api: ApiDep,
    status: Annotated[list[OrderStatus] | None, Query(description="any of; repeat it")] = None,
    street: Annotated[str | None, Query(max_length=500)] = None,
    community: Annotated[str | None, Query(max_length=500)] = None,
    category: Annotated[str | None, Query(max_length=500, description="a code or name")] = None,
    level: Level | None = None,
    department: Annotated[str | None, Query(max_length=64, description="the lead's code")] = None,
    overdue: bool | None = None,
    limit: Limit = 50,
    cursor: PageCursor = None,
) -> OrderPage:
    """Orders newest first (by when they were reported)."""
    try:
        filters = read_order_filters(
            api.ref,
            api.streets,
            statuses=tuple(status or ()),
            street=street,
            community=community,
            category=category,
            level=level,
            department=department,
            overdue=overdue,
        )
    except Invalid as exc:
        raise Refusal(422, *exc.problems) from None
    after = cursor_of(cursor)
    async with api.service.engine.connect() as conn:
        page = await queries.orders(conn, filters, limit, after)
    return OrderPage(
        items=[OrderOut(**order_out(r, api.zone, api.department_names)) for r in page.rows],
        next_cursor=page.next.encode() if page.next else None,
    )


@router.get("/orders/{work_order_id}", responses=ONE)
async def get_order(work_order_id: OrderId, key: CentreKey, api: ApiDep) -> OrderDetail:
    """An order's state, dispatches, timeline, alerts, the 改派 and responses sent about it, and
    what notify told whom about it."""
    async with api.service.engine.connect() as conn:
        found = await queries.order(conn, work_order_id)
        if found is None:
            raise Refusal(404, "work_order_id: no such order")
        dispatches, timeline, alerts, sent, notified = await queries.order_parts(conn, work_order_id)
    zone, names = api.zone, api.department_names
    return OrderDetail(
        **order_out(found, zone, names),
        dispatches=[DispatchOut(**dispatch_out(d, zone, names)) for d in dispatches],
        timeline=[timeline_out(t, zone) for t in timeline],
        alerts=[alert_out(a, zone) for a in alerts],
        commands=[sent_out(s, zone) for s in sent],
        notifications=[notification_out(n, zone) for n in notified],
    )


@router.get("/alerts", responses=KEYED)
async def list_alerts(
    key: CentreKey,
    api: ApiDep,
    type: AlertType | None = None,
    area: Annotated[str | None, Query(max_length=500, description="a community or street")] = None,
    limit: Limit = 50,
    cursor: PageCursor = None,
) -> AlertPage:
    """SLA breaches and cluster warnings (工单预警), newest first."""
    after = cursor_of(cursor)
    async with api.service.engine.connect() as conn:
        page = await queries.alerts(conn, type, area, limit, after)
    return AlertPage(
        items=[alert_out(r, api.zone) for r in page.rows],
        next_cursor=page.next.encode() if page.next else None,
    )


@router.get("/rates", responses=KEYED)
async def rates(key: CentreKey, api: ApiDep) -> Rates:
    """三率 by department and by community over the last 30 days: response (signed for by the
    accept-by, over all dispatches), resolution (lead dispatches resolved by the resolve-by, over
    those due) and satisfaction (orders the residents said were (basically) satisfactory, over
    those rated; a department's: the orders it resolved as lead). Null where nothing counts yet."""
    now = datetime.now(UTC)
    since = now - RATE_WINDOW
    async with api.service.engine.connect() as conn:
        by_department, by_community = await queries.rates(conn, since, now)
    return Rates(
        since=since.astimezone(api.zone),
        until=now.astimezone(api.zone),
        departments=rate_rows(by_department, api.department_names),
        communities=rate_rows(by_community, {}),
    )


@router.post("/orders/{work_order_id}/reassign", status_code=202, responses=REASSIGN)
async def reassign(work_order_id: OrderId, body: ReassignBody, key: CentreKey, api: ApiDep) -> Sent:
    """改派: re-tag, re-place or name who handles an open order. Names are checked first (422);
    dispatch cancels what is open and dispatches the order anew."""
    named = reassign_problems(api.ref, body.category, body.community, body.grid, body.lead, body.assist)
    if named:
        raise Refusal(422, *named)
    svc = api.service
    async with svc.engine.connect() as conn:
        found = await queries.order(conn, work_order_id)
    if found is None:
        raise Refusal(404, "work_order_id: no such order")
    refusal = reassign_refusal(found.status)
    if refusal is not None:
        raise Refusal(409, refusal)
    # The contract's ids are at most 64 characters; a key's name may be longer.
    command = ReassignRequested(work_order_id=work_order_id, operator=key.name[:64], **body.model_dump())
    kind = "order.reassign.requested"
    event_id = await api.send(contract.ORDER_COMMANDS, kind, command, work_order_id, None, key)
    log.info("reassignment sent", work_order_id=work_order_id, event_id=event_id, key=key.name)
    return Sent(event_id=event_id, type=kind)


# ---- the review of departments' returns (派单异议审核) ---------------------------------------


@router.get("/returns", responses=KEYED)
async def list_returns(
    key: CentreKey,
    api: ApiDep,
    status: ReturnStatus | None = None,
    limit: Limit = 50,
    cursor: PageCursor = None,
) -> ReturnPage:
    """Departments' returns (退单) and the centre's review of them, newest first; ``pending`` is
    the queue. Not reviewed by its ``review_by``, a return is approved automatically."""
    after = cursor_of(cursor)
    async with api.service.engine.connect() as conn:
        page = await queries.returns(conn, status, limit, after)
    now = datetime.now(UTC)
    return ReturnPage(
        items=[return_out(r, api.zone, api.department_names, now) for r in page.rows],
        next_cursor=page.next.encode() if page.next else None,
    )


async def _pending_return(api: Api, dispatch_id: str) -> str:
    """The order of a return still pending, or the answer saying why it cannot be decided."""
    async with api.service.engine.connect() as conn:
        found = await queries.return_of(conn, dispatch_id)
    if found is None:
        raise Refusal(404, "dispatch_id: no such return")
    refusal = return_refusal(found.status)
    if refusal is not None:
        raise Refusal(409, refusal)
    return str(found.work_order_id)


@router.post("/returns/{dispatch_id}/approve", status_code=202, responses=DECIDE)
async def approve_return(dispatch_id: DispatchId, body: ApproveBody, key: CentreKey, api: ApiDep) -> Sent:
    """The return stands: the order goes to the next candidate of the duty list (or the triage
    desk), or to the departments named. Where nobody is left to take it, dispatch refuses an
    approval that names nobody (shown on the order's commands)."""
    named = reassign_problems(api.ref, None, None, None, body.lead, body.assist)
    if named:
        raise Refusal(422, *named)
    work_order_id = await _pending_return(api, dispatch_id)
    command = ReturnApprove(
        work_order_id=work_order_id,
        dispatch_id=dispatch_id,
        operator=key.name[:64],
        note=body.note or None,  # an empty note is no note
        lead=body.lead,
        assist=body.assist,
    )
    return await _decide(api, key, "order.return.approve", command, work_order_id, dispatch_id)


@router.post("/returns/{dispatch_id}/refuse", status_code=202, responses=DECIDE)
async def refuse_return(dispatch_id: DispatchId, body: RefuseBody, key: CentreKey, api: ApiDep) -> Sent:
    """The dispatch goes back to the department with the note; its time to sign for it starts
    again."""
    work_order_id = await _pending_return(api, dispatch_id)
    command = ReturnRefuse(
        work_order_id=work_order_id, dispatch_id=dispatch_id, operator=key.name[:64], note=body.note
    )
    return await _decide(api, key, "order.return.refuse", command, work_order_id, dispatch_id)


async def _decide(
    api: Api,
    key: ApiKey,
    kind: str,
    command: ReturnApprove | ReturnRefuse,
    work_order_id: str,
    dispatch_id: str,
) -> Sent:
    event_id = await api.send(contract.ORDER_COMMANDS, kind, command, work_order_id, dispatch_id, key)
    log.info("review sent", type=kind, dispatch_id=dispatch_id, event_id=event_id, key=key.name)
    return Sent(event_id=event_id, type=kind)
