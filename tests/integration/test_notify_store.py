"""Notify's contact queries against the real PostgreSQL: what they find, and the plans they are given."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import TextClause, text

from services.notify import store
from shared.db import json_keys
from tests.integration.databases import fresh_database

pytestmark = pytest.mark.integration

_MANY = (
    "INSERT INTO contacts (work_order_id, reporter_id, phone) "
    "SELECT 'WO-H-' || (i / 2), 'WO-H-' || i, '1390000' || i "
    "FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS i"
)


@pytest.mark.parametrize("statistics", ["none yet", "of the first ten contacts"])
async def test_a_batch_reaches_its_residents_through_the_primary_key_whatever_the_planner_believes(
    statistics: str,
) -> None:
    """The residents of orders, their phones and what each was told are looked up by the order
    first, in the primary key: joined to the batch's pairs alone, the planner read every contact
    while the table had no statistics, or the morning's first few."""
    async with fresh_database("whistle_test_contacts", "notify") as engine:
        async with engine.begin() as conn:
            if statistics != "none yet":
                await conn.execute(text(_MANY), {"first": 1_000_000, "last": 1_000_009})
                await conn.execute(text("ANALYZE contacts"))
            await conn.execute(text(_MANY), {"first": 2, "last": 20_001})
        async with engine.begin() as conn:
            wanted = [("WO-H-7", "WO-H-14"), ("WO-H-7", "WO-H-15"), ("WO-H-8", "WO-H-15")]  # the last is none
            phones = await store.phones(conn, wanted)
            await store.mark_told(conn, {("WO-H-7", "WO-H-14"): "accepted"})
            told = await store.residents(conn, ["WO-H-7"])

            async def plan(query: TextClause, values: dict[str, Any]) -> str:
                return "\n".join(r[0] for r in await conn.execute(text(f"EXPLAIN {query}"), values))

            plans = [
                await plan(store._PHONES, {"wanted": json_keys(wanted)}),
                await plan(store._MARK_TOLD, {"told": json_keys([("WO-H-7", "WO-H-14", "accepted")])}),
                await plan(store._RESIDENTS, {"ids": ["WO-H-7"]}),
            ]

    assert phones == {("WO-H-7", "WO-H-14"): "139000014", ("WO-H-7", "WO-H-15"): "139000015"}
    assert told == {"WO-H-7": {"WO-H-14": "accepted", "WO-H-15": None}}
    for p in plans:
        assert "Index Cond: ((work_order_id)::text = ANY (" in p and "pk_contacts" in p, p
        assert "Seq Scan on contacts" not in p, p
