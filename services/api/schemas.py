"""What the department API and the centre's desk read and answer (``/v1/``): request bodies with
the contract's bounds, answers built from the read model's rows (times in the jurisdiction's zone;
summaries, addresses and notes come masked from the read model), and the error form."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from shared.contract import Level

from .access import steps_from
from .rates import RateCounts


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("holds a NUL character")  # PostgreSQL's text cannot, nor dispatch's
    return value


# The contract's bounds: a required note or result 1..4000 characters, trimmed; names up to 500.
LongText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000), AfterValidator(_no_nul)
]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000), AfterValidator(_no_nul)]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), AfterValidator(_no_nul)
]
Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
DispatchStatus = Literal["assigned", "accepted", "returned", "ended", "resolved", "cancelled"]
OrderStatus = Literal["new", "dispatched", "accepted", "resolved", "closed", "merged"]
ReturnStatus = Literal["pending", "approved", "refused", "cancelled"]
AlertType = Literal["alert.sla_breached", "alert.cluster_detected"]
Audience = Literal["resident", "department", "supervisor"]
Reason = Literal["not_our_responsibility", "insufficient_info", "duplicate", "other"]


class Errors(BaseModel):
    detail: list[str] = Field(description="one problem a line, `field: message` (never the value)")


def errors(**codes: str) -> dict[int | str, dict[str, Any]]:
    """The error answers of a route, for the OpenAPI document: ``errors(e401="…")``."""
    return {int(code[1:]): {"model": Errors, "description": what} for code, what in codes.items()}


# ---- request bodies ----------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is named, not ignored


class AcceptBody(_Body):
    note: Note | None = None


class RejectBody(_Body):
    reason: Reason
    note: LongText


class ProgressBody(_Body):
    note: LongText


class ExtendBody(_Body):
    resolve_by: AwareDatetime = Field(description="RFC 3339, later than the current resolve-by")
    note: Note | None = None


class ResolveBody(_Body):
    result: LongText = Field(description="what was done")


class ReassignBody(_Body):
    """改派: any of a category, a place and the departments, and why."""

    category: Name | None = Field(None, description="a category's code or name")
    community: Name | None = Field(None, description="a community's name")
    grid: Name | None = Field(None, description="a grid's code (it wins over community)")
    lead: Code | None = Field(None, description="the lead department's code")
    assist: list[Code] = Field([], max_length=20, description="assisting departments' codes")
    note: LongText


class ApproveBody(_Body):
    """派单异议审核: the return stands; the order goes on, or to the departments named."""

    note: Note | None = None
    lead: Code | None = Field(None, description="the lead department's code (else the duty list decides)")
    assist: list[Code] = Field([], max_length=20, description="assisting departments' codes")


class RefuseBody(_Body):
    """派单异议审核: the dispatch goes back to the department, with why."""

    note: LongText


# ---- answers -----------------------------------------------------------------------------------


class Sent(BaseModel):
    """What was published (202): dispatch decides; a refusal shows on the dispatch or order."""

    event_id: str
    type: str


class Refused(BaseModel):
    reason: str = Field(description="dispatch's dead letter's error")
    at: datetime


class SentOut(BaseModel):
    event_id: str
    type: str
    dispatch_id: str | None
    key: str = Field(description="the name of the key that sent it")
    sent_at: datetime
    refused: Refused | None = Field(description="null unless dispatch refused it")


class DispatchOut(BaseModel):
    dispatch_id: str
    work_order_id: str
    department: str | None
    department_name: str | None
    role: str | None
    level: str | None
    status: DispatchStatus
    overdue: bool
    assigned_at: datetime | None
    accept_by: datetime | None
    resolve_by: datetime | None
    accepted_at: datetime | None
    resolved_at: datetime | None
    steps: list[str] = Field(description="what the department may do now, as the read model has it")


class OrderBrief(BaseModel):
    """What a department sees of the order its dispatch is about."""

    status: OrderStatus
    level: str | None
    category: str | None
    category_name: str | None
    urgency: str | None
    street: str | None
    community: str | None
    grid: str | None
    summary: str | None = Field(description="masked")
    address: str | None = Field(description="masked")
    lat: float | None
    lon: float | None
    requested_at: datetime | None


class DepartmentDispatch(DispatchOut):
    order: OrderBrief


class DispatchDetail(DepartmentDispatch):
    responses: list[SentOut] = Field(description="what this API sent for it, oldest first")


class DispatchPage(BaseModel):
    items: list[DepartmentDispatch]
    next_cursor: str | None = Field(description="for the next page; null on the last")


class OrderOut(BaseModel):
    id: str
    status: OrderStatus
    level: Level | None
    category: str | None
    category_name: str | None
    urgency: str | None
    source: str | None
    street: str | None
    community: str | None
    grid: str | None
    summary: str | None = Field(description="masked")
    address: str | None = Field(description="masked")
    lat: float | None
    lon: float | None
    lead_department: str | None
    lead_department_name: str | None
    resolve_by: datetime | None
    overdue: bool
    status_notes: str | None
    merged_into: str | None
    requested_at: datetime | None
    updated_at: datetime | None


class TimelineOut(BaseModel):
    event_id: str
    type: str
    status: str
    level: str
    at: datetime
    caused_by: str
    detail: dict[str, Any] | None


class AlertOut(BaseModel):
    id: str
    type: AlertType
    area: str | None
    at: datetime
    work_order_id: str | None
    data: dict[str, Any]


class NotificationOut(BaseModel):
    """What notify told whom about the order, as its newest event has it (never the recipient)."""

    type: Literal["sent", "failed"]
    audience: Audience
    channel: str
    template: str
    attempts: int
    error: str | None = Field(description="masked; null unless it failed")
    at: datetime


class OrderDetail(OrderOut):
    dispatches: list[DispatchOut]
    timeline: list[TimelineOut] = Field(description="every lifecycle event, oldest first")
    alerts: list[AlertOut]
    commands: list[SentOut] = Field(description="改派 and responses sent through this API")
    notifications: list[NotificationOut] = Field(description="one per notification, newest last")


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None


class AlertPage(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None


class ReturnOut(BaseModel):
    """A department's return (退单) under the centre's review, by its dispatch."""

    id: str = Field(description="the dispatch's id")
    work_order_id: str
    department: str | None
    department_name: str | None
    reason: str | None = Field(description="the department's reason code")
    note: str | None = Field(description="the department's note, masked")
    requested_at: datetime | None
    review_by: datetime | None = Field(description="not reviewed by then, it is approved automatically")
    overdue: bool = Field(description="pending past its review_by")
    status: ReturnStatus = Field(description="the decision; cancelled: the order moved on first")
    decided_at: datetime | None
    operator: str | None = Field(description="who decided: a centre key's name, or system")
    automatic: bool | None = Field(description="approved because nobody reviewed it in time")
    decision_note: str | None = Field(description="the reviewer's note, masked")


class ReturnPage(BaseModel):
    items: list[ReturnOut]
    next_cursor: str | None


class RateRow(BaseModel):
    name: str = Field(description="a department's code, or a community's name")
    display_name: str
    dispatches: int
    signed_in_time: int
    response_rate: float | None = Field(description="signed for by accept-by / dispatches")
    due: int
    resolved_in_time: int
    resolution_rate: float | None = Field(description="lead resolved by resolve-by / lead due")
    rated: int
    satisfied: int
    satisfaction_rate: float | None = Field(description="(basically) satisfied / rated")


class Rates(BaseModel):
    since: datetime
    until: datetime
    departments: list[RateRow]
    communities: list[RateRow]


# ---- from rows ---------------------------------------------------------------------------------


def local(at: datetime | None, zone: ZoneInfo) -> datetime | None:
    return at.astimezone(zone) if at else None


def dispatch_out(r: Any, zone: ZoneInfo, names: dict[str, str]) -> dict[str, Any]:
    """A dispatch row's fields (``DispatchOut``); the caller adds what its answer holds more."""
    return {
        "dispatch_id": r.id,
        "work_order_id": r.work_order_id,
        "department": r.department,
        "department_name": names.get(r.department or "", r.department),
        "role": r.role,
        "level": r.level,
        "status": r.status,
        "overdue": r.overdue,
        "assigned_at": local(r.assigned_at, zone),
        "accept_by": local(r.accept_by, zone),
        "resolve_by": local(r.resolve_by, zone),
        "accepted_at": local(r.accepted_at, zone),
        "resolved_at": local(r.resolved_at, zone),
        "steps": steps_from(r.status),
    }


