"""The department API and the centre's desk on the test stack, over HTTP, the real broker and the
five services: a department sees and answers only its own dispatches; an Open311 request is
answered through the department API and closed by the resident, each step shown on Open311; a
response dispatch refuses shows its refusal; a step the read model knows is impossible is a 409; the
centre reassigns an unplaced order from the triage desk. Nothing is published for a refusal, and no
answer carries the caller's phone or name."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from shared import contract
from shared.topics import records_in
from tests.integration.bus import Bus, cloud_event
from tests.integration.flows import PHONE, call, dispatched, eventually, of_order, uid
from tools.stack import Stack

pytestmark = pytest.mark.integration
# A caller of its own for the vague call: test_dispatch sends the same words, and one caller's
# reports of one category with no place between them are one problem (并单).
VAGUE_CALLER = {"name": "孙大爷", "phone": "13900002222"}
Check = Callable[[Any], bool]  # on an answer's JSON


@pytest.fixture(scope="module")
def keys(stack: Stack) -> dict[str, str]:
    """The development keys the stack wrote for the api, in clear."""
    return json.loads((stack.home / "api-keys.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


class Api:
    """The api over HTTP with the stack's keys; keeps every answer, to look for personal data."""

    def __init__(self, http: httpx.AsyncClient, keys: dict[str, str]) -> None:
        self.http, self.keys, self.texts = http, keys, list[str]()

    async def call(self, method: str, path: str, key: str | None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[key]}"} if key else {}
        answer = await self.http.request(method, path, headers=headers, **kwargs)
        self.texts.append(answer.text)
        return answer

    async def ok(self, method: str, path: str, key: str, status: int = 200, **kwargs: Any) -> Any:
        answer = await self.call(method, path, key, **kwargs)
        assert answer.status_code == status, answer.text
        return answer.json()

    async def once(self, path: str, key: str, check: Check) -> Any:
        """GET ``path`` until its answer passes ``check`` (the read model follows the events)."""

        async def probe() -> Any:
            answer = await self.call("GET", path, key)
            found = answer.json() if answer.status_code == 200 else None
            return found if found is not None and check(found) else None

        return await eventually(probe)

    def assert_no_personal_data(self) -> None:
        for text in self.texts:
            assert PHONE not in text and VAGUE_CALLER["phone"] not in text and "孙大爷" not in text


@pytest.fixture
async def api(stack: Stack, keys: dict[str, str]) -> AsyncIterator[Api]:
    base = f"http://127.0.0.1:{stack.port('api')}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        api = Api(http, keys)
        yield api
        api.assert_no_personal_data()


async def heating_order(bus: Bus, compound: str) -> tuple[str, dict[str, Any]]:
    """A call about heating at a compound of its own; the order and its lead dispatch (heat's)."""
    call_id = uid()
    order = f"WO-H-{call_id}"
    await bus.send(contract.HOTLINE_CALLS, call_id, call(call_id, compound, "3号楼暖气不热，电话" + PHONE))
    lead = next(s.data for s in await dispatched(bus, order) if s.data["role"] == "lead")
    assert lead["department"] == "heat"
    return order, lead


async def nothing_published_but(
    stack: Stack,
    bus: Bus,
    topic: str,
    refusals: Callable[[], Awaitable[None]],
    sentinel: Callable[[], Awaitable[str]],
) -> None:
    """``refusals`` publish nothing on ``topic``: after them, one request that is taken (``sentinel``,
    returning its event id) is the one more record there, and what they might have staged would
    have gone before it."""
    before = await records_in(stack.settings, topic)
    await refusals()
    event_id = await sentinel()
    await bus.wait_for(lambda s: s.topic == topic and s.event["id"] == event_id)
    assert await records_in(stack.settings, topic) == before + 1


