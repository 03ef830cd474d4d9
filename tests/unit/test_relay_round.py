"""A relay round's selection, with a producer of the test's own: one record batch per partition,
a partition's failure or full batch keeps exactly a tail of its share, topics the broker does not
list are left, and no key's later event is ever let go while an earlier one is kept."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.messaging.publishing import Round, partition_for, send_round

PARTITIONS = {"a.v1": [0, 1, 2], "b.v1": [0, 1]}


class Batch:
    def __init__(self, room: int) -> None:
        self.room = room
        self.keys: list[bytes | None] = []

    def append(self, *, timestamp: Any, key: bytes | None, value: bytes, headers: Any) -> object | None:
        if len(self.keys) >= self.room:
            return None
        self.keys.append(key)
        return object()


class Producer:
    """Batches of ``room`` records; the sends to the partitions in ``failing`` are not acknowledged."""

    def __init__(self, room: int = 1000, failing: frozenset[tuple[str, int]] = frozenset()) -> None:
        self.room, self.failing = room, failing
        self.sent: list[tuple[str, int, Batch]] = []

    def create_batch(self) -> Batch:
        return Batch(self.room)

    async def send_batch(self, batch: Batch, topic: str, partition: int) -> asyncio.Future[None]:
        self.sent.append((topic, partition, batch))
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if (topic, partition) in self.failing:
            ack.set_exception(ConnectionError("not acknowledged"))
        else:
            ack.set_result(None)
        return ack


def where(topic: str, key: str) -> tuple[str, int]:
    return topic, partition_for(key.encode(), PARTITIONS[topic], {})


async def outcome(
    producer: Producer, messages: list[tuple[str, str | None, bytes]], partitions: dict[str, list[int]]
) -> tuple[Round, list[int], list[int], BaseException | None]:
    sent = await send_round(producer, messages, partitions)
    return (sent, *await sent.outcome())


async def test_a_failed_partition_keeps_its_rows_and_the_others_are_let_go() -> None:
    messages: list[tuple[str, str | None, bytes]] = [
        ("a.v1", f"WO-{i % 7}", f"{i}".encode()) for i in range(60)
    ]
    failing = where("a.v1", "WO-3")
    producer = Producer(failing=frozenset({failing}))
    sent, acked, keep, failure = await outcome(producer, messages, PARTITIONS)

    assert len(producer.sent) == len({where("a.v1", f"WO-{i}") for i in range(7)})  # one batch each
    assert isinstance(failure, ConnectionError)
    assert sorted(acked + keep) == list(range(60))
    assert keep == [n for n, (t, k, _) in enumerate(messages) if where(t, str(k)) == failing]
    assert not sent.left


async def test_a_full_batch_leaves_the_rest_of_its_partition_and_only_that() -> None:
    # Three keys on partitions of their own would be luck; the test finds keys that share one.
    keys = [f"WO-{i}" for i in range(40)]
    crowded = where("a.v1", keys[0])
    same = [k for k in keys if where("a.v1", k) == crowded][:3]
    other = next(k for k in keys if where("a.v1", k) != crowded)
    messages: list[tuple[str, str | None, bytes]] = [
        ("a.v1", k, b"x") for _ in range(3) for k in (*same, other)
    ]  # 9 for the crowded partition, interleaved with 3 for another
    producer = Producer(room=4)
    sent, acked, keep, failure = await outcome(producer, messages, PARTITIONS)

    crowded_at = [n for n, (_, k, _) in enumerate(messages) if k in same]
    assert failure is None
    assert keep == sent.left == crowded_at[4:]  # the first four fitted; nothing after them went
    assert acked == sorted(crowded_at[:4] + [n for n, (_, k, _) in enumerate(messages) if k == other])


async def test_a_topic_the_broker_does_not_list_is_left_whole() -> None:
    messages: list[tuple[str, str | None, bytes]] = [
        ("a.v1", "WO-1", b"1"),
        ("gone.v1", "WO-1", b"2"),
        ("b.v1", "WO-1", b"3"),
        ("gone.v1", None, b"4"),
    ]
    producer = Producer()
    sent, acked, keep, failure = await outcome(producer, messages, PARTITIONS)
    assert (acked, keep, sent.left, failure) == ([0, 2], [1, 3], [1, 3], None)
    assert {t for t, _, _ in producer.sent} == {"a.v1", "b.v1"}


async def test_nothing_acknowledged_keeps_everything_in_order() -> None:
    messages: list[tuple[str, str | None, bytes]] = [("b.v1", f"WO-{i % 3}", b"x") for i in range(9)]
    failing = frozenset((t, p) for t, ps in PARTITIONS.items() for p in ps)
    _, acked, keep, failure = await outcome(Producer(failing=failing), messages, PARTITIONS)
    assert failure is not None and acked == [] and keep == list(range(9))


@settings(max_examples=200, deadline=None)
@given(
    staged=st.lists(st.tuples(st.sampled_from(["a.v1", "b.v1", "gone.v1"]), st.integers(0, 9)), max_size=80),
    room=st.integers(1, 12),
    failing=st.sets(st.sampled_from([("a.v1", 0), ("a.v1", 1), ("a.v1", 2), ("b.v1", 0), ("b.v1", 1)])),
)
def test_no_key_ever_has_a_later_event_let_go_while_an_earlier_one_is_kept(
    staged: list[tuple[str, int]], room: int, failing: set[tuple[str, int]]
) -> None:
    messages: list[tuple[str, str | None, bytes]] = [(t, f"WO-{k}", b"x") for t, k in staged]
    _, acked, keep, _ = asyncio.run(outcome(Producer(room, frozenset(failing)), messages, PARTITIONS))

    assert sorted(acked + keep) == list(range(len(messages)))  # each row let go or kept, once
    for topic in PARTITIONS:
        for k in range(10):
            mine = [n for n, (t, key, _) in enumerate(messages) if t == topic and key == f"WO-{k}"]
            gone = [n in acked for n in mine]
            # Acknowledged rows of a key on a topic are a prefix of its rows: the next round sends
            # the kept ones, which come after everything already on the partition.
            assert gone == sorted(gone, reverse=True), (topic, k, gone)
    assert all(messages[n][0] != "gone.v1" for n in acked)
