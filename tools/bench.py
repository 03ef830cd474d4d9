"""``make bench``: synthetic calls through the running stack, from the call to its outcome: its
order's ``dispatch.assigned``, or ``workorder.merged`` when it repeats an open problem (并单; random
calls over a few thousand compound/category pairs repeat often, and the report says how often).

Four measurements in one run, on one machine, so that they can be compared:
- the raw broker produce rate (batched, acks=all), the ceiling of anything built on this broker;
- a burst: N calls published as fast as possible; calls per second until the last one reached its
  outcome (throughput, queueing included);
- a steady rate below capacity: latency from publishing a call to seeing its outcome;
- intake alone (the services behind it stopped): calls per second to workorder.created/merged,
  three bursts and their median.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import random
import re
import statistics
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared import contract
from shared.messaging import HEADERS, client_options, make_consumer, send_batched
from shared.reference import Jurisdiction, load_jurisdiction
from shared.settings import Settings
from tools.large_jurisdiction import large_jurisdiction
from tools.stack import ROOT, Stack

REPORTS = ROOT / "reports"
# A call's outcome: its order dispatched, or the call merged into an open order (并单).
OUTCOME = re.compile(rb'"type":"(dispatch\.assigned|workorder\.merged)"')
OUTCOME_TOPICS = r"^(dispatch\.(?!responses\.)[a-z0-9_]+\.v1|workorders\.events\.v1)$"
TAKEN = re.compile(rb'"type":"workorder\.(created|merged)"')
INTAKE = 'service="intake"'


def synthetic_calls(ref: Jurisdiction, run: str, n: int, seed: int = 7) -> list[tuple[str, bytes]]:
    """Plausible calls: a compound of the jurisdiction, a building, a complaint of some category."""
    rng = random.Random(seed)
    compounds = [k for _, _, k in ref.compounds]
    categories = [c for c in ref.categories if c.keywords and c.code != "other"]
    calls = []
    for i in range(n):
        compound = rng.choice(compounds)
        category = rng.choice(categories)
        call_id = f"B{run}-{i:07d}"
        content = f"{compound.name}{rng.randint(1, 30)}号楼{rng.choice(category.keywords)}，麻烦尽快派人看看"
        event = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "bench",
            "type": "hotline.call.received",
            "time": datetime.now(UTC).isoformat(),
            "subject": call_id,
            "datacontenttype": "application/json",
            "data": {"call_id": call_id, "channel": "phone", "content": content, "urgency": "normal"},
        }
        calls.append((call_id, orjson.dumps(event)))
    return calls


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@dataclass
class Watcher:
    """Notes when each call of this run first reached its outcome: dispatched to a department, or
    merged into an open order."""

    settings: Settings
    run: str
    merged: set[str] = field(default_factory=set)
    first_seen: dict[str, float] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self.consumer = make_consumer(self.settings, f"bench-{self.run}", auto_offset_reset="latest")
        self.consumer.subscribe(pattern=OUTCOME_TOPICS)
        await self.consumer.start()
        while not self.consumer.assignment():  # joined, partitions assigned
            await self.consumer.getmany(timeout_ms=200)
        # "latest" is looked up lazily, at a partition's first fetch: without this, records sent
        # before that lookup would be skipped and their calls counted as never done.
        for partition in self.consumer.assignment():
            await self.consumer.position(partition)
        self.task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        marker = f"WO-H-B{self.run}".encode()
        while True:
            batches = await self.consumer.getmany(timeout_ms=100, max_records=5000)
            now = time.perf_counter()
            for records in batches.values():
                for r in records:
                    found = OUTCOME.search(r.value or b"") if r.key and r.key.startswith(marker) else None
                    if found and r.key:
                        call_id = r.key.decode()[5:]
                        self.first_seen.setdefault(call_id, now)
                        if found.group(0).endswith(b'merged"'):
                            self.merged.add(call_id)
            self.changed.set()

    async def wait(self, ids: list[str], limit: float) -> None:
        """Until every id has been dispatched, or ``limit`` seconds have passed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                while any(i not in self.first_seen for i in ids):
                    self.changed.clear()
                    await self.changed.wait()

    async def stop(self) -> None:
        self.task.cancel()
        await self.consumer.stop()