async def test_a_department_sees_and_answers_only_its_own_dispatches(
    api: Api, bus: Bus, stack: Stack
) -> None:
    order, lead = await heating_order(bus, "锦绣华庭")
    path = f"/v1/dispatches/{lead['dispatch_id']}"
    # The dispatch and its order's summary come on different topics: wait for both.
    seen = await api.once(
        path,
        "department:heat",
        lambda d: d["status"] == "assigned" and (d.get("order") or {}).get("summary") is not None,
    )
    assert seen["steps"] == ["accept", "reject"] and seen["responses"] == []
    assert seen["order"]["community"] == "恒祥社区" and seen["order"]["summary"].endswith("138****5678")
    assert datetime.fromisoformat(seen["resolve_by"]) == datetime.fromisoformat(lead["resolve_by"])

    mine = await api.ok("GET", "/v1/dispatches", "department:heat", params={"status": "assigned"})
    assert lead["dispatch_id"] in {d["dispatch_id"] for d in mine["items"]}
    theirs = await api.ok("GET", "/v1/dispatches", "department:water")
    assert lead["dispatch_id"] not in {d["dispatch_id"] for d in theirs["items"]}
    first = await api.ok("GET", "/v1/dispatches", "department:heat", params={"limit": 1})
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = await api.ok(
        "GET", "/v1/dispatches", "department:heat", params={"limit": 1, "cursor": first["next_cursor"]}
    )
    assert second["items"][0]["dispatch_id"] != first["items"][0]["dispatch_id"]

    async def refusals() -> None:
        not_found = {"detail": ["dispatch_id: no such dispatch"]}
        assert (await api.ok("GET", path, "department:water", 404)) == not_found
        assert (await api.ok("POST", f"{path}/accept", "department:water", 404, json={})) == not_found
        assert (
            await api.ok("POST", "/v1/dispatches/WO-H-nowhere-D1/accept", "department:heat", 404, json={})
        ) == (not_found)
        for step, body in (("resolve", {"result": "已修好"}), ("progress", {"note": "在路上"})):
            impossible = await api.ok("POST", f"{path}/{step}", "department:heat", 409, json=body)
            assert impossible == {"detail": [f"status: cannot apply {step} to a dispatch that is assigned"]}
        wrong = await api.ok("POST", f"{path}/reject", "department:heat", 422, json={"reason": "bored"})
        assert [d.split(":")[0] for d in wrong["detail"]] == ["reason", "note"]
        assert (await api.call("POST", f"{path}/accept", None, json={})).status_code == 401
        assert (await api.call("POST", f"{path}/accept", "centre", json={})).status_code == 403
        assert (await api.call("GET", "/v1/dispatches", "channel")).status_code == 403
        big = await api.call("POST", f"{path}/progress", "department:heat", json={"note": "暖" * 30_000})
        assert big.status_code == 413 and big.json()["detail"][0].startswith("body: larger than")

    async def accept() -> str:
        sent = await api.ok("POST", f"{path}/accept", "department:heat", 202, json={"note": "收到"})
        assert sent["type"] == "dispatch.accepted"
        return str(sent["event_id"])

    await nothing_published_but(stack, bus, contract.DISPATCH_RESPONSES, refusals, accept)
    [accepted] = await bus.wait_for(of_order(order, "workorder.accepted"))
    assert accepted.data["department"] == "heat"


