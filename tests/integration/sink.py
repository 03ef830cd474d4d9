"""A real local HTTP server standing in for the department webhook and the SMS gateway."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]

    @property
    def key(self) -> str:
        return self.headers.get("idempotency-key", "")


class Sink:
    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[Received] = []
        self._failures: list[tuple[Callable[[Received], bool], int]] = []
        self._changed = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                request = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, 200)
                status = sink._status_for(request)
                self.send_response(status)
                self.end_headers()
                with sink._changed:
                    sink.received.append(Received(request.path, request.headers, body, status))
                    sink._changed.notify_all()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()

    def fail(self, matching: Callable[[Received], bool], times: int) -> None:
        """Answer 500 to the next ``times`` requests that match."""
        with self._changed:
            self._failures.append((matching, times))

    def _status_for(self, request: Received) -> int:
        with self._changed:
            for i, (matching, times) in enumerate(self._failures):
                if times > 0 and matching(request):
                    self._failures[i] = (matching, times - 1)
                    return 500
        return 200

    def delivered(self, matching: Callable[[Received], bool]) -> list[Received]:
        with self._changed:
            return self._answered(matching, 200)

    def wait_for(
        self, matching: Callable[[Received], bool], count: int = 1, within: float = 45, status: int = 200
    ) -> list[Received]:
        """Blocking (call it with asyncio.to_thread): the first ``count`` requests that match and
        were answered with ``status`` (delivered, by default)."""
        with self._changed:
            if not self._changed.wait_for(
                lambda: len(self._answered(matching, status)) >= count, timeout=within
            ):
                raise TimeoutError(f"the sink did not receive {count} matching requests in {within}s")
            return self._answered(matching, status)

    def _answered(self, matching: Callable[[Received], bool], status: int) -> list[Received]:
        return [r for r in self.received if r.status == status and matching(r)]
