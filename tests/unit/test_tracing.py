"""The trace context on what we publish (shared.tracing): parsed as W3C says, carried by every event
a handler, a timer, the api or a dead letter makes, and copied to Kafka headers without parsing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from shared import contract, tracing
from shared.contract import CloudEvent
from shared.events import encode_event
from shared.messaging import (
    TRACEPARENT_HEADER,
    TRACESTATE_HEADER,
    TYPE_HEADER,
    Delivery,
    Tx,
    dead_letter,
    event_headers,
    outbox_message,
    send_batched,
)

AT = datetime(2026, 11, 21, 8, 15, tzinfo=UTC)
PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (PARENT, True),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later-fields", True),  # a later version
        (PARENT + "-x", False),  # version 00 is exactly 55 characters
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", False),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", False),  # upper case
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", False),
        (None, False),
        (42, False),
    ],
)
def test_traceparent_is_read_as_w3c_defines_it(value: Any, valid: bool) -> None:
    parsed = tracing.parse(value)
    assert (parsed is not None) is valid
    if parsed is not None:
        assert (parsed.trace_id, parsed.span_id, parsed.flags) == (
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "00f067aa0ba902b7",
            "01",
        )


def test_a_handled_message_is_a_child_span_of_its_own_or_the_root_of_a_new_trace() -> None:
    child = tracing.handling({"traceparent": PARENT})
    assert child.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert child.span_id != "00f067aa0ba902b7" and len(child.span_id) == 16
    assert child.traceparent == f"00-{child.trace_id}-{child.span_id}-01"
    assert child.tracestate == "whistle=00f067aa0ba902b7"
    assert tracing.parent_of(child.tracestate) == "00f067aa0ba902b7"
    for extensions in (None, {}, {"traceparent": "garbage"}):
        started = tracing.handling(extensions)
        assert started.trace_id != child.trace_id and started.parent is None and started.tracestate is None
        assert tracing.parse(started.traceparent) == tracing.Trace(started.trace_id, started.span_id)


def event(**extensions: Any) -> CloudEvent:
    return CloudEvent.model_validate(
        {"specversion": "1.0", "id": "e1", "source": "s", "type": "t", "time": AT, "data": {}} | extensions
    )


def published(body: bytes) -> dict[str, Any]:
    return orjson.loads(body)  # type: ignore[no-any-return]


def test_every_event_a_handler_publishes_carries_one_child_span_of_the_message() -> None:
    delivery = Delivery(contract.HOTLINE_CALLS, 0, 1, "k", b"")
    tx: Tx[None] = Tx(None, event(traceparent=PARENT), delivery, "whistle/intake", None)  # type: ignore[arg-type]
    tx.publish("a.v1", "k", "x.made", {"n": 1})
    tx.publish("b.v1", "k", "y.made", {"n": 2})
    first, second = (published(m.payload) for m in tx.outbox)
    assert first["traceparent"] == second["traceparent"]
    assert first["traceparent"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    assert first["tracestate"] == "whistle=00f067aa0ba902b7"
    # Without a traceparent the handler starts the trace: one for all it publishes.
    fresh: Tx[None] = Tx(None, event(), delivery, "whistle/intake", None)  # type: ignore[arg-type]
    fresh.publish("a.v1", "k", "x.made", {"n": 1})
    fresh.publish("b.v1", "k", "y.made", {"n": 2})
    assert len({published(m.payload)["traceparent"] for m in fresh.outbox}) == 1
    assert "tracestate" not in published(fresh.outbox[0].payload)


def test_the_trace_context_follows_the_type_and_is_read_off_for_the_headers() -> None:
    trace = tracing.handling({"traceparent": PARENT})
    data = {"type": "decoy", "note": '"traceparent":"decoy"'}
    body = encode_event(
        type="workorder.created",
        source="s",
        subject="k",
        time=AT,
        data=data,
        id="i",
        traceparent=trace.traceparent,
        tracestate=trace.tracestate,
    )
    assert list(published(body))[:6] == ["specversion", "id", "source", "type", "traceparent", "tracestate"]
    assert event_headers(body) == (
        b"workorder.created",
        trace.traceparent.encode(),
        b"whistle=00f067aa0ba902b7",
    )
    root = tracing.root()
    body = encode_event(
        type="t", source="s", subject="k", time=AT, data=data, id="i", traceparent=root.traceparent
    )
    assert event_headers(body) == (b"t", root.traceparent.encode(), None)
    untraced = encode_event(type="t", source="s", subject="k", time=AT, data=data, id="i")
    assert event_headers(untraced) == (b"t", None, None)
    assert event_headers(b"not an event") == (b"", None, None)


class FakeBatch:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def append(self, **record: Any) -> object:
        self.records.append(record)
        return object()


class FakeProducer:
    def __init__(self) -> None:
        self.batches: list[FakeBatch] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def create_batch(self) -> FakeBatch:
        self.batches.append(FakeBatch())
        return self.batches[-1]

    async def send_batch(self, batch: FakeBatch, topic: str, partition: int) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


async def test_each_record_gets_its_events_trace_context_as_headers() -> None:
    traces = [tracing.handling({"traceparent": PARENT}), tracing.root()]
    bodies = [
        encode_event(
            type="t",
            source="s",
            subject="k",
            time=AT,
            data={},
            id=str(i),
            traceparent=t.traceparent,
            tracestate=t.tracestate,
        )
        for i, t in enumerate(traces)
    ]
    bodies.append(encode_event(type="t", source="s", subject="k", time=AT, data={}, id="2"))
    producer = FakeProducer()
    await asyncio.gather(*await send_batched(producer, [("a.v1", "k", b) for b in bodies]))
    headers = [dict(r["headers"]) for r in producer.batches[0].records]
    assert [h[TYPE_HEADER] for h in headers] == [b"t", b"t", b"t"]
    assert headers[0][TRACEPARENT_HEADER] == traces[0].traceparent.encode()
    assert headers[0][TRACESTATE_HEADER] == b"whistle=00f067aa0ba902b7"
    assert headers[1][TRACEPARENT_HEADER] == traces[1].traceparent.encode()
    assert TRACESTATE_HEADER not in headers[1]
    assert TRACEPARENT_HEADER not in headers[2]


def test_timers_publish_in_the_trace_remembered_for_the_order(monkeypatch: pytest.MonkeyPatch) -> None:
    memory = tracing.TraceMemory(size=2)
    monkeypatch.setattr(tracing, "MEMORY", memory)
    call = tracing.parse(PARENT)
    assert call is not None
    memory.note("WO-H-1", call)
    memory.note("WO-H-1", tracing.root())  # the first event's is kept
    alert = outbox_message(
        contract.ALERTS,
        "夹河社区",
        "alert.sla_breached",
        {"work_order_id": "WO-H-1"},
        source="whistle/escalation",
        time=AT,
        id="a",
    )
    body = published(alert.payload)
    assert body["traceparent"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    assert body["tracestate"] == "whistle=00f067aa0ba902b7"
    # Forgotten (bounded, oldest first) or never known: a trace of its own.
    memory.note("WO-H-2", tracing.root())
    memory.note("WO-H-3", tracing.root())
    assert memory.recall("WO-H-1") is None
    other = published(outbox_message("t.v1", "WO-H-1", "t", {}, source="s", time=AT, id="b").payload)
    assert not other["traceparent"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")


def test_the_api_publishes_in_its_requests_trace() -> None:
    headers = [(b"content-type", b"application/json"), (b"traceparent", PARENT.encode())]
    with tracing.http_request(headers, "POST", "/open311/v2/requests.json"):
        first = published(outbox_message("t.v1", "k", "t", {}, source="s", time=AT, id="a").payload)
        second = published(outbox_message("t.v1", "k", "t", {}, source="s", time=AT, id="b").payload)
    assert first["traceparent"] == second["traceparent"]
    assert first["traceparent"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    assert first["tracestate"] == "whistle=00f067aa0ba902b7"
    assert tracing.CURRENT.get() is None
    with tracing.http_request([], "POST", "/v1/orders/WO-H-1/reassign"):
        started = published(outbox_message("t.v1", "k", "t", {}, source="s", time=AT, id="a").payload)
    assert "tracestate" not in started and tracing.parse(started["traceparent"]) is not None


def test_a_dead_letter_continues_the_trace_of_what_it_parks() -> None:
    raw = orjson.dumps({"specversion": "1.0", "traceparent": PARENT, "type": 3})
    letter = published(dead_letter(Delivery(contract.HOTLINE_CALLS, 0, 7, "k", raw), "bad", "s").payload)
    assert letter["traceparent"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    assert letter["tracestate"] == "whistle=00f067aa0ba902b7"
    unreadable = published(
        dead_letter(Delivery(contract.HOTLINE_CALLS, 0, 8, "k", b"\xff"), "bad", "s").payload
    )
    assert tracing.parse(unreadable["traceparent"]) is not None