async def test_an_open311_request_is_answered_through_the_department_api_to_its_close(
    api: Api, bus: Bus
) -> None:
    form = {
        "api_key": api.keys["channel"],
        "service_code": "heating",
        "description": f"珠江花园5号楼暖气不热，请回电{PHONE}",
        "address_string": "珠江花园5号楼",
        "first_name": "大爷",
        "last_name": "孙",
        "phone": PHONE,
    }
    posted = await api.http.post("/open311/v2/requests.json", data=form)
    assert posted.status_code == 201, posted.text
    order = posted.json()[0]["service_request_id"]
    lead = next(s.data for s in await dispatched(bus, order) if s.data["role"] == "lead")
    assert lead["department"] == "heat"
    path, request = f"/v1/dispatches/{lead['dispatch_id']}", f"/open311/v2/requests/{order}.json"

    def notes(wanted: str) -> Check:
        return lambda found: found[0]["status_notes"] == wanted

    await api.once(request, "channel", notes("dispatched to 热力公司"))
    await api.once(path, "department:heat", lambda d: d["status"] == "assigned")
    accepted = await api.ok("POST", f"{path}/accept", "department:heat", 202, json={"note": "收到，马上到"})
    [published] = await bus.wait_for(
        lambda s: s.topic == contract.DISPATCH_RESPONSES and s.event["id"] == accepted["event_id"]
    )
    assert (published.type, published.key, published.event["source"]) == (
        "dispatch.accepted",
        order,
        "whistle/api",
    )
    assert published.data == {
        "dispatch_id": lead["dispatch_id"],
        "work_order_id": order,
        "department": "heat",
        "note": "收到，马上到",
    }
    await api.once(request, "channel", notes("accepted by 热力公司"))
    await api.once(path, "department:heat", lambda d: d["status"] == "accepted" and d["accepted_at"])

    await api.ok("POST", f"{path}/progress", "department:heat", 202, json={"note": "已到现场，正在排气"})
    await api.ok("POST", f"{path}/resolve", "department:heat", 202, json={"result": "已排气，温度恢复"})
    await api.once(request, "channel", notes("resolved by 热力公司: 已排气，温度恢复"))
    done = await api.once(path, "department:heat", lambda d: d["status"] == "resolved")
    assert [r["type"] for r in done["responses"]] == [
        "dispatch.accepted",
        "dispatch.progress",
        "dispatch.resolved",
    ]
    assert all(r["refused"] is None and r["key"] == "department:heat" for r in done["responses"])
    assert done["steps"] == []

    happy = {"work_order_id": order, "satisfaction": "satisfied", "resolved": True}
    await bus.send(contract.FEEDBACK, order, cloud_event("resident.feedback.received", happy))
    final = await api.once(request, "channel", lambda found: found[0]["status"] == "closed")
    assert final[0]["status_notes"] == "closed; resolved by 热力公司: 已排气，温度恢复"

    desk = await api.ok("GET", f"/v1/orders/{order}", "centre")
    assert desk["status"] == "closed" and desk["lead_department_name"] == "热力公司"
    assert [d["status"] for d in desk["dispatches"]] == ["resolved"]
    assert [t["type"] for t in desk["timeline"]] == [
        "workorder.created",
        "workorder.dispatched",
        "workorder.accepted",
        "workorder.resolved",
        "workorder.closed",
    ]
    assert desk["timeline"][2]["caused_by"] == accepted["event_id"]
    assert len(desk["commands"]) == 3
    # What notify told the department of its dispatch comes on notifications.v1, in its own time.
    told = await api.once(
        f"/v1/orders/{order}",
        "centre",
        lambda o: any(n["type"] == "sent" and n["audience"] == "department" for n in o["notifications"]),
    )
    times = [datetime.fromisoformat(n["at"]) for n in told["notifications"]]
    assert times == sorted(times)  # newest last

    def rated(rates: dict[str, Any]) -> bool:
        heat = next((r for r in rates["departments"] if r["name"] == "heat"), None)
        return heat is not None and heat["satisfied"] >= 1

    rates = await api.once("/v1/rates", "centre", rated)
    heat = next(r for r in rates["departments"] if r["name"] == "heat")
    assert (
        heat["display_name"] == "热力公司" and heat["dispatches"] >= 1 and 0 < heat["satisfaction_rate"] <= 1
    )
    community = next(r for r in rates["communities"] if r["name"] == "墨翠府社区")
    assert community["rated"] >= 1 and community["resolution_rate"] is not None


async def test_a_response_dispatch_refuses_shows_its_refusal_with_the_reason(api: Api, bus: Bus) -> None:
    order, lead = await heating_order(bus, "滨河湾")
    path = f"/v1/dispatches/{lead['dispatch_id']}"
    await api.once(path, "department:heat", lambda d: d["status"] == "assigned")
    await api.ok("POST", f"{path}/accept", "department:heat", 202, json={})
    await api.once(path, "department:heat", lambda d: d["status"] == "accepted")

    # Both pass the read model (the dispatch is accepted); dispatch grants one extension only.
    due = datetime.fromisoformat(lead["resolve_by"])
    extensions = [
        await api.ok(
            "POST",
            f"{path}/extend",
            "department:heat",
            202,
            json={"resolve_by": (due + timedelta(seconds=s)).isoformat(), "note": "等配件"},
        )
        for s in (60, 90)
    ]

    def refused(d: dict[str, Any]) -> bool:
        return any(r["refused"] for r in d["responses"])

    seen = await api.once(path, "department:heat", refused)
    by_id = {r["event_id"]: r for r in seen["responses"]}
    granted, second = (by_id[e["event_id"]] for e in extensions)
    assert granted["refused"] is None and second["type"] == "dispatch.extension_requested"
    assert "only one is allowed" in second["refused"]["reason"]
    moved = await api.once(path, "department:heat", lambda d: d["resolve_by"] != lead["resolve_by"])
    assert datetime.fromisoformat(moved["resolve_by"]) == due + timedelta(seconds=60)
    desk = await api.ok("GET", f"/v1/orders/{order}", "centre")
    assert [c["refused"] is not None for c in desk["commands"]] == [False, False, True]


