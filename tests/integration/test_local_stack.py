"""`make up` as an operator runs it, a second stack beside any other: the CLI in a process of its
own, with its folder, ports, broker and databases from the environment. Its services are
supervised (one that is killed comes back, and `make status` counts it), and `make up` after the
broker restarted empty gives every topic back before any service starts again, the first time."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shared.topics import existing_topics
from tools.stack import ROOT, SERVICES, Stack

pytestmark = pytest.mark.integration
ENV = {
    "WHISTLE_HOME": str(ROOT / ".whistle" / "test-upstack"),
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19196",
    "HTTP_PORT_BASE": "18480",
    "DATABASE_PREFIX": "whistle_test_upstack",
}


def whistle(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools", *args],
        env=os.environ | ENV,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:.0f}s: {what}")
        time.sleep(0.2)  # polling for the condition, under its deadline


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """The stack `make up` makes from ENV, seen from here; stopped by `make down` at the end."""
    seen = Stack(home=Path(ENV["WHISTLE_HOME"]), env=dict(ENV), supervised=True)
    whistle("down")
    seen.reset_databases()
    try:
        yield seen
    finally:
        assert whistle("down").returncode == 0
        assert not seen.pid("supervisor") and not any(seen.pid(s) for s in SERVICES)


def test_make_up_takes_the_environment_and_supervises_its_services(stack: Stack) -> None:
    up = whistle("up")
    assert up.returncode == 0, up.stdout + up.stderr
    # Its own ports: 18481-18485, nowhere near a default stack's 8081-8085.
    assert [stack.port(s) for s in SERVICES] == [18481, 18482, 18483, 18484, 18485]
    assert all(stack.ready(s) for s in SERVICES)
    assert stack.pid("supervisor")  # the command has returned; the supervisor stays

    killed = stack.pid("dispatch")
    stack.kill("dispatch")
    until(lambda: stack.restarts().get("dispatch") == 1, 30, "dispatch restarted")
    until(lambda: stack.pid("dispatch") not in (None, killed) and stack.ready("dispatch"), 120, "ready")
    status = whistle("status")
    row = next(line for line in status.stdout.splitlines() if " dispatch " in line)
    assert "ready" in row and row.rstrip(" │").endswith("1"), status.stdout


def test_make_up_after_a_broker_restart_gives_every_topic_back_first(stack: Stack) -> None:
    stack.kill("broker")  # Tansu keeps everything in memory: it comes back with no topic at all
    log = stack.log_file("supervisor")
    before = len(log.read_text().splitlines())
    up = whistle("up")
    assert up.returncode == 0, up.stdout + up.stderr  # the first time
    assert all(stack.ready(s) for s in SERVICES)
    assert set(stack.topics()) <= asyncio.run(existing_topics(stack.settings))
    # Every service was started again, and none before the topics were all there: the supervisor
    # checks them before each start, and `up` had created them before it asked for the restart.
    lines = log.read_text().splitlines()[before:]
    events = [json.loads(line) for line in lines if line.startswith('{"time"')]  # not aiokafka's
    started = {e["part"] for e in events if e["event"] == "started"}
    assert started == set(SERVICES), events
