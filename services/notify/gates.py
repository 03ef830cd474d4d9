"""What stands before each channel: how many sends may be in flight at once, a circuit breaker
(purgatory) and a rate limit (aiolimiter).

A channel that keeps failing is paused for a cooldown, without holding up the others; after it,
one trial send goes (half-open): success closes the breaker, failure pauses the channel again.
A notification that may not go now, paused or over the rate, is not tried: it waits for a later
round while the others go on.

A channel sends up to ``concurrency`` messages at once only while it is trusted: once it has
delivered, and until a send fails. Until then, one at a time: the breaker counts its failures in
a row as before, and a half-open channel gets one trial, not a trial per slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiolimiter import AsyncLimiter
from purgatory import AsyncCircuitBreakerFactory, ContextChanged, Event
from purgatory.domain.model import OpenedState

from shared.logs import get_logger

log = get_logger(__name__)


@dataclass
class _Lane:
    """One channel's sends in flight: ``slots`` bounds them; ``probation`` lets one through at a
    time while the channel is not trusted."""

    slots: asyncio.Semaphore
    probation: asyncio.Lock = field(default_factory=asyncio.Lock)
    trusted: bool = False


class Gates:
    def __init__(self, failures: int, cooldown: float, rate_per_second: float, concurrency: int = 1) -> None:
        self.cooldown, self.rate, self.concurrency = cooldown, rate_per_second, concurrency
        self.breakers = AsyncCircuitBreakerFactory(default_threshold=failures, default_ttl=cooldown)
        self.breakers.add_listener(self._changed)
        self._limits: dict[str, AsyncLimiter] = {}
        self._lanes: dict[str, _Lane] = {}

    async def send(
        self, channel: str, send: Callable[[], Awaitable[None]], until: float | None = None
    ) -> bool:
        """Run ``send`` once ``channel`` has a free slot, if it may take a message then; False if
        it was not tried (paused, over the rate, or the slot came after ``until``, a
        ``time.monotonic()``). What ``send`` raises is raised, after the breaker has counted it."""
        lane = self._lanes.get(channel)
        if lane is None:
            lane = self._lanes[channel] = _Lane(asyncio.Semaphore(self.concurrency))
        async with lane.slots:
            if not lane.trusted:
                async with lane.probation:
                    if not lane.trusted:  # still on probation when its turn came: alone
                        return await self._send(channel, lane, send, until)
            return await self._send(channel, lane, send, until)

    async def _send(
        self, channel: str, lane: _Lane, send: Callable[[], Awaitable[None]], until: float | None
    ) -> bool:
        if until is not None and time.monotonic() > until:
            return False
        limit = self._limits.setdefault(channel, AsyncLimiter(self.rate, 1.0))
        # Capacity is looked at before the breaker is entered and taken inside it: a message held
        # back by the rate must not count as a success (it would close a half-open breaker).
        if not limit.has_capacity():
            return False
        breaker = await self.breakers.get_breaker(channel)
        try:
            async with breaker:
                await limit.acquire()  # at once: there is capacity, and nothing ran since
                try:
                    await send()
                except BaseException:
                    lane.trusted = False
                    raise
                lane.trusted = True
        except OpenedState:  # raised on entering, before ``send``: the channel is paused
            return False
        return True

    def _changed(self, channel: str, what: str, event: Event) -> None:
        if what == "state_changed" and isinstance(event, ContextChanged) and event.state == "opened":
            log.warning("channel paused", channel=channel, seconds=self.cooldown)
