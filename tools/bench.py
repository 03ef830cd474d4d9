"""``make bench``: synthetic calls through the running stack, from the call to its outcome: its
order's ``dispatch.assigned``, or ``workorder.merged`` when it repeats an open problem (并单; random
calls over a few thousand compound/category pairs repeat often, and the report says how often).

Five measurements in one run, on one machine, so that they can be compared:
- the raw broker produce rate (batched, acks=all), the ceiling of anything built on this broker;
- a burst: N calls published as fast as possible; calls per second until the last one reached its
  outcome (throughput, queueing included);
- a steady rate below capacity: latency from publishing a call to seeing its outcome;
- the api's own: Open311 POSTs accepted per second, and the latency of the centre's
  ``GET /v1/orders/{id}`` (with the full stack up, after the burst and the steady rate);
- intake alone (the services behind it stopped): calls per second to workorder.created/merged,
  three bursts and their median.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import random
import re
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import contract
from shared.db import create_engine
from shared.messaging import HEADERS, client_options, make_consumer, send_batched
from shared.reference import Jurisdiction, load_jurisdiction
from shared.settings import Settings
from tools.bench_meter import Meter, spent, tree_cpu_seconds
from tools.bench_plot import Round
from tools.bench_sink import SlowSink
from tools.large_jurisdiction import large_jurisdiction
from tools.pgcluster import Postgres
from tools.stack import ROOT, SERVICES, Stack

REPORTS = ROOT / "reports"
# A call's outcome: its order dispatched, or the call merged into an open order (并单).
OUTCOME = re.compile(rb'"type":"(dispatch\.assigned|workorder\.merged)"')
OUTCOME_TOPICS = r"^(dispatch\.(?!responses\.)[a-z0-9_]+\.v1|workorders\.events\.v1)$"
TAKEN = re.compile(rb'"type":"workorder\.(created|merged)"')
INTAKE = 'service="intake"'
# A phase of the run shown as it goes (a progress bar): step(description, total) gives the phase's
# advance(done so far); total None when it cannot be counted.
Advance = Callable[[int], None]
Step = Callable[[str, int | None], Advance]


def no_step(description: str, total: int | None) -> Advance:
    return lambda done: None


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

    async def wait(self, ids: list[str], limit: float, advance: Advance | None = None) -> None:
        """Until every id has been dispatched, or ``limit`` seconds have passed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                while (done := self.done(ids)) < len(ids):
                    if advance:
                        advance(done)
                    self.changed.clear()
                    await self.changed.wait()
        if advance:
            advance(self.done(ids))

    def done(self, ids: list[str]) -> int:
        return sum(i in self.first_seen for i in ids)

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


async def intake_alone(
    settings: Settings,
    ref: Jurisdiction,
    calls: int,
    metrics_url: str,
    pid: int,
    advance: Advance | None = None,
) -> dict[str, Any]:
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
            tree_before = tree_cpu_seconds(pid)
            applying_before = await _metric(http, metrics_url, "whistle_batch_seconds_sum", INTAKE)
            started = time.perf_counter()
            # In record batches, as the relay publishes: the load generator shares the two cores.
            await asyncio.gather(
                *await send_batched(producer, [(contract.HOTLINE_CALLS, cid, value) for cid, value in burst])
            )
            deadline = started + 300
            while time.perf_counter() < deadline:
                published = await _published(http, metrics_url, topic) - published_before
                if advance:
                    advance(int(published))
                if published >= calls:
                    break
                await asyncio.sleep(0.1)  # the clock's resolution
            seconds = time.perf_counter() - started
            cpu = await _metric(http, metrics_url, "process_cpu_seconds_total") - cpu_before
            tree = tree_cpu_seconds(pid) - tree_before
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
        # Intake's own CPU per call, its tagger processes' included: what the code costs, whatever
        # else the machine was doing; and the share of its one process that applies the batches.
        "intake_cpu_us_per_call": round(tree / taken * 1e6) if taken else None,
        "intake_main_cpu_us_per_call": round(cpu / taken * 1e6) if taken else None,
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


