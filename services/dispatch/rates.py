"""The three rates (三率) as Prometheus gauges, refreshed in the background."""

from __future__ import annotations

from shared import metrics, retry
from shared.service import Service

from . import store


async def publish_rates(svc: Service) -> None:
    """Background task: keep the three rates current; a gauge reads 1 where nothing was due yet."""

    async def step() -> bool:
        async with svc.engine.connect() as conn:
            counts = await store.rate_counts(conn)
        for scope in ("department", "community", "request_type"):
            for name, dispatched, signed, due, resolved in counts[scope]:
                metrics.RATES.labels("response", scope, name).set(signed / dispatched if dispatched else 1)
                metrics.RATES.labels("resolution", scope, name).set(resolved / due if due else 1)
            for name, rated, satisfied in counts[f"{scope}_satisfaction"]:
                metrics.RATES.labels("satisfaction", scope, name).set(satisfied / rated if rated else 1)
        return False

    await retry.forever("rates", step, idle=retry.sleeper(svc.settings.rates_interval_seconds))
