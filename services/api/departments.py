"""The department API under /v1/dispatches, for department systems without a Kafka client: a
``department:<code>`` key lists and reads its own dispatches, and answers them with the contract's
responses, published on ``dispatch.responses.v1`` through the outbox. Dispatch decides: a response
it refuses shows, with its reason, on the dispatch. Another department's dispatch is as if it did
not exist (404)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from shared import contract
from shared.contract import (
    DispatchAccepted,
    DispatchExtensionRequested,
    DispatchProgress,
    DispatchRejected,
    DispatchResolved,
)
from shared.logs import get_logger

from . import queries
from .access import STEPS, may_see_dispatch, step_refusal
from .keys import ApiKey
from .schemas import (
    AcceptBody,
    DepartmentDispatch,
    DispatchDetail,
    DispatchPage,
    DispatchStatus,
    ExtendBody,
    ProgressBody,
    RejectBody,
    ResolveBody,
    Sent,
    dispatch_out,
    errors,
    order_brief,
    sent_out,
)
from .web import Api, KeyFor, Refusal, api_of, cursor_of

log = get_logger(__name__)
router = APIRouter(prefix="/v1/dispatches", tags=["departments"])
ApiDep = Annotated[Api, Depends(api_of)]
DepartmentKey = Annotated[ApiKey, Depends(KeyFor("answer dispatches"))]
DispatchId = Annotated[str, Path(min_length=1, max_length=100)]
RESPONSES: dict[str, type[BaseModel]] = {
    "dispatch.accepted": DispatchAccepted,
    "dispatch.rejected": DispatchRejected,
    "dispatch.progress": DispatchProgress,
    "dispatch.extension_requested": DispatchExtensionRequested,
    "dispatch.resolved": DispatchResolved,
}
KEYED = errors(
    e401="no key, or an unknown one",
    e403="not a department's key",
    e422="a field or filter is invalid (each named)",
    e429="over the key's rate",
)
ONE = KEYED | errors(e404="no such dispatch among the department's")
STEP = ONE | errors(e409="the dispatch's status forbids this step", e413="the body is over the cap")


@router.get("", responses=KEYED)
async def list_dispatches(
    key: DepartmentKey,
    api: ApiDep,
    status: Annotated[list[DispatchStatus] | None, Query(description="any of; repeat it")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=400, description="next_cursor of a page")] = None,
) -> DispatchPage:
    """The department's own dispatches, newest first."""
    after = cursor_of(cursor)
    department = key.role.removeprefix("department:")
    async with api.service.engine.connect() as conn:
        page = await queries.department_dispatches(conn, department, status or [], limit, after)
    return DispatchPage(
        items=[_department_dispatch(api, r) for r in page.rows],
        next_cursor=page.next.encode() if page.next else None,
    )


@router.get("/{dispatch_id}", responses=ONE)
async def get_dispatch(dispatch_id: DispatchId, key: DepartmentKey, api: ApiDep) -> DispatchDetail:
    """One dispatch, with the responses sent for it through this API and dispatch's refusals."""
    async with api.service.engine.connect() as conn:
        found = await _own(conn, key, dispatch_id)
        sent = await queries.sent_for(conn, dispatch_id=dispatch_id)
    return DispatchDetail(
        **_department_dispatch(api, found).model_dump(), responses=[sent_out(r, api.zone) for r in sent]
    )


@router.post("/{dispatch_id}/accept", status_code=202, responses=STEP)
async def accept(dispatch_id: DispatchId, body: AcceptBody, key: DepartmentKey, api: ApiDep) -> Sent:
    """签收 / 报到: the department takes it."""
    return await _respond(api, key, dispatch_id, "accept", body.model_dump(exclude_none=True))


@router.post("/{dispatch_id}/reject", status_code=202, responses=STEP)
async def reject(dispatch_id: DispatchId, body: RejectBody, key: DepartmentKey, api: ApiDep) -> Sent:
    """退单: not ours, or not enough to act on. A department returns an order once."""
    return await _respond(api, key, dispatch_id, "reject", body.model_dump())


@router.post("/{dispatch_id}/progress", status_code=202, responses=STEP)
async def progress(dispatch_id: DispatchId, body: ProgressBody, key: DepartmentKey, api: ApiDep) -> Sent:
    """An update on the way."""
    return await _respond(api, key, dispatch_id, "progress", body.model_dump())


@router.post("/{dispatch_id}/extend", status_code=202, responses=STEP)
async def extend(dispatch_id: DispatchId, body: ExtendBody, key: DepartmentKey, api: ApiDep) -> Sent:
    """延期: granted once per dispatch, within the policy's longest extension (dispatch decides)."""
    return await _respond(api, key, dispatch_id, "extend", body.model_dump(exclude_none=True))


@router.post("/{dispatch_id}/resolve", status_code=202, responses=STEP)
async def resolve(dispatch_id: DispatchId, body: ResolveBody, key: DepartmentKey, api: ApiDep) -> Sent:
    """办结: what was done."""
    return await _respond(api, key, dispatch_id, "resolve", body.model_dump())


async def _respond(api: Api, key: ApiKey, dispatch_id: str, step: str, fields: dict[str, Any]) -> Sent:
    """The step as the contract's response, if the read model does not already know it cannot
    apply (409): its row and its event staged in one transaction, the event id answered."""
    svc = api.service
    async with svc.engine.connect() as conn:
        found = await _own(conn, key, dispatch_id)
    refusal = step_refusal(found.status, step)
    if refusal is not None:
        raise Refusal(409, refusal)
    kind = STEPS[step]
    ids = {"dispatch_id": found.id, "work_order_id": found.work_order_id, "department": found.department}
    data = RESPONSES[kind].model_validate(ids | fields)
    event_id = await api.send(contract.DISPATCH_RESPONSES, kind, data, found.work_order_id, found.id, key)
    log.info("response sent", type=kind, dispatch_id=found.id, event_id=event_id, key=key.name)
    return Sent(event_id=event_id, type=kind)


async def _own(conn: AsyncConnection, key: ApiKey, dispatch_id: str) -> Row[Any]:
    """The dispatch, if it is the key's department's (404 otherwise, as if it did not exist)."""
    found = await queries.dispatch(conn, dispatch_id)
    if found is None or not may_see_dispatch(key.role, found.department):
        raise Refusal(404, "dispatch_id: no such dispatch")
    return found


def _department_dispatch(api: Api, r: Any) -> DepartmentDispatch:
    return DepartmentDispatch(
        **dispatch_out(r, api.zone, api.department_names), order=order_brief(r, api.zone)
    )
