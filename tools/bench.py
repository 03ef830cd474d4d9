"""``make bench``: synthetic calls through the running stack, call -> ``dispatch.assigned``.

Three measurements in one run, on one machine, so that they can be compared:
- the raw broker produce rate (batched, acks=all), the ceiling of anything built on this broker;
- a burst: N calls published as fast as possible; work orders per second until the last one is
  dispatched (throughput, queueing included);
- a steady rate well below capacity: latency from publishing a call to seeing its dispatch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
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

import orjson
from aiokafka import AIOKafkaProducer

from shared import contract
from shared.messaging import HEADERS, client_options, make_consumer
from shared.reference import Jurisdiction, load_jurisdiction
from shared.settings import Settings

REPORTS = Path(__file__).resolve().parent.parent / "reports"
ASSIGNED = re.compile(rb'"type":"dispatch\.assigned"')


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
    """Sees every dispatch.assigned of this run and notes when each order got its first one."""

    settings: Settings
    run: str
    first_seen: dict[str, float] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self.consumer = make_consumer(self.settings, f"bench-{self.run}", auto_offset_reset="latest")
        self.consumer.subscribe(pattern=r"^dispatch\.(?!responses\.)[a-z0-9_]+\.v1$")
        await self.consumer.start()
        while not self.consumer.assignment():  # joined, partitions assigned, positions at the end
            await self.consumer.getmany(timeout_ms=200)
        self.task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        marker = f"WO-H-B{self.run}".encode()
        while True:
            batches = await self.consumer.getmany(timeout_ms=100, max_records=5000)
            now = time.perf_counter()
            for records in batches.values():
                for r in records:
                    if r.key and r.key.startswith(marker) and ASSIGNED.search(r.value or b""):
                        self.first_seen.setdefault(r.key.decode()[5:], now)
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
        await watcher.wait(burst_ids, limit=600)
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
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "broker": settings.kafka_bootstrap_servers,
        "raw_produce_msgs_per_s": round(raw),
        "burst": {
            "calls": calls,
            "dispatched": len(done),
            "publish_seconds": round(published - started, 3),
            "seconds_to_last_dispatch": round(burst_seconds, 3),
            "work_orders_per_s": round(len(done) / burst_seconds, 1) if done else 0,
        },
        "steady": {
            "rate_per_s": steady_rate,
            "calls": len(sent_at),
            "dispatched": len(latencies),
            "latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
            "latency_ms_p99": round(_percentile(latencies, 99), 1) if latencies else None,
            "latency_ms_max": round(max(latencies), 1) if latencies else None,
        },
    }


def write_report(report: dict[str, Any]) -> Path:
    REPORTS.mkdir(exist_ok=True)
    path = REPORTS / f"bench-{report['when'].replace(':', '').replace('+0000', 'Z')}.json"
    text = json.dumps(report, indent=2, ensure_ascii=False)
    path.write_text(text + "\n")
    (REPORTS / "bench-latest.json").write_text(text + "\n")
    return path
