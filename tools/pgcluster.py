"""A PostgreSQL cluster of a tool's own: ``initdb`` of a throwaway cluster under the tool's folder,
on a port of its own, never the machine's server. ``make chaos`` crashes one; ``make bench`` measures
on one configured as a city's server would be (the machine's may run without autovacuum)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

from tools.stack import StackError


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    if not versions:
        raise StackError(f"{name} not found (PostgreSQL's server binaries, e.g. Debian's postgresql-15)")
    return str(versions[-1])


class Postgres:
    """A throwaway cluster, made afresh by ``create`` with ``settings`` added to its configuration;
    crashed with ``pg_ctl stop -m immediate`` (no checkpoint: recovery from the WAL at the next
    start). As root, it runs as the ``postgres`` user (the server refuses to run as root)."""

    def __init__(self, data: Path, port: int, settings: dict[str, str] | None = None) -> None:
        self.data, self.port = data, port
        self.settings = settings or {}
        self.user = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def _run(self, *argv: str) -> None:
        done = subprocess.run(list(argv), user=self.user, capture_output=True, text=True, cwd="/")
        if done.returncode:
            raise StackError(f"{' '.join(argv[:2])} failed: {done.stderr.strip() or done.stdout.strip()}")

    def create(self) -> None:
        self.stop()
        shutil.rmtree(self.data, ignore_errors=True)
        self.data.mkdir(parents=True)
        if self.user:
            shutil.chown(self.data, self.user, self.user)
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.data}'",
            **self.settings,
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())

    def start(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.data / "server.log"), "-w", "start")

    def crash(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(StackError):
                self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "stop")