def order_brief(r: Any, zone: ZoneInfo) -> OrderBrief:
    """From a dispatch row joined to its order (the order's columns prefixed ``order_``)."""
    return OrderBrief(
        status=r.order_status,
        level=r.order_level,
        category=r.order_category,
        category_name=r.order_category_name,
        urgency=r.order_urgency,
        street=r.order_street,
        community=r.order_community,
        grid=r.order_grid,
        summary=r.order_summary,
        address=r.order_address,
        lat=r.order_lat,
        lon=r.order_lon,
        requested_at=local(r.order_requested_at, zone),
    )


def order_out(r: Any, zone: ZoneInfo, names: dict[str, str]) -> dict[str, Any]:
    fields = {name: getattr(r, name) for name in OrderOut.model_fields if hasattr(r, name)}
    return fields | {
        "lead_department_name": names.get(r.lead_department or "", r.lead_department),
        "resolve_by": local(r.resolve_by, zone),
        "requested_at": local(r.requested_at, zone),
        "updated_at": local(r.updated_at, zone),
    }


def sent_out(r: Any, zone: ZoneInfo) -> SentOut:
    refused = Refused(reason=r.refusal, at=r.refused_at.astimezone(zone)) if r.refusal else None
    return SentOut(
        event_id=r.event_id,
        type=r.type,
        dispatch_id=r.dispatch_id,
        key=r.key_name,
        sent_at=r.sent_at.astimezone(zone),
        refused=refused,
    )


