"""The api on the test stack, over HTTP and the real broker: an Open311 request becomes an order and
is followed to its close; refused requests publish nothing; a repeat says which request it joined;
no answer carries the caller's phone or name."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from shared import contract
from shared.reference import load_jurisdiction
from shared.topics import records_in
from tests.integration.bus import Bus, cloud_event
from tests.integration.flows import PHONE, dispatched, eventually, of_order, respond
from tools.stack import Stack

pytestmark = pytest.mark.integration
NAME = ("大爷", "孙")  # first_name, last_name: 孙大爷


@pytest.fixture(scope="module")
def keys(stack: Stack) -> dict[str, str]:
    """The development keys the stack wrote for the api, in clear."""
    return json.loads((stack.home / "api-keys.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    base = f"http://127.0.0.1:{stack.port('api')}/open311/v2"
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        yield client


def form(key: str | None, compound: str, **fields: str) -> dict[str, str]:
    body = {
        "service_code": "heating",
        "description": f"{compound}3号楼暖气不热，屋里才十五度，请回电{PHONE}",
        "address_string": f"{compound}3号楼",
        "first_name": NAME[0],
        "last_name": NAME[1],
        "phone": PHONE,
        "email": "sun@example.com",
    } | fields
    return body | {"api_key": key} if key else body


class Answers:
    """Every answer the api gave in a test, to look for personal data in them all at the end."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http, self.texts = http, list[str]()

    async def request(self, id: str) -> dict[str, Any] | None:
        answer = await self.http.get(f"/requests/{id}.json")
        self.texts.append(answer.text)
        if answer.status_code == 404:
            return None
        assert answer.status_code == 200, answer.text
        [found] = answer.json()
        return found  # type: ignore[no-any-return]

    async def post(self, body: dict[str, str], **kwargs: Any) -> httpx.Response:
        answer = await self.http.post("/requests.json", data=body, **kwargs)
        self.texts.append(answer.text)
        return answer


async def test_an_open311_request_becomes_an_order_followed_to_its_close(
    bus: Bus, http: httpx.AsyncClient, keys: dict[str, str], stack: Stack
) -> None:
    answers = Answers(http)
    posted = await answers.post(form(keys["channel"], "河口花园"))
    assert posted.status_code == 201, posted.text
    [created] = posted.json()
    order = created["service_request_id"]
    call_id = order.removeprefix("WO-H-")
    assert order.startswith("WO-H-open311-") and created["service_notice"]

    # Answered at once, before intake has made the order.
    first = await answers.request(order)
    assert first is not None and first["status"] == "open" and first["service_code"] == "heating"

    # The call went to intake with the caller's contact: the one place it goes.
    [call] = await bus.wait_for(lambda s: s.topic == contract.HOTLINE_CALLS and s.key == call_id)
    assert call.type == "hotline.call.received" and call.event["source"] == "whistle/api"
    assert call.data["caller"] == {"name": "孙大爷", "phone": PHONE} and call.data["channel"] == "web"
    assert "email" not in call.data["caller"]

    lead = next(s.data for s in await dispatched(bus, order) if s.data["role"] == "lead")
    department = (
        load_jurisdiction(stack.settings.jurisdiction_file).department_by_code[lead["department"]].name
    )

    async def dispatched_view() -> dict[str, Any] | None:
        found = await answers.request(order)
        return found if found and found["agency_responsible"] else None

    seen = await eventually(dispatched_view)
    assert seen["status"] == "open" and seen["agency_responsible"] == department
    assert datetime.fromisoformat(seen["expected_datetime"]) == datetime.fromisoformat(lead["resolve_by"])
    assert seen["service_name"] == "供暖" and seen["address"] == "河口花园3号楼"
    assert seen["description"].endswith("138****5678")

    await respond(bus, "dispatch.accepted", lead, note="收到")
    await respond(bus, "dispatch.resolved", lead, result="已排气，温度恢复")
    await bus.wait_for(of_order(order, "workorder.resolved"))
    happy = {"work_order_id": order, "satisfaction": "satisfied", "resolved": True}
    await bus.send(contract.FEEDBACK, order, cloud_event("resident.feedback.received", happy))

    async def closed() -> dict[str, Any] | None:
        found = await answers.request(order)
        return found if found and found["status"] == "closed" else None

    final = await eventually(closed)
    assert final["status_notes"] == f"closed; resolved by {department}: 已排气，温度恢复"
    assert datetime.fromisoformat(final["updated_datetime"]) >= datetime.fromisoformat(
        final["requested_datetime"]
    )

    listed = await http.get("/requests.json", params={"service_code": "heating", "status": "closed"})
    answers.texts.append(listed.text)
    assert order in {r["service_request_id"] for r in listed.json()}
    metrics = (await http.get(f"http://127.0.0.1:{stack.port('api')}/metrics")).text
    answers.texts.append(metrics)
    assert 'whistle_api_requests_total{code="201",route="/open311/v2/requests.json"}' in metrics

    for text in answers.texts:
        assert PHONE not in text and "孙大爷" not in text and "sun@example.com" not in text