async def pipeline(
    settings: Settings,
    ref: Jurisdiction,
    calls: int,
    steady_rate: float,
    steady_seconds: float,
    meter: Meter,
    step: Step = no_step,
    label: str = "empty databases",
) -> tuple[dict[str, Any], Round]:
    """A burst and a steady rate through the running stack, whatever its databases already hold:
    callable again (each time with calls of its own), e.g. over a year of history loaded after the
    first. Returns the figures (``burst``, ``steady``, and the CPU each part spent on them, per
    call) and the series for the picture. The CPU is read from the burst's first call until the
    services are idle again after the steady rate's last outcome: each call's whole cost, its
    notifications and the api's read model included."""
    run = uuid.uuid4().hex[:6]
    watcher = Watcher(settings, run)
    await watcher.start()
    producer = AIOKafkaProducer(**client_options(settings), acks="all", linger_ms=5, enable_idempotence=False)
    await producer.start()
    resting = await resting_rate(meter)
    meter.samples.clear()
    cpu_before = await meter.reading()
    sampled = asyncio.Event()
    sampling = asyncio.create_task(meter.sample(sampled))
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
        await watcher.wait(
            burst_ids,
            limit=max(300, calls / 100),
            advance=step(f"burst ({label}): calls to their outcome", calls),
        )
        done = [watcher.first_seen[i] for i in burst_ids if i in watcher.first_seen]
        burst_seconds = (max(done) - started) if done else float("nan")

        # The burst's backlog drained first (notifications, clocks, the api's read model): the
        # steady rate's latency is then the pipeline's, not the wait behind the burst's tail.
        draining = step(f"burst ({label}): the services idle again", None)
        drain_started = time.perf_counter()
        drained = await idle(meter, resting, within=max(60, calls / 100))
        drain_seconds = time.perf_counter() - drain_started
        draining(1)

        # Steady: a rate well below capacity; latency is publish -> dispatch.assigned seen.
        steady = synthetic_calls(ref, run + "s", int(steady_rate * steady_seconds), seed=11)
        sent_at: dict[str, float] = {}
        steady_sent = step(f"steady ({label}): calls sent", len(steady))
        t0 = time.perf_counter()
        for i, (cid, value) in enumerate(steady):
            steady_sent(i)
            delay = t0 + i / steady_rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the load generator
            sent_at[cid] = time.perf_counter()
            await producer.send(contract.HOTLINE_CALLS, value, key=cid.encode(), headers=HEADERS)
        await producer.flush()
        steady_sent(len(steady))
        await watcher.wait(
            list(sent_at), limit=120, advance=step(f"steady ({label}): calls to their outcome", len(sent_at))
        )
        latencies = [
            (watcher.first_seen[c] - t) * 1000 for c, t in sent_at.items() if c in watcher.first_seen
        ]
        settled = await idle(meter, resting)
        cpu = spent(cpu_before, await meter.reading())
    finally:
        sampled.set()
        await sampling
        await producer.stop()
        await watcher.stop()

    counted = len(done) + len(latencies)
    lost = [i for i in [*burst_ids, *sent_at] if i not in watcher.first_seen]
    figures = {
        "burst": {
            "calls": calls,
            "done": len(done),
            "lost": len(burst_ids) - len(done),
            "merged_into_open_orders": len(watcher.merged & set(burst_ids)),
            "publish_seconds": round(published - started, 3),
            "seconds_to_last_dispatch": round(burst_seconds, 3),
            "calls_per_s": round(len(done) / burst_seconds, 1) if done else 0,
        },
        "steady": {
            # Whether the burst's backlog had drained (the services back to their resting CPU)
            # when the steady rate began, and how long that took after the burst's last outcome.
            "after_backlog_drained": drained,
            "drain_seconds": round(drain_seconds, 1),
            "services_resting_cores": round(resting, 3),  # what idle was judged against
            "rate_per_s": steady_rate,
            "calls": len(sent_at),
            "done": len(latencies),
            "lost": len(sent_at) - len(latencies),
            "merged_into_open_orders": len(watcher.merged & set(sent_at)),
            "latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
            "latency_ms_p99": round(_percentile(latencies, 99), 1) if latencies else None,
            "latency_ms_max": round(max(latencies), 1) if latencies else None,
        },
        # Every call of both, from the burst's first to the services idle after the last.
        "cpu_seconds": cpu,
        "cpu_us_per_call": {part: round(s / counted * 1e6) for part, s in cpu.items()} if counted else {},
        "services_idle_at_end": settled,
        "lost_calls_first": lost[:10],
    }
    series = Round(
        label,
        outcomes=[t - started for t in done],
        latencies_ms=latencies,
        cpu=[(t - started, reading) for t, reading in meter.samples],
    )
    return figures, series