def timeline_out(r: Any, zone: ZoneInfo) -> TimelineOut:
    return TimelineOut(
        event_id=r.event_id,
        type=r.type,
        status=r.status,
        level=r.level,
        at=r.at.astimezone(zone),
        caused_by=r.caused_by,
        detail=r.detail,
    )


def alert_out(r: Any, zone: ZoneInfo) -> AlertOut:
    return AlertOut(
        id=r.id,
        type=r.type,
        area=r.area,
        at=r.at.astimezone(zone),
        work_order_id=r.work_order_id,
        data=r.data,
    )


def notification_out(r: Any, zone: ZoneInfo) -> NotificationOut:
    return NotificationOut(
        type=r.type,
        audience=r.audience,
        channel=r.channel,
        template=r.template,
        attempts=r.attempts,
        error=r.error,
        at=r.at.astimezone(zone),
    )


def return_out(r: Any, zone: ZoneInfo, names: dict[str, str], now: datetime) -> ReturnOut:
    return ReturnOut(
        id=r.dispatch_id,
        work_order_id=r.work_order_id,
        department=r.department,
        department_name=names.get(r.department or "", r.department),
        reason=r.reason,
        note=r.note,
        requested_at=local(r.requested_at, zone),
        review_by=local(r.review_by, zone),
        overdue=r.status == "pending" and r.review_by is not None and r.review_by < now,
        status=r.status,
        decided_at=local(r.decided_at, zone),
        operator=r.operator,
        automatic=r.automatic,
        decision_note=r.decision_note,
    )


def rate_rows(counts: dict[str, RateCounts], names: dict[str, str]) -> list[RateRow]:
    rows = []
    for name, c in counts.items():
        response, resolution, satisfaction = c.rates()
        rows.append(
            RateRow(
                name=name,
                display_name=names.get(name, name),
                dispatches=c.dispatches,
                signed_in_time=c.signed_in_time,
                response_rate=response,
                due=c.due,
                resolved_in_time=c.resolved_in_time,
                resolution_rate=resolution,
                rated=c.rated,
                satisfied=c.satisfied,
                satisfaction_rate=satisfaction,
            )
        )
    return rows
