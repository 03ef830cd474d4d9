"""The api's HTTP rules that need no database, in process: the kit's paths and the API's served side
by side, Open311's services, and a POST refused before anything is stored or published: no key
(401), a key that may not post (403), over its rate (429), a body over the cap (413), neither form
nor JSON (415), each wrong field named (400), all in Open311's error form. The same refusals on the
department API and the centre's desk, in their own form (``{"detail": ["field: message"]}``, 422
for a field), and the committed OpenAPI document is the app's. The service here has no database
nor outbox: an answer that tried to store or publish would be a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from faststream.asgi import AsgiFastStream, AsgiResponse, get

from services.api import openapi
from services.api.app import ROUTERS
from services.api.keys import KeyRing, RateLimits, key_entry
from services.api.web import Api, http_app
from shared.documents import render
from shared.reference import Jurisdiction
from shared.service import Service, with_http
from shared.settings import Settings

CAP = 1024


@get
async def healthz(scope: Any) -> AsgiResponse:
    return AsgiResponse(b'{"status": "ok"}', 200)


@pytest.fixture
async def client(tmp_path: Path, ref: Jurisdiction) -> AsyncIterator[httpx.AsyncClient]:
    keys = tmp_path / "keys.json"
    entries = [
        key_entry("web", "channel", "web-key"),
        key_entry("heat", "department:heat", "heat-key"),
        key_entry("desk", "centre", "desk-key"),
    ]
    keys.write_text(json.dumps(entries))
    # No engine: every answer here is given before the database would be asked.
    service = cast(Service, SimpleNamespace(settings=Settings(api_max_body_bytes=CAP)))
    api = Api(service, ref, KeyRing(keys), RateLimits(3))
    app = with_http(AsgiFastStream(asgi_routes=[("/healthz", healthz)]), http_app(api, ROUTERS))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        yield client


async def test_the_kits_paths_and_the_apis_are_served_side_by_side(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    services = (await client.get("/open311/v2/services.json")).json()
    heating = next(s for s in services if s["service_code"] == "heating")
    assert heating == {
        "service_code": "heating",
        "service_name": "供暖",
        "description": heating["description"],
        "metadata": False,
        "type": "realtime",
        "keywords": heating["keywords"],
        "group": "社区帮忙办",
    }
    assert "暖气" in heating["keywords"] and heating["description"].startswith("供暖：")
    definition = await client.get("/open311/v2/services/heating.json")
    assert definition.json() == {"service_code": "heating", "attributes": []}


@pytest.mark.parametrize(
    ("path", "status", "description"),
    [
        (
            "/open311/v2/services/unicorns.json",
            404,
            "service_code: not a known service code (see services.json)",
        ),
        ("/open311/v2/services.xml", 404, "format: only .json is served"),
        ("/open311/v2/nowhere.json", 404, "no such resource"),
    ],
)
async def test_errors_come_in_open311s_form(
    client: httpx.AsyncClient, path: str, status: int, description: str
) -> None:
    answer = await client.get(path)
    assert (answer.status_code, answer.json()) == (status, [{"code": status, "description": description}])


async def test_a_wrong_filter_is_named(client: httpx.AsyncClient) -> None:
    answer = await client.get("/open311/v2/requests.json", params={"status": "pending", "start_date": "x"})
    assert answer.status_code == 400
    assert [p["description"].split(":")[0] for p in answer.json()] == ["status", "start_date"]


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        (
            "/open311/v2/requests.json?start_date=&service_request_id=%C3%95%00a",
            400,
            [{"code": 400, "description": "service_request_id: holds a NUL character"}],
        ),
        ("/v1/orders/WO-%00", 422, {"detail": ["path: holds a NUL character"]}),
    ],
)
async def test_a_nul_character_anywhere_is_refused_by_name(
    client: httpx.AsyncClient, path: str, status: int, body: object
) -> None:
    """Found by the schema test: a NUL in an id reached PostgreSQL, which cannot hold it (500)."""
    answer = await client.get(path, headers={"Authorization": "Bearer desk-key"})
    assert (answer.status_code, answer.json()) == (status, body)


GOOD = {"service_code": "heating", "description": "暖气不热", "phone": "13812345678"}


@pytest.mark.parametrize(
    ("headers", "form", "status", "description"),
    [
        ({}, GOOD, 401, "api_key: required"),
        ({}, GOOD | {"api_key": "guess"}, 401, "api_key: not a known key"),
        ({"Authorization": "Bearer guess"}, GOOD, 401, "api_key: not a known key"),
        ({}, GOOD | {"api_key": "heat-key"}, 403, "api_key: a department:heat key may not post requests"),
        (
            {"Authorization": "Bearer heat-key"},
            GOOD,
            403,
            "api_key: a department:heat key may not post requests",
        ),
        ({}, {"api_key": "web-key", "service_code": "heating"}, 400, "description: required"),
        ({}, GOOD | {"api_key": "web-key", "service_code": "unicorns"}, 400, "service_code: not a known"),
        (
            {},
            GOOD | {"api_key": "web-key", "description": "x" * (CAP + 1)},
            413,
            f"body: larger than {CAP} bytes",
        ),
    ],
)
async def test_a_post_refused_says_why(
    client: httpx.AsyncClient, headers: dict[str, str], form: dict[str, str], status: int, description: str
) -> None:
    answer = await client.post("/open311/v2/requests.json", data=form, headers=headers)
    assert answer.status_code == status
    [problem] = answer.json()
    assert problem["code"] == status and problem["description"].startswith(description)
    assert "13812345678" not in answer.text
    if status == 401:
        assert answer.headers["www-authenticate"] == "Bearer"


async def test_a_body_neither_form_nor_json_is_refused(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/open311/v2/requests.json", content=b"<xml/>", headers={"Content-Type": "text/xml"}
    )
    assert answer.status_code == 415 and answer.json()[0]["description"].startswith("Content-Type:")
    answer = await client.post(
        "/open311/v2/requests.json", content=b"[1]", headers={"Content-Type": "application/json"}
    )
    assert answer.json() == [{"code": 400, "description": "body: expected a JSON object"}]


async def test_json_is_read_like_a_form(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/open311/v2/requests.json", json={"api_key": "web-key", "service_code": "heating"}
    )
    assert answer.json() == [{"code": 400, "description": "description: required"}]


async def test_a_key_over_its_rate_is_told_to_slow_down(client: httpx.AsyncClient) -> None:
    form = {"api_key": "web-key", "service_code": "heating"}  # refused after the rate is taken
    codes = [(await client.post("/open311/v2/requests.json", data=form)).status_code for _ in range(4)]
    assert codes == [400, 400, 400, 429]


async def test_the_schema_describes_the_post_body(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    body = schema["paths"]["/open311/v2/requests.json"]["post"]["requestBody"]["content"]
    assert {"application/x-www-form-urlencoded", "application/json"} <= set(body)


# ---- the department API and the centre's desk ------------------------------------------------

DEPARTMENT = {"Authorization": "Bearer heat-key"}
CENTRE = {"Authorization": "Bearer desk-key"}


async def test_elsewhere_errors_say_field_and_message(client: httpx.AsyncClient) -> None:
    answer = await client.get("/nowhere")
    assert (answer.status_code, answer.json()) == (404, {"detail": ["no such resource"]})


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "detail"),
    [
        ("GET", "/v1/dispatches", {}, 401, "Authorization: required"),
        ("GET", "/v1/dispatches", {"Authorization": "Bearer guess"}, 401, "Authorization: not a known key"),
        ("GET", "/v1/dispatches", {"Authorization": "Basic heat-key"}, 401, "Authorization: required"),
        ("GET", "/v1/dispatches", CENTRE, 403, "Authorization: a centre key may not answer dispatches"),
        (
            "POST",
            "/v1/dispatches/D1/accept",
            {"Authorization": "Bearer web-key"},
            403,
            "Authorization: a channel key may not answer dispatches",
        ),
        (
            "GET",
            "/v1/orders",
            DEPARTMENT,
            403,
            "Authorization: a department:heat key may not use the centre's",
        ),
        (
            "GET",
            "/v1/rates",
            {"Authorization": "Bearer web-key"},
            403,
            "Authorization: a channel key may not",
        ),
        ("POST", "/v1/orders/WO-1/reassign", {}, 401, "Authorization: required"),
    ],
)
async def test_a_key_that_may_not_is_refused_before_anything_is_read(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], status: int, detail: str
) -> None:
    answer = await client.request(method, path, headers=headers, json={"note": "x"})
    assert answer.status_code == status
    [said] = answer.json()["detail"]
    assert said.startswith(detail)
    if status == 401:
        assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("/v1/dispatches/D1/reject", {"reason": "bored", "note": "x"}, ["reason"]),
        ("/v1/dispatches/D1/reject", {"reason": "duplicate"}, ["note"]),
        ("/v1/dispatches/D1/progress", {"note": "   "}, ["note"]),
        ("/v1/dispatches/D1/progress", {"note": "a\u0000b"}, ["note"]),
        ("/v1/dispatches/D1/extend", {"resolve_by": "2026-12-01T10:00:00"}, ["resolve_by"]),
        ("/v1/dispatches/D1/resolve", {"result": ""}, ["result"]),
        ("/v1/dispatches/D1/accept", {"note": "x", "notes": "y"}, ["notes"]),
        ("/v1/dispatches/D1/accept", [1], ["body"]),
        ("/v1/dispatches/" + "D" * 101 + "/accept", {}, ["dispatch_id"]),
    ],
)
async def test_a_wrong_body_is_422_naming_each_field(
    client: httpx.AsyncClient, path: str, body: object, named: list[str]
) -> None:
    answer = await client.post(path, json=body, headers=DEPARTMENT)
    assert answer.status_code == 422, answer.text
    assert [d.split(":")[0] for d in answer.json()["detail"]] == named
    assert "bored" not in answer.text  # the value is never echoed


async def test_a_body_that_is_not_json_is_422(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/v1/dispatches/D1/accept",
        content=b"{not json",
        headers=DEPARTMENT | {"Content-Type": "application/json"},
    )
    assert (answer.status_code, answer.json()) == (422, {"detail": ["body: not valid JSON"]})


async def test_a_reassignment_names_each_unknown_name_before_the_order_is_looked_at(
    client: httpx.AsyncClient,
) -> None:
    body = {
        "category": "unicorns",
        "community": "no such",
        "grid": "XX-1",
        "assist": ["heat", "nobody"],
        "note": "回访确认",
    }
    answer = await client.post("/v1/orders/WO-H-1/reassign", json=body, headers=CENTRE)
    assert answer.status_code == 422
    assert [d.split(":")[0] for d in answer.json()["detail"]] == [
        "category",
        "community",
        "grid",
        "lead",
        "assist.1",
    ]
    missing = await client.post("/v1/orders/WO-H-1/reassign", json={"lead": "heat"}, headers=CENTRE)
    assert missing.json() == {"detail": ["note: Field required"]}


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"street": "月球街道"}, ["street"]),
        (
            {"community": "月球社区", "category": "unicorns", "department": "nasa"},
            ["community", "category", "department"],
        ),
        ({"status": "lost"}, ["status.0"]),
        ({"level": "planet"}, ["level"]),
        ({"limit": "0"}, ["limit"]),
        ({"cursor": "not-a-cursor"}, ["cursor"]),
    ],
)
async def test_the_desks_filters_are_checked_before_the_orders_are_read(
    client: httpx.AsyncClient, params: dict[str, str], named: list[str]
) -> None:
    answer = await client.get("/v1/orders", params=params, headers=CENTRE)
    assert answer.status_code == 422, answer.text
    assert [d.split(":")[0] for d in answer.json()["detail"]] == named


async def test_the_body_cap_and_the_rate_are_the_same_on_every_api(client: httpx.AsyncClient) -> None:
    big = await client.post("/v1/dispatches/D1/progress", json={"note": "x" * CAP}, headers=DEPARTMENT)
    assert big.json() == {"detail": [f"body: larger than {CAP} bytes"]} and big.status_code == 413
    # Refused before its key was looked at (the body comes first), it took none of the key's 3 a second.
    answers = [await client.post("/v1/dispatches/D1/accept", json=[1], headers=DEPARTMENT) for _ in range(4)]
    assert [a.status_code for a in answers] == [422, 422, 422, 429]
    assert answers[-1].headers["retry-after"] == "1"
    assert answers[-1].json() == {"detail": ["Authorization: over 3 requests a second"]}


def test_the_committed_openapi_document_is_the_apps() -> None:
    committed = openapi.DOCUMENT.read_text(encoding="utf-8")
    assert committed == render(openapi.schema()), f"docs/openapi.json is stale: run {openapi.COMMAND}"
    paths = openapi.schema()["paths"]
    assert {
        "/v1/dispatches/{dispatch_id}/resolve",
        "/v1/orders/{work_order_id}/reassign",
        "/v1/rates",
    } <= set(paths)
    errors = paths["/v1/dispatches/{dispatch_id}/accept"]["post"]["responses"]["422"]
    assert errors["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Errors"}


@pytest.mark.parametrize(
    ("path", "key", "status", "detail"),
    [
        ("/v1/reports/2026-11", None, 401, None),
        ("/v1/reports/2026-11", "heat-key", 403, None),
        ("/v1/reports/2026-11", "web-key", 403, None),
        (
            "/v1/reports/2026-13",
            "desk-key",
            422,
            ["month: expected YYYY-MM, a month from 2000-01 to 2999-12"],
        ),
        (
            "/v1/reports/11-2026",
            "desk-key",
            422,
            ["month: expected YYYY-MM, a month from 2000-01 to 2999-12"],
        ),
        ("/v1/reports/2026-11?format=pdf", "desk-key", 422, None),
    ],
)
async def test_the_monthly_report_is_refused_before_anything_is_read(
    client: httpx.AsyncClient, path: str, key: str | None, status: int, detail: list[str] | None
) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    answer = await client.get(path, headers=headers)
    assert answer.status_code == status, answer.text
    if detail is not None:
        assert answer.json() == {"detail": detail}
    if path.endswith("pdf"):
        assert answer.json()["detail"][0].startswith("format: ")