async def resting_rate(meter: Meter, windows: int = 3) -> float:
    """The cores the services use together with nothing to do: their consumers' fetches and
    timers tick (about 0.2 of a core for five here). The least of a few one-second windows: a
    stack just started, or a year just loaded, may still be busy in the first."""
    rates = []
    for _ in range(windows):
        before = meter.cpu()
        await asyncio.sleep(1)  # the measuring window
        rates.append(_services_cpu(meter, before, meter.cpu()))
    return min(rates)


async def idle(meter: Meter, resting: float, within: float = 60) -> bool:
    """Until the services together use at most their ``resting`` rate (and a twentieth of a core
    besides, and a half more, for the ticks' noise) over a second, or ``within`` seconds: what
    the calls left to do (notifications, the read model) done. False if they were still busy
    (the CPU read then leaves some of the calls' work out)."""
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline:
        before = meter.cpu()
        await asyncio.sleep(1)  # the measuring window
        if _services_cpu(meter, before, meter.cpu()) <= resting * 1.5 + 0.05:
            return True
    return False


def _services_cpu(meter: Meter, before: dict[str, float], after: dict[str, float]) -> float:
    return sum(after[s] - before[s] for s in meter.processes if s in SERVICES)


async def notify_delivery(
    stack: Stack, meter: Meter, planned: int, step: Step = no_step
) -> tuple[dict[str, Any], list[float]]:
    """Notifications at the speed of real gateways: notify restarted with its SMS and webhook
    channels pointed at a local sink answering after 100-200 ms; ``planned`` notifications (half
    SMS to residents, half webhooks to a department) written to notify's database as its handlers
    plan them, and timed until every one is recorded sent. Checked once each: at the sink, by
    idempotency key, and in notify's database (status and attempts). Returns the figures and the
    sink's answer times (seconds from planning)."""
    sink = SlowSink()
    await sink.start()
    channels = {"NOTIFY_SMS_URL": sink.url("sms"), "NOTIFY_WEBHOOK_URL": sink.url("webhook")}
    engine = create_engine(stack.settings.database_url_for("notify"))
    try:
        restarted = step("notify restarted, pointed at the sink", None)
        await asyncio.to_thread(_restart, stack, "notify", channels)
        meter.processes["notify"] = stack.pid("notify") or 0
        restarted(1)
        backlog = await _pending(engine, "%", within=120)  # the pipeline's own, sent before these
        run = f"BN{uuid.uuid4().hex[:6]}-"
        cpu_before = meter.cpu()
        started = await _plan(engine, run, planned)
        advance = step("notifications recorded sent", planned)
        deadline = started + max(120, planned / 20)
        counts: dict[str, int] = {}
        while time.perf_counter() < deadline:
            async with engine.connect() as conn:
                counts = dict((await conn.execute(_STATUSES, {"run": run + "%"})).all())
            advance(counts.get("sent", 0) + counts.get("failed", 0))
            if counts.get("pending", 0) == 0:
                break
            await asyncio.sleep(0.1)  # the clock's resolution
        recorded = time.perf_counter()
        notify_cpu = meter.cpu()["notify"] - cpu_before["notify"]
        async with engine.connect() as conn:
            attempts, distinct = (await conn.execute(_ATTEMPTS, {"run": run + "%"})).one()
        ours = [times for key, times in sink.answered.items() if key.startswith(run)]
        answered = [t - started for t, key in sink.times if key.startswith(run)]
    finally:
        await engine.dispose()
        await sink.stop()
        for name in channels:
            stack.env.pop(name, None)
    sent = counts.get("sent", 0)
    seconds = recorded - started
    return {
        "planned": planned,
        "channels": {"sms": (planned + 1) // 2, "webhook": planned // 2},
        "sink_answers_after_ms": [100, 200],
        "concurrency_per_channel": stack.settings.notify_concurrency,
        "rate_limit_per_s": stack.settings.notify_rate_per_second,
        "pipeline_backlog_at_start": backlog,
        "answered_by_sink": sum(ours),
        "distinct_at_sink": len(ours),
        "answered_more_than_once": sum(1 for times in ours if times > 1),
        "recorded_sent": sent,
        "recorded_failed": counts.get("failed", 0),
        "attempts_recorded": attempts,
        "attempts_distinct": distinct,
        "seconds_to_recorded": round(seconds, 3),
        "delivered_per_s": round(sent / seconds, 1) if sent else 0,
        # From the sink's first answer to one of these to its last: the rate once notify had
        # reached them (a backlog the pipeline left, pipeline_backlog_at_start, goes first).
        "delivered_per_s_at_sink": round(len(answered) / span, 1) if (span := _span(answered)) else None,
        "notify_cpu_us_per_notification": round(notify_cpu / sent * 1e6) if sent else None,
        "notify_peak_rss_mb": meter.peak_rss_mb().get("notify"),
    }, answered


_STATUSES = text("SELECT status, count(*) FROM notifications WHERE id LIKE :run GROUP BY status")
_ATTEMPTS = text(
    "SELECT count(*), count(DISTINCT notification_id) FROM notification_attempts "
    "WHERE notification_id LIKE :run"
)


def _span(times: list[float]) -> float:
    return max(times) - min(times) if len(times) > 1 else 0.0


def _restart(stack: Stack, service: str, env: dict[str, str]) -> None:
    stack.stop(service)
    stack.env.update(env)
    stack.start_service(service)
    stack.wait_ready((service,))


async def _pending(engine: AsyncEngine, ids: str, within: float) -> int:
    """Until no notification is left pending (a deadline of ``within`` seconds): how many were."""
    deadline = time.perf_counter() + within
    query = text("SELECT count(*) FROM notifications WHERE status = 'pending' AND id LIKE :ids")
    first = None
    while True:
        async with engine.connect() as conn:
            left = int((await conn.execute(query, {"ids": ids})).scalar_one())
        first = left if first is None else first
        if not left or time.perf_counter() > deadline:
            return first
        await asyncio.sleep(0.2)  # the clock's resolution


async def _plan(engine: AsyncEngine, run: str, n: int) -> float:
    """``n`` notifications, due now, as notify's handlers plan them (the residents' contacts
    with them); returns the moment they were committed."""
    from services.notify import store

    now = datetime.now(UTC)
    contacts: dict[tuple[str, str], tuple[str | None, str | None]] = {}
    rows = []
    for i in range(n):
        order = f"WO-{run}{i:06d}"
        resident = i % 2 == 0
        if resident:
            contacts[(order, order)] = (None, f"139{i:08d}")  # a made-up number, the sink's alone
        rows.append(
            {
                "id": f"{run}{i:06d}",
                "work_order_id": order,
                "audience": "resident" if resident else "department",
                "recipient": order if resident else "heat",
                "channel": "sms" if resident else "webhook",
                "template": "received" if resident else "new_work",
                "body": f"【12345】您反映的问题已受理，工单号{order}。" if resident else f"新工单{order}",
                "status": "pending",
                "attempts": 0,
                "event_time": now,
                "hold_until": None,
            }
        )
    async with engine.begin() as conn:
        await store.save_contacts(conn, contacts)
        await store.add(conn, rows)
    return time.perf_counter()


async def api_figures(
    stack: Stack, ref: Jurisdiction, posts: int, gets: int, concurrency: int = 16
) -> dict[str, Any]:
    """The api's own figures, through one ``httpx.AsyncClient``: ``posts`` Open311 requests with
    the ``channel`` key, at most ``concurrency`` at a time, timed until every one has its 201; then
    ``gets`` of the centre's ``GET /v1/orders/{id}``, one at a time (latency, not queueing), over
    orders the bench made (listed through the api, untimed). Before it returns, intake has taken
    every posted request (``workorder.created`` or ``.merged`` acknowledged by the broker), so that
    none is left for intake alone to take."""
    keys = orjson.loads((stack.home / "api-keys.json").read_bytes())
    channel = {"Authorization": f"Bearer {keys['channel']}"}
    centre = {"Authorization": f"Bearer {keys['centre']}"}
    intake_metrics = f"http://127.0.0.1:{stack.port('intake')}/metrics"
    topic = contract.WORKORDER_EVENTS
    rng = random.Random(31)
    compounds = [k for _, _, k in ref.compounds]
    categories = [c for c in ref.categories if c.keywords and c.code != "other"]
    forms = []
    for _ in range(posts):
        compound, category = rng.choice(compounds), rng.choice(categories)
        description = (
            f"{compound.name}{rng.randint(1, 30)}号楼{rng.choice(category.keywords)}，麻烦尽快派人看看"
        )
        forms.append({"service_code": category.code, "description": description})
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    base = f"http://127.0.0.1:{stack.port('api')}"
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
        taken_before = await _published(http, intake_metrics, topic)
        gate = asyncio.Semaphore(concurrency)

        async def post(form: dict[str, str]) -> int:
            async with gate:
                answer = await http.post("/open311/v2/requests.json", data=form, headers=channel)
                return answer.status_code

        started = time.perf_counter()
        codes = await asyncio.gather(*(post(f) for f in forms))
        post_seconds = time.perf_counter() - started
        accepted = sum(code == 201 for code in codes)

        ids: list[str] = []
        cursor: str | None = None
        while len(ids) < gets:
            params: dict[str, Any] = {"limit": 200} | ({"cursor": cursor} if cursor else {})
            page = (await http.get("/v1/orders", params=params, headers=centre)).json()
            ids += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        latencies, ok = [], 0
        for i in range(gets if ids else 0):
            t = time.perf_counter()
            answer = await http.get(f"/v1/orders/{ids[i % len(ids)]}", headers=centre)
            latencies.append((time.perf_counter() - t) * 1000)
            ok += answer.status_code == 200

        deadline = time.perf_counter() + 120
        while time.perf_counter() < deadline:
            if await _published(http, intake_metrics, topic) - taken_before >= accepted:
                break
            await asyncio.sleep(0.1)  # the clock's resolution
    return {
        "posts": posts,
        "posts_accepted": accepted,
        "open311_posts_per_s": round(accepted / post_seconds, 1),
        "concurrency": concurrency,
        "gets": len(latencies),
        "gets_ok": ok,
        "get_order_p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "get_order_p99_ms": round(_percentile(latencies, 99), 2) if latencies else None,
    }


# The bench's own PostgreSQL cluster, configured as a city's server would be: autovacuum on (the
# development machines' server runs without it, and its tables then bloat and are never analysed:
# docs/performance.md), the shared buffers and durability of the machine's server. DATABASE_URL in
# the environment measures on that server instead.
BENCH_POSTGRES_PORT = 55432
BENCH_POSTGRES = {
    "max_connections": "300",
    "shared_buffers": "128MB",
    "fsync": "on",
    "autovacuum": "on",
    # As deploy/'s cluster: every database visited each 5 s, not each minute (the outbox's dead rows,
    # the statistics of tables that grow from empty in a burst; docs/performance.md).
    "autovacuum_naptime": "5s",
}


def bench_postgres() -> Postgres | None:
    if "DATABASE_URL" in os.environ:
        return None
    # Not the stack's pgdata: that is its embedded server's, which `Stack.down` stops.
    return Postgres(ROOT / ".whistle" / "bench" / "cluster", BENCH_POSTGRES_PORT, BENCH_POSTGRES)


def bench_stack(postgres: Postgres | None = None) -> Stack:
    """A stack of the bench's own, fresh each run: its broker, its databases (on ``postgres`` when
    given), a large jurisdiction. Leftover orders would be merged into (并单) and skew every figure;
    a fresh Tansu is also what Tansu needs for repeatable numbers (its cost grows with what it holds)."""
    home = ROOT / ".whistle" / "bench"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9292",
        "HTTP_PORT_BASE": "18380",
        "DATABASE_PREFIX": "whistle_bench",
        "JURISDICTION_FILE": str(home / "large.json"),
        # The api's figures are the routes', not its per-key limiter's (50 a second by default).
        "API_RATE_PER_SECOND": "1000000",
        # Notify's the same: its sends are measured, not a gateway's contracted rate (50 a second
        # by default); the log channel keeps up with the burst instead of leaving a backlog.
        "NOTIFY_RATE_PER_SECOND": "1000000",
    }
    if postgres is not None:
        env["DATABASE_URL"] = postgres.url
    return Stack(home=home, env={k: v for k, v in env.items() if k not in os.environ})


