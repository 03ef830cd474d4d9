"""A local HTTP sink standing in for an SMS gateway and a department webhook, answering each POST
after 100-200 ms (at random), as a real gateway might: ``make bench``'s notification figure.

Plain asyncio, HTTP/1.1 with keep-alive, one request at a time on a connection (as httpx sends
them): the least CPU taken from the machine the stack runs on. It counts every request it
answered by its ``Idempotency-Key`` (the notification id), so that a repeat shows."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


class SlowSink:
    def __init__(self, low: float = 0.1, high: float = 0.2, seed: int = 5) -> None:
        self.low, self.high = low, high
        self.rng = random.Random(seed)
        self.answered: Counter[str] = Counter()
        self.times: list[tuple[float, str]] = []  # each answer: its perf_counter, its key
        self.port = 0
        self.writers: set[asyncio.StreamWriter] = set()
        self.serving: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Closes the connections the client keeps alive, and waits for their handlers to end
        (a handler cancelled at the loop's end leaves a traceback behind)."""
        self.server.close()
        for writer in self.writers:
            writer.close()
        if self.serving:
            await asyncio.wait(self.serving, timeout=5)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.writers.add(writer)
        self.serving.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length, key = 0, ""
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"idempotency-key":
                        key = value.strip().decode()
                await reader.readexactly(length)
                await asyncio.sleep(self.rng.uniform(self.low, self.high))  # the gateway's answer time
                self.answered[key] += 1
                self.times.append((time.perf_counter(), key))
                writer.write(OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass  # the client closed the connection
        finally:
            writer.close()
            self.writers.discard(writer)
            self.serving.discard(task)