async def raw_produce_rate(settings: Settings, n: int) -> float:
    producer = AIOKafkaProducer(
        **client_options(settings),
        acks="all",
        linger_ms=5,
        max_batch_size=512 * 1024,
        enable_idempotence=False,
    )
    await producer.start()
    payload = b"x" * 500
    try:
        started = time.perf_counter()
        futures = [await producer.send("bench.raw.v1", payload, key=str(i % 64).encode()) for i in range(n)]
        await asyncio.gather(*futures)
        return n / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def intake_alone(settings: Settings, ref: Jurisdiction, calls: int, metrics_url: str) -> dict[str, Any]:
    """Calls per second through intake by itself: publish a burst, time until intake's relay has
    had one workorder.created or workorder.merged per call acknowledged by the broker (its
    ``whistle_relay_published_total``, polled). The caller stops the other services first, so that
    intake alone publishes there. A consumer reading every event as it comes would take a second
    of CPU from the core the broker and the database share; the events are read back and checked
    afterwards instead, untimed: ``taken`` counts the calls whose event is there."""
    run = uuid.uuid4().hex[:6] + "i"
    topic = contract.WORKORDER_EVENTS
    reader = make_consumer(settings, None, enable_auto_commit=False)
    await reader.start()
    producer = AIOKafkaProducer(**client_options(settings), acks="all", linger_ms=5, enable_idempotence=False)
    await producer.start()
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            published_before = await _published(http, metrics_url, topic)
            burst = synthetic_calls(ref, run, calls, seed=23)
            cpu_before = await _metric(http, metrics_url, "process_cpu_seconds_total")
            applying_before = await _metric(http, metrics_url, "whistle_batch_seconds_sum", INTAKE)
            started = time.perf_counter()
            # In record batches, as the relay publishes: the load generator shares the two cores.
            await asyncio.gather(
                *await send_batched(producer, [(contract.HOTLINE_CALLS, cid, value) for cid, value in burst])
            )
            deadline = started + 300
            while time.perf_counter() < deadline:
                if await _published(http, metrics_url, topic) - published_before >= calls:
                    break
                await asyncio.sleep(0.1)  # the clock's resolution
            seconds = time.perf_counter() - started
            cpu = await _metric(http, metrics_url, "process_cpu_seconds_total") - cpu_before
            applying = await _metric(http, metrics_url, "whistle_batch_seconds_sum", INTAKE) - applying_before
        taken = await _taken(reader, topic, {cid for cid, _ in burst})
    finally:
        await producer.stop()
        await reader.stop()
    return {
        "calls": calls,
        "taken": taken,
        "seconds": round(seconds, 3),
        "calls_per_s": round(taken / seconds, 1) if taken else 0,
        # Intake's own CPU per call: what the code costs, whatever else the machine was doing.
        "intake_cpu_us_per_call": round(cpu / taken * 1e6) if taken else None,
        # Seconds of intake's batches, prepared and committed (whistle_batch_seconds; they overlap,
        # the next one prepared during the current one's transaction): a slow run with few of them
        # waited for something else (the broker, the relay, the machine).
        "intake_batch_seconds": round(applying, 2),
    }


async def _metric(http: httpx.AsyncClient, metrics_url: str, name: str, labels: str = "") -> float:
    """One series of the service's /metrics (scraped alone: ``name[]``), its line with these labels."""
    text = (await http.get(metrics_url, params={"name[]": name})).text
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


async def _published(http: httpx.AsyncClient, metrics_url: str, topic: str) -> float:
    labels = f'{INTAKE},topic="{topic}"'
    return await _metric(http, metrics_url, "whistle_relay_published_total", labels)


async def _taken(reader: AIOKafkaConsumer, topic: str, ids: set[str]) -> int:
    """How many of these calls have their workorder.created or .merged on the topic."""
    await reader.topics()  # metadata, for partitions_for_topic
    reader.assign([TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or ())])
    seen: set[str] = set()
    idle_since = time.perf_counter()
    while time.perf_counter() - idle_since < 2 and len(seen) < len(ids):  # until the topic is drained
        batches = await reader.getmany(timeout_ms=500, max_records=5000)
        if any(batches.values()):
            idle_since = time.perf_counter()
        for records in batches.values():
            for r in records:
                call_id = r.key.decode()[5:] if r.key else ""  # WO-H-<call id>
                if call_id in ids and TAKEN.search(r.value or b""):
                    seen.add(call_id)
    return len(seen)


