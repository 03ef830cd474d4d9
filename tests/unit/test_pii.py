"""Masking of a resident's name and phone."""

from __future__ import annotations

import pytest

from shared.pii import mask_name, mask_phone, mask_phones_in_text, masked_contact


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("孙大爷", "孙**"),
        ("欧阳娜娜", "欧***"),
        ("李", "李*"),  # a one-character name still gets a star
        (" 王芳 ", "王*"),
        ("", ""),
        (None, None),
    ],
)
def test_mask_name(name: str | None, masked: str | None) -> None:
    assert mask_name(name) == masked


def test_mask_name_whitespace_only() -> None:
    assert mask_name("   ") == ""


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("13800000000", "138****0000"),
        ("138-1234-5678", "138****5678"),
        ("138 1234 5678", "138****5678"),
        ("0535-6881234", "053****1234"),
        ("12345", "*****"),  # too short to show anything
        ("", ""),
        (None, None),
    ],
)
def test_mask_phone(phone: str | None, masked: str | None) -> None:
    assert mask_phone(phone) == masked


@pytest.mark.parametrize("phone", ["6881234", "68812345"])
def test_mask_phone_hides_most_of_a_short_number(phone: str) -> None:
    masked = mask_phone(phone)
    assert masked is not None
    assert masked.count("*") >= 4


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("我的电话13812345678，请回电", "我的电话138****5678，请回电"),
        ("电话：13812345678和15900001111", "电话：138****5678和159****1111"),
        ("座机0535-6881234", "座机0535-****234"),
        ("座机05356881234", "座机0535****234"),
        ("北京010-12345678", "北京010-****5678"),
        ("+86 13812345678", "+86 138****5678"),
    ],
)
def test_mask_phones_in_text(text: str, masked: str) -> None:
    assert mask_phones_in_text(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "菁华公寓3号楼2单元501室",
        "工单12345-20261121-000001",
        "室温只有15度，已经3天了",
        "订单号138123456789012",  # longer digit runs are not phone numbers
    ],
)
def test_mask_phones_in_text_leaves_other_numbers(text: str) -> None:
    assert mask_phones_in_text(text) == text


@pytest.mark.parametrize(
    "text", ["电话+8613812345678", "电话138 1234 5678", "电话138-1234-5678", "电话１３８１２３４５６７８"]
)
def test_mask_phones_in_text_common_spellings(text: str) -> None:
    assert mask_phones_in_text(text) != text


def test_masked_contact() -> None:
    assert masked_contact({"name": "孙大爷", "phone": "13800000000"}) == {
        "name": "孙**",
        "phone": "138****0000",
    }
    assert masked_contact({"phone": "13800000000"}) == {"name": None, "phone": "138****0000"}
    assert masked_contact(None) is None
    assert masked_contact({}) is None
