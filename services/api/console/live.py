"""Live pages: server-sent events fed by the read model.

Every batch the api's consumer commits says so with ``NOTIFY whistle_api_changed`` (``store``);
each process holds one ``LISTEN`` connection, opened when the first live page connects, and wakes
the streams waiting on it. A stream renders its fragment again on a change (at most once a
second, and only sends it when it differs), so a board follows the city within a second without
polling the tables. Each stream ends after ``LIFETIME`` seconds and the browser's EventSource
reconnects by itself (and gets the fragment at once): an open page never holds a shutdown for
long, and a change missed while the listener was down is caught up at the next connection."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg

from shared.logs import get_logger

from ..store import CHANGED

log = get_logger(__name__)
LIFETIME = 10.0  # seconds a stream lasts; uvicorn waits for open responses when it stops
THROTTLE = 1.0  # seconds between two renders of one stream
RETRY_MS = 1000  # the browser's wait before it reconnects


class Hub:
    """One LISTEN connection for the process and a generation count of the changes it heard."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.generation = 0
        self._changed = asyncio.Event()
        self._conn: Any = None
        self._opening = asyncio.Lock()

    async def listen(self) -> None:
        """Open the LISTEN connection if it is not open; a failure is logged, and pages then
        refresh only when they reconnect."""
        async with self._opening:
            if self._conn is not None and not self._conn.is_closed():
                return
            try:
                self._conn = await asyncpg.connect(self.dsn)
                await self._conn.add_listener(CHANGED, self._heard)
            except (OSError, asyncpg.PostgresError) as exc:
                self._conn = None
                log.warning("console cannot listen for changes", error=str(exc))

    def _heard(self, *_: object) -> None:
        self.generation += 1
        self._changed.set()
        self._changed = asyncio.Event()  # the next waiters wait for the next change

    async def changed_since(self, generation: int, within: float) -> bool:
        """Whether a change has been heard since ``generation``, waiting up to ``within`` seconds."""
        if self.generation != generation:
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(within, 0)):
                await self._changed.wait()
        return self.generation != generation

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


def event(name: str, html: str) -> str:
    """One server-sent event; every line of the fragment is a ``data:`` line."""
    lines = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
    return f"event: {name}\n{lines}\n"


async def stream(hub: Hub, name: str, render: Callable[[], Awaitable[str]]) -> AsyncIterator[str]:
    """The fragment now, then again after each change, until the stream's lifetime ends."""
    await hub.listen()
    deadline = time.monotonic() + LIFETIME
    yield f"retry: {RETRY_MS}\n\n"
    generation = hub.generation
    last = await render()
    yield event(name, last)
    while (left := deadline - time.monotonic()) > 0:
        if not await hub.changed_since(generation, left):
            continue  # the lifetime is over: the loop ends
        generation = hub.generation
        html = await render()
        if html != last:
            last = html
            yield event(name, html)
        # A throttle, not a synchronisation: a busy city changes many times a second.
        await asyncio.sleep(min(THROTTLE, max(deadline - time.monotonic(), 0)))
