"""The batch consumer's decoding (what is dead-lettered, and why) and dead-letter records."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord
from aiokafka.partitioner import DefaultPartitioner
from pydantic import ValidationError

from services.intake.handlers import routes as intake_routes
from services.intake.store import Inbox, Outbox
from services.intake.tagger import text_of
from services.intake.unit import IntakeUnit
from shared import contract
from shared.contract import (
    CloudEvent,
    HotlineCall,
    Location,
    WorkOrderData,
)
from shared.events import encode_event
from shared.messaging import (
    HEADERS,
    TYPE_HEADER,
    BatchConsumer,
    Decoded,
    Delivery,
    Route,
    Tx,
    Unprepared,
    dead_letter,
    describe_validation,
    event_type,
    partition_for,
)
from shared.reference import Jurisdiction
from shared.settings import Settings

PHONE = "13912345678"
AT = datetime(2026, 11, 21, 8, 15, tzinfo=UTC)


async def ignore(tx: Tx[Any], data: Any) -> None:
    return None


@pytest.fixture(scope="module")
def consumer(ref: Jurisdiction) -> BatchConsumer:
    return BatchConsumer(
        service="intake",
        engine=None,  # type: ignore[arg-type]  # decode() never touches the database
        inbox=Inbox.__table__,  # type: ignore[arg-type]
        outbox=Outbox.__table__,  # type: ignore[arg-type]
        routes=[
            *intake_routes(IntakeUnit(ref, Settings())),
            # A topic we only listen to: types without a handler there are skipped, not errors.
            Route(contract.WORKORDER_EVENTS, "workorder.created", WorkOrderData, ignore),
        ],
        strict_topics=[contract.HOTLINE_CALLS, contract.GRID_REPORTS],
    )


def call_event(**data_overrides: Any) -> dict[str, Any]:
    data = {
        "call_id": "12345-20261121-000001",
        "channel": "phone",
        "content": "菁华公寓3号楼暖气不热",
        "caller": {"name": "孙大爷", "phone": PHONE},
    } | data_overrides
    return {
        "specversion": "1.0",
        "id": "ev-1",
        "source": "hotline/yantai-12345",
        "type": "hotline.call.received",
        "time": "2026-11-21T08:15:00+08:00",
        "data": data,
    }


def delivery(raw: bytes | dict[str, Any] | list[Any], topic: str = contract.HOTLINE_CALLS) -> Delivery:
    body = raw if isinstance(raw, bytes) else orjson.dumps(raw)
    return Delivery(topic=topic, partition=2, offset=41, key="12345-20261121-000001", raw=body)


def reason(consumer: BatchConsumer, d: Delivery) -> str:
    result = consumer.decoder.decode(d)
    assert isinstance(result, str), result
    return result


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"content": "  菁华公寓3号楼暖气不热  ", "call_id": " 12345-1 "},  # stripped
        {"caller": None, "urgency": "urgent", "category_hint": "供暖", "address": "夹河社区菁华公寓"},
        {"location": {"grid": "FLS-JH-01", "lat": 37.5, "lon": 121.3}, "unknown_field": [1, 2]},
        {"caller": {"phone": "１３９１２３４５６７８"}, "channel": "wechat"},
    ],
)
def test_a_call_decoded_in_one_pass_is_what_the_envelope_then_its_data_make(
    consumer: BatchConsumer, overrides: dict[str, Any]
) -> None:
    """The one-pass decoding of an inbound topic's only type (from the JSON text, data typed) gives
    what validating the envelope and then its data gives."""
    event = call_event(**overrides) | {"subject": "s", "comexampleextension1": "value"}
    result = consumer.decoder.decode(delivery(event))
    assert isinstance(result, Decoded)
    assert type(result.event) is not CloudEvent  # the one-pass way took it, not the other
    assert result.data == HotlineCall.model_validate(event["data"])
    expected = CloudEvent.model_validate(event)
    assert result.event.model_dump(exclude={"data"}) == expected.model_dump(exclude={"data"})
    assert result.event.time == expected.time and result.event.time.utcoffset() == expected.time.utcoffset()


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_a_number_json_does_not_have_is_refused_on_either_way(consumer: BatchConsumer, number: bytes) -> None:
    # pydantic's JSON parser takes these; JSON does not, nor did the two-step way.
    in_data = orjson.dumps(call_event()).replace(b'"channel":', b'"x":' + number + b',"channel":')
    in_envelope = orjson.dumps(call_event()).replace(b'"source":', b'"ext":' + number + b',"source":')
    for raw in (in_data, in_envelope):
        assert reason(consumer, delivery(raw)).startswith("not valid JSON"), raw


def test_topics_are_those_of_the_routes(consumer: BatchConsumer) -> None:
    assert consumer.topics == sorted(
        [contract.GRID_REPORTS, contract.HOTLINE_CALLS, contract.WORKORDER_EVENTS]
    )


def test_valid_call_is_decoded(consumer: BatchConsumer) -> None:
    result = consumer.decoder.decode(delivery(call_event()))
    assert isinstance(result, Decoded)
    assert isinstance(result.data, HotlineCall)
    assert result.data.call_id == "12345-20261121-000001"
    assert result.event.id == "ev-1"
    assert result.route.event_type == "hotline.call.received"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", "empty message"),
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        ([call_event()], "expected a JSON object (a CloudEvent), got list"),
        (b'"hello"', "got str"),
    ],
)
def test_undecodable_messages(consumer: BatchConsumer, raw: Any, expected: str) -> None:
    assert expected in reason(consumer, delivery(raw))


@pytest.mark.parametrize("field", ["specversion", "id", "source", "type", "time", "data"])
def test_missing_cloud_event_attribute(consumer: BatchConsumer, field: str) -> None:
    body = call_event()
    del body[field]
    text = reason(consumer, delivery(body))
    assert text.startswith("not a valid CloudEvent: ")
    assert f"{field}: Field required" in text


def test_a_nul_character_is_refused_by_name(consumer: BatchConsumer) -> None:
    # PostgreSQL's text cannot hold it: refused here with its field named, not later by the
    # database as a batch failure.
    text = reason(consumer, delivery(call_event(content="暖气不热\x00")))
    assert text == "data.content: holds a NUL character (\\u0000), which no text field can store"
    written_out = consumer.decoder.decode(delivery(call_event(content="乱码\\u0000")))  # a backslash, typed
    assert isinstance(written_out, Decoded)


def test_naive_time_is_refused(consumer: BatchConsumer) -> None:
    body = call_event() | {"time": "2026-11-21T08:15:00"}
    assert "not a valid CloudEvent: time:" in reason(consumer, delivery(body))


def test_unknown_type_on_strict_topic_names_expected_types(consumer: BatchConsumer) -> None:
    body = call_event() | {"type": "hotline.call.updated"}
    text = reason(consumer, delivery(body))
    assert "unknown event type 'hotline.call.updated' on hotline.calls.v1" in text
    assert "['hotline.call.received']" in text


def test_unknown_type_on_listened_topic_is_skipped(consumer: BatchConsumer) -> None:
    body = call_event() | {"type": "workorder.merged"}
    assert consumer.decoder.decode(delivery(body, topic=contract.WORKORDER_EVENTS)) is None


def test_unknown_type_on_listened_topic_is_skipped_before_the_envelope_is_checked(
    consumer: BatchConsumer,
) -> None:
    # Not ours to judge (a service reads its own events back there): skipped, not dead-lettered.
    body = call_event() | {"type": "workorder.merged", "time": "2026-11-21T08:15:00"}
    assert consumer.decoder.decode(delivery(body, topic=contract.WORKORDER_EVENTS)) is None


def record(topic: str, headers: list[tuple[str, bytes]]) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, 0, 1, 0, 0, None, b"{}", None, 2, 2, headers)


@pytest.mark.parametrize(
    ("topic", "headers", "skipped"),
    [
        (contract.WORKORDER_EVENTS, [*HEADERS, (TYPE_HEADER, b"workorder.merged")], True),
        (contract.WORKORDER_EVENTS, [*HEADERS, (TYPE_HEADER, b"workorder.created")], False),  # handled
        (contract.WORKORDER_EVENTS, HEADERS, False),  # no type header: decoded, as before
        (contract.HOTLINE_CALLS, [*HEADERS, (TYPE_HEADER, b"hotline.call.updated")], False),  # strict
    ],
)
def test_a_listened_topics_unrouted_type_is_known_from_its_header(
    consumer: BatchConsumer, topic: str, headers: list[tuple[str, bytes]], skipped: bool
) -> None:
    assert consumer.decoder.unrouted(record(topic, headers)) is skipped


def test_the_type_header_is_read_off_the_encoded_event() -> None:
    data = {"type": "decoy", "note": '"type":"decoy"'}  # data comes after the envelope's type
    body = encode_event(type="workorder.created", source="s", subject="k", time=AT, data=data, id="i")
    assert event_type(body) == b"workorder.created"
    assert event_type(b"not an event") == b""


def test_known_type_on_listened_topic_with_a_bad_envelope_is_a_dead_letter(consumer: BatchConsumer) -> None:
    body = call_event() | {"type": "workorder.created", "time": "2026-11-21T08:15:00"}
    assert "not a valid CloudEvent: time:" in reason(
        consumer, delivery(body, topic=contract.WORKORDER_EVENTS)
    )


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"channel": "fax"}, "data.channel"),
        ({"content": ""}, "data.content"),
        ({"content": "冷" * 4001}, "data.content"),
        ({"urgency": "asap"}, "data.urgency"),
        ({"caller": {"phone": "1" * 40}}, "data.caller.phone"),
    ],
)
def test_invalid_data_names_the_field(consumer: BatchConsumer, data: dict[str, Any], field: str) -> None:
    text = reason(consumer, delivery(call_event(**data)))
    assert text.startswith("invalid hotline.call.received: ")
    assert f"{field}:" in text


def test_missing_data_field_is_named(consumer: BatchConsumer) -> None:
    body = call_event()
    del body["data"]["call_id"]
    assert "data.call_id: Field required" in reason(consumer, delivery(body))


@pytest.mark.parametrize("field", ["channel", "urgency", "call_id"])
def test_reason_never_echoes_the_value(consumer: BatchConsumer, field: str) -> None:
    value = PHONE * 6 if field == "call_id" else PHONE  # call_id: too long
    text = reason(consumer, delivery(call_event(**{field: value})))
    assert f"data.{field}" in text
    assert PHONE not in text


def test_describe_validation_never_echoes_the_value() -> None:
    with pytest.raises(ValidationError) as info:
        Location.model_validate({"lat": PHONE, "street": "x" * 501})
    text = describe_validation(info.value, "data.location.")
    assert "data.location.lat:" in text and "data.location.street:" in text
    assert PHONE not in text and "xxxx" not in text


# ---- dead letters -----------------------------------------------------------------------------


def parse(message_payload: bytes) -> CloudEvent:
    return CloudEvent.model_validate(orjson.loads(message_payload))


def test_dead_letter_keeps_utf8_raw_as_text() -> None:
    raw = '{"data": "暖气不热"'.encode()
    message = dead_letter(delivery(raw), "not valid JSON", "whistle/intake")
    assert message.topic == contract.DEADLETTER
    assert message.key == "12345-20261121-000001"
    ev = parse(message.payload)
    assert ev.type == "deadletter.recorded"
    assert ev.data["raw"] == '{"data": "暖气不热"'
    assert ev.data["raw_encoding"] == "utf-8"
    assert ev.data["error"] == "not valid JSON"
    assert (ev.data["original_topic"], ev.data["original_partition"], ev.data["original_offset"]) == (
        contract.HOTLINE_CALLS,
        2,
        41,
    )


def test_dead_letter_keeps_non_utf8_raw_as_base64() -> None:
    raw = b"\xff\xfe\x00binary"
    ev = parse(dead_letter(delivery(raw), "not valid JSON", "whistle/intake").payload)
    assert ev.data["raw_encoding"] == "base64"
    assert base64.b64decode(ev.data["raw"]) == raw


def test_dead_letter_id_derives_from_the_position() -> None:
    first = parse(dead_letter(delivery(b"x"), "a", "whistle/intake").payload)
    again = parse(dead_letter(delivery(b"x"), "b", "whistle/intake").payload)
    other = parse(
        dead_letter(Delivery(contract.HOTLINE_CALLS, 2, 42, None, b"x"), "a", "whistle/intake").payload
    )
    assert first.id == again.id
    assert first.id != other.id


def test_the_relay_puts_each_key_where_the_default_partitioner_would() -> None:
    hashes: dict[bytes, int] = {}
    for count in (1, 3, 6, 12):
        partitions = list(range(count))
        for i in range(500):
            key = f"WO-H-12345-20261121-{i:06d}".encode()
            assert partition_for(key, partitions, hashes) == DefaultPartitioner()(key, partitions, partitions)
    assert len(hashes) == 500  # hashed once per key, whatever the topic
    assert partition_for(None, [0, 1, 2], hashes) in (0, 1, 2)


async def test_a_message_that_breaks_preparation_is_a_dead_letter_and_the_rest_go_on(
    ref: Jurisdiction,
) -> None:
    def prepared(m: Decoded) -> object:
        if m.event.id == "ev-bad":
            return ValueError("a bug quoting 孙大爷")  # its message is not the dead letter's
        return Unprepared("TypeError at tagging.py:141") if m.event.id == "ev-said" else "prepared"

    async def prepare(messages: list[Decoded]) -> list[object]:
        return [prepared(m) for m in messages]

    consumer = BatchConsumer(
        service="intake",
        engine=None,  # type: ignore[arg-type]  # prepare() never touches the database
        inbox=Inbox.__table__,  # type: ignore[arg-type]
        outbox=Outbox.__table__,  # type: ignore[arg-type]
        routes=intake_routes(IntakeUnit(ref, Settings())),
        strict_topics=[contract.HOTLINE_CALLS],
        prepare_messages=prepare,
    )
    bad, good, said = (orjson.dumps(call_event() | {"id": i}) for i in ("ev-bad", "ev-good", "ev-said"))
    batch = await consumer.prepare(
        [
            ConsumerRecord(contract.HOTLINE_CALLS, 0, n, 0, 0, None, v, None, 0, len(v), [])
            for n, v in enumerate((bad, good, said))
        ]
    )
    assert [(m.event.id, m.prepared) for m in batch.decoded] == [("ev-good", "prepared")]
    [(where, reason), (where_said, reason_said)] = batch.reasons
    assert where.offset == 0 and reason.startswith("could not be prepared (ValueError);")
    assert where_said.offset == 2 and reason_said.startswith(
        "could not be prepared (TypeError at tagging.py:141);"
    )
    assert len(batch.dead) == 2 and not any("孙大爷" in r for _, r in batch.reasons)


def test_a_nul_deep_in_nested_lists_is_named_too(consumer: BatchConsumer) -> None:
    # orjson reads JSON 1,024 levels deep; a recursive walk for the NUL's field exhausted Python's
    # stack, and the batch was rewound again and again.
    nested = b"[" * 1000 + b'"\\u0000"' + b"]" * 1000
    raw = orjson.dumps(call_event(extra="here")).replace(b'"here"', nested)
    assert reason(consumer, delivery(raw)).startswith("data.extra.0.0.0.")


async def test_intake_prepares_calls_by_its_tagger_and_reports_here_each_failing_alone(
    consumer: BatchConsumer, ref: Jurisdiction
) -> None:
    unit = IntakeUnit(ref, Settings())
    grid = next(iter(ref.places_by_grid))
    report = {
        "report_id": "r-1",
        "grid_id": grid,
        "worker_id": "w-1",
        "category": "路灯",
        "description": "路灯不亮",
    }
    events = [
        (contract.HOTLINE_CALLS, call_event()),
        (contract.GRID_REPORTS, call_event() | {"id": "ev-2", "type": "grid.issue.reported", "data": report}),
        (
            contract.GRID_REPORTS,
            call_event()
            | {"id": "ev-3", "type": "grid.issue.reported", "data": report | {"grid_id": "nowhere"}},
        ),
        (contract.HOTLINE_CALLS, call_event(call_id="12345-2", content="路灯不亮") | {"id": "ev-4"}),
    ]
    decoded = [consumer.decoder.decode(delivery(e, topic)) for topic, e in events]
    messages = [m for m in decoded if isinstance(m, Decoded)]
    assert len(messages) == 4

    call, grid_order, refused, second = await unit.prepare(messages)
    assert call == unit.order_for(messages[0]) and call.category.code == "heating"  # type: ignore[union-attr]
    assert grid_order == unit.order_for(messages[1]) and grid_order.work_order_id == "WO-G-r-1"  # type: ignore[union-attr]
    assert isinstance(refused, str) and "data.grid_id" in refused
    assert second == unit.order_for(messages[3])

    async def one_unreadable(calls: Any) -> list[Any]:
        return [ValueError("a bug"), *(unit.tagger.here.read(text_of(c)) for c in calls[1:])]

    unit.tagger.read = one_unreadable  # type: ignore[method-assign]
    failed, grid_order, _, second = await unit.prepare(messages)
    assert isinstance(failed, ValueError)  # the consumer dead-letters it alone
    assert grid_order == unit.order_for(messages[1]) and second == unit.order_for(messages[3])
