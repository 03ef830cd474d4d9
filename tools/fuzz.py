"""Fuzzed input on every topic the services consume: Hypothesis draws bad messages (malformed
JSON, wrong types, huge and empty fields, control and non-UTF-8 bytes, deep nesting, valid
envelopes with absurd data), each with the field its dead letter must name; ``run`` sends them to
a running stack interleaved with valid calls and checks that every bad one is dead-lettered
naming its field and every valid call flows.

    .venv/bin/python -m tools.fuzz --messages 10000      # against the stack of the environment

The tests use the strategies in process (``tests/unit/test_fuzz.py``) and ``run`` on a stack of
their own (``tests/integration/test_fuzz.py``, ``FUZZ_MESSAGES``); ``make chaos`` calls ``run``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, get_args

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from shared import contract
from shared.contract import (
    ClusterDetected,
    ContactRecorded,
    DeadLetter,
    DeadlineMoved,
    DispatchAccepted,
    DispatchAssigned,
    DispatchCancelled,
    DispatchExtensionRequested,
    DispatchProgress,
    DispatchRejected,
    DispatchReminder,
    DispatchResolved,
    EscalationRequested,
    FeedbackExpired,
    GridReport,
    HotlineCall,
    NotificationRecord,
    OrderOpened,
    ReassignRequested,
    ResidentFeedback,
    ReturnApprove,
    ReturnRefuse,
    ReviewExpired,
    SlaBreached,
    WorkOrderData,
    WorkOrderReassigned,
)
from shared.messaging import HEADERS, client_options
from shared.settings import Settings

DEPARTMENT = "dispatch.{}.v1"  # a department's topic, filled with a department code when drawn
# Topics where an unknown type is the producer's error (dead-lettered); elsewhere it is skipped.
STRICT_TOPICS = frozenset(
    {
        contract.HOTLINE_CALLS,
        contract.GRID_REPORTS,
        contract.DISPATCH_RESPONSES,
        contract.FEEDBACK,
        contract.ORDER_COMMANDS,
    }
)
LIFECYCLE_TYPES = (
    "workorder.created",
    "workorder.merged",
    "workorder.dispatched",
    "workorder.accepted",
    "workorder.escalated",
    "workorder.resolved",
    "workorder.reopened",
    "workorder.closed",
    "workorder.return_requested",
    "workorder.return_approved",
    "workorder.return_refused",
)
# Every (topic, type) some service consumes, with the model of its data (a unit test holds this to
# the services' routes).
TARGETS: tuple[tuple[str, str, type[BaseModel]], ...] = (
    *((topic, kind, model) for (topic, kind), model in contract.INBOUND.items()),
    *((topic, kind, model) for (topic, kind), model in contract.INTERNAL.items()),
    *((contract.WORKORDER_EVENTS, kind, WorkOrderData) for kind in LIFECYCLE_TYPES),
    (contract.WORKORDER_EVENTS, "workorder.reassigned", WorkOrderReassigned),
    (DEPARTMENT, "dispatch.assigned", DispatchAssigned),
    (DEPARTMENT, "dispatch.reminder", DispatchReminder),
    (DEPARTMENT, "dispatch.cancelled", DispatchCancelled),
    (contract.ALERTS, "alert.sla_breached", SlaBreached),
    (contract.ALERTS, "alert.cluster_detected", ClusterDetected),
    (contract.DEADLETTER, "deadletter.recorded", DeadLetter),
    (contract.NOTIFICATIONS, "notification.sent", NotificationRecord),
    (contract.NOTIFICATIONS, "notification.failed", NotificationRecord),
)
BODY = "(body)"  # the label of a message that is wrong as a whole: not JSON, or not an object
# How a decoder's reason begins when the message is wrong as a whole.
BODY_REASONS = ("empty message", "not valid JSON", "expected a JSON object")
SECRET = "秘密13900000000"  # planted in values: no reason may echo it


def sample(model: type[BaseModel], ident: str) -> dict[str, Any]:
    """Valid data of ``model`` about the (unknown) work order or entity ``ident``."""
    t = "2026-11-23T08:15:00+08:00"
    response = {"dispatch_id": f"{ident}-D1", "work_order_id": ident, "department": "heat"}
    lifecycle = {
        "work_order_id": ident,
        "status": "dispatched",
        "level": "community",
        "category": "heating",
        "category_name": "供暖",
        "street": None,
        "community": None,
        "grid": None,
        "source": "hotline",
        "caused_by": f"{ident}-cause",
    }
    samples: dict[type[BaseModel], dict[str, Any]] = {
        HotlineCall: {
            "call_id": ident,
            "channel": "phone",
            "content": "楼道灯不亮了",
            "caller": {"name": "孙大爷", "phone": "13900000000"},
            "location": {"lat": 37.5, "lon": 121.3},
        },
        GridReport: {
            "report_id": ident,
            "grid_id": "NO-SUCH-GRID",
            "worker_id": "W-1",
            "category": "供暖",
            "description": "暖气漏水",
        },
        DispatchAccepted: response,
        DispatchRejected: response | {"reason": "other", "note": "不归我们"},
        DispatchProgress: response | {"note": "在办"},
        DispatchExtensionRequested: response | {"resolve_by": t},
        DispatchResolved: response | {"result": "已修好"},
        ResidentFeedback: {"work_order_id": ident, "satisfaction": "satisfied", "resolved": True},
        OrderOpened: {
            "work_order_id": ident,
            "source": "hotline",
            "category": "heating",
            "category_name": "供暖",
            "summary": "暖气不热",
            "address": None,
            "location": None,
            "street": None,
            "community": None,
            "grid": None,
            "property_company": None,
            "urgency": "normal",
            "contact": None,
        },
        ContactRecorded: {"work_order_id": ident, "reporter_id": ident, "name": None, "phone": None},
        EscalationRequested: {
            "work_order_id": ident,
            "from_level": "community",
            "to_level": "street",
            "reason": "超时",
        },
        DeadlineMoved: {"work_order_id": ident, "dispatch_id": f"{ident}-D1", "resolve_by": t},
        ReassignRequested: {"work_order_id": ident, "operator": "duty-1", "note": "改派"},
        ReturnApprove: {"work_order_id": ident, "dispatch_id": f"{ident}-D1", "operator": "duty-1"},
        ReturnRefuse: {
            "work_order_id": ident,
            "dispatch_id": f"{ident}-D1",
            "operator": "duty-1",
            "note": "请办理",
        },
        ReviewExpired: {"work_order_id": ident, "dispatch_id": f"{ident}-D1", "review_by": t},
        FeedbackExpired: {"work_order_id": ident, "feedback_by": t},
        WorkOrderData: lifecycle,
        WorkOrderReassigned: lifecycle | {"operator": "duty-1", "note": "改派"},
        DispatchAssigned: response
        | {
            "role": "lead",
            "level": "community",
            "category": "heating",
            "category_name": "供暖",
            "summary": "暖气不热",
            "address": None,
            "location": None,
            "urgency": "normal",
            "accept_by": t,
            "resolve_by": t,
            "contact": None,
            "attempt": 1,
        },
        DispatchReminder: response | {"deadline": "accept", "due": t, "overdue": False},
        DispatchCancelled: response | {"reason": "closed"},
        SlaBreached: {
            "work_order_id": ident,
            "department": "heat",
            "deadline": "accept",
            "due": t,
            "level": "community",
        },
        ClusterDetected: {
            "category": "heating",
            "street": None,
            "community": None,
            "count": 5,
            "window_minutes": 60,
            "work_order_ids": [ident],
        },
        DeadLetter: {
            "original_topic": "x",
            "original_partition": 0,
            "original_offset": 0,
            "original_key": ident,
            "error": "x",
            "raw": "x",
        },
        NotificationRecord: {
            "notification_id": ident,
            "work_order_id": ident,
            "audience": "resident",
            "channel": "sms",
            "template": "received@1",
            "attempts": 1,
        },
    }
    return dict(samples[model])


def envelope(kind: str, data: Any, ident: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"{ident}-{uuid.uuid4().hex[:8]}",
        "source": "fuzz",
        "type": kind,
        "time": datetime.now(UTC).isoformat(),
        "subject": ident,
        "datacontenttype": "application/json",
        "data": data,
    }


@dataclass(frozen=True)
class Message:
    """A drawn message: where it goes, its bytes, and what must become of it. ``field`` is what
    its dead letter's reason must name (``BODY`` for the message as a whole); None: a valid message
    (``kind`` says which: a call that must flow, or absurd data a service may take)."""

    topic: str
    key: bytes | None
    raw: bytes
    field: str | None
    kind: str
    headers: tuple[tuple[str, bytes], ...] = tuple(HEADERS)


def names_field(reason: str, label: str) -> bool:
    """Does a dead letter's reason name the field ``label``?"""
    if label == BODY:
        return reason.startswith(BODY_REASONS)
    if label == "type" and reason.startswith("unknown event type"):
        return True
    return f"{label}:" in reason or f"{label}." in reason


