"""The external event contract v1 as pydantic models: the CloudEvents envelope and every ``data``.

Topic names, types and fields follow docs/contract.md and are fixed; the internal topics
between the services are defined at the end of this module. How events are made: ``shared.events``.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

SPECVERSION = "1.0"
CONTENT_TYPE = "application/cloudevents+json"

# Inbound topics.
HOTLINE_CALLS = "hotline.calls.v1"
GRID_REPORTS = "grid.reports.v1"
DISPATCH_RESPONSES = "dispatch.responses.v1"
FEEDBACK = "feedback.v1"
# Outbound topics.
WORKORDER_EVENTS = "workorders.events.v1"
ALERTS = "alerts.v1"
NOTIFICATIONS = "notifications.v1"
DEADLETTER = "deadletter.v1"


def department_topic(department: str) -> str:
    return f"dispatch.{department}.v1"


def is_department_topic(topic: str) -> bool:
    return topic.startswith("dispatch.") and topic.endswith(".v1") and topic != DISPATCH_RESPONSES


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
Urgency = Literal["emergency", "urgent", "normal"]
Level = Literal["property", "grid", "community", "street", "district"]
Channel = Literal["phone", "wechat", "app", "web", "mini_program"]
Status = Literal["new", "dispatched", "accepted", "resolved", "closed", "merged"]
# 诉求类型: 咨询, 求助, 投诉, 举报, 建议.
RequestType = Literal["inquiry", "help", "complaint", "report", "suggestion"]
REQUEST_TYPES: tuple[RequestType, ...] = ("inquiry", "help", "complaint", "report", "suggestion")
# How a closed order was closed: the resident rated it, nobody rated it in time (回访 ended), the
# operator answered it on the call (直接答复), or the grid worker fixed it on the spot.
Closure = Literal["rated", "unrated", "answered_directly", "handled_on_site"]


class _Data(BaseModel):
    # Unknown fields are ignored so that a producer may add fields without breaking us.
    model_config = ConfigDict(extra="ignore", frozen=True)

    @classmethod
    def trusted(cls, **fields: Any) -> dict[str, Any]:
        """The data of an event built from values the service already holds and checked, as the
        model serialises it (every field, in order, defaults filled), without validating them
        again: building and serialising the model costs seven times the dict, on each of the
        events intake publishes per call. JSON-ready values only (no datetimes); unit tests hold
        each use to the model."""
        template, required = _trusted_template(cls)
        if not required <= fields.keys() or not fields.keys() <= template.keys():
            missing, unknown = sorted(required - fields.keys()), sorted(fields.keys() - template.keys())
            raise TypeError(f"{cls.__name__}: missing {missing}, unknown {unknown}")
        return template | fields


@functools.cache
def _trusted_template(model: type[_Data]) -> tuple[dict[str, Any], frozenset[str]]:
    fields = model.model_fields
    template = {
        name: None if f.is_required() else f.get_default(call_default_factory=True)
        for name, f in fields.items()
    }
    return template, frozenset(name for name, f in fields.items() if f.is_required())


class CloudEvent(BaseModel):
    """CloudEvents 1.0, structured JSON mode. Extension attributes are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    source: Annotated[str, StringConstraints(min_length=1)]
    type: Annotated[str, StringConstraints(min_length=1)]
    time: AwareDatetime
    subject: str | None = None
    datacontenttype: str | None = "application/json"
    data: dict[str, Any]


# ---- Inbound ----------------------------------------------------------------------------------


class Caller(_Data):
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = None
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)] | None = None


class Location(_Data):
    street: ShortText | None = None
    community: ShortText | None = None
    grid: ShortText | None = None
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None


class HotlineCall(_Data):
    call_id: Id
    channel: Channel
    content: LongText
    caller: Caller | None = None
    category_hint: ShortText | None = None
    address: ShortText | None = None
    location: Location | None = None
    urgency: Urgency = "normal"
    request_type: RequestType | None = None  # absent: intake tags it from the text
    answered_directly: bool = False  # 直接答复: the operator answered on the call
    # What the operator answered; required when answered_directly (checked even when absent).
    answer: LongText | None = Field(default=None, validate_default=True)

    @field_validator("answer")
    @classmethod
    def _answer_given(cls, answer: str | None, info: ValidationInfo) -> str | None:
        if answer is None and info.data.get("answered_directly"):
            raise ValueError("required when answered_directly is true")
        return answer


class GridReport(_Data):
    report_id: Id
    grid_id: Id
    worker_id: Id
    category: Text
    description: LongText
    address: ShortText | None = None
    urgency: Urgency = "normal"
    handled_on_site: bool = False
    photos: list[Annotated[str, StringConstraints(max_length=2000)]] = Field(default=[], max_length=20)


class _Response(_Data):
    dispatch_id: Id
    work_order_id: Id
    department: Id


