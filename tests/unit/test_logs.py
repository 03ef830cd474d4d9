"""The log processor that masks personal data, whoever logs it."""

from __future__ import annotations

from typing import Any

from shared.logs import scrub_personal_data


def scrub(**event: Any) -> dict[str, Any]:
    return dict(scrub_personal_data(None, "info", dict(event)))


def test_masks_name_and_phone_keys() -> None:
    out = scrub(event="contact recorded", name="孙大爷", phone="13800000000", caller_name="王芳")
    assert out == {"event": "contact recorded", "name": "孙**", "phone": "138****0000", "caller_name": "王*"}


def test_masks_phone_numbers_inside_strings() -> None:
    out = scrub(event="call from 13812345678", content="暖气不热，联系0535-6881234")
    assert out["event"] == "call from 138****5678"
    assert out["content"] == "暖气不热，联系0535-****234"


def test_masks_nested_dicts_and_lists() -> None:
    out = scrub(
        event="decoded",
        data={"caller": {"name": "孙大爷", "phone": "13800000000"}, "notes": ["回电13900001111", 3]},
    )
    assert out["data"] == {
        "caller": {"name": "孙**", "phone": "138****0000"},
        "notes": ["回电139****1111", 3],
    }


def test_leaves_other_values_alone() -> None:
    out = scrub(
        event="batch", offset=17, topic="hotline.calls.v1", work_order_id="WO-H-12345-20261121-000001"
    )
    assert out == {
        "event": "batch",
        "offset": 17,
        "topic": "hotline.calls.v1",
        "work_order_id": "WO-H-12345-20261121-000001",
    }


def test_does_not_mask_non_string_values_under_name_keys() -> None:
    assert scrub(event="x", name=None)["name"] is None
