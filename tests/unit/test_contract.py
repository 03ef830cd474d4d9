"""The contract's envelope and inbound data models."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, ValidationError

from shared.contract import (
    CloudEvent,
    ContactRecorded,
    DispatchAssigned,
    DispatchExtensionRequested,
    DispatchRejected,
    DispatchResolved,
    GridReport,
    HotlineCall,
    MaskedContact,
    ResidentFeedback,
    WorkOrderData,
)
from shared.events import derived_id, encode_event

CST = timezone(timedelta(hours=8))


def event(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": "5b0d6f9e-5a1c-4f0e-9a59-1f1f0c1b2a33",
        "source": "hotline/yantai-12345",
        "type": "hotline.call.received",
        "time": "2026-11-21T08:15:00+08:00",
        "subject": "12345-20261121-000001",
        "datacontenttype": "application/json",
        "data": call(),
    }
    return body | overrides


def call(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "call_id": "12345-20261121-000001",
        "channel": "phone",
        "content": "菁华公寓3号楼暖气不热，屋里只有十五度",
        "caller": {"name": "孙大爷", "phone": "13800000000"},
        "category_hint": "供暖",
        "address": "福莱山街道夹河社区菁华公寓3号楼",
        "location": {"street": "福莱山街道", "community": "夹河社区"},
        "urgency": "urgent",
    }
    return body | overrides


def report(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "report_id": "GR-0001",
        "grid_id": "HB-FLS-JH-03",
        "worker_id": "W-17",
        "category": "fire_hazard",
        "description": "3号楼楼道堆物，堵塞消防通道",
    }
    return body | overrides


def response(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"dispatch_id": "D-1", "work_order_id": "WO-H-1", "department": "heat"}
    return body | overrides


# ---- CloudEvent -------------------------------------------------------------------------------


def test_cloud_event_sample_is_accepted() -> None:
    ev = CloudEvent.model_validate(event())
    assert ev.type == "hotline.call.received"
    assert ev.time == datetime(2026, 11, 21, 0, 15, tzinfo=UTC)
    assert ev.data["call_id"] == "12345-20261121-000001"


def test_cloud_event_keeps_extension_attributes() -> None:
    ev = CloudEvent.model_validate(event(traceparent="00-abc-def-01"))
    assert (ev.model_extra or {})["traceparent"] == "00-abc-def-01"


@pytest.mark.parametrize("field", ["specversion", "id", "source", "type", "time", "data"])
def test_cloud_event_requires_field(field: str) -> None:
    body = event()
    del body[field]
    with pytest.raises(ValidationError) as info:
        CloudEvent.model_validate(body)
    assert info.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("specversion", "0.3"),
        ("id", ""),
        ("time", "2026-11-21T08:15:00"),  # no offset
        ("time", "yesterday"),
        ("data", ["not", "an", "object"]),
    ],
)
def test_cloud_event_rejects_bad_attribute(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        CloudEvent.model_validate(event(**{field: value}))
    assert info.value.errors()[0]["loc"][0] == field


# ---- Inbound data -----------------------------------------------------------------------------


def test_hotline_call_sample_is_accepted() -> None:
    parsed = HotlineCall.model_validate(call())
    assert parsed.channel == "phone"
    assert parsed.urgency == "urgent"
    assert parsed.caller is not None and parsed.caller.phone == "13800000000"
    assert parsed.location is not None and parsed.location.community == "夹河社区"


def test_hotline_call_minimal_defaults_to_normal_urgency() -> None:
    parsed = HotlineCall.model_validate({"call_id": "c1", "channel": "wechat", "content": "路灯不亮"})
    assert parsed.urgency == "normal"
    assert parsed.caller is None and parsed.location is None


@pytest.mark.parametrize("field", ["call_id", "channel", "content"])
def test_hotline_call_requires_field(field: str) -> None:
    body = call()
    del body[field]
    with pytest.raises(ValidationError) as info:
        HotlineCall.model_validate(body)
    assert info.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("channel", "fax"),
        ("urgency", "high"),
        ("content", ""),
        ("content", "   "),  # only whitespace
        ("content", "冷" * 4001),
        ("call_id", "x" * 65),
    ],
)
def test_hotline_call_rejects_bad_value(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as info:
        HotlineCall.model_validate(call(**{field: value}))
    assert info.value.errors()[0]["loc"] == (field,)


def test_hotline_call_content_of_4000_chars_is_accepted() -> None:
    assert len(HotlineCall.model_validate(call(content="冷" * 4000)).content) == 4000


@pytest.mark.parametrize("channel", ["phone", "wechat", "app", "web", "mini_program"])
def test_hotline_call_accepts_every_channel(channel: str) -> None:
    assert HotlineCall.model_validate(call(channel=channel)).channel == channel


def test_unknown_data_fields_are_ignored() -> None:
    parsed = HotlineCall.model_validate(call(operator_id="op-7", recording_url="https://x/1.wav"))
    assert "operator_id" not in parsed.model_dump()
    assert parsed.call_id == "12345-20261121-000001"


def test_grid_report_defaults() -> None:
    parsed = GridReport.model_validate(report())
    assert parsed.handled_on_site is False
    assert parsed.urgency == "normal"
    assert parsed.photos == []


@pytest.mark.parametrize("field", ["report_id", "grid_id", "worker_id", "category", "description"])
def test_grid_report_requires_field(field: str) -> None:
    body = report()
    del body[field]
    with pytest.raises(ValidationError):
        GridReport.model_validate(body)


def test_grid_report_rejects_long_description() -> None:
    with pytest.raises(ValidationError):
        GridReport.model_validate(report(description="堆" * 4001))


@pytest.mark.parametrize("reason", ["not_our_responsibility", "insufficient_info", "duplicate", "other"])
def test_rejection_accepts_contract_reasons(reason: str) -> None:
    assert DispatchRejected.model_validate(response(reason=reason, note="不归我们管")).reason == reason


@pytest.mark.parametrize(
    "data",
    [
        response(reason="too_busy", note="人手不够"),  # unknown reason
        response(reason="duplicate"),  # note is required
        response(reason="duplicate", note=""),
    ],
)
def test_rejection_refuses_bad_data(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        DispatchRejected.model_validate(data)


def test_resolved_requires_result() -> None:
    with pytest.raises(ValidationError) as info:
        DispatchResolved.model_validate(response())
    assert info.value.errors()[0]["loc"] == ("result",)


def test_extension_requires_offset_in_resolve_by() -> None:
    ok = DispatchExtensionRequested.model_validate(response(resolve_by="2026-11-25T18:00:00+08:00"))
    assert ok.resolve_by.utcoffset() == timedelta(hours=8)
    with pytest.raises(ValidationError):
        DispatchExtensionRequested.model_validate(response(resolve_by="2026-11-25T18:00:00"))


@pytest.mark.parametrize("satisfaction", ["satisfied", "basically_satisfied", "dissatisfied"])
def test_feedback_accepts_contract_satisfaction(satisfaction: str) -> None:
    data = {"work_order_id": "WO-H-1", "satisfaction": satisfaction, "resolved": True}
    assert ResidentFeedback.model_validate(data).satisfaction == satisfaction


def test_feedback_rejects_unknown_satisfaction() -> None:
    with pytest.raises(ValidationError) as info:
        ResidentFeedback.model_validate({"work_order_id": "WO-H-1", "satisfaction": "meh", "resolved": True})
    assert info.value.errors()[0]["loc"] == ("satisfaction",)


# ---- envelope and ids -------------------------------------------------------------------------


def test_envelope_is_a_structured_cloud_event() -> None:
    data = WorkOrderData(
        work_order_id="WO-H-1",
        status="new",
        level="community",
        category="heating",
        category_name="供暖",
        street="福莱山街道",
        community="夹河社区",
        grid=None,
        source="hotline",
        caused_by="ev-1",
    )
    at = datetime(2026, 11, 21, 8, 15, tzinfo=CST)
    body = orjson.loads(
        encode_event(
            type="workorder.created", source="whistle/intake", subject="WO-H-1", time=at, data=data, id="x"
        )
    )
    assert body["specversion"] == "1.0"
    assert body["time"] == "2026-11-21T08:15:00+08:00"
    assert body["datacontenttype"] == "application/json"
    assert body["data"]["category_name"] == "供暖"
    assert body["data"]["grid"] is None  # nulls are kept: the contract says "null where unknown"
    # What we publish parses as a CloudEvent.
    assert CloudEvent.model_validate(body).id == "x"


def test_envelope_passes_a_dict_through() -> None:
    at = datetime(2026, 11, 21, 8, 15, tzinfo=CST)
    body = orjson.loads(encode_event(type="t", source="s", subject="k", time=at, data={"a": 1}, id="i"))
    assert body["data"] == {"a": 1}


def test_derived_id_is_deterministic_uuid() -> None:
    first = derived_id("5b0d6f9e", "0")
    assert first == derived_id("5b0d6f9e", "0")
    assert len(first) == 36 and first.count("-") == 4


@pytest.mark.parametrize("other", [("5b0d6f9e", "1"), ("5b0d6f9f", "0"), ("0", "5b0d6f9e")])
def test_derived_id_differs_by_cause(other: tuple[str, str]) -> None:
    assert derived_id("5b0d6f9e", "0") != derived_id(*other)


@pytest.mark.parametrize(
    "parts", [("5b0d6f9e", "0"), ("deadletter", "hotline.calls.v1/2/41"), ("暖气", "", "x")]
)
def test_derived_id_is_the_uuid5_of_the_joined_parts(parts: tuple[str, ...]) -> None:
    namespace = uuid.UUID("6f1c7a52-3f0b-4c5e-9d6e-2a7b8c9d0e1f")
    assert derived_id(*parts) == str(uuid.uuid5(namespace, "/".join(parts)))


@pytest.mark.parametrize(
    "data",
    [
        WorkOrderData(
            work_order_id="WO-H-1",
            status="new",
            level="street",
            category="heating",
            category_name="供暖",
            street="福莱山街道",
            community=None,
            grid=None,
            source="hotline",
            caused_by="ev-1",
            dispatches=[{"department": "heat", "role": "lead"}],
        ),
        DispatchAssigned(
            dispatch_id="D-1",
            work_order_id="WO-H-1",
            department="heat",
            role="lead",
            level="street",
            category="heating",
            category_name="供暖",
            summary='暖气不热 "引号" \u2028',
            address=None,
            location={"lat": 37.53, "lon": 121.39},
            urgency="normal",
            accept_by=datetime(2026, 11, 21, 8, 15, 0, 123456, tzinfo=CST),
            resolve_by=datetime(2026, 11, 21, 0, 15, tzinfo=UTC),
            contact=MaskedContact(name="孙**", phone="139****5678"),
            attempt=1,
        ),
        {"a": 1, "b": [None, 1.5, "x"]},
    ],
)
def test_encoded_data_is_the_models_json(data: Any) -> None:
    at = datetime(2026, 11, 21, 8, 15, tzinfo=CST)
    body = orjson.loads(encode_event(type="t", source="s", subject="k", time=at, data=data, id="i"))
    expected = data.model_dump(mode="json", exclude_none=False) if isinstance(data, BaseModel) else data
    assert body["data"] == orjson.loads(orjson.dumps(expected))


def test_trusted_data_fills_defaults_in_the_models_order() -> None:
    data = ContactRecorded.trusted(work_order_id="WO-1", reporter_id="WO-2", name=None, phone="13800000000")
    assert list(data) == list(ContactRecorded.model_fields)
    assert data == ContactRecorded(**data).model_dump()  # urgency: the model's default


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"work_order_id": "WO-1", "reporter_id": "WO-2", "name": None}, "missing ['phone']"),
        (
            {"work_order_id": "WO-1", "reporter_id": "WO-2", "name": None, "phone": None, "x": 1},
            "unknown ['x']",
        ),
    ],
)
def test_trusted_data_refuses_a_missing_or_unknown_field(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(TypeError, match=re.escape(named)):
        ContactRecorded.trusted(**fields)
