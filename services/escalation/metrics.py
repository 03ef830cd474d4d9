"""Escalation's own gauges. Only escalation holds clocks: in the shared module, every service would
export them as 0 (unlabelled gauges have a value from the start), and a max() over them would lie."""

from __future__ import annotations

from prometheus_client import Gauge

from shared.metrics import REGISTRY

OPEN_CLOCKS = Gauge("whistle_open_clocks", "Deadlines not yet fired or stopped", registry=REGISTRY)
OLDEST_OVERDUE = Gauge(
    "whistle_oldest_overdue_seconds",
    "Business seconds the oldest open clock is past its deadline (0 when the clock loop keeps up)",
    registry=REGISTRY,
)
