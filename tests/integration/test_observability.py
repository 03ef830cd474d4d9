"""The series the alerts read, from the running services: lag after a committed batch, the broker
seen, the outbox counted, and escalation's clock gauges only where the clocks are."""

from __future__ import annotations

import asyncio

import httpx

from shared import contract
from tests.integration.bus import Bus
from tests.integration.flows import call, dispatched, uid
from tools.stack import Stack


async def scrape(stack: Stack, service: str, wanted: list[str], within: float = 40) -> str:
    """The service's /metrics once every wanted text is in it (the broker is looked at every second)."""
    url = f"http://127.0.0.1:{stack.port(service)}/metrics"
    async with httpx.AsyncClient() as client, asyncio.timeout(within):
        while True:
            text = (await client.get(url)).text
            if all(w in text for w in wanted):
                return text
            await asyncio.sleep(0.5)  # polling for a condition, under the deadline above


async def test_the_services_export_what_the_alerts_read(bus: Bus, stack: Stack) -> None:
    call_id = uid()
    await bus.send(contract.HOTLINE_CALLS, call_id, call(call_id, "长江小区", "小区路灯坏了好几天"))
    await dispatched(bus, f"WO-H-{call_id}")

    intake = await scrape(
        stack,
        "intake",
        [
            'whistle_consumer_lag{partition="',
            'whistle_broker_reachable{service="intake"} 1.0',
            'whistle_outbox_pending{service="intake"}',
        ],
    )
    lags = [
        float(line.rsplit(" ", 1)[1])
        for line in intake.splitlines()
        if line.startswith("whistle_consumer_lag{") and 'topic="hotline.calls.v1"' in line
    ]
    assert lags and all(lag >= 0 for lag in lags)
    # Unlabelled gauges read 0 from the start: only escalation may export its clocks.
    assert "whistle_open_clocks" not in intake and "whistle_oldest_overdue_seconds" not in intake
    # scrape() waits for each, and times out (fails) if one never shows.
    clocks = ["whistle_open_clocks ", "whistle_oldest_overdue_seconds "]
    await scrape(stack, "escalation", [*clocks, 'whistle_broker_reachable{service="escalation"} 1.0'])