async def bench(settings: Settings, calls: int, steady_rate: float, steady_seconds: float) -> dict[str, Any]:
    from shared.topics import ensure_topics

    ref = load_jurisdiction(settings.jurisdiction_file)
    await ensure_topics(settings, ["bench.raw.v1"])
    raw = await raw_produce_rate(settings, 20000)

    run = uuid.uuid4().hex[:6]
    watcher = Watcher(settings, run)
    await watcher.start()
    producer = AIOKafkaProducer(**client_options(settings), acks="all", linger_ms=5, enable_idempotence=False)
    await producer.start()
    try:
        # Burst: everything at once; throughput is orders dispatched per second of the whole burst.
        burst = synthetic_calls(ref, run + "b", calls)
        started = time.perf_counter()
        futures = [
            await producer.send(contract.HOTLINE_CALLS, value, key=cid.encode(), headers=HEADERS)
            for cid, value in burst
        ]
        await asyncio.gather(*futures)
        published = time.perf_counter()
        burst_ids = [cid for cid, _ in burst]
        await watcher.wait(burst_ids, limit=300)
        done = [watcher.first_seen[i] for i in burst_ids if i in watcher.first_seen]
        burst_seconds = (max(done) - started) if done else float("nan")

        # Steady: a rate well below capacity; latency is publish -> dispatch.assigned seen.
        steady = synthetic_calls(ref, run + "s", int(steady_rate * steady_seconds), seed=11)
        sent_at: dict[str, float] = {}
        t0 = time.perf_counter()
        for i, (cid, value) in enumerate(steady):
            delay = t0 + i / steady_rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the load generator
            sent_at[cid] = time.perf_counter()
            await producer.send(contract.HOTLINE_CALLS, value, key=cid.encode(), headers=HEADERS)
        await producer.flush()
        await watcher.wait(list(sent_at), limit=120)
        latencies = [
            (watcher.first_seen[c] - t) * 1000 for c, t in sent_at.items() if c in watcher.first_seen
        ]
    finally:
        await producer.stop()
        await watcher.stop()

    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "broker": settings.kafka_bootstrap_servers,
        "raw_produce_msgs_per_s": round(raw),
        "burst": {
            "calls": calls,
            "done": len(done),
            "merged_into_open_orders": len(watcher.merged & set(burst_ids)),
            "publish_seconds": round(published - started, 3),
            "seconds_to_last_dispatch": round(burst_seconds, 3),
            "calls_per_s": round(len(done) / burst_seconds, 1) if done else 0,
        },
        "steady": {
            "rate_per_s": steady_rate,
            "calls": len(sent_at),
            "done": len(latencies),
            "merged_into_open_orders": len(watcher.merged & set(sent_at)),
            "latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
            "latency_ms_p99": round(_percentile(latencies, 99), 1) if latencies else None,
            "latency_ms_max": round(max(latencies), 1) if latencies else None,
        },
    }


def bench_stack() -> Stack:
    """A stack of the bench's own, fresh each run: its broker, its databases, a large jurisdiction.
    Leftover orders would be merged into (并单) and skew every figure; a fresh broker is also what
    Tansu needs for repeatable numbers (its cost grows with what it holds)."""
    home = ROOT / ".whistle" / "bench"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9292",
        "HTTP_PORT_BASE": "18380",
        "DATABASE_PREFIX": "whistle_bench",
        "JURISDICTION_FILE": str(home / "large.json"),
    }
    return Stack(home=home, env={k: v for k, v in env.items() if k not in os.environ})


def main(
    calls: int, steady_rate: float, steady_seconds: float, intake_calls: int, copies: int
) -> dict[str, Any]:
    stack = bench_stack()
    stack.down()
    path = Path(stack.settings.jurisdiction_file)
    if path.parent == stack.home:
        path.write_text(json.dumps(large_jurisdiction(copies), ensure_ascii=False), encoding="utf-8")
    stack.reset_databases()
    try:
        stack.up()
        ref = load_jurisdiction(path)
        report = asyncio.run(bench(stack.settings, calls, steady_rate, steady_seconds))
        report["jurisdiction"] = {"grids": len(ref.places_by_grid), "compounds": len(ref.compounds)}
        report["busy_seconds"] = busy_seconds(stack)
        # Intake by itself: the services behind it stopped, so that it has the machine to itself.
        downstream = ("dispatch", "escalation", "notify")
        for service in downstream:
            stack.stop(service)
        metrics_url = f"http://127.0.0.1:{stack.port('intake')}/metrics"
        # Three bursts: one run's figure swings by a tenth or more with what else the machine does.
        runs = [asyncio.run(intake_alone(stack.settings, ref, intake_calls, metrics_url)) for _ in range(3)]
        report["intake_alone"] = {
            "calls_per_s_median": statistics.median(r["calls_per_s"] for r in runs),
            "runs": runs,
        }
        return report
    finally:
        stack.down()


def busy_seconds(stack: Stack) -> dict[str, float]:
    """Seconds each service spent applying batches during the run: the busiest is the bottleneck."""
    busy = {}
    for service in ("intake", "dispatch", "escalation", "notify"):
        text = httpx.get(f"http://127.0.0.1:{stack.port(service)}/metrics", timeout=5).text
        busy[service] = round(
            sum(
                float(line.split()[-1])
                for line in text.splitlines()
                if line.startswith("whistle_batch_seconds_sum")
            ),
            2,
        )
    return busy


def write_report(report: dict[str, Any]) -> Path:
    REPORTS.mkdir(exist_ok=True)
    path = REPORTS / f"bench-{report['when'].replace(':', '').replace('+0000', 'Z')}.json"
    text = json.dumps(report, indent=2, ensure_ascii=False)
    path.write_text(text + "\n")
    (REPORTS / "bench-latest.json").write_text(text + "\n")
    return path
