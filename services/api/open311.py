"""Open311 GeoReport v2 (https://wiki.open311.org/GeoReport_v2), JSON format, under /open311/v2/:
the jurisdiction's categories as services, requests posted as hotline calls, and requests answered
from the read model. A posted request's contact goes into its hotline call and nowhere else."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from shared import contract
from shared.events import derived_id
from shared.logs import get_logger
from shared.reference import Category

from . import store
from .domain import open311_status
from .forms import Invalid, Listing, read_listing, read_request, stored
from .forms import hotline_call as call_data
from .web import Api, Refusal, api_of, authorize, parse_fields, presented_key

log = get_logger(__name__)
router = APIRouter(prefix="/open311/v2", tags=["open311"])
ApiDep = Annotated[Api, Depends(api_of)]

# 小问题物业当场办、大问题社区帮忙办、难问题街道协调办: a category's group is who takes it first.
GROUPS = {
    "property": "物业当场办",
    "grid": "网格当场办",
    "community": "社区帮忙办",
    "street": "街道协调办",
    "district": "区级统筹办",
}


class Problem(BaseModel):
    code: int
    description: str


class Service311(BaseModel):
    service_code: str
    service_name: str
    description: str
    metadata: bool
    type: Literal["realtime", "batch", "blackbox"]
    keywords: str
    group: str


class ServiceDefinition(BaseModel):
    service_code: str
    attributes: list[dict[str, Any]]


class Created(BaseModel):
    service_request_id: str
    service_notice: str


class ServiceRequest(BaseModel):
    service_request_id: str
    status: Literal["open", "closed"]
    status_notes: str | None
    service_name: str | None
    service_code: str | None
    description: str | None  # masked
    agency_responsible: str | None
    service_notice: str | None
    requested_datetime: datetime | None
    updated_datetime: datetime | None
    expected_datetime: datetime | None
    address: str | None  # masked
    lat: float | None
    long: float | None
    # Not in the spec: the request this one joined (并单), when it was merged.
    merged_into: str | None = None


class RequestForm(BaseModel):
    """What POST requests.json reads (the body's schema, for the OpenAPI document)."""

    api_key: str | None = Field(None, description="a channel key; or Authorization: Bearer")
    service_code: str
    description: str = Field(max_length=4000)
    address_string: str | None = Field(None, max_length=500)
    lat: float | None = Field(None, ge=-90, le=90)
    long: float | None = Field(None, ge=-180, le=180)
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    email: str | None = None
    device_id: str | None = Field(None, description="ignored")
    account_id: str | None = Field(None, description="ignored")


_FORM = RequestForm.model_json_schema()
POST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": _FORM},
            "application/json": {"schema": _FORM},
        },
    }
}
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": list[Problem], "description": what}
    for code, what in {
        400: "a field missing or invalid (each named)",
        401: "no key, or an unknown one",
        403: "a key whose role may not do this",
        404: "no such service or request",
        413: "the body is over the cap",
        415: "neither a form nor JSON",
        429: "over the key's rate",
    }.items()
}


def service_of(category: Category) -> Service311:
    keywords = ", ".join(category.keywords)
    return Service311(
        service_code=category.code,
        service_name=category.name,
        description=f"{category.name}：{'、'.join(category.keywords[:6])}"
        if category.keywords
        else category.name,
        metadata=False,
        type="realtime",
        keywords=keywords,
        group=GROUPS[category.tier],
    )


@router.get("/services.json", responses=ERRORS)
async def services(api: ApiDep) -> list[Service311]:
    return [service_of(c) for c in api.ref.categories]


@router.get("/services/{service_code}.json", responses=ERRORS)
async def service_definition(service_code: str, api: ApiDep) -> ServiceDefinition:
    if service_code not in api.ref.category_by_code:
        raise Refusal(404, "service_code: not a known service code (see services.json)")
    return ServiceDefinition(service_code=service_code, attributes=[])


