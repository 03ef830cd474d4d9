"""What the alerts and the dashboard read is what the code exports: every metric they name exists,
and the series behind the issue's five faults now say what happened (an outbox counted while its
relay fails, escalations counted where they happen, escalation's gauges only in escalation, lag)."""

from __future__ import annotations

import asyncio
import importlib
import json
import pkgutil
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import TopicPartition
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry
from sqlalchemy import MetaData, Table

import services
from services.escalation.domain import on_breach
from shared import metrics
from shared.events import encode_event
from shared.messaging import BatchPipeline, OutboxRelay, relay
from shared.messaging.consumer import _escalation_labels
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy/prometheus/alerts.yml"
DASHBOARD = ROOT / "deploy/grafana/whistle-dashboard.json"
# Series Prometheus makes itself, not any exporter.
PROMETHEUS_OWN = {"up"}
METRIC = re.compile(r"\b((?:whistle|faststream|process)_[a-z0-9_]+)\b")


def exported() -> set[str]:
    """Every sample name the services can export: the shared registry, each service's own metrics
    (every module under services/ imported, migrations aside) and faststream's middleware."""
    for info in pkgutil.walk_packages(services.__path__, "services."):
        if ".migrations" not in info.name:
            importlib.import_module(info.name)
    names = set(metrics.REGISTRY._names_to_collectors)
    faststream = CollectorRegistry()
    KafkaPrometheusMiddleware(registry=faststream, app_name="whistle-test")
    return names | set(faststream._names_to_collectors) | PROMETHEUS_OWN


