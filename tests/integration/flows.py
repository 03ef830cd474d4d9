"""What the integration tests share: building calls, and waiting for an order's events."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from shared import contract
from tests.integration.bus import Bus, Seen, cloud_event

PHONE = "13812345678"


def uid(prefix: str = "T") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def call(
    call_id: str, compound: str = "菁华公寓", problem: str = "3号楼暖气不热，屋里才十五度", **data: Any
) -> dict[str, Any]:
    """A call about a problem at a compound; tests use compounds of their own, since repeats of one
    open problem at one compound are merged (并单)."""
    body = {
        "call_id": call_id,
        "channel": "phone",
        "content": compound + problem,
        "caller": {"name": "孙大爷", "phone": PHONE},
        "address": compound,
    } | data
    return cloud_event("hotline.call.received", body, subject=call_id)


def own_caller() -> dict[str, str]:
    """A caller of the test's own: open reports of one category from one phone are merged (并单),
    so a call that must open an order of its own, whatever ran before it, gets its own phone."""
    return {"name": "孙大爷", "phone": f"139{uuid.uuid4().int % 10**8:08d}"}


def about(order: str) -> Any:
    return lambda s: s.data["work_order_id"] == order


def of_order(order: str, type: str) -> Any:
    return lambda s: s.type == type and s.data["work_order_id"] == order


async def dispatched(bus: Bus, order: str) -> list[Seen]:
    """The dispatches the order's first ``workorder.dispatched`` sent, in its order.

    A deadline long past climbs at once, so a second ``workorder.dispatched`` may already be here.
    """
    first = (await bus.wait_for(of_order(order, "workorder.dispatched")))[0]
    ids = [d["dispatch_id"] for d in first.data["dispatches"]]
    found = await bus.wait_for(
        lambda s: s.type == "dispatch.assigned" and s.data["dispatch_id"] in ids, count=len(ids)
    )
    return sorted(found, key=lambda s: ids.index(s.data["dispatch_id"]))


async def respond(bus: Bus, type: str, dispatch: dict[str, Any], **extra: Any) -> dict[str, Any]:
    data = {k: dispatch[k] for k in ("dispatch_id", "work_order_id", "department")} | extra
    event = cloud_event(type, data, subject=dispatch["work_order_id"])
    await bus.send(contract.DISPATCH_RESPONSES, dispatch["work_order_id"], event)
    return event


async def dead_letters(bus: Bus, key: str, count: int) -> list[dict[str, Any]]:
    found = await bus.wait_for(lambda s: s.topic == contract.DEADLETTER and s.key == key, count=count)
    return [s.data for s in found]


async def eventually(probe: Callable[[], Awaitable[Any]], within: float = 30) -> Any:
    """The probe's first truthy answer, asking until ``within`` seconds have passed."""
    deadline = time.monotonic() + within
    while not (answer := await probe()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no answer from {probe.__name__} within {within}s")
        await asyncio.sleep(0.1)
    return answer
