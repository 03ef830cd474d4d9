"""/readyz says ready only once a service takes work: its subscriber in its group and its tasks
running. A restarted consumer waits seconds for its group, and /readyz said ready meanwhile."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

from shared.service import Service, _readiness_problems


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


def _service() -> Any:
    relay = SimpleNamespace(healthy=True, held=set())
    return SimpleNamespace(engine=_Engine(), relay=relay, stuck=None, idle_because=Service.idle_because)


async def test_a_service_is_ready_only_while_it_takes_work() -> None:
    svc = _service()
    assert await _readiness_problems(svc, _Broker()) == ["starting: the consumer joining its group"]
    svc.idle_because = None  # start_tasks: joined, its tasks running
    assert await _readiness_problems(svc, _Broker()) == []
    svc.idle_because = "stopping: the batch in flight finishing"  # stop_tasks
    assert await _readiness_problems(svc, _Broker()) == ["stopping: the batch in flight finishing"]