async def test_the_centre_reassigns_an_unplaced_order_from_the_triage_desk(
    api: Api, bus: Bus, stack: Stack
) -> None:
    call_id = uid()
    order = f"WO-H-{call_id}"
    event = call(call_id, "", "家里那个东西又坏了，你们看着办吧", address="记不清了", caller=VAGUE_CALLER)
    await bus.send(contract.HOTLINE_CALLS, call_id, event)
    [desk] = await dispatched(bus, order)
    assert (desk.data["department"], desk.data["category"]) == ("street_desk", "other")
    seen = await api.once(f"/v1/orders/{order}", "centre", lambda o: o["lead_department"] == "street_desk")
    assert (seen["status"], seen["community"], seen["category"]) == ("dispatched", None, "other")

    report_id = uid("GR")
    fixed = {
        "report_id": report_id,
        "grid_id": "HB-FLS-JH-02",
        "worker_id": "W-0042",
        "category": "环境卫生",
        "description": "楼道口堆放的杂物已当场清理",
        "handled_on_site": True,
    }
    await bus.send(contract.GRID_REPORTS, report_id, cloud_event("grid.issue.reported", fixed))
    await api.once(f"/v1/orders/WO-G-{report_id}", "centre", lambda o: o["status"] == "closed")

    reassignment = {
        "category": "供暖",
        "community": "夹河社区",
        "lead": "heat",
        "note": "回访确认：菁华公寓3号楼暖气不热",
    }

    async def refusals() -> None:
        wrong = await api.ok(
            "POST", f"/v1/orders/{order}/reassign", "centre", 422, json=reassignment | {"category": "no such"}
        )
        assert wrong == {"detail": ["category: not a category's code or name"]}
        unknown = await api.ok("POST", "/v1/orders/WO-H-nowhere/reassign", "centre", 404, json=reassignment)
        assert unknown == {"detail": ["work_order_id: no such order"]}
        closed = await api.ok(
            "POST", f"/v1/orders/WO-G-{report_id}/reassign", "centre", 409, json=reassignment
        )
        assert closed == {"detail": ["status: the order is closed, not open"]}
        assert (
            await api.call("POST", f"/v1/orders/{order}/reassign", "department:heat", json=reassignment)
        ).status_code == 403

    async def reassign() -> str:
        sent = await api.ok("POST", f"/v1/orders/{order}/reassign", "centre", 202, json=reassignment)
        assert sent["type"] == "order.reassign.requested"
        return str(sent["event_id"])

    await nothing_published_but(stack, bus, contract.ORDER_COMMANDS, refusals, reassign)
    [command] = await bus.wait_for(lambda s: s.topic == contract.ORDER_COMMANDS and s.key == order)
    assert command.data["operator"] == "centre" and command.data["lead"] == "heat"

    def rerouted(o: dict[str, Any]) -> bool:
        # The order's fields and its dispatches come by different events (workorder.reassigned,
        # the departments' dispatch.assigned and .cancelled): the view has both once both came.
        return o["category"] == "heating" and {d["department"]: d["status"] for d in o["dispatches"]} == {
            "street_desk": "cancelled",
            "heat": "assigned",
        }

    after = await api.once(f"/v1/orders/{order}", "centre", rerouted)
    assert (after["category"], after["community"], after["lead_department"]) == (
        "heating",
        "夹河社区",
        "heat",
    )
    [reassigned] = [t for t in after["timeline"] if t["type"] == "workorder.reassigned"]
    assert reassigned["detail"]["operator"] == "centre" and reassigned["caused_by"] == command.event["id"]
    assert [(c["type"], c["refused"]) for c in after["commands"]] == [("order.reassign.requested", None)]

    listed = await api.ok(
        "GET",
        "/v1/orders",
        "centre",
        params={"community": "夹河社区", "category": "heating", "status": "dispatched"},
    )
    assert order in {o["id"] for o in listed["items"]}
    alerts = await api.ok("GET", "/v1/alerts", "centre", params={"limit": 5})
    assert isinstance(alerts["items"], list) and "next_cursor" in alerts


