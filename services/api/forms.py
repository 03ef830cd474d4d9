"""What requests must hold: an Open311 request's fields (and the hotline call they make) and a
listing's filters; the desk's filters, and the names a 改派 gives, checked against the
jurisdiction as dispatch checks them. Each problem names its field, never its value. No I/O."""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.contract import HotlineCall
from shared.pii import mask_phones_in_text
from shared.reference import Jurisdiction

MAX_DESCRIPTION = 4000  # the contract's bound on a call's content
MAX_ADDRESS = 500
MAX_NAME = 64
MAX_PHONE = 32
_PHONE = re.compile(r"[+\d][\d\s\-()]{2,31}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CJK = re.compile(r"[\u4e00-\u9fff]")


def work_order_id(call_id: str) -> str:
    """The order intake makes of a call (the contract's ``WO-H-<call_id>``): what Open311 answers
    as the request's id before the order exists."""
    return f"WO-H-{call_id}"


class Invalid(ValueError):
    """Fields a request may not have as they are; each problem names its field, never its value."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class NewRequest:
    service_code: str
    description: str
    address: str | None
    lat: float | None
    lon: float | None
    name: str | None  # personal: only into the hotline call
    phone: str | None  # personal: only into the hotline call


def read_request(fields: Mapping[str, object], service_codes: Collection[str]) -> NewRequest:
    """A POSTed request's fields, checked; Invalid lists every problem. ``email`` is checked but
    not kept: the contract's caller has a name and a phone, and nothing would read it."""
    problems: list[str] = []
    text = _Texts(fields, problems)
    code = text("service_code", 64, required=True)
    if code is not None and code not in service_codes:
        problems.append("service_code: not a known service code (see services.json)")
    description = text("description", MAX_DESCRIPTION, required=True)
    address = text("address_string", MAX_ADDRESS)
    lat, lon = _number(fields, "lat", 90, problems), _number(fields, "long", 180, problems)
    if (lat is None) != (lon is None) and not any(p.startswith(("lat:", "long:")) for p in problems):
        problems.append("long: required with lat" if lon is None else "lat: required with long")
    first, last = text("first_name", MAX_NAME), text("last_name", MAX_NAME)
    name = caller_name(first, last)
    if name is not None and len(name) > MAX_NAME:
        problems.append(f"first_name: with last_name, longer than {MAX_NAME} characters")
    phone = text("phone", MAX_PHONE)
    if phone is not None and not _PHONE.fullmatch(phone):
        problems.append("phone: not a phone number (digits, spaces, +, - and brackets)")
    email = text("email", 254)
    if email is not None and not _EMAIL.fullmatch(email):
        problems.append("email: not an email address")
    if problems:
        raise Invalid(problems)
    assert code is not None and description is not None
    return NewRequest(code, description, address, lat, lon, name, phone)


class _Texts:
    """Reads text fields, noting what is wrong with each."""

    def __init__(self, fields: Mapping[str, object], problems: list[str]) -> None:
        self.fields, self.problems = fields, problems

    def __call__(self, name: str, longest: int, required: bool = False) -> str | None:
        value = self.fields.get(name)
        if value is not None and not isinstance(value, str):
            self.problems.append(f"{name}: expected text")
            return None
        value = (value or "").strip()
        if not value:
            if required:
                self.problems.append(f"{name}: required")
            return None
        if "\x00" in value:
            self.problems.append(f"{name}: holds a NUL character")
        elif len(value) > longest:
            self.problems.append(f"{name}: longer than {longest} characters")
        else:
            return value
        return None


def _number(fields: Mapping[str, object], name: str, bound: float, problems: list[str]) -> float | None:
    value = fields.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = (
            float(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else None
        )
    except ValueError:
        number = None
    if number is None or not math.isfinite(number):
        problems.append(f"{name}: not a number")
    elif not -bound <= number <= bound:
        problems.append(f"{name}: outside -{bound:g}..{bound:g}")
    else:
        return number
    return None


def caller_name(first: str | None, last: str | None) -> str | None:
    """Chinese names are written family name first and without a space (孙 + 大爷); others, first
    name first."""
    if first and last:
        return last + first if _CJK.search(first + last) else f"{first} {last}"
    return first or last


def hotline_call(request: NewRequest, call_id: str, channel: str) -> dict[str, Any]:
    """The ``hotline.call.received`` data for intake: the one place the caller's contact goes."""
    caller = {"name": request.name, "phone": request.phone} if request.name or request.phone else None
    location = {"lat": request.lat, "lon": request.lon} if request.lat is not None else None
    data = {
        "call_id": call_id,
        "channel": channel,
        "content": request.description,
        "caller": caller,
        "category_hint": request.service_code,
        "address": request.address,
        "location": location,
    }
    # A resident's request is never answered on the call: the call says only what it holds.
    call = HotlineCall.model_validate(data)
    return call.model_dump(mode="json", exclude_none=True, exclude={"answered_directly"})


# What a channel is told when its request is taken.
NOTICE = "已受理：12345 热线将据此生成工单，派至责任单位办理；可凭 service_request_id 查询进度。"


def stored(request: NewRequest, call_id: str, channel: str, key_name: str, at: datetime) -> dict[str, Any]:
    """What the api keeps of a request it took: the text masked, the caller's contact not at all."""
    return {
        "service_request_id": work_order_id(call_id),
        "call_id": call_id,
        "service_code": request.service_code,
        "channel": channel,
        "key_name": key_name,
        "description": mask_phones_in_text(request.description),
        "address": mask_phones_in_text(request.address) if request.address else None,
        "lat": request.lat,
        "lon": request.lon,
        "received_at": at,
        "service_notice": NOTICE,
    }


# ---- listing requests -------------------------------------------------------------------------

DEFAULT_SPAN = timedelta(days=90)  # the spec's default window, and the longest one may ask for
MAX_ROWS = 1000


@dataclass(frozen=True, slots=True)
class Listing:
    ids: tuple[str, ...] = ()  # when given, the others are ignored (as the spec says)
    codes: tuple[str, ...] = ()
    closed: bool | None = None  # None: open and closed
    start: datetime | None = None
    end: datetime | None = None
    limit: int = MAX_ROWS


def read_listing(params: Mapping[str, str | None], service_codes: Collection[str], now: datetime) -> Listing:
    """GET requests' filters, checked; Invalid names each wrong one."""
    problems: list[str] = []
    ids = _list(params.get("service_request_id"))
    if ids:
        if len(ids) > MAX_ROWS:
            problems.append(f"service_request_id: more than {MAX_ROWS} ids")
        if problems:
            raise Invalid(problems)
        return Listing(ids=ids)
    codes = _list(params.get("service_code"))
    if any(c not in service_codes for c in codes):
        problems.append("service_code: not a known service code (see services.json)")
    statuses = set(_list(params.get("status")))
    if statuses - {"open", "closed"}:
        problems.append("status: expected open, closed, or both comma-separated")
    start, end = _date(params, "start_date", problems), _date(params, "end_date", problems)
    if start is not None and end is not None:
        if end < start:
            problems.append("end_date: before start_date")
        elif end - start > DEFAULT_SPAN:
            problems.append(f"end_date: the range may not span more than {DEFAULT_SPAN.days} days")
    if problems:
        raise Invalid(problems)
    if start is None and end is None:
        end = now
    if start is None:
        assert end is not None
        start = end - DEFAULT_SPAN
    if end is None:
        end = start + DEFAULT_SPAN
    closed = None if len(statuses) != 1 else statuses == {"closed"}
    return Listing(codes=codes, closed=closed, start=start, end=end)


def _list(value: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip() for v in (value or "").split(",") if v.strip()))


def _date(params: Mapping[str, str | None], name: str, problems: list[str]) -> datetime | None:
    value = (params.get(name) or "").strip()
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        problems.append(f"{name}: not an ISO 8601 date and time")
        return None
    if at.tzinfo is None:
        problems.append(f"{name}: needs a time zone (Z or +hh:mm)")
        return None
    return at


# ---- the centre's desk ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderFilters:
    statuses: tuple[str, ...] = ()
    street: str | None = None
    community: str | None = None
    category: str | None = None  # its code
    level: str | None = None
    department: str | None = None  # the lead's code
    overdue: bool | None = None


def read_order_filters(
    ref: Jurisdiction,
    streets: Collection[str],
    *,
    statuses: tuple[str, ...] = (),
    street: str | None = None,
    community: str | None = None,
    category: str | None = None,
    level: str | None = None,
    department: str | None = None,
    overdue: bool | None = None,
) -> OrderFilters:
    """The desk's filters (their shapes checked by the route), each name one the jurisdiction knows:
    a filter that can match nothing is a mistake to say, not an empty page."""
    problems = []
    if street is not None and street not in streets:
        problems.append("street: not a street of the jurisdiction")
    if community is not None and community not in ref.community_by_name:
        problems.append("community: not a community of the jurisdiction")
    found = ref.find_category(category) if category is not None else None
    if category is not None and found is None:
        problems.append("category: not a category's code or name")
    if department is not None and department not in ref.department_by_code:
        problems.append("department: not a department's code")
    if problems:
        raise Invalid(problems)
    code = found.code if found else None
    return OrderFilters(statuses, street, community, code, level, department, overdue)


def reassign_problems(
    ref: Jurisdiction,
    category: str | None,
    community: str | None,
    grid: str | None,
    lead: str | None,
    assist: list[str],
) -> list[str]:
    """What is wrong with a 改派's names, by dispatch's rules (``routing.placed_at``,
    ``named_departments`` and ``Order.reassign``), so that dispatch is not sent one it would
    refuse: every name it would look up is checked, and assisting departments come with a lead."""
    problems = []
    if category is not None and ref.find_category(category) is None:
        problems.append("category: not a category's code or name")
    if community is not None and community not in ref.community_by_name:
        problems.append("community: not a community of the jurisdiction")
    if grid is not None and grid not in ref.places_by_grid:
        problems.append("grid: not a grid of the jurisdiction")
    if assist and not lead:
        problems.append("lead: assisting departments are named with a lead")
    if lead is not None and lead not in ref.department_by_code:
        problems.append("lead: not a department's code")
    problems += [
        f"assist.{i}: not a department's code"
        for i, code in enumerate(assist)
        if code not in ref.department_by_code
    ]
    return problems