class DispatchAccepted(_Response):
    note: str | None = None


class DispatchRejected(_Response):
    reason: Literal["not_our_responsibility", "insufficient_info", "duplicate", "other"]
    note: LongText


class DispatchProgress(_Response):
    note: LongText


class DispatchExtensionRequested(_Response):
    resolve_by: AwareDatetime
    note: str | None = None


class DispatchResolved(_Response):
    result: LongText


class ResidentFeedback(_Data):
    work_order_id: Id
    satisfaction: Literal["satisfied", "basically_satisfied", "dissatisfied"]
    resolved: bool
    comment: str | None = None


# (topic, type) -> data model, for everything the project consumes from outside.
INBOUND: dict[tuple[str, str], type[_Data]] = {
    (HOTLINE_CALLS, "hotline.call.received"): HotlineCall,
    (GRID_REPORTS, "grid.issue.reported"): GridReport,
    (DISPATCH_RESPONSES, "dispatch.accepted"): DispatchAccepted,
    (DISPATCH_RESPONSES, "dispatch.rejected"): DispatchRejected,
    (DISPATCH_RESPONSES, "dispatch.progress"): DispatchProgress,
    (DISPATCH_RESPONSES, "dispatch.extension_requested"): DispatchExtensionRequested,
    (DISPATCH_RESPONSES, "dispatch.resolved"): DispatchResolved,
    (FEEDBACK, "resident.feedback.received"): ResidentFeedback,
}


# ---- Outbound ---------------------------------------------------------------------------------


class MaskedContact(_Data):
    name: str | None = None
    phone: str | None = None


class DispatchAssigned(_Data):
    dispatch_id: str
    work_order_id: str
    department: str
    role: Literal["lead", "assist"]
    level: Level
    category: str
    category_name: str
    summary: str
    address: str | None
    location: dict[str, Any] | None
    urgency: Urgency
    accept_by: AwareDatetime
    resolve_by: AwareDatetime
    contact: MaskedContact | None
    attempt: int
    request_type: RequestType | None = None


class DispatchCancelled(_Data):
    dispatch_id: str
    work_order_id: str
    department: str
    reason: str


class DispatchReturnRefused(_Data):
    """``dispatch.return_refused`` (to the department): the centre refused its return (退单); the
    dispatch is the department's again, with the reviewer's note and a new time to sign for it."""

    dispatch_id: str
    work_order_id: str
    department: str
    note: str
    accept_by: AwareDatetime
    resolve_by: AwareDatetime


class DispatchReminder(_Data):
    dispatch_id: str
    work_order_id: str
    department: str
    deadline: Literal["accept", "resolve"]
    due: AwareDatetime
    overdue: bool


class WorkOrderData(_Data):
    """``data`` of every ``workorders.events.v1`` event; the optional fields belong to some types."""

    work_order_id: str
    status: Status
    level: Level
    category: str
    category_name: str
    street: str | None
    community: str | None
    grid: str | None
    source: Literal["hotline", "grid"]
    caused_by: str
    urgency: Urgency = "normal"
    merged_into: str | None = None
    from_level: Level | None = None
    to_level: Level | None = None
    reason: str | None = None
    dispatches: list[dict[str, Any]] | None = None
    result: str | None = None
    department: str | None = None
    dispatch_id: str | None = None
    request_type: RequestType | None = None
    closure: Closure | None = None  # workorder.closed: how
    satisfaction: Literal["satisfied", "basically_satisfied", "dissatisfied"] | None = None
    feedback_by: AwareDatetime | None = None  # workorder.resolved: unrated after this, it closes
    # The return review (派单异议审核): workorder.return_requested, _approved, _refused.
    return_reason: str | None = None
    note: str | None = None
    review_by: AwareDatetime | None = None
    operator: str | None = None
    automatic: bool | None = None  # approved because nobody reviewed it in time
    accept_by: AwareDatetime | None = None  # workorder.return_refused: the department's new time
    resolve_by: AwareDatetime | None = None  # workorder.return_refused: and to resolve it (added)


class WorkOrderReassigned(WorkOrderData):
    """``workorder.reassigned`` (改派): the centre re-tagged or re-placed the order, or named who
    handles it; the order's fields are as they are after it, and the dispatches follow."""

    operator: str
    note: str


class ClusterDetected(_Data):
    category: str
    street: str | None
    community: str | None
    count: int
    window_minutes: int
    work_order_ids: list[str]


class SlaBreached(_Data):
    work_order_id: str
    department: str
    deadline: Literal["accept", "resolve"]
    due: AwareDatetime
    level: Level


class NotificationRecord(_Data):
    notification_id: str
    work_order_id: str
    audience: Literal["resident", "department", "supervisor"]
    channel: str
    template: str
    attempts: int
    error: str | None = None


