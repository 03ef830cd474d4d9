"""The sample month (``tools/sample_month.py``): the same bytes on every run, in time order, every
event within the contract, and the departments answering dispatches the project's rules made."""

from __future__ import annotations

import re
from datetime import datetime

import orjson
import pytest

from shared.contract import DISPATCH_RESPONSES, HOTLINE_CALLS, INBOUND, INTERNAL, CloudEvent
from tools.sample_month import MONTH, Made, generate, lines_of


@pytest.fixture(scope="module")
def made() -> tuple[bytes, Made]:
    return generate()


def test_the_same_bytes_every_time(made: tuple[bytes, Made]) -> None:
    assert generate()[0] == made[0]


def test_a_month_of_events_in_time_order_within_the_contract(made: tuple[bytes, Made]) -> None:
    times: list[datetime] = []
    ids: set[str] = set()
    orders = set()
    for line in lines_of(made[0]):
        record = orjson.loads(line)
        event = CloudEvent.model_validate(record["event"])
        # What outside systems send, and the centre's review, which the api would publish.
        data = (INBOUND | INTERNAL)[(record["topic"], event.type)].model_validate(event.data)
        assert record["key"] == event.subject and event.id not in ids
        ids.add(event.id)
        times.append(event.time)
        if record["topic"] == HOTLINE_CALLS:
            orders.add(f"WO-H-{record['key']}")
        elif record["topic"] == DISPATCH_RESPONSES:
            # Dispatch's own ids, of an order already called in.
            assert re.fullmatch(r"WO-[HG]-.+-D\d+", data.dispatch_id)  # type: ignore[attr-defined]
            assert record["key"] in orders or record["key"].startswith("WO-G-")
    assert times == sorted(times)
    assert sum(1 for t in times if t >= MONTH) > 10000


def test_what_it_holds(made: tuple[bytes, Made]) -> None:
    counts = made[1].counts
    november = sum(made[1].orders_by_category.values())
    assert 2000 < november < 4000  # a few thousand orders
    for kind in ("dispatch.rejected", "escalated", "repeats", "unrated", "feedback dissatisfied"):
        assert counts[kind] > 20, kind
    top = made[1].pairs.most_common(1)[0][0]
    assert top == ("heating", "夹河社区")  # the hot spot the report's test looks for
