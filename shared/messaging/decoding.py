"""From a record's bytes to a typed event and its handler, or to the reason it is a dead letter.
The reason names the field and what is wrong with it, never echoing the value (it may be personal)."""

from __future__ import annotations

import base64
import functools
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

import orjson
from aiokafka import ConsumerRecord
from pydantic import BaseModel, ValidationError, create_model

from shared import tracing
from shared.contract import (
    DEADLETTER,
    CloudEvent,
    DeadLetter,
)
from shared.events import derived_id, encode_event

from .handling import Decoded, Delivery, Route
from .kafka import TYPE_HEADER
from .outbox import OutboxMessage


@functools.cache
def _typed_envelope(model: type[BaseModel]) -> type[CloudEvent]:
    """CloudEvent with its ``data`` typed as ``model``, to validate both in one pass."""
    return create_model(f"{model.__name__}Event", __base__=CloudEvent, data=(model, ...))


def describe_validation(exc: ValidationError, prefix: str = "") -> str:
    """Name each wrong field and what is wrong with it, never echoing the value (it may be personal)."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "(body)"
        parts.append(f"{prefix}{where}: {err['msg']}")
    return "; ".join(parts)


def dead_letter(delivery: Delivery, error: str, source: str) -> OutboxMessage:
    try:
        raw, encoding = delivery.raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        raw, encoding = base64.b64encode(delivery.raw).decode("ascii"), "base64"
    data = DeadLetter(
        original_topic=delivery.topic,
        original_partition=delivery.partition,
        original_offset=delivery.offset,
        original_key=delivery.key,
        error=error,
        raw=raw,
        raw_encoding=encoding,
    )
    origin = f"{delivery.topic}/{delivery.partition}/{delivery.offset}"
    trace = _parked_trace(delivery.raw)
    body = encode_event(
        type="deadletter.recorded",
        source=source,
        subject=origin,
        time=datetime.now().astimezone(),
        data=data,
        id=derived_id("deadletter", origin),
        traceparent=trace.traceparent,
        tracestate=trace.tracestate,
    )
    return OutboxMessage(DEADLETTER, _storable(delivery.key), body)


KEY_LENGTH = 255  # the outbox's key column


def _storable(key: str | None) -> str | None:
    """The dead letter's key as the outbox can hold it: an outside producer's key may be longer
    than its column, or hold NUL (which PostgreSQL's text cannot); either failed the batch's
    transaction on every try, and the partition stood still. ``original_key`` keeps it whole."""
    if key is None or (len(key) <= KEY_LENGTH and "\x00" not in key):
        return key
    return key.replace("\x00", "\ufffd")[:KEY_LENGTH]


def _parked_trace(raw: bytes) -> tracing.Trace:
    """A dead letter continues the trace of the message it parks, found in its text (it may not
    be JSON), or starts one."""
    at = raw.find(b'"traceparent"')
    if at >= 0:
        start = raw.find(b'"', raw.find(b":", at) + 1) + 1
        parked = tracing.parse(raw[start : start + 55].decode("ascii", "replace")) if start > 0 else None
        if parked is not None:
            return parked.child()
    return tracing.root()


def _nul_in(value: Any) -> str | None:
    """Where in a decoded message a string holds NUL (PostgreSQL's text cannot), or None. A walk
    with a stack of its own: JSON nested a thousand deep would exhaust Python's."""
    todo: list[tuple[Any, str]] = [(value, "")]
    while todo:
        item, path = todo.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path or "(body)"
            continue
        pairs = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
        todo.extend(reversed([(v, f"{path}.{k}" if path else str(k)) for k, v in pairs]))
    return None


class Decoder:
    """A service's routes, and what each record is for it: a typed event with its route, a reason
    to dead-letter it, or nothing (a type it does not handle, on a topic it only listens to)."""

    def __init__(self, routes: Iterable[Route], strict_topics: Iterable[str]) -> None:
        self.routes = {(r.topic, r.event_type): r for r in routes}
        self._routed = {(topic, kind.encode()) for topic, kind in self.routes}  # as ce_type carries them
        # Topics of the external contract: an unknown type there is an error. On topics we only
        # listen to (e.g. the lifecycle stream), types we have no handler for are skipped.
        self.strict_topics = set(strict_topics)
        # The contract's inbound topics that carry one type: decoded in one pass (decode).
        per_topic = Counter(topic for topic, _ in self.routes)
        self._single_route = {
            topic: route
            for (topic, _), route in self.routes.items()
            if topic in self.strict_topics and per_topic[topic] == 1
        }

    @property
    def topics(self) -> list[str]:
        return sorted({topic for topic, _ in self.routes})

    def unrouted(self, record: ConsumerRecord[Any, Any]) -> bool:
        """A record of a type we have no handler for, on a topic we only listen to, known from its
        ``ce_type`` header without parsing it. On the contract's inbound topics every record is
        decoded: an unknown type there is a dead letter."""
        if record.topic in self.strict_topics:
            return False
        for name, value in record.headers or ():
            if name == TYPE_HEADER:
                return (record.topic, value) not in self._routed
        return False

    def decode(self, delivery: Delivery) -> Decoded | str | None:
        """A decoded message, the reason it is a dead letter, or None when it is not for us."""
        if not delivery.raw:
            return "empty message: expected a CloudEvent in structured JSON mode"
        try:
            obj = orjson.loads(delivery.raw)
        except orjson.JSONDecodeError as exc:
            return f"not valid JSON (UTF-8 expected): {exc}"
        route = self._single_route.get(delivery.topic)
        if route is not None and b"\\u0000" not in delivery.raw:
            # The common case: the envelope and its data validated in one pass from the JSON text.
            # orjson has said the text is JSON: pydantic's parser would also take NaN, Infinity or
            # 1e400. Whatever else is wrong is named by the way below.
            try:
                event = _typed_envelope(route.model).model_validate_json(delivery.raw)
            except ValidationError:
                pass
            else:
                if event.type == route.event_type:
                    return Decoded(delivery, event, cast(BaseModel, event.data), route)
        if not isinstance(obj, dict):
            return f"expected a JSON object (a CloudEvent), got {type(obj).__name__}"
        kind = obj.get("type")
        unrouted = isinstance(kind, str) and (delivery.topic, kind) not in self.routes
        if unrouted and delivery.topic not in self.strict_topics:
            # Not for us (e.g. our own events read back from a topic we listen to): known without
            # validating the envelope, which costs more than the rest of this.
            return None
        if b"\\u0000" in delivery.raw:  # rare: only then walk the message for the field
            where = _nul_in(obj)
            if where is not None:
                return f"{where}: holds a NUL character (\\u0000), which no text field can store"
        try:
            event = CloudEvent.model_validate(obj)
        except ValidationError as exc:
            return "not a valid CloudEvent: " + describe_validation(exc)
        route = self.routes.get((delivery.topic, event.type))
        if route is None:
            if delivery.topic in self.strict_topics:
                known = sorted(t for topic, t in self.routes if topic == delivery.topic)
                return f"unknown event type {event.type!r} on {delivery.topic}; expected one of {known}"
            return None
        try:
            data = route.model.model_validate(event.data)
        except ValidationError as exc:
            return f"invalid {event.type}: " + describe_validation(exc, "data.")
        return Decoded(delivery, event, data, route)
