"""/readyz says ready only once a service takes work: its subscriber in its group and its tasks
running. A restarted consumer waits seconds for its group, and /readyz said ready meanwhile."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

from shared.service import _readiness_problems


class _Connection:
    async def execute(self, statement: Any) -> None:
        return None


class _Engine:
    @asynccontextmanager
    async def connect(self) -> AsyncIterator[_Connection]:
        yield _Connection()


class _Broker:
    async def ping(self, **_: float) -> bool:
        return True


def _service(started: bool) -> Any:
    relay = SimpleNamespace(healthy=True, held=set())
    return SimpleNamespace(engine=_Engine(), relay=relay, stuck=None, started=started)


async def test_a_service_is_unready_until_its_consumer_has_joined_and_its_tasks_run() -> None:
    assert await _readiness_problems(_service(started=False), _Broker()) == [
        "starting: the consumer joining its group"
    ]
    assert await _readiness_problems(_service(started=True), _Broker()) == []