@router.post("/requests.json", status_code=201, openapi_extra=POST_BODY, responses=ERRORS)
async def post_request(request: Request, api: ApiDep) -> list[Created]:
    """A resident's request, as a hotline call for intake: its row and its call are staged in one
    transaction, and the answer goes at once with the id of the order intake will make of it."""
    body = await request.body()  # capped (413) by web.BodyCap, as every route's
    fields = parse_fields(body, request.headers.get("content-type", ""))
    key = await authorize(api, presented_key(request, fields), "post requests")
    try:
        posted = read_request(fields, api.ref.category_by_code)
    except Invalid as exc:
        raise Refusal(400, *exc.problems) from None
    call_id = f"open311-{uuid.uuid4().hex}"
    received = datetime.now(UTC)
    row = stored(posted, call_id, key.channel, key.name, received)
    await api.publish(
        contract.HOTLINE_CALLS,
        call_id,
        "hotline.call.received",
        call_data(posted, call_id, key.channel),
        id=derived_id("open311", call_id),
        time=received,
        record=lambda conn: store.add_request(conn, row),
    )
    log.info("request taken", service_request_id=row["service_request_id"], key=key.name)
    return [Created(service_request_id=row["service_request_id"], service_notice=row["service_notice"])]


@router.get("/requests.json", responses=ERRORS)
async def list_requests(
    api: ApiDep,
    service_request_id: str | None = None,
    service_code: str | None = None,
    status: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    jurisdiction_id: str | None = None,  # one jurisdiction: accepted and ignored
) -> list[ServiceRequest]:
    """Newest first: by default the last 90 days, at most 1,000 requests."""
    params = {
        "service_request_id": service_request_id,
        "service_code": service_code,
        "status": status,
        "start_date": start_date,
        "end_date": end_date,
    }
    try:
        listing = read_listing(params, api.ref.category_by_code, datetime.now(UTC))
    except Invalid as exc:
        raise Refusal(400, *exc.problems) from None
    return await _answers(api, listing)


@router.get("/requests/{service_request_id}.json", responses=ERRORS)
async def get_request(service_request_id: str, api: ApiDep) -> list[ServiceRequest]:
    found = await _answers(api, Listing(ids=(service_request_id,)))
    if not found:
        raise Refusal(404, "service_request_id: no such request")
    return found


async def _answers(api: Api, listing: Listing) -> list[ServiceRequest]:
    async with api.service.engine.connect() as conn:
        orders, pending = await store.find(conn, listing)
    answers = [_of_order(api, r) for r in orders] + [_of_pending(api, r) for r in pending]
    answers.sort(key=lambda a: a.requested_datetime or datetime.min.replace(tzinfo=UTC), reverse=True)
    return answers[: listing.limit]


def _local(at: datetime | None, api: Api) -> datetime | None:
    return at.astimezone(api.zone) if at else None


def _of_order(api: Api, r: Any) -> ServiceRequest:
    return ServiceRequest(
        service_request_id=r.id,
        status=open311_status(r.status),
        status_notes=r.status_notes,
        service_name=r.category_name,
        service_code=r.category,
        description=r.request_description or r.summary,
        agency_responsible=api.department_name(r.lead_department),
        service_notice=r.service_notice,
        requested_datetime=_local(r.requested_at, api),
        updated_datetime=_local(r.updated_at, api),
        expected_datetime=_local(r.resolve_by, api),
        address=r.address or r.request_address,
        lat=r.lat if r.lat is not None else r.request_lat,
        long=r.lon if r.lon is not None else r.request_lon,
        merged_into=r.merged_into,
    )


def _of_pending(api: Api, r: Any) -> ServiceRequest:
    category = api.ref.category_by_code.get(r.service_code)
    return ServiceRequest(
        service_request_id=r.service_request_id,
        status="open",
        status_notes="received",
        service_name=category.name if category else None,
        service_code=r.service_code,
        description=r.description,
        agency_responsible=None,
        service_notice=r.service_notice,
        requested_datetime=_local(r.received_at, api),
        updated_datetime=_local(r.received_at, api),
        expected_datetime=None,
        address=r.address,
        lat=r.lat,
        long=r.lon,
    )