class DeadLetter(_Data):
    original_topic: str
    original_partition: int
    original_offset: int
    original_key: str | None
    error: str
    raw: str
    raw_encoding: Literal["utf-8", "base64"] = "utf-8"


# ---- Internal topics (ours to design) ---------------------------------------------------------

# intake -> dispatch: a new work order to dispatch, with what dispatch needs and no personal data.
INTAKE_ORDERS = "internal.intake.orders.v1"
# intake -> notify: the resident's contact in clear; only notify reads it.
INTAKE_CONTACTS = "internal.intake.contacts.v1"
# escalation -> dispatch: raise an order one level (dispatch owns the order's state).
ESCALATION_COMMANDS = "internal.escalation.commands.v1"
# dispatch -> escalation: a granted extension moves a resolve-by clock.
DISPATCH_DEADLINES = "internal.dispatch.deadlines.v1"
# the centre (the api) -> dispatch: commands on an order that dispatch owns, such as 改派.
ORDER_COMMANDS = "internal.dispatch.commands.v1"


class OrderOpened(_Data):
    """``intake.order.opened``: a work order dispatch takes over."""

    work_order_id: str
    source: Literal["hotline", "grid"]
    category: str
    category_name: str
    summary: str
    address: str | None
    location: dict[str, Any] | None
    street: str | None
    community: str | None
    grid: str | None
    property_company: str | None
    urgency: Urgency
    contact: MaskedContact | None
    request_type: RequestType = "help"
    answer: str | None = None  # 直接答复: recorded and closed at once, never dispatched


class ContactRecorded(_Data):
    """``intake.contact.recorded``: who to tell about an order (personal data, internal only). A
    repeat report merged into an order adds its reporter to that order."""

    work_order_id: str
    reporter_id: str
    name: str | None
    phone: str | None
    urgency: Urgency = "normal"  # an emergency is told at night too


class EscalationRequested(_Data):
    """``escalation.requested``: take the order one level up."""

    work_order_id: str
    from_level: Level
    to_level: Level
    reason: str
    dispatch_id: str | None = None


class ReassignRequested(_Data):
    """``order.reassign.requested`` (改派): re-tag (``category``, a code or name), re-place
    (``grid`` code or ``community`` name) and route the order anew, by the duty list or to the
    named ``lead`` and ``assist`` departments; ``operator`` and ``note`` say who and why."""

    work_order_id: Id
    operator: Id
    note: LongText
    category: ShortText | None = None
    community: ShortText | None = None
    grid: ShortText | None = None
    lead: ShortText | None = None
    assist: list[Annotated[str, StringConstraints(max_length=64)]] = Field(default=[], max_length=20)


class DeadlineMoved(_Data):
    """``dispatch.deadline.moved``: an extension (延期) was granted."""

    work_order_id: str
    dispatch_id: str
    resolve_by: AwareDatetime


class ReturnApprove(_Data):
    """``order.return.approve``: the centre lets a department's return (退单) stand; the order goes
    to the next candidate, or to the ``lead`` and ``assist`` departments named (as a 改派)."""

    work_order_id: Id
    dispatch_id: Id
    operator: Id
    note: LongText | None = None
    lead: ShortText | None = None
    assist: list[Annotated[str, StringConstraints(max_length=64)]] = Field(default=[], max_length=20)


class ReturnRefuse(_Data):
    """``order.return.refuse``: the centre sends the dispatch back to the department that returned
    it, with a note saying why; its accept clock starts again."""

    work_order_id: Id
    dispatch_id: Id
    operator: Id
    note: LongText


class ReviewExpired(_Data):
    """``return.review.expired`` (escalation -> dispatch): nobody reviewed a return in time; it is
    approved automatically."""

    work_order_id: str
    dispatch_id: str
    review_by: AwareDatetime


class FeedbackExpired(_Data):
    """``feedback.expired`` (escalation -> dispatch): a resolved order was not rated in time; it
    closes as unrated."""

    work_order_id: str
    feedback_by: AwareDatetime


INTERNAL: dict[tuple[str, str], type[_Data]] = {
    (INTAKE_ORDERS, "intake.order.opened"): OrderOpened,
    (INTAKE_CONTACTS, "intake.contact.recorded"): ContactRecorded,
    (ESCALATION_COMMANDS, "escalation.requested"): EscalationRequested,
    (DISPATCH_DEADLINES, "dispatch.deadline.moved"): DeadlineMoved,
    (ORDER_COMMANDS, "order.reassign.requested"): ReassignRequested,
    (ORDER_COMMANDS, "order.return.approve"): ReturnApprove,
    (ORDER_COMMANDS, "order.return.refuse"): ReturnRefuse,
    (ESCALATION_COMMANDS, "return.review.expired"): ReviewExpired,
    (ESCALATION_COMMANDS, "feedback.expired"): FeedbackExpired,
}