def named(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    return set(METRIC.findall(without_strings))


def rule_exprs() -> dict[str, str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {r["alert"]: r["expr"] for g in groups for r in g["rules"]}


def dashboard_exprs() -> dict[str, str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return {f"{p['title']} ({t['refId']})": t["expr"] for p in panels for t in p.get("targets", [])}


def test_the_finder_sees_metric_names_and_skips_label_values() -> None:
    assert named('sum(rate(whistle_x_total{job="whistle_y"}[5m])) / up') == {"whistle_x_total"}


@pytest.mark.parametrize("where", ["rules", "dashboard"])
def test_every_metric_named_is_exported(where: str) -> None:
    exprs = rule_exprs() if where == "rules" else dashboard_exprs()
    assert exprs
    have = exported()
    unknown = {name: sorted(named(e) - have) for name, e in exprs.items() if named(e) - have}
    assert not unknown, f"{where} name metrics the code does not export: {unknown}"


def test_an_unknown_metric_would_be_caught() -> None:
    assert named("rate(whistle_escalations_requested_total[5m])") - exported()


def test_the_dashboard_shows_rates_breaches_overdue_and_rewinds() -> None:
    shown = set().union(*(named(e) for e in dashboard_exprs().values()))
    wanted = {
        "whistle_rate",
        "whistle_breaches_total",
        "whistle_oldest_overdue_seconds",
        "whistle_batches_rewound_total",
    }
    assert wanted <= shown


def test_only_escalation_exports_its_clock_gauges() -> None:
    """Unlabelled gauges read 0 from the start: defined in the shared module, every service served
    a 0 for open clocks and overdue seconds that a max() across services would take as truth."""
    probe = (
        "import sys, importlib; from prometheus_client import generate_latest; from shared import metrics; "
        "importlib.import_module(sys.argv[1]); print(generate_latest(metrics.REGISTRY).decode())"
    )

    def scrape(app: str) -> str:
        return subprocess.run(
            [sys.executable, "-c", probe, app], check=True, capture_output=True, text=True, cwd=ROOT
        ).stdout

    for other in ("services.intake.app", "services.dispatch.app", "services.notify.app", "services.api.app"):
        text = scrape(other)
        assert "whistle_messages_total" in text or "# TYPE whistle_messages" in text
        assert "whistle_open_clocks" not in text and "whistle_oldest_overdue_seconds" not in text, other
    text = scrape("services.escalation.app")
    assert "whistle_open_clocks 0.0" in text and "whistle_oldest_overdue_seconds 0.0" in text


@pytest.mark.parametrize(
    ("reason", "cause"),
    [
        (on_breach("accept", "community", "heat").reason, "accept_overdue"),
        (on_breach("resolve", "street", "heat").reason, "resolve_overdue"),
        ("resident dissatisfied twice", "dissatisfied"),
        ("cluster: 6 reports of heating in 60 minutes", "cluster"),
        ("every department at this level returned it", "all_returned"),
        ("something new", "other"),
    ],
)
def test_escalations_are_counted_by_a_few_causes(reason: str, cause: str) -> None:
    payload = encode_event(
        type="workorder.escalated",
        source="whistle/dispatch",
        subject="WO-1",
        time="2026-11-21T08:00:00+08:00",
        data={"work_order_id": "WO-1", "from_level": "community", "to_level": "street", "reason": reason},
        id="e-1",
    )
    assert _escalation_labels(payload) == (cause, "street")


def test_dispatch_still_writes_the_reasons_the_causes_are_read_from() -> None:
    """The causes are read from prefixes of dispatch's reasons: a reworded reason must fail here,
    not silently become "other"."""
    source = (ROOT / "services/dispatch/domain.py").read_text() + (
        ROOT / "services/dispatch/handlers.py"
    ).read_text()
    for literal in ('"resident dissatisfied twice"', 'f"cluster: ', '"every department at this level'):
        assert literal in source


class FakeResult:
    def scalar_one(self) -> int:
        return 42


class FakeConn:
    async def execute(self, *_: Any, **__: Any) -> FakeResult:
        return FakeResult()


class FakeEngine:
    @asynccontextmanager
    async def connect(self) -> AsyncIterator[FakeConn]:
        yield FakeConn()


class BrokenRelay(OutboxRelay):
    async def publish_once(self) -> int:
        raise ConnectionError("broker away")


async def test_the_outbox_is_counted_while_the_relay_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay, "PENDING_EVERY", 0.01)
    outbox = Table("outbox_probe", MetaData())
    r = BrokenRelay(service="probe", engine=FakeEngine(), outbox=outbox, settings=Settings())  # type: ignore[arg-type]
    task = asyncio.create_task(r.run())
    try:
        for _ in range(200):
            await asyncio.sleep(0.01)
            if metrics.RELAY_FAILURES.labels("probe")._value.get() > 0:
                break
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert metrics.OUTBOX_PENDING.labels("probe")._value.get() == 42
    assert metrics.RELAY_FAILURES.labels("probe")._value.get() > 0
    assert not r.healthy


class LaggingKafka:
    def __init__(self, assigned: set[TopicPartition], ends: dict[TopicPartition, int]) -> None:
        self.assigned, self.ends = assigned, ends

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.ends.get(tp)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        pass

    def seek(self, partition: TopicPartition, offset: int) -> None:
        pass


def lag(topic: str, partition: int) -> float | None:
    return metrics.REGISTRY.get_sample_value(
        "whistle_consumer_lag", {"service": "lagprobe", "topic": topic, "partition": str(partition)}
    )


def test_lag_is_reported_per_partition_and_dropped_once_revoked() -> None:
    pipeline = BatchPipeline(type("C", (), {"service": "lagprobe"})())
    p0, p1 = TopicPartition("t.v1", 0), TopicPartition("t.v1", 1)
    kafka = LaggingKafka({p0, p1}, {p0: 1500, p1: 10})
    pipeline._report_lag(kafka, {p0: 1000, p1: 10}, {p0, p1})
    assert (lag("t.v1", 0), lag("t.v1", 1)) == (500, 0)
    pipeline._report_lag(kafka, {p1: 10}, {p1})
    assert lag("t.v1", 0) is None and lag("t.v1", 1) == 0
