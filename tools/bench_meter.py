"""Where ``make bench``'s time goes: the CPU seconds of each part (every service with its helper
processes, the broker, the PostgreSQL backends serving the bench's databases, the server's own
processes, the bench itself), read from ``/proc/<pid>/stat``, and each part's peak memory
(``VmHWM``).

PostgreSQL's backends are found through ``pg_stat_activity`` (those of the bench's databases; the
server's background processes, WAL writer and checkpointer among them, as ``postgres (server)``,
which serve every database on the server, other work's too). A backend that exits between two
readings takes its CPU with it; the services' pools keep theirs open, so little is lost."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

TICK = os.sysconf("SC_CLK_TCK")
POSTGRES = "postgres"
POSTGRES_SERVER = "postgres (server)"
BENCH = "bench"
_BACKENDS = """
SELECT pid, CASE WHEN datname LIKE $1 THEN 'db' WHEN backend_type <> 'client backend' THEN 'server'
END AS part FROM pg_stat_activity WHERE datname LIKE $1 OR backend_type <> 'client backend'
"""


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process (all its threads) so far; 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def descendants(pid: int) -> list[int]:
    """A process's children, theirs, and so on (a service's helper processes: intake's tagger)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
                todo += [int(child) for child in (task / "children").read_text().split()]
        if parent != pid:
            found.append(parent)
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU so far of a process and of its descendants alive now."""
    return cpu_seconds(pid) + sum(cpu_seconds(child) for child in descendants(pid))


def peak_rss_mb(pid: int) -> float | None:
    with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


@dataclass
class Meter:
    """The processes of a running stack by part: ``processes`` (service or broker -> pid), and the
    PostgreSQL server at ``database_url`` whose databases start with ``database_prefix``."""

    processes: dict[str, int]
    database_url: str
    database_prefix: str
    backends: dict[str, list[int]] = field(default_factory=dict)
    samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)

    async def find_backends(self) -> None:
        url = make_url(self.database_url).set(drivername="postgresql", database="postgres")
        conn = await asyncpg.connect(url.render_as_string(hide_password=False))
        try:
            rows = await conn.fetch(_BACKENDS, f"{self.database_prefix}\\_%")
        finally:
            await conn.close()
        found: dict[str, list[int]] = {POSTGRES: [], POSTGRES_SERVER: []}
        for row in rows:
            found[POSTGRES if row["part"] == "db" else POSTGRES_SERVER].append(row["pid"])
        self.backends = found

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far, by part, the backends each on its own (``postgres:<pid>``), so that
        one opened or gone between two readings is counted from nought, or not at all."""
        parts = {name: cpu_seconds(pid) for name, pid in self.processes.items()}
        for name, pid in self.processes.items():  # a service's helper processes are the service's
            parts |= {f"{name}:{child}": cpu_seconds(child) for child in descendants(pid)}
        for name, pids in self.backends.items():
            parts |= {f"{name}:{pid}": cpu_seconds(pid) for pid in pids}
        parts[BENCH] = time.process_time()
        return parts

    async def reading(self) -> dict[str, float]:
        """CPU seconds so far, the backends looked up again (a pool opens more under load)."""
        await self.find_backends()
        return self.cpu()

    async def sample(self, stop: asyncio.Event, every: float = 1.0) -> None:
        """CPU by part every ``every`` seconds until ``stop`` is set, for the report's picture
        (stopped, not cancelled: a database connection cut halfway leaves a warning behind)."""
        while not stop.is_set():
            await self.find_backends()  # then the time, as the CPU is read: a slow query skews neither
            self.samples.append((time.perf_counter(), self.cpu()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)  # the sampling period

    def peak_rss_mb(self) -> dict[str, float | None]:
        """Each part's peak, its helper processes' added (each process's own peak: a sum that
        may never have been reached at once)."""
        peaks: dict[str, float | None] = {}
        for name, pid in self.processes.items():
            own = peak_rss_mb(pid)
            helpers = [peak_rss_mb(child) for child in descendants(pid)]
            peaks[name] = None if own is None else round(own + sum(h for h in helpers if h), 1)
        return peaks


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds by part between two readings (a backend gone between them counts nothing)."""
    total: dict[str, float] = {}
    for key, seconds in after.items():
        part = key.split(":")[0]
        total[part] = total.get(part, 0.0) + max(0.0, seconds - before.get(key, 0.0))
    return {part: round(seconds, 2) for part, seconds in total.items()}
