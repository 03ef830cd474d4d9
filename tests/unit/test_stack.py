"""The local stack's ports: its own settings, else the caller's environment, else the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import SERVICE_PORTS
from tools.stack import SERVICES, Stack


def test_the_callers_port_base_moves_every_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PORT_BASE", "20000")
    stack = Stack(home=tmp_path)
    assert [stack.port(s) for s in SERVICES] == [20001 + i for i in range(len(SERVICES))]


def test_the_stacks_own_port_base_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PORT_BASE", "20000")
    assert Stack(home=tmp_path, env={"HTTP_PORT_BASE": "30000"}).port("intake") == 30001


def test_without_a_base_each_service_has_its_default_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HTTP_PORT_BASE", raising=False)
    assert {s: Stack(home=tmp_path).port(s) for s in SERVICES} == {s: SERVICE_PORTS[s] for s in SERVICES}


def test_make_ups_stack_takes_its_folder_ports_broker_and_databases_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`WHISTLE_HOME=… HTTP_PORT_BASE=… KAFKA_BOOTSTRAP_SERVERS=… DATABASE_PREFIX=… make up`: a
    second stack beside the first, sharing none of its ports, pid files or databases."""
    from tools.cli import _stack

    monkeypatch.setenv("WHISTLE_HOME", str(tmp_path / "two"))
    monkeypatch.setenv("HTTP_PORT_BASE", "19180")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9392")
    monkeypatch.setenv("DATABASE_PREFIX", "whistle_two")
    stack = _stack()
    assert stack.home == tmp_path / "two"
    assert stack.pid_file("intake").parent == tmp_path / "two" / "run"
    assert [stack.port(s) for s in SERVICES] == [19181, 19182, 19183, 19184, 19185]
    assert stack.broker_address == ("127.0.0.1", 9392) and stack.manages_broker
    assert stack.settings.database_url_for("intake").endswith("/whistle_two_intake")
    # What each service is started with: the same settings, and its own port.
    env = stack.child_env
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:9392" and env["DATABASE_PREFIX"] == "whistle_two"
