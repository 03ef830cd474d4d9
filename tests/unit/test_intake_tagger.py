"""Intake's tagger in processes of its own (services/intake/tagger.py): real worker processes, the
same judgements as read in intake's own process, and a worker that dies costs one batch's reading,
not the service."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator
from concurrent.futures.process import BrokenProcessPool

import pytest

from services.intake.domain import Judgement
from services.intake.tagger import Tagger, text_of
from shared.contract import HotlineCall, Location
from shared.reference import Jurisdiction
from shared.settings import Settings

CALLS = [
    HotlineCall(call_id="c1", channel="phone", content="锦绣华庭3号楼电梯困人了，快来人"),
    HotlineCall(call_id="c2", channel="phone", content="俺家楼下那个梯子又坏了，咋整"),
    HotlineCall(call_id="c3", channel="app", content="路灯不亮", category_hint="路灯"),
    HotlineCall(
        call_id="c4",
        channel="phone",
        content="小区门口垃圾好几天没人收了，味道很大",
        address="幸福路12号",
        location=Location(community="不存在的社区"),
        request_type="complaint",
    ),
    HotlineCall(call_id="c5", channel="phone", content="厨房里有燃气味，很浓"),
]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _gone(pids: list[int], within: float) -> bool:
    deadline = time.monotonic() + within
    while any(map(_alive, pids)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
async def tagger(ref: Jurisdiction) -> AsyncIterator[Tagger]:
    tagger = Tagger(ref, Settings(), processes=1)
    await tagger.start()
    yield tagger
    await tagger.stop()


async def test_workers_judge_calls_as_this_process_does(tagger: Tagger, ref: Jurisdiction) -> None:
    read = await tagger.read(CALLS * 3)
    judged = [j for j in read if isinstance(j, Judgement)]
    assert judged == read == [tagger.here.read(text_of(c)) for c in CALLS * 3]
    assert judged[0].emergency and judged[0].category == "elevator"
    assert judged[2].category == "streetlight" and judged[2].confidence == 1.0
    assert judged[3].request_type == "complaint"


async def test_a_worker_that_dies_fails_one_reading_and_workers_start_afresh(tagger: Tagger) -> None:
    assert tagger.pool is not None
    [worker] = list(tagger.pool._processes)
    os.kill(worker, signal.SIGKILL)
    with pytest.raises(BrokenProcessPool):
        await tagger.read(CALLS)
    judged = await tagger.read(CALLS)  # the batch, come again, is read by a new worker
    assert [j.category for j in judged if isinstance(j, Judgement)] == [
        j.category for j in (tagger.here.read(text_of(c)) for c in CALLS)
    ]
    assert tagger.pool is not None and worker not in tagger.pool._processes


async def test_stopping_ends_the_workers(ref: Jurisdiction) -> None:
    tagger = Tagger(ref, Settings(), processes=2)
    await tagger.start()
    assert tagger.pool is not None
    workers = list(tagger.pool._processes)
    assert len(workers) == 2
    await tagger.stop()
    assert _gone(workers, within=30)  # told to, they exit soon after
