"""Notify's sender sends a round's notifications at once, each channel within its slots, each
notification once (the database's part is in tests/integration/test_notify_sending.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

from services.notify.channels import Channel, Message
from services.notify.sender import Sender
from shared.settings import Settings


class SlowGateway:
    """A channel answering after 20 ms (the test's own time, not a wait for something to happen)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.in_flight = self.most = 0
        self.sent: list[str] = []

    async def send(self, message: Message) -> None:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        self.sent.append(message.notification_id)
        try:
            await asyncio.sleep(0.02)
        finally:
            self.in_flight -= 1


def row(i: int, channel: str) -> Any:
    return SimpleNamespace(
        id=f"N-{channel}-{i}",
        work_order_id=f"WO-H-{i}",
        audience="department",
        recipient="heat",
        channel=channel,
        template="new_work",
        body="【12345】新工单",
        attempts=0,
    )


async def test_a_round_goes_at_once_within_each_channels_slots_each_notification_once() -> None:
    settings = Settings(notify_concurrency=10, notify_rate_per_second=100_000)
    sms, webhook = SlowGateway("sms"), SlowGateway("webhook")
    channels = cast(dict[str, Channel], {"sms": sms, "webhook": webhook})
    sender = Sender(settings, channels, cast(Any, None), cast(Any, None), lambda: None)
    claimed = [row(i, "sms") for i in range(100)] + [row(i, "webhook") for i in range(100)]
    assert sender.round >= 2 * settings.notify_concurrency  # a round fills the slots

    tried = await sender._send(claimed, {})

    assert [t.notification.id for t in tried] == [n.id for n in claimed]  # each tried, in order
    assert all(t.error is None for t in tried)
    assert sorted(sms.sent) == sorted(n.id for n in claimed[:100])  # each sent once
    assert sorted(webhook.sent) == sorted(n.id for n in claimed[100:])
    assert sms.most == webhook.most == 10  # at once, never more than the channel's slots