# ---- drawing ---------------------------------------------------------------------------------

_idents = st.from_regex(r"FZ-[0-9a-f]{12}", fullmatch=True)
# Numbers orjson does not write: an integer beyond 64 bits, one beyond a double's range.
NUMBERS = {"__big__": b"1" + b"0" * 40, "__infinite__": b"-1e400"}
# Text that is no good anywhere: control characters, lone surrogates escaped, right-to-left marks,
# emoji, full-width digits, combining marks.
_odd_text = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(["\x01", "\x1b", "\u202e", "\ufeff", "\u0301", "🚒", "１", "\x7f", "\n", "\t"]),
    ),
    max_size=60,
)
_wrong_values: st.SearchStrategy[Any] = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from(sorted(NUMBERS)),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.lists(st.integers(-1000, 1000), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(-1000, 1000), max_size=3),
    st.text(max_size=20).map(lambda s: SECRET + s),
    st.just(""),
    st.just("   \t\n "),
    st.integers(min_value=4001, max_value=70_000).map(lambda n: SECRET + "暖" * n),
    st.just(None),
    st.just("2026-11-23T08:15:00"),  # a time without its offset
)
_depths = st.integers(min_value=2, max_value=1500)


DEEP = "__deep__"  # where a deeply nested value goes into a message's bytes (orjson stops at 255)