async def test_refused_requests_say_why_and_publish_nothing(
    bus: Bus, http: httpx.AsyncClient, keys: dict[str, str], stack: Stack
) -> None:
    answers = Answers(http)
    before = await records_in(stack.settings, contract.HOTLINE_CALLS)
    refused = [
        (await answers.post(form(None, "星河湾")), 401, "api_key: required"),
        (await answers.post(form("not-a-key", "星河湾")), 401, "api_key: not a known key"),
        (await answers.post(form(keys["department:heat"], "星河湾")), 403, "api_key: a department:heat key"),
        (
            await answers.post(form(None, "星河湾"), headers={"Authorization": f"Bearer {keys['centre']}"}),
            403,
            "api_key: a centre key",
        ),
        (await answers.post(form(keys["channel"], "星河湾", description="")), 400, "description: required"),
        (
            await answers.post(form(keys["channel"], "星河湾", service_code="unicorns")),
            400,
            "service_code: not a known service code",
        ),
        (
            await answers.post(form(keys["channel"], "星河湾", description="暖" * 30_000)),
            413,
            "body: larger than",
        ),
    ]
    for answer, status, description in refused:
        assert answer.status_code == status, answer.text
        assert [p["code"] for p in answer.json()] == [status]
        assert answer.json()[0]["description"].startswith(description)

    # A request taken after them is published; whatever they had staged would have gone before it.
    sentinel = await answers.post(form(keys["app"], "星河湾"))
    assert sentinel.status_code == 201
    call_id = sentinel.json()[0]["service_request_id"].removeprefix("WO-H-")
    [call] = await bus.wait_for(lambda s: s.topic == contract.HOTLINE_CALLS and s.key == call_id)
    assert call.data["channel"] == "app"
    assert await records_in(stack.settings, contract.HOTLINE_CALLS) == before + 1
    for text in answers.texts:
        assert PHONE not in text and "孙大爷" not in text


async def test_a_repeat_says_which_request_it_joined(
    bus: Bus, http: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    answers = Answers(http)
    first = (await answers.post(form(keys["channel"], "橡树湾"))).json()[0]["service_request_id"]
    await bus.wait_for(of_order(first, "workorder.created"))
    repeat = (await answers.post(form(keys["channel"], "橡树湾"))).json()[0]["service_request_id"]
    await bus.wait_for(of_order(repeat, "workorder.merged"))

    async def merged() -> dict[str, Any] | None:
        found = await answers.request(repeat)
        return found if found and found["status"] == "closed" else None

    joined = await eventually(merged)
    assert joined["merged_into"] == first and joined["status_notes"] == f"merged into {first}"
    both = await http.get("/requests.json", params={"service_request_id": f"{first},{repeat}"})
    assert {r["service_request_id"]: r["status"] for r in both.json()} == {first: "open", repeat: "closed"}
    assert await answers.request("WO-H-never-posted") is None
    assert answers.texts[-1] == '[{"code":404,"description":"service_request_id: no such request"}]'