async def test_the_centre_reviews_a_departments_return_over_http(api: Api, bus: Bus, stack: Stack) -> None:
    """派单异议审核 on the desk: heat returns an order through the department API; the return waits
    in the centre's queue; what the centre gets wrong is answered and publishes nothing; the
    approval names the lead; once decided, the return is not decided again."""
    call_id = uid()
    order = f"WO-H-{call_id}"
    # A caller of its own: one caller's open report of a category absorbs the next (并单).
    caller = {"name": "审核测试", "phone": "13900003333"}
    await bus.send(contract.HOTLINE_CALLS, call_id, call(call_id, "恒祥家园", "3号楼暖气不热", caller=caller))
    lead = next(s.data for s in await dispatched(bus, order) if s.data["role"] == "lead")
    assert lead["department"] == "heat"
    dispatch_id = lead["dispatch_id"]
    returning = {"reason": "not_our_responsibility", "note": "小区自管锅炉，不归热力公司"}
    # The read model has the dispatch once its assignment is read: the department API answers then.
    await api.once(f"/v1/dispatches/{dispatch_id}", "department:heat", lambda d: d["status"] == "assigned")
    await api.ok("POST", f"/v1/dispatches/{dispatch_id}/reject", "department:heat", 202, json=returning)

    pending = await api.once(
        "/v1/returns?status=pending", "centre", lambda p: any(r["id"] == dispatch_id for r in p["items"])
    )
    mine = next(r for r in pending["items"] if r["id"] == dispatch_id)
    assert (mine["work_order_id"], mine["department"], mine["reason"], mine["status"]) == (
        order,
        "heat",
        "not_our_responsibility",
        "pending",
    )
    assert mine["note"] == returning["note"] and mine["overdue"] is False and mine["review_by"]

    # The department can take no step on it while the centre reviews it.
    waiting = await api.once(
        f"/v1/dispatches/{dispatch_id}", "department:heat", lambda d: d["status"] == "returned"
    )
    assert waiting["steps"] == []

    path = f"/v1/returns/{dispatch_id}"

    async def refusals() -> None:
        no_note = await api.ok("POST", f"{path}/refuse", "centre", 422, json={})
        assert any(p.startswith("body.note") or "note" in p for p in no_note["detail"]), no_note
        unknown_lead = await api.ok("POST", f"{path}/approve", "centre", 422, json={"lead": "nobody"})
        assert unknown_lead == {"detail": ["lead: not a department's code"]}
        missing = await api.ok("POST", "/v1/returns/WO-H-nowhere-D1/approve", "centre", 404, json={})
        assert missing == {"detail": ["dispatch_id: no such return"]}
        assert (await api.call("POST", f"{path}/approve", "department:heat", json={})).status_code == 403
        assert (await api.call("GET", "/v1/returns", "department:heat")).status_code == 403

    async def approve() -> str:
        sent = await api.ok(
            "POST", f"{path}/approve", "centre", 202, json={"note": "同意，改派住建", "lead": "zhujian"}
        )
        assert sent["type"] == "order.return.approve"
        return str(sent["event_id"])

    await nothing_published_but(stack, bus, contract.ORDER_COMMANDS, refusals, approve)
    [approved] = await bus.wait_for(of_order(order, "workorder.return_approved"))
    assert (approved.data["operator"], approved.data["automatic"]) == ("centre", False)
    again = (await bus.wait_for(of_order(order, "workorder.dispatched"), count=2))[-1]
    assert [(d["department"], d["role"]) for d in again.data["dispatches"]] == [("zhujian", "lead")]

    decided = await api.once(
        "/v1/returns?status=approved", "centre", lambda p: any(r["id"] == dispatch_id for r in p["items"])
    )
    mine = next(r for r in decided["items"] if r["id"] == dispatch_id)
    assert (mine["operator"], mine["automatic"], mine["decision_note"]) == ("centre", False, "同意，改派住建")
    late = await api.ok("POST", f"{path}/refuse", "centre", 409, json={"note": "晚了"})
    assert late == {"detail": ["status: the return is approved, no longer pending"]}
    timeline = (await api.ok("GET", f"/v1/orders/{order}", "centre"))["timeline"]
    kinds = [t["type"] for t in timeline]
    assert kinds.index("workorder.return_requested") < kinds.index("workorder.return_approved")