def _nested(depth: int) -> bytes:
    """A JSON value ``depth`` deep: lists and objects in turn, around a planted value."""
    opening = b"".join(b'{"a":' if i % 2 else b"[" for i in range(depth))
    closing = b"".join(b"}" if i % 2 else b"]" for i in reversed(range(depth)))
    return opening + orjson.dumps(SECRET) + closing


def _dumps(event: dict[str, Any], deep: bytes | None = None) -> bytes:
    raw = orjson.dumps(event)
    for marker, number in NUMBERS.items():
        raw = raw.replace(orjson.dumps(marker), number)
    return raw.replace(orjson.dumps(DEEP), deep, 1) if deep is not None else raw


def _kafka_key(ident: str) -> st.SearchStrategy[bytes | None]:
    return st.one_of(
        st.just(ident.encode()),
        st.just(ident.encode()),
        st.just(None),
        st.binary(min_size=1, max_size=40),  # not UTF-8, maybe
        st.just(("K" * 5000).encode()),
    )


def _topic(topic: str, departments: tuple[str, ...]) -> st.SearchStrategy[str]:
    if topic == DEPARTMENT:
        return st.sampled_from(departments).map(DEPARTMENT.format)
    return st.just(topic)


@st.composite
def body_wrong(draw: st.DrawFn, departments: tuple[str, ...]) -> Message:
    """Wrong as a whole: empty, not JSON (broken, not UTF-8, binary), not an object, too deep."""
    topic_t, kind, model = draw(st.sampled_from(TARGETS))
    ident = draw(_idents)
    good = orjson.dumps(envelope(kind, sample(model, ident), ident))
    how = draw(st.sampled_from(["empty", "truncated", "not utf-8", "binary", "not an object", "too deep"]))
    if how == "empty":
        raw = b""
    elif how == "truncated":
        raw = good[: draw(st.integers(min_value=1, max_value=len(good) - 1))]
    elif how == "not utf-8":
        at = draw(st.integers(min_value=1, max_value=len(good) - 2))
        raw = good[:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"])) + good[at:]
    elif how == "binary":
        raw = b"\x00" + draw(st.binary(max_size=300))
    elif how == "not an object":
        value = draw(
            st.one_of(
                st.lists(st.integers(-1000, 1000), max_size=5),
                st.integers(-(2**63), 2**63 - 1),
                st.text(max_size=20),
                st.none(),
                st.booleans(),
                st.just(DEEP),
            )
        )
        # A list at the top, nested deep: within the parser's depth or beyond it.
        raw = orjson.dumps(value).replace(orjson.dumps(DEEP), b"[" + _nested(draw(_depths)) + b"]")
    else:  # beyond any parser's depth
        depth = draw(st.integers(min_value=1100, max_value=5000))
        raw = b'{"data":' + b"[" * depth + b"]" * depth + b"}"
    topic = draw(_topic(topic_t, departments))
    return Message(topic, draw(_kafka_key(ident)), raw, BODY, f"body: {how}")


ENVELOPE_ATTRIBUTES = ("specversion", "id", "source", "type", "time", "data")


@st.composite
def envelope_wrong(draw: st.DrawFn, departments: tuple[str, ...]) -> Message:
    """A CloudEvent with one attribute missing, of the wrong type, empty, huge or holding NUL."""
    topic_t, kind, model = draw(st.sampled_from(TARGETS))
    ident = draw(_idents)
    event = envelope(kind, sample(model, ident), ident)
    strict = topic_t in STRICT_TOPICS
    attribute = draw(st.sampled_from(ENVELOPE_ATTRIBUTES))
    how = draw(st.sampled_from(["missing", "wrong", "nul", "unknown type", "nul extension"]))
    label = attribute
    replaced = False  # the attribute given another value, which the envelope may yet take
    if how == "missing":
        del event[attribute]
    elif how == "nul" and attribute not in ("data", "specversion") and (strict or attribute != "type"):
        event[attribute] = f"{event[attribute]}\x00"
    elif how == "unknown type" and strict:
        event["type"], label = draw(_odd_text.filter(lambda s: s != kind)), "type"
    elif how == "nul extension":
        name = draw(st.from_regex(r"[a-z]{1,12}", fullmatch=True).filter(lambda s: s not in event))
        event[name], label = [{"x": "\x00"}], name
    else:
        wrong = draw(_wrong_values)
        if attribute == "type" and not strict:
            # On a topic a service only listens to, a type it does not route is passed over (not an
            # error): only a type that is no string at all is.
            wrong = draw(st.one_of(st.integers(-9, 9), st.lists(st.integers(-9, 9), max_size=2), st.none()))
        event[attribute], replaced = wrong, True
    raw = _dumps(event)
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:  # a number beyond a double's range: not JSON as orjson reads it
        label = BODY
    else:
        if replaced:
            try:
                contract.CloudEvent.model_validate(parsed)
            except ValidationError:
                pass
            else:  # still a valid envelope (a long source, data an object of another shape)
                refused = _refusal(model, parsed["data"])
                label = sorted(refused)[0] if refused else None  # type: ignore[assignment]
                if parsed["type"] != kind:  # a type nobody routes there (only strings on strict topics)
                    label = "type"
    topic = draw(_topic(topic_t, departments))
    if label is None:
        return Message(topic, draw(_kafka_key(ident)), raw, None, "absurd envelope")
    return Message(topic, draw(_kafka_key(ident)), raw, label, f"envelope: {attribute} {how}")


def _submodel(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    annotation = model.model_fields[name].annotation
    for arg in (annotation, *get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _refusal(model: type[BaseModel], data: dict[str, Any]) -> set[str] | None:
    """The fields the model refuses in ``data`` (as a dead letter names them), or None if valid."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return {"data." + ".".join(str(p) for p in e["loc"]) for e in exc.errors()}
    return None


@st.composite
def data_wrong(draw: st.DrawFn, departments: tuple[str, ...]) -> Message:
    """A valid envelope whose data has one field missing, of the wrong type, empty, huge, out of
    range, nested deep, or holding NUL; or, where the model takes the value, absurd data."""
    topic_t, kind, model = draw(st.sampled_from(TARGETS))
    ident = draw(_idents)
    data = sample(model, ident)
    name = draw(st.sampled_from(sorted(model.model_fields)))
    target, path = data, f"data.{name}"
    sub = _submodel(model, name)
    if sub is not None and draw(st.booleans()):  # a field of a nested object (caller, location)
        inner_name = draw(st.sampled_from(sorted(sub.model_fields)))
        data[name] = target = dict(data.get(name) or {})
        name, path = inner_name, f"{path}.{inner_name}"
    how = draw(st.sampled_from(["missing", "wrong", "wrong", "deep", "nul", "odd text"]))
    label: str | None = path
    deep: bytes | None = None
    if how == "missing":
        target.pop(name, None)
    elif how == "wrong":
        target[name] = draw(_wrong_values)
    elif how == "deep":
        deep = _nested(draw(_depths))
        target[name] = DEEP
    elif how == "nul":
        target[name] = draw(st.text(max_size=10)) + "\x00" + draw(st.text(max_size=10))
    else:
        target[name] = draw(_odd_text)
    raw = _dumps(envelope(kind, data, ident), deep)
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:  # nested beyond the parser's depth: wrong as a whole
        label = BODY
    else:
        if how != "nul":  # NUL is the decoder's own refusal, whatever the model takes
            refused = _refusal(model, parsed["data"])
            if refused is None:
                label = None  # the model takes it: absurd, not wrong
            elif not any(r == path or r.startswith(path + ".") for r in refused):
                label = sorted(refused)[0]  # e.g. a missing answer named on its own field
    topic = draw(_topic(topic_t, departments))
    if label is None:
        return Message(topic, draw(_kafka_key(ident)), raw, None, "absurd data")
    return Message(topic, draw(_kafka_key(ident)), raw, label, f"data: {how}")


# Valid messages a service refuses by its rules, naming the field (the order or dispatch is unknown).
REFUSED_BY_RULES: tuple[tuple[str, str, type[BaseModel], str], ...] = (
    *(
        (contract.DISPATCH_RESPONSES, kind, model, "data.dispatch_id")
        for (topic, kind), model in contract.INBOUND.items()
        if topic == contract.DISPATCH_RESPONSES
    ),
    (contract.FEEDBACK, "resident.feedback.received", ResidentFeedback, "data.work_order_id"),
    (contract.GRID_REPORTS, "grid.issue.reported", GridReport, "data.grid_id"),
    *(
        (topic, kind, model, "data.work_order_id")
        for (topic, kind), model in contract.INTERNAL.items()
        if topic in (contract.ORDER_COMMANDS, contract.ESCALATION_COMMANDS)
    ),
)


@st.composite
def refused_by_rules(draw: st.DrawFn) -> Message:
    """A valid message about an order or a dispatch nobody knows, with absurd text where it may be."""
    topic, kind, model, label = draw(st.sampled_from(REFUSED_BY_RULES))
    ident = draw(_idents)
    data = sample(model, ident)
    for name in ("note", "result", "description", "comment", "operator"):
        if name in data or (name in model.model_fields and draw(st.booleans())):
            data[name] = draw(_odd_text.filter(lambda s: s.strip() and "\x00" not in s)) + "说明"
    return Message(
        topic, ident.encode(), orjson.dumps(envelope(kind, data, ident)), label, "refused by rules"
    )


def bad_messages(departments: tuple[str, ...]) -> st.SearchStrategy[Message]:
    """Every kind of bad input, in the proportions a run sends them."""
    return st.one_of(
        body_wrong(departments),
        envelope_wrong(departments),
        data_wrong(departments),
        data_wrong(departments),
        refused_by_rules(),
    )


@st.composite
def absurd_calls(draw: st.DrawFn) -> Message:
    """A valid call with absurd words (control characters, right-to-left marks, emoji, 4000 of a
    kind): it must become an order like any other."""
    call_id = draw(_idents)
    content = draw(
        st.one_of(
            _odd_text.filter(lambda s: s.strip() and "\x00" not in s),
            st.sampled_from(["暖", "🚒", "\u202e", "a"]).map(lambda c: c * 4000),
        )
    )
    data = {
        "call_id": call_id,
        "channel": "phone",
        "content": content,
        "caller": {"name": draw(_odd_text.filter(lambda s: "\x00" not in s)), "phone": own_phone()},
        "request_type": "help",
    }
    raw = orjson.dumps(envelope("hotline.call.received", data, call_id))
    return Message(contract.HOTLINE_CALLS, call_id.encode(), raw, None, "absurd call")


def own_phone() -> str:
    """A phone of its own: calls from one phone are merged (并单)."""
    return f"139{uuid.uuid4().int % 10**8:08d}"


def draw(strategy: st.SearchStrategy[Message], count: int, at_seed: int = 0) -> list[Message]:
    """``count`` messages drawn by Hypothesis (outside a test: it keeps no database of them)."""
    found: list[Message] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(message: Message) -> None:
        found.append(message)

    rounds = 0
    while len(found) < count:  # Hypothesis may stop early: draw again, from another seed
        seed(at_seed + rounds)(collect)()
        rounds += 1
    return found[:count]


# ---- a run against a stack -------------------------------------------------------------------


def valid_call(place: str) -> tuple[str, bytes]:
    call_id = f"FZV-{uuid.uuid4().hex[:12]}"
    data = {
        "call_id": call_id,
        "channel": "phone",
        "content": f"{place}楼道灯不亮了",
        "address": place,
        "caller": {"name": "孙大爷", "phone": own_phone()},
        "request_type": "help",
    }
    return call_id, orjson.dumps(envelope("hotline.call.received", data, call_id))


@dataclass
class Report:
    """What became of a run's messages."""

    bad: int = 0
    absurd: int = 0
    valid: int = 0
    dead_lettered: int = 0
    flowed: int = 0
    seconds: float = 0.0
    kinds: dict[str, int] = field(default_factory=dict)
    # What went wrong: a bad message not dead-lettered, a reason not naming its field, a valid call
    # that did not flow or was dead-lettered.
    missing: list[str] = field(default_factory=list)
    unnamed: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unnamed or self.stuck)

    def line(self) -> str:
        return (
            f"fuzz: {self.bad} bad messages, {self.dead_lettered} dead-lettered naming their field, "
            f"{len(self.missing)} missing, {len(self.unnamed)} not naming it; {self.absurd} absurd; "
            f"{self.flowed}/{self.valid} valid calls flowed; {self.seconds:.0f} s"
        )


async def run(
    settings_: Settings,
    messages: int,
    *,
    departments: tuple[str, ...],
    places: tuple[str, ...] = ("金沙滩小区",),
    valid_every: int = 20,
    at_seed: int = 0,
    within: float = 300,
) -> Report:
    """Send ``messages`` drawn bad messages (and a few absurd calls), a valid call every
    ``valid_every`` of them, to a running stack; wait until each has its outcome or ``within``
    seconds have passed. The stack's liveness is the caller's to check (it knows its processes)."""
    started = time.monotonic()
    drawn = await asyncio.to_thread(
        draw, st.one_of(bad_messages(departments), absurd_calls()), messages, at_seed
    )
    watched = [contract.DEADLETTER, contract.WORKORDER_EVENTS]
    consumer = AIOKafkaConsumer(**client_options(settings_), enable_auto_commit=False, fetch_max_wait_ms=50)
    producer = AIOKafkaProducer(
        **client_options(settings_), acks="all", linger_ms=5, max_request_size=4 << 20
    )
    await consumer.start()
    await producer.start()
    report = Report()
    try:
        await consumer.topics()  # metadata
        partitions = [
            TopicPartition(t, p) for t in watched for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)  # only what this run causes
        for tp in partitions:
            await consumer.position(tp)

        expected: dict[tuple[str, int, int], Message] = {}  # a bad message's position -> it
        calls: dict[str, str] = {}  # order id -> what it was (valid or absurd)
        in_flight: list[tuple[Message, asyncio.Future[Any]]] = []
        for i, message in enumerate(drawn):
            report.kinds[message.kind] = report.kinds.get(message.kind, 0) + 1
            sending = await producer.send(
                message.topic, message.raw, key=message.key, headers=list(message.headers)
            )
            in_flight.append((message, sending))
            if message.field is None:
                report.absurd += 1
                if message.kind == "absurd call":
                    calls[f"WO-H-{message.key.decode() if message.key else ''}"] = message.kind
            if i % valid_every == 0:
                call_id, raw = valid_call(places[(i // valid_every) % len(places)])
                await producer.send(contract.HOTLINE_CALLS, raw, key=call_id.encode(), headers=HEADERS)
                report.valid += 1
                calls[f"WO-H-{call_id}"] = "valid"
            if len(in_flight) >= 200 or i == len(drawn) - 1:
                for sent_message, acked in in_flight:
                    sent = await acked
                    if sent_message.field is not None:
                        report.bad += 1
                        expected[(sent_message.topic, sent.partition, sent.offset)] = sent_message
                in_flight.clear()
        await producer.flush()

        letters: dict[tuple[str, int, int], list[str]] = {}
        taken: set[str] = set()
        refused_calls: dict[str, str] = {}
        deadline = time.monotonic() + within

        def done() -> bool:
            return expected.keys() <= letters.keys() and calls.keys() <= taken | refused_calls.keys()

        while not done() and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for record in (r for rs in batches.values() for r in rs):
                try:
                    event = orjson.loads(record.value or b"")
                    ours = str(event["source"]).startswith("whistle/")  # not one this run sent
                    data = event["data"]
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue
                if not ours or not isinstance(data, dict):
                    continue
                if record.topic == contract.DEADLETTER:
                    position = (data["original_topic"], data["original_partition"], data["original_offset"])
                    letters.setdefault(position, []).append(data["error"])
                    if data["original_topic"] == contract.HOTLINE_CALLS:
                        text = str(data["raw"])
                        if data.get("raw_encoding") == "base64":
                            text = base64.b64decode(text).decode("utf-8", "replace")
                        for order in _calls_in(text, calls):
                            refused_calls[order] = data["error"]
                elif event.get("type") in ("workorder.dispatched", "workorder.merged"):
                    taken.add(str(data.get("work_order_id")))
        for position, message in expected.items():
            reasons = letters.get(position)
            where = f"{position[0]}/{position[1]}/{position[2]} ({message.kind})"
            if not reasons:
                report.missing.append(where)
            elif not all(names_field(r, message.field or "") for r in reasons):
                report.unnamed.append(f"{where}: expected {message.field!r} in {reasons}")
            else:
                report.dead_lettered += 1
        for order, what in calls.items():
            if order in taken:
                report.flowed += what == "valid"
            elif what == "valid" or order not in refused_calls:
                report.stuck.append(f"{order} ({what}): {refused_calls.get(order, 'no outcome')}")
    finally:
        await producer.stop()
        await consumer.stop()
    report.seconds = time.monotonic() - started
    return report


def _calls_in(raw: str, calls: dict[str, str]) -> list[str]:
    """The calls of this run a dead-lettered call's text names (its call id)."""
    try:
        call_id = orjson.loads(raw)["data"]["call_id"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return []
    order = f"WO-H-{call_id}"
    return [order] if isinstance(call_id, str) and order in calls else []


def main(argv: list[str] | None = None, check: Callable[[], list[str]] | None = None) -> int:
    """Fuzz the stack of the environment (``make up``'s, or one given by KAFKA_BOOTSTRAP_SERVERS
    and HTTP_PORT_BASE); exit 1 when a message went astray or a service is no longer ready."""
    from shared.reference import load_jurisdiction
    from tools.stack import SERVICES, Stack

    parser = argparse.ArgumentParser(prog="python -m tools.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--within", type=float, default=600)
    parser.add_argument("--json", action="store_true", help="the report as JSON")
    args = parser.parse_args(argv)
    stack = Stack()
    ref = load_jurisdiction(stack.settings.jurisdiction_file)
    before = {s: stack.pid(s) for s in SERVICES}
    report = asyncio.run(
        run(
            stack.settings,
            args.messages,
            departments=tuple(d.code for d in ref.departments),
            places=tuple(c.name for _, _, c in ref.compounds),
            at_seed=args.seed,
            within=args.within,
        )
    )
    crashed = [s for s in SERVICES if stack.pid(s) != before[s] or not stack.ready(s)]
    summary = report.__dict__ | {"ok": report.ok, "crashed": crashed}
    print(orjson.dumps(summary).decode() if args.json else report.line())
    for problem in [*report.missing, *report.unnamed, *report.stuck][:20]:
        print("  ", problem, file=sys.stderr)
    if crashed:
        print(f"   not alive or not ready: {', '.join(crashed)}", file=sys.stderr)
    return 0 if report.ok and not crashed else 1


if __name__ == "__main__":
    sys.exit(main())
