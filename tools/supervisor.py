"""The local stack's supervisor: starts each service process, and starts it again when it exits,
with a back-off, as a kubelet restarts a pod's container. ``make up`` starts it in a session of
its own, so that it outlives the command; ``make down`` stops it (SIGTERM), and it stops its
services first. SIGHUP restarts every service (``make up`` after a broker restart).

Before it starts any service it makes sure every topic exists: a service must never subscribe to
a broker that forgot its topics (an in-memory broker restarted), nor be started while the broker
is still being given them back. What it does is in ``run/supervisor.json`` (restarts per part, the
last exit, the back-off), which ``make status`` shows.

Run as ``python -m tools.supervisor HOME``; the parts to run are in ``HOME/run/supervisor-spec.json``
(written by ``tools.stack``), each with its command and what its environment adds to this one's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Seconds before a restart, by how many times in a row the part exited soon after it started
# (a kubelet's CrashLoopBackOff, on a developer's time scale). A part that ran for STEADY seconds
# starts again at once: that is the fast recovery a killed replica needs.
BACKOFF = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
STEADY = 10.0
# A part's standby (tools.warm: imported, its app built, waiting) is made once the part has run
# this long, so that it does not compete with the start itself; a standby that fails this many
# times is given up (the part then starts cold).
WARM_AFTER = 5.0
WARM_FAILURES = 3
STOP_WITHIN = 15.0  # seconds a part gets to stop after SIGTERM, then SIGKILL


@dataclass
class Part:
    name: str
    argv: list[str]
    env: dict[str, str]
    warm: list[str] | None = None  # the standby's command
    proc: subprocess.Popen[bytes] | None = None
    standby: subprocess.Popen[bytes] | None = None
    warm_failures: int = 0
    started: float = 0.0
    restarts: int = 0
    quick_exits: int = 0  # exits in a row soon after a start
    due: float = 0.0  # when it is to be started (monotonic)
    last_exit: int | None = None
    last_exit_at: float | None = None  # wall clock
    history: list[dict[str, Any]] = field(default_factory=list)


class Supervisor:
    def __init__(self, home: Path) -> None:
        self.home = home
        spec = json.loads((home / "run" / "supervisor-spec.json").read_text())
        self.parts = {
            name: Part(name, p["argv"], os.environ | p["env"], p.get("warm"))
            for name, p in spec["parts"].items()
        }
        self.topics: list[str] = spec.get("topics", [])
        self.stopping = False
        self.restart_all = False
        self.check_topics = True
        # SIGUSR1: the broker is gone; every part killed at once and none started until SIGHUP.
        self.hold = False
        self.hold_asked = False

    # ---- files the stack reads --------------------------------------------------------------

    def _pid_file(self, part: str) -> Path:
        return self.home / "run" / f"{part}.pid"

    def _write_state(self) -> None:
        now = time.monotonic()
        state = {
            "pid": os.getpid(),
            "parts": {
                p.name: {
                    "pid": p.proc.pid if p.proc else None,
                    "restarts": p.restarts,
                    "last_exit": p.last_exit,
                    "last_exit_at": p.last_exit_at,
                    "starts_in": round(max(0.0, p.due - now), 1) if p.proc is None else None,
                    "history": p.history[-20:],
                }
                for p in self.parts.values()
            },
        }
        tmp = self.home / "run" / "supervisor.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.home / "run" / "supervisor.json")  # readers never see half a file

    def _log(self, message: str, **fields: Any) -> None:
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        line = {"time": stamp, "event": message, **fields}
        print(json.dumps(line), flush=True)

    # ---- starting and stopping --------------------------------------------------------------

    def _topics_ready(self) -> bool:
        """Every topic on the broker, created where missing; False while the broker does not answer."""
        if not self.topics:
            return True
        from shared.settings import Settings
        from shared.topics import ensure_topics

        try:
            created = asyncio.run(asyncio.wait_for(ensure_topics(Settings(), self.topics), 30))
        except Exception as exc:
            self._log("broker not ready for the services", error=type(exc).__name__)
            return False
        if created:
            self._log("topics recreated before starting services", count=len(created))
        return True

    def _spawn(self, part: Part, argv: list[str], stdin: int | None = None) -> subprocess.Popen[bytes]:
        with (self.home / "logs" / f"{part.name}.log").open("ab") as log:
            return subprocess.Popen(
                argv, stdin=stdin, stdout=log, stderr=subprocess.STDOUT, env=part.env, start_new_session=True
            )

    def _start(self, part: Part) -> None:
        standby, part.standby = part.standby, None
        warm = standby is not None and standby.poll() is None and standby.stdin is not None
        if warm:
            assert standby is not None and standby.stdin is not None
            try:
                standby.stdin.write(b"go\n")
                standby.stdin.close()
                part.proc = standby
            except OSError:  # it died just now
                warm = False
        if not warm:
            part.proc = self._spawn(part, part.argv)
        assert part.proc is not None
        part.started = time.monotonic()
        self._pid_file(part.name).write_text(str(part.proc.pid))
        self._log("started", part=part.name, pid=part.proc.pid, restarts=part.restarts, warm=warm)

    def _keep_warm(self, part: Part) -> None:
        """A standby for the part, once it has run a while; a failed one counted and replaced."""
        if part.warm is None or part.warm_failures >= WARM_FAILURES:
            return
        if part.standby is not None and part.standby.poll() is not None:
            self._log("standby exited", part=part.name, code=part.standby.returncode)
            part.standby = None
            part.warm_failures += 1
        running = part.proc is not None and time.monotonic() - part.started >= WARM_AFTER
        if part.standby is None and running:
            part.standby = self._spawn(part, part.warm, stdin=subprocess.PIPE)

    def _drop_standbys(self) -> None:
        for p in self.parts.values():
            standby, p.standby = p.standby, None
            if standby is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(standby.pid, signal.SIGKILL)  # it serves nothing yet: nothing to lose
                standby.wait()

    def _reap(self, part: Part) -> None:
        assert part.proc is not None
        code = part.proc.returncode
        ran = time.monotonic() - part.started
        part.proc = None
        self._pid_file(part.name).unlink(missing_ok=True)
        part.last_exit, part.last_exit_at = code, time.time()
        part.quick_exits = part.quick_exits + 1 if ran < STEADY else 0
        delay = BACKOFF[min(part.quick_exits, len(BACKOFF) - 1)]
        part.due = time.monotonic() + delay
        part.history.append({"exit": code, "at": part.last_exit_at, "ran": round(ran, 2)})
        self._log("exited", part=part.name, code=code, ran=round(ran, 2), restart_in=delay)

    def _kill_all(self) -> None:
        """SIGKILL, no goodbye: a graceful stop commits the last batch's offsets, and after the
        broker forgot everything those offsets (of its past life) would skip the first records of
        its new one."""
        for p in self.parts.values():
            if p.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.proc.pid, signal.SIGKILL)
                p.proc.wait()
                self._pid_file(p.name).unlink(missing_ok=True)
                p.proc = None
        self._write_state()

    def _stop_all(self) -> None:
        running = [p for p in self.parts.values() if p.proc is not None]
        for p in running:
            assert p.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WITHIN
        for p in running:
            assert p.proc is not None
            try:
                p.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.proc.pid, signal.SIGKILL)
                p.proc.wait()
            self._pid_file(p.name).unlink(missing_ok=True)
            p.proc = None

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, self._on_hup)
        signal.signal(signal.SIGUSR1, self._on_usr1)
        (self.home / "run" / "supervisor.pid").write_text(str(os.getpid()))
        self._log("supervising", parts=list(self.parts))
        try:
            while not self.stopping:
                if self.hold_asked:
                    self.hold_asked, self.hold = False, True
                    self._log("holding: every part killed until the broker is back")
                    self._kill_all()
                if self.restart_all:
                    self.hold = False
                    self.restart_all = False
                    self._log("restarting every part")
                    self.check_topics = True  # asked after a broker restart: the topics first
                    self._stop_all()
                    for p in self.parts.values():
                        p.due = time.monotonic()
                changed = False
                for p in self.parts.values():
                    if p.proc is not None and p.proc.poll() is not None:
                        self._reap(p)
                        changed = True
                due = [p for p in self.parts.values() if p.proc is None and p.due <= time.monotonic()]
                if due and not self.stopping and not self.hold:
                    # A part SIGKILLed from outside tells nothing of the broker: it restarts at once.
                    # Any other exit (the topic watchdog's, a crash, a first start) may follow a
                    # broker that forgot its topics: they are checked, and made, first.
                    killed = not self.check_topics and all(p.last_exit == -signal.SIGKILL for p in due)
                    if killed or self._topics_ready():
                        self.check_topics = False
                        for p in due:
                            if p.last_exit_at is not None:
                                p.restarts += 1
                            self._start(p)
                    else:
                        for p in due:
                            p.due = time.monotonic() + 1.0
                    changed = True
                for p in self.parts.values():
                    self._keep_warm(p)
                if changed:
                    self._write_state()
                time.sleep(0.05)  # a child's exit is noticed within this
        finally:
            self._drop_standbys()
            self._stop_all()
            self._write_state()
            (self.home / "run" / "supervisor.pid").unlink(missing_ok=True)
            self._log("stopped")

    def _on_term(self, *_: Any) -> None:
        self.stopping = True

    def _on_hup(self, *_: Any) -> None:
        self.restart_all = True

    def _on_usr1(self, *_: Any) -> None:
        self.hold_asked = True


def main() -> None:
    Supervisor(Path(sys.argv[1])).run()


if __name__ == "__main__":
    main()
