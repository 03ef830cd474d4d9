"""A service's batch subscriber polls again at once after a poll that found nothing (faststream's
own paused for the batch timeout, and a record arriving meanwhile waited it out), and a batch is
every record the poll returned, across partitions."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from faststream.kafka import KafkaBroker

from shared.messaging import prompt_batches


class Polls:
    """A consumer whose polls answer from a script."""

    def __init__(self, *answers: dict[TopicPartition, list[Any]]) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[int, int | None]] = []

    async def getmany(self, timeout_ms: int, max_records: int | None) -> dict[TopicPartition, list[Any]]:
        self.asked.append((timeout_ms, max_records))
        return self.answers.pop(0)


def record(partition: int, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("t", partition, offset, 0, 0, None, b"x", None, 0, 1, [])


async def test_an_empty_poll_is_not_followed_by_a_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_pause(*_: Any) -> None:
        raise AssertionError("paused after an empty poll")

    monkeypatch.setattr("anyio.sleep", no_pause)
    broker = KafkaBroker("127.0.0.1:1")
    subscriber = prompt_batches(broker.subscriber("t", batch=True, max_records=50, batch_timeout_ms=20))
    one, two = record(0, 7), record(1, 3)
    polls = Polls({}, {TopicPartition("t", 0): [one], TopicPartition("t", 1): [two]})

    assert await subscriber.get_msg(polls) == ()
    assert await subscriber.get_msg(polls) == (one, two)
    assert polls.asked == [(20, 50), (20, 50)]


def test_only_faststreams_batch_subscriber_is_made_prompt() -> None:
    broker = KafkaBroker("127.0.0.1:1")
    with pytest.raises(TypeError):
        prompt_batches(broker.subscriber("t"))
