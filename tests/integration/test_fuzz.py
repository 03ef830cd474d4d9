"""Fuzzed input against a stack of its own (Tansu on 19097, services on 18321-18325, databases
`whistle_test_fuzz_*`): ``FUZZ_MESSAGES`` (300 by default; ``make chaos`` sends 10,000 through
``tools.fuzz.run``) bad messages drawn by Hypothesis on every topic the services consume,
interleaved with valid calls. Every bad one is dead-lettered with a reason naming its field, every
valid call is dispatched (or merged), and no service has crashed or stopped being ready."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from shared.reference import load_jurisdiction
from tests.integration.conftest import TEST_ENV, fresh
from tests.integration.sink import Sink
from tools import fuzz
from tools.stack import ROOT, SERVICES, Stack

pytestmark = pytest.mark.integration
MESSAGES = int(os.environ.get("FUZZ_MESSAGES", "300"))
ENV = TEST_ENV | {
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19097",
    "HTTP_PORT_BASE": "18320",
    "DATABASE_PREFIX": "whistle_test_fuzz",
}


@pytest.fixture(scope="module")
def fuzzed(sink: Sink) -> Iterator[Stack]:
    with fresh(Stack(home=ROOT / ".whistle" / "test-fuzz", env=dict(ENV))) as stack:
        yield stack


async def test_fuzzed_input_is_dead_lettered_naming_its_field_and_valid_calls_flow(fuzzed: Stack) -> None:
    ref = load_jurisdiction(fuzzed.settings.jurisdiction_file)
    pids = {s: fuzzed.pid(s) for s in SERVICES}
    report = await fuzz.run(
        fuzzed.settings,
        MESSAGES,
        departments=tuple(d.code for d in ref.departments),
        places=tuple(c.name for _, _, c in ref.compounds),
        within=max(120, MESSAGES / 10),
    )
    problems = [*report.missing, *report.unnamed, *report.stuck]
    assert report.ok, report.line() + "\n" + "\n".join(problems[:30])
    assert report.bad > MESSAGES / 2 and report.valid > 0
    # Alive (the same processes: none crashed and came back) and ready.
    assert {s: fuzzed.pid(s) for s in SERVICES} == pids
    assert all(await asyncio.gather(*(asyncio.to_thread(fuzzed.ready, s) for s in SERVICES)))
