"""Intake's tagger in processes of its own (services/intake/tagger.py): real worker processes, the
same judgements as read in intake's own process, and a worker that dies costs one batch's reading,
not the service."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator

import pytest

from services.intake import tagger as tagger_module
from services.intake.domain import Judgement
from services.intake.tagger import Tagger, Unreadable, text_of
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
    """Running, or ended and not yet reaped (a zombie): gone once its parent has waited for it."""
    return os.path.exists(f"/proc/{pid}")


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


async def test_a_call_that_cannot_be_read_is_that_call_alone(tagger: Tagger) -> None:
    broken = HotlineCall.model_construct(call_id="c9", channel="phone", content=None)  # type: ignore[arg-type]
    read = await tagger.read([CALLS[0], broken, CALLS[1]])
    assert isinstance(read[1], Unreadable) and str(read[1]).startswith("TypeError at ")
    assert read[0] == tagger.here.read(text_of(CALLS[0])) and read[2] == tagger.here.read(text_of(CALLS[1]))


@pytest.mark.parametrize("fault", ["killed", "hung"])
async def test_a_batch_the_workers_fail_is_read_here_and_they_start_afresh(
    tagger: Tagger, fault: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tagger.pool is not None
    [worker] = list(tagger.pool._processes)
    if fault == "killed":
        os.kill(worker, signal.SIGKILL)
    else:
        monkeypatch.setattr(tagger_module, "READ_WITHIN", 1.0)
        os.kill(worker, signal.SIGSTOP)  # answers nothing, as a worker stuck in a loop would
    read = await tagger.read(CALLS)
    assert read == [tagger.here.read(text_of(c)) for c in CALLS]  # not lost: read in this process
    assert tagger.pool is not None and worker not in tagger.pool._processes
    assert _gone([worker], within=30)  # a hung one is killed, not left behind
    assert await tagger.read(CALLS) == read  # by the new worker


async def test_stopping_ends_the_workers(ref: Jurisdiction) -> None:
    tagger = Tagger(ref, Settings(), processes=2)
    await tagger.start()
    assert tagger.pool is not None
    workers = list(tagger.pool._processes)
    assert len(workers) == 2
    await tagger.stop()
    assert _gone(workers, within=30)  # told to, they exit soon after
