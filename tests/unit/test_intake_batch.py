"""IntakeBatch's cluster counts: the window total it keeps per minute is the one counted afresh."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from services.intake.domain import OpenOrders, reports_in_window
from services.intake.unit import IntakeBatch, _minute

START = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def test_a_batchs_window_counts_are_those_counted_afresh() -> None:
    rng = random.Random(5)
    loaded = {("c1", "heating"): {_minute(START) - 30: 4, _minute(START) - 70: 9}}
    batch = IntakeBatch({}, set(), OpenOrders(), {k: dict(v) for k, v in loaded.items()}, {})
    mirror = {k: dict(v) for k, v in loaded.items()}
    at = START
    for _ in range(2000):
        # Mostly the same minute, sometimes the next, now and then one out of order (partitions).
        at += timedelta(seconds=rng.choice([0, 1, 2, 61, -90]))
        key = rng.choice([("c1", "heating"), ("c2", "heating"), ("c1", "noise")])
        minute = _minute(at)
        per_minute = mirror.setdefault(key, {})
        per_minute[minute] = per_minute.get(minute, 0) + 1
        assert batch.count(*key, at, 60) == reports_in_window(per_minute, minute, 60)
