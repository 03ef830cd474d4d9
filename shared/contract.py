"""The external event contract v1 as pydantic models: the CloudEvents envelope and every ``data``.

Topic names, types and fields follow the contract document and are fixed; the internal topics
between the services are defined at the end of this module.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

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


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
Urgency = Literal["emergency", "urgent", "normal"]
Level = Literal["property", "grid", "community", "street", "district"]
Channel = Literal["phone", "wechat", "app", "web", "mini_program"]
Status = Literal["new", "dispatched", "accepted", "resolved", "closed", "merged"]


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


class DispatchCancelled(_Data):
    dispatch_id: str
    work_order_id: str
    department: str
    reason: str


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


class DeadlineMoved(_Data):
    """``dispatch.deadline.moved``: an extension (延期) was granted."""

    work_order_id: str
    dispatch_id: str
    resolve_by: AwareDatetime


INTERNAL: dict[tuple[str, str], type[_Data]] = {
    (INTAKE_ORDERS, "intake.order.opened"): OrderOpened,
    (INTAKE_CONTACTS, "intake.contact.recorded"): ContactRecorded,
    (ESCALATION_COMMANDS, "escalation.requested"): EscalationRequested,
    (DISPATCH_DEADLINES, "dispatch.deadline.moved"): DeadlineMoved,
}

_ID_NAMESPACE = uuid.UUID("6f1c7a52-3f0b-4c5e-9d6e-2a7b8c9d0e1f")
_ID_HASH = hashlib.sha1(_ID_NAMESPACE.bytes, usedforsecurity=False)


def derived_id(*parts: str) -> str:
    """Ids of the events we publish derive from their cause, so a replay yields the same ids.

    ``str(uuid.uuid5(_ID_NAMESPACE, "/".join(parts)))``, computed without the uuid module's
    objects: it runs for every event we publish, and those cost more than the hash."""
    digest = _ID_HASH.copy()
    digest.update("/".join(parts).encode())
    b = bytearray(digest.digest()[:16])
    b[6] = (b[6] & 0x0F) | 0x50  # version 5
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def encode_event(
    *,
    type: str,
    source: str,
    subject: str,
    time: datetime | str,
    data: BaseModel | dict[str, Any],
    id: str,
) -> bytes:
    """A CloudEvent in structured JSON mode, the bytes we publish. A model's data is serialised by
    pydantic straight to JSON (nulls kept), without the dict ``model_dump`` would build first.
    ``time`` may come already as RFC 3339 text, for a caller that stamps several events with one."""
    # dict first: a model class's isinstance check goes through ABCMeta, a Python-level call.
    payload = data if isinstance(data, dict) else orjson.Fragment(data.__pydantic_serializer__.to_json(data))
    return orjson.dumps(
        {
            "specversion": SPECVERSION,
            "id": id,
            "source": source,
            "type": type,
            "time": time if isinstance(time, str) else time.isoformat(),
            "subject": subject,
            "datacontenttype": "application/json",
            "data": payload,
        }
    )
