"""Faults under load, with the real parts: intake's database goes away while calls keep coming."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import httpx
import pytest

from shared import contract
from tests.integration.bus import Bus, Seen
from tests.integration.flows import call, uid
from tools.stack import Stack

pytestmark = pytest.mark.integration
SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


async def rewound(stack: Stack) -> float:
    url = f"http://127.0.0.1:{stack.port('intake')}/metrics"
    async with httpx.AsyncClient() as client:
        text = (await client.get(url, params={"name[]": "whistle_batches_rewound_total"})).text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("whistle_batches_rewound_total{")
    )


async def test_calls_taken_while_intakes_database_is_away_are_applied_once_it_is_back(
    bus: Bus, stack: Stack
) -> None:
    database = stack.settings.database_url_for("intake").rsplit("/", 1)[1]
    server = await asyncpg.connect(SERVER)
    before = await rewound(stack)
    ids = [uid("DB") for _ in range(12)]
    try:
        await server.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        await server.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", database
        )
        for call_id in ids:
            await bus.send(contract.HOTLINE_CALLS, call_id, call(call_id, "金沙滩小区", "楼道灯不亮了"))
        # A batch whose transaction cannot be had is rewound and comes again (after retries when
        # the failure is a known transient one): wait until intake has been through that.
        async with asyncio.timeout(60):
            while True:
                if await rewound(stack) > before:
                    break
                await asyncio.sleep(0.2)  # polling for the condition above, under its deadline
    finally:
        await server.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await server.close()

    def taken(*calls: str) -> Callable[[Seen], bool]:  # a new order, or one merged into another (并单)
        orders = {f"WO-H-{c}" for c in calls}
        return lambda s: s.type in ("workorder.created", "workorder.merged") and s.key in orders

    await bus.wait_for(taken(*ids), within=60, count=len(ids))
    # A call sent after the outage, once through, follows whatever the outage could have doubled.
    marker = uid("DB")
    await bus.send(contract.HOTLINE_CALLS, marker, call(marker, "鑫盛小区", "单元门坏了关不上"))
    await bus.wait_for(taken(marker), within=60)
    assert sorted(s.key or "" for s in bus.matching(taken(*ids))) == sorted(
        f"WO-H-{i}" for i in ids
    )  # once each
