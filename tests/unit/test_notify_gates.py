"""What stands before each of notify's channels: the circuit breaker (closed, paused, one trial
after the cooldown) and the rate limit, each channel on its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from structlog.testing import capture_logs

from services.notify.gates import Gates

COOLDOWN = 30.0


class Clock:
    """The breaker's wall clock, moved by the test: a cooldown passes without waiting for it."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr("purgatory.domain.model.time", fake)
    return fake


async def ok() -> None:
    return None


async def fail() -> None:
    raise RuntimeError("gateway down")


async def test_a_failing_channel_is_paused_then_tried_once_after_the_cooldown(clock: Clock) -> None:
    gates = Gates(failures=2, cooldown=COOLDOWN, rate_per_second=1000)
    with capture_logs() as logs:
        for _ in range(2):
            with pytest.raises(RuntimeError):
                await gates.send("sms", fail)
        assert await gates.send("sms", ok) is False  # paused: not tried
        assert await gates.send("webhook", ok) is True  # the others go on

        clock.now += COOLDOWN * 1.5
        with pytest.raises(RuntimeError):  # the trial fails: paused again at once
            await gates.send("sms", fail)
        assert await gates.send("sms", ok) is False

        clock.now += COOLDOWN * 1.5
        assert await gates.send("sms", ok) is True  # the trial goes: closed again
        with pytest.raises(RuntimeError):  # failures count from nought again
            await gates.send("sms", fail)
        assert await gates.send("sms", ok) is True

    paused = [e for e in logs if e["event"] == "channel paused"]
    assert (
        paused
        == [{"event": "channel paused", "channel": "sms", "seconds": COOLDOWN, "log_level": "warning"}] * 2
    )


async def test_over_its_rate_a_channel_holds_messages_back_and_the_others_go_on() -> None:
    gates = Gates(failures=5, cooldown=30, rate_per_second=2)
    assert [await gates.send("sms", ok) for _ in range(3)] == [True, True, False]
    assert await gates.send("webhook", ok) is True
    # A second's rate drips back in a second: the channel takes a message again, soon.
    deadline = time.monotonic() + 5
    while not await gates.send("sms", ok):
        assert time.monotonic() < deadline, "the rate never came back"
        await asyncio.sleep(0.05)


async def test_a_message_held_back_by_the_rate_is_no_trial_of_a_paused_channel(clock: Clock) -> None:
    gates = Gates(failures=1, cooldown=COOLDOWN, rate_per_second=1)
    with pytest.raises(RuntimeError):
        await gates.send("sms", fail)
    clock.now += COOLDOWN * 1.5  # the cooldown is over, the rate not yet back
    assert await gates.send("sms", ok) is False
    breaker = await gates.breakers.get_breaker("sms")
    assert breaker.context.state == "opened"  # not closed by a send that never went


class Slow:
    """A gateway answering after a pause: counts what is in flight and what it was sent."""

    def __init__(self, pause: float = 0.02, failing: bool = False) -> None:
        self.pause, self.failing = pause, failing
        self.in_flight = self.most = 0
        self.sent: list[str] = []

    def send(self, key: str) -> Callable[[], Awaitable[None]]:
        async def go() -> None:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            self.sent.append(key)
            try:
                await asyncio.sleep(self.pause)  # the gateway's answer, not synchronisation
                if self.failing:
                    raise RuntimeError("gateway down")
            finally:
                self.in_flight -= 1

        return go


async def test_a_channel_that_delivers_takes_its_slots_at_once_and_no_more() -> None:
    gates = Gates(failures=5, cooldown=30, rate_per_second=10_000, concurrency=8)
    sms, webhook = Slow(), Slow()
    sends = [gates.send("sms", sms.send(f"s{i}")) for i in range(60)]
    sends += [gates.send("webhook", webhook.send(f"w{i}")) for i in range(60)]
    assert all(await asyncio.gather(*sends))
    assert sms.most == webhook.most == 8  # each channel its own slots, every one used
    assert sorted(sms.sent) == sorted(f"s{i}" for i in range(60))  # each once
    assert sorted(webhook.sent) == sorted(f"w{i}" for i in range(60))


async def test_a_failing_channel_goes_one_at_a_time_and_its_breaker_counts_as_before() -> None:
    gates = Gates(failures=3, cooldown=COOLDOWN, rate_per_second=10_000, concurrency=8)
    down = Slow(failing=True)
    results = await asyncio.gather(
        *(gates.send("sms", down.send(f"s{i}")) for i in range(10)), return_exceptions=True
    )
    assert down.most == 1  # never trusted: one at a time
    assert [isinstance(r, RuntimeError) for r in results] == [True] * 3 + [False] * 7
    assert results[3:] == [False] * 7  # paused after three failures in a row: not tried
    assert down.sent == ["s0", "s1", "s2"]


async def test_a_send_whose_slot_comes_too_late_is_not_tried() -> None:
    gates = Gates(failures=5, cooldown=30, rate_per_second=10_000, concurrency=1)
    slow = Slow(pause=0.05)
    until = time.monotonic() + 0.01
    assert await asyncio.gather(*(gates.send("sms", slow.send(f"s{i}"), until=until) for i in range(3))) == [
        True,
        False,
        False,
    ]
    assert slow.sent == ["s0"]
