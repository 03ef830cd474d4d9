"""What an Open311 request must hold (every problem named by its field, never its value), the hotline
call it becomes, what the api keeps of it, and the filters of a listing; the desk's filters and a
改派's names against the jurisdiction, as dispatch checks them; a page's cursor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.api.forms import (
    DEFAULT_SPAN,
    Invalid,
    Listing,
    OrderFilters,
    caller_name,
    hotline_call,
    read_listing,
    read_order_filters,
    read_request,
    reassign_problems,
    stored,
    work_order_id,
)
from services.api.queries import Cursor
from services.dispatch.dispatches import Refusal
from services.dispatch.routing import named_departments, placed_at
from shared.contract import HotlineCall
from shared.reference import Jurisdiction

CODES = {"heating", "road", "other"}
GOOD = {"service_code": "heating", "description": "3号楼暖气不热"}
NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def problems(fields: dict[str, Any]) -> list[str]:
    with pytest.raises(Invalid) as caught:
        read_request(fields, CODES)
    return caught.value.problems


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, ["service_code: required", "description: required"]),
        ({"service_code": "heating"}, ["description: required"]),
        ({"service_code": "heating", "description": "   "}, ["description: required"]),
        (GOOD | {"service_code": "unicorns"}, ["service_code: not a known service code (see services.json)"]),
        (GOOD | {"description": "x" * 4001}, ["description: longer than 4000 characters"]),
        (GOOD | {"description": "a\x00b"}, ["description: holds a NUL character"]),
        (GOOD | {"description": 42}, ["description: expected text"]),
        (GOOD | {"address_string": "路" * 501}, ["address_string: longer than 500 characters"]),
        (GOOD | {"lat": "37.5"}, ["long: required with lat"]),
        (GOOD | {"long": "121.4"}, ["lat: required with long"]),
        (GOOD | {"lat": "north", "long": "121.4"}, ["lat: not a number"]),
        (GOOD | {"lat": "91", "long": "121.4"}, ["lat: outside -90..90"]),
        (GOOD | {"lat": "37.5", "long": "nan"}, ["long: not a number"]),
        (GOOD | {"lat": True, "long": "121.4"}, ["lat: not a number"]),
        (
            GOOD | {"phone": "call me maybe"},
            ["phone: not a phone number (digits, spaces, +, - and brackets)"],
        ),
        (GOOD | {"phone": "1" * 33}, ["phone: longer than 32 characters"]),
        (GOOD | {"email": "nobody"}, ["email: not an email address"]),
        (
            GOOD | {"first_name": "x" * 40, "last_name": "y" * 30},
            ["first_name: with last_name, longer than 64 characters"],
        ),
    ],
)
def test_every_problem_names_its_field(fields: dict[str, Any], expected: list[str]) -> None:
    assert problems(fields) == expected


def test_no_problem_echoes_the_value_given() -> None:
    secret = "13812345678-not-a-code"
    found = problems(GOOD | {"service_code": secret, "phone": "phone " + secret, "email": secret})
    assert len(found) == 3 and not any(secret in p for p in found)


def test_a_full_request_and_the_call_it_becomes() -> None:
    fields = GOOD | {
        "address_string": " 菁华公寓3号楼 ",
        "lat": "37.5",
        "long": 121.4,
        "first_name": "大爷",
        "last_name": "孙",
        "phone": "138 1234 5678",
        "email": "sun@example.com",
        "device_id": "ignored",
        "api_key": "not read here",
    }
    request = read_request(fields, CODES)
    assert (request.address, request.lat, request.lon, request.name) == (
        "菁华公寓3号楼",
        37.5,
        121.4,
        "孙大爷",
    )
    call = hotline_call(request, "open311-abc", "app")
    assert call == {
        "call_id": "open311-abc",
        "channel": "app",
        "content": "3号楼暖气不热",
        "caller": {"name": "孙大爷", "phone": "138 1234 5678"},
        "category_hint": "heating",
        "address": "菁华公寓3号楼",
        "location": {"lat": 37.5, "lon": 121.4},
        "urgency": "normal",
    }
    HotlineCall.model_validate(call)  # what intake will read
    assert "email" not in str(call) and "sun@example.com" not in str(call)


def test_a_bare_request_makes_a_call_without_caller_or_place() -> None:
    call = hotline_call(read_request(GOOD, CODES), "open311-x", "web")
    assert call == {
        "call_id": "open311-x",
        "channel": "web",
        "content": "3号楼暖气不热",
        "category_hint": "heating",
        "urgency": "normal",
    }


def test_what_the_api_keeps_of_a_request_is_masked_and_without_contact() -> None:
    request = read_request(
        GOOD
        | {
            "description": "暖气不热，回电13812345678",
            "address_string": "菁华公寓 0535-6612345",
            "phone": "13812345678",
        },
        CODES,
    )
    row = stored(request, "open311-abc", "web", "channel", NOW)
    assert row["service_request_id"] == work_order_id("open311-abc") == "WO-H-open311-abc"
    assert row["description"] == "暖气不热，回电138****5678"
    assert row["address"] == "菁华公寓 0535-****345"
    assert "13812345678" not in str(row) and "孙" not in str(row)
    assert set(row) >= {"call_id", "service_code", "channel", "key_name", "received_at", "service_notice"}


@pytest.mark.parametrize(
    ("first", "last", "name"),
    [
        ("大爷", "孙", "孙大爷"),
        ("Ada", "Lovelace", "Ada Lovelace"),
        ("Ada", None, "Ada"),
        (None, "孙", "孙"),
        (None, None, None),
    ],
)
def test_caller_name(first: str | None, last: str | None, name: str | None) -> None:
    assert caller_name(first, last) == name


# ---- listing ----------------------------------------------------------------------------------


def listing(**params: str) -> Listing:
    return read_listing(params, CODES, NOW)


def test_by_default_the_last_90_days_open_and_closed() -> None:
    assert listing() == Listing(start=NOW - DEFAULT_SPAN, end=NOW, closed=None)


def test_ids_override_every_other_filter() -> None:
    assert listing(service_request_id="WO-H-1, WO-H-2,,WO-H-1", status="bogus") == Listing(
        ids=("WO-H-1", "WO-H-2")
    )


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "open"}, {"closed": False}),
        ({"status": "closed"}, {"closed": True}),
        ({"status": "open,closed"}, {"closed": None}),
        ({"service_code": "heating,road"}, {"codes": ("heating", "road")}),
        ({"start_date": "2026-11-01T00:00:00+08:00"}, {"start": datetime(2026, 10, 31, 16, tzinfo=UTC)}),
        ({"end_date": "2026-11-01T00:00:00Z"}, {"end": datetime(2026, 11, 1, tzinfo=UTC)}),
    ],
)
def test_filters(params: dict[str, str], expected: dict[str, Any]) -> None:
    found = listing(**params)
    for name, value in expected.items():
        assert getattr(found, name) == value
    assert found.start is not None and found.end is not None and found.end - found.start <= DEFAULT_SPAN


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "pending"}, "status: expected open, closed, or both comma-separated"),
        ({"service_code": "heating,unicorns"}, "service_code: not a known service code (see services.json)"),
        ({"start_date": "yesterday"}, "start_date: not an ISO 8601 date and time"),
        ({"end_date": "2026-11-01T00:00:00"}, "end_date: needs a time zone (Z or +hh:mm)"),
        (
            {"start_date": "2026-11-02T00:00:00Z", "end_date": "2026-11-01T00:00:00Z"},
            "end_date: before start_date",
        ),
        (
            {"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-11-01T00:00:00Z"},
            "end_date: the range may not span more than 90 days",
        ),
        (
            {"service_request_id": ",".join(f"WO-{i}" for i in range(1001))},
            "service_request_id: more than 1000 ids",
        ),
    ],
)
def test_a_wrong_filter_is_named(params: dict[str, str], expected: str) -> None:
    with pytest.raises(Invalid) as caught:
        listing(**params)
    assert caught.value.problems == [expected]


def test_a_range_given_by_one_end_spans_the_default() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert listing(start_date="2026-01-01T00:00:00Z").end == start + timedelta(days=90)


# ---- the centre's desk ------------------------------------------------------------------------

STREETS = frozenset({"福莱山街道"})


def test_the_desks_filters_are_names_the_jurisdiction_knows(ref: Jurisdiction) -> None:
    found = read_order_filters(
        ref, STREETS, statuses=("dispatched",), street="福莱山街道", community="夹河社区", category="供暖"
    )
    assert found == OrderFilters(("dispatched",), "福莱山街道", "夹河社区", "heating")
    assert read_order_filters(ref, STREETS, category="heating", department="heat").department == "heat"
    with pytest.raises(Invalid) as caught:
        read_order_filters(ref, STREETS, street="月球街道", community="x", category="x", department="x")
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "street",
        "community",
        "category",
        "department",
    ]


GRID = "HB-FLS-JH-01"
REASSIGNMENTS: list[tuple[dict[str, Any], list[str]]] = [
    ({}, []),  # a note alone: routed anew by the duty list
    ({"category": "供暖", "community": "夹河社区", "lead": "heat"}, []),
    ({"category": "heating", "grid": GRID, "lead": "heat", "assist": ["street_desk"]}, []),
    ({"category": "unicorns"}, ["category"]),
    ({"community": "月球社区"}, ["community"]),
    ({"grid": "XX-1"}, ["grid"]),
    ({"lead": "nasa"}, ["lead"]),
    ({"assist": ["heat"]}, ["lead"]),
    ({"lead": "heat", "assist": ["water", "nasa"]}, ["assist.1"]),
]


@pytest.mark.parametrize(("names", "wrong"), REASSIGNMENTS)
def test_a_reassignments_names_are_checked_as_dispatch_checks_them(
    ref: Jurisdiction, names: dict[str, Any], wrong: list[str]
) -> None:
    given = {"category": None, "community": None, "grid": None, "lead": None, "assist": []} | names
    problems = reassign_problems(ref, **given)
    assert [p.split(":")[0] for p in problems] == wrong
    # What passes here passes dispatch's own checks (its routing, its category look-up).
    refused = ref.find_category(given["category"]) is None if given["category"] else False
    try:
        placed_at(ref, given["community"], given["grid"])
        named_departments(ref, given["lead"], given["assist"])
    except Refusal:
        refused = True
    assert refused is bool(wrong)


def test_a_cursor_goes_and_comes_back_and_nothing_else_is_one() -> None:
    for cursor in (Cursor(NOW, "WO-H-1"), Cursor(None, "D-9")):
        assert Cursor.decode(cursor.encode()) == cursor
    for wrong in ("x", "WyJ4Il0", Cursor(NOW.replace(tzinfo=None), "a").encode(), "W251bGwsIDVd"):
        with pytest.raises(ValueError, match="cursor: not a cursor this API gave"):
            Cursor.decode(wrong)