@dataclass
class Result:
    """A run's report (the JSON) and the series its picture is drawn from."""

    report: dict[str, Any]
    rounds: list[Round] = field(default_factory=list)
    deliveries: list[float] = field(default_factory=list)  # the sink's answers, from planning


def main(
    calls: int,
    steady_rate: float,
    steady_seconds: float,
    intake_calls: int,
    copies: int,
    step: Step = no_step,
    notifications: int = 10_000,
    preload_orders: int = 0,
) -> Result:
    postgres = bench_postgres()
    stack = bench_stack(postgres)
    stack.down()
    path = Path(stack.settings.jurisdiction_file)
    if path.parent == stack.home:
        path.write_bytes(orjson.dumps(large_jurisdiction(copies)))
    if postgres is not None:
        postgres.create()
        postgres.start()
    try:
        stack.reset_databases()
        started = step("the bench's stack starting", None)
        stack.up()
        started(1)
        ref = load_jurisdiction(path)
        meter = stack_meter(stack)
        result = Result(report={}, rounds=[])
        load_before = os.getloadavg()
        asyncio.run(bench(stack.settings, ref, calls, steady_rate, steady_seconds, meter, result, step))
        report = result.report
        report["jurisdiction"] = {"grids": len(ref.places_by_grid), "compounds": len(ref.compounds)}
        report["busy_seconds"] = busy_seconds(stack)
        # The api's own, with the full stack up (after busy_seconds, which it would add to).
        api_done = step("the api's figures", None)
        report["api"] = asyncio.run(api_figures(stack, ref, posts=1000, gets=500))
        api_done(1)
        report["peak_rss_mb"] = meter.peak_rss_mb()  # before notify restarts and the others stop
        if notifications:
            report["notify"], result.deliveries = asyncio.run(
                notify_delivery(stack, meter, notifications, step)
            )
        # Intake by itself: the services behind it stopped, so that it has the machine to itself.
        downstream = [s for s in SERVICES if s != "intake"]
        for service in downstream:
            stack.stop(service)
        metrics_url = f"http://127.0.0.1:{stack.port('intake')}/metrics"
        # Three bursts: one run's figure swings by a tenth or more with what else the machine does.
        runs = [
            asyncio.run(
                intake_alone(
                    stack.settings,
                    ref,
                    intake_calls,
                    metrics_url,
                    stack.pid("intake") or 0,
                    step(f"intake alone {n}/3", intake_calls),
                )
            )
            for n in (1, 2, 3)
        ]
        report["intake_alone"] = {
            "calls_per_s_median": statistics.median(r["calls_per_s"] for r in runs),
            "runs": runs,
        }
        if preload_orders:  # the burst and the steady rate again, over a year of history
            from tools.preload import over_a_year

            def measure() -> dict[str, Any]:
                year = Result(report={}, rounds=[])
                # The stack was started again: a meter of its new processes.
                args = (calls, steady_rate, steady_seconds, stack_meter(stack), year, step)
                asyncio.run(bench(stack.settings, ref, *args, label="a year of history"))
                result.rounds += year.rounds
                return year.report

            report["preloaded_year"] = over_a_year(stack, preload_orders, measure, report, step)
        # The machine's load (1-minute average) as the run began and ended: other work on it
        # lowers every figure but the CPU per call.
        report["load_average"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
        report["vs_raw"] = vs_raw(report)
        own = "the bench's own cluster (autovacuum on)"
        report["postgres"] = own if postgres else "DATABASE_URL's server"
        return result
    finally:
        try:
            stack.down()
        finally:
            if postgres is not None:
                postgres.stop()


async def bench(
    settings: Settings,
    ref: Jurisdiction,
    calls: int,
    steady_rate: float,
    steady_seconds: float,
    meter: Meter,
    result: Result,
    step: Step = no_step,
    label: str = "empty databases",
) -> None:
    """The raw broker rate, then a burst and a steady rate over what the stack's databases hold."""
    from shared.topics import ensure_topics

    await ensure_topics(settings, ["bench.raw.v1"])
    raw_done = step("raw broker produce rate", None)
    raw = await raw_produce_rate(settings, 20000)
    raw_done(1)
    figures, series = await pipeline(settings, ref, calls, steady_rate, steady_seconds, meter, step, label)
    result.report |= {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "broker": settings.kafka_bootstrap_servers,
        "raw_produce_msgs_per_s": round(raw),
        **figures,
    }
    result.rounds.append(series)


def stack_meter(stack: Stack) -> Meter:
    processes = {part: pid for part in (*SERVICES, "broker") if (pid := stack.pid(part))}
    return Meter(processes, stack.settings.database_url_for("intake"), stack.settings.database_prefix)


INPUTS = ("raw_produce_msgs_per_s", "rate_per_s", "rate_limit_per_s")  # not figures of the run


def vs_raw(report: dict[str, Any]) -> dict[str, float]:
    """Every figure beside the raw broker rate of the same run, so that runs on machines of other
    speeds, or the same one busier, compare: a rate (``…_per_s…``) divided by it; a time (``…_ms``,
    a latency, CPU ``…_us_per_…``) as how many raw messages the broker takes in it. Keyed by the
    figure's path in the report."""
    raw = report.get("raw_produce_msgs_per_s") or 0
    ratios: dict[str, float] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else key, inner)
            return
        if not isinstance(value, int | float) or isinstance(value, bool) or not raw or ".ratio_" in prefix:
            return  # a ratio (the year's over the empty databases') is already free of the machine
        name = prefix.rsplit(".", 1)[-1]
        if "_per_s" in name and name not in INPUTS:
            ratios[prefix] = round(value / raw, 5)
        elif ".cpu_us_per_call." in f".{prefix}" or "_us_per_" in name:
            ratios[prefix] = round(value * 1e-6 * raw, 2)
        elif name.startswith("latency_ms") or name.endswith("_ms"):
            ratios[prefix] = round(value * 1e-3 * raw, 1)

    walk("", {k: v for k, v in report.items() if k != "vs_raw"})
    return ratios


def busy_seconds(stack: Stack) -> dict[str, float]:
    """Seconds each service spent applying batches during the run: the busiest is the bottleneck."""
    busy = {}
    for service in SERVICES:
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


def write_report(result: Result) -> Path:
    """The JSON under reports/ (``bench-<time>.json`` and ``bench-latest.json``), and beside it
    the picture (``.png``, the same names)."""
    from tools.bench_plot import draw

    report = result.report
    REPORTS.mkdir(exist_ok=True)
    path = REPORTS / f"bench-{report['when'].replace(':', '').replace('+0000', 'Z')}.json"
    text = orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
    path.write_text(text + "\n")
    (REPORTS / "bench-latest.json").write_text(text + "\n")
    title = (
        f"make bench {report['when']}: raw produce {report['raw_produce_msgs_per_s']:,} msgs/s, "
        f"load average {report.get('load_average', '?')}"
    )
    draw(path.with_suffix(".png"), result.rounds, result.deliveries, title)
    (REPORTS / "bench-latest.png").write_bytes(path.with_suffix(".png").read_bytes())
    return path
