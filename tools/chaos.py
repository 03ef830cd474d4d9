"""``make chaos``: the project's own fault-injection run, counted Jepsen-style from the topics.

A stack of its own runs every service as two replicas (two processes in one consumer group, each
on a port of its own) under the local supervisor, against a PostgreSQL server the run makes for
itself (``initdb`` of a throwaway cluster on another port: never the machine's server) and its own
Tansu broker. Calls are sent at a steady rate while departments and residents play
(``tools.simulate``); meanwhile a random service replica is SIGKILLed every few seconds (the
supervisor starts it again), PostgreSQL crashes once (``pg_ctl stop -m immediate``, then started
again) and the broker restarts once (Tansu restarted empty: the topics are given back and every
service started again, as ``make up`` does after a broker restart).

Every record of every topic is read from the start (a reader beside the run, drained just
before the broker forgets, and again at the end), and counted:

- lost: a call without its order (``workorder.created``, or ``workorder.merged``), a created
  order without its lead's ``dispatch.assigned``, or without the resident told (the ``received``
  notification);
- doubled: one logical effect under two event ids (an order created twice, a dispatch assigned
  twice, a notification sent twice, a lifecycle step taken twice for one cause);
- same-id repeats (allowed by the contract: consumers dedupe by id; counted, for their cost);
- unexpected: records that are not events, or events about orders the run never asked for;
- dead letters, by reason;
- order: per key, a work order's statuses follow dispatch's transitions, and a dispatch's events
  begin with its assignment and end with its cancellation;
- recovery: from each SIGKILL to the replica's ``/readyz`` green again; from PostgreSQL's and the
  broker's return to every replica ready;
- call → lead dispatch latency (p50, p99, max) under the faults.

Calls sent while the broker was down or still without its topics, and calls still in flight when
it forgot everything it held, are excepted from "lost" and counted apart: an in-memory broker
that restarts loses what it held by definition.

Then, the faults over and the stack still up, the full run sends 10,000 fuzzed messages
(``tools.fuzz``: every topic the services consume, valid calls among them): each bad one must be
dead-lettered naming its field, each valid call must become an order, and no replica may restart.

The report is JSON under ``reports/`` (``chaos-<time>.json`` and ``chaos-latest.json``) with a
line a person reads; the run fails when anything was lost or doubled, an order broken, or
the fuzz failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared import contract
from shared.messaging import HEADERS, client_options
from shared.reference import load_jurisdiction
from shared.settings import Settings
from tools.pgcluster import Postgres
from tools.stack import ROOT, Stack

REPORTS = ROOT / "reports"
Say = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    """What a run does. ``FULL`` is ``make chaos``; ``SHORT`` the integration test's."""

    seconds: float = 150  # calls are sent for this long
    rate: float = 20  # calls per second
    kill_every: tuple[float, float] = (4.0, 8.0)  # seconds between two SIGKILLs (uniform)
    replicas: int = 2
    postgres_crash: bool = True
    broker_restart: bool = True
    down_seconds: float = 2.0  # how long PostgreSQL and the broker stay away
    settle: float = 180  # seconds, after the last call, for everything to be accounted for
    seed: int = 19
    # Fuzzed messages (tools.fuzz) sent to the stack once the faults are over, valid calls among
    # them; 0: none (the short run leaves fuzzing to tests/integration/test_fuzz.py).
    fuzz_messages: int = 10_000
    home: Path = ROOT / ".whistle" / "chaos"
    broker_port: int = 9492
    http_port_base: int = 18580
    postgres_port: int = 55441
    database_prefix: str = "whistle_chaos"


FULL = Plan()
# Without the broker restart: the full run has passed through one, but not every time yet (a
# dispatch replica crawled after one, docs/performance.md), and a test that may fail is no test.
# `whistle chaos --short --broker-restart` runs it with the restart.
SHORT = Plan(
    seconds=60,
    rate=4,
    kill_every=(5.0, 8.0),
    broker_restart=False,
    settle=150,
    fuzz_messages=0,
    home=ROOT / ".whistle" / "test-chaos",
    broker_port=19197,
    http_port_base=18500,
    postgres_port=55440,
    database_prefix="whistle_test_chaos",
)


def stack_env(plan: Plan) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{plan.broker_port}",
        "HTTP_PORT_BASE": str(plan.http_port_base),
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{plan.postgres_port}",
        "DATABASE_PREFIX": plan.database_prefix,
        # Limits of seconds, so that the unanswered dispatches climb the ladder during the run.
        "TIME_LIMITS": (
            '{"emergency": {"accept": "PT8S", "resolve": "PT90S"},'
            ' "urgent": {"accept": "PT10S", "resolve": "PT120S"},'
            ' "normal": {"accept": "PT12S", "resolve": "PT150S"}}'
        ),
        "REQUEST_TYPE_TIME_LIMITS": (
            '{"inquiry": "PT150S", "help": "PT150S", "suggestion": "PT150S",'
            ' "complaint": "PT150S", "report": "PT150S"}'
        ),
        "CENTRE_COUNTING": "calendar",
        "TIMER_INTERVAL_SECONDS": "0.25",
        # Every call an order of its own: a merge (并单) is correct, but blurs what "lost" means.
        "MERGE_WINDOW_MINUTES": "0",
        "NOTIFY_QUIET_HOURS": "",  # residents told whatever the hour the run is made at
        "DB_POOL_SIZE": "3",  # ten processes on one small server
        "LOG_LEVEL": "WARNING",
    }


# The run's own server: ten processes on it, and the crash is the server's, not the machine's (the
# OS keeps its writes, so fsync is not needed to recover).
CHAOS_POSTGRES = {"max_connections": "300", "shared_buffers": "64MB", "fsync": "off"}


# ---- reading every topic ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seen:
    epoch: int  # the broker's life it was read in: 0 before its restart, 1 after
    topic: str
    partition: int
    offset: int
    timestamp: int  # ms, set by its producer
    key: str | None
    value: bytes | None


class Tap:
    """Every record of the given topics, read from their beginning for as long as it runs."""

    def __init__(self, settings: Settings, topics: Iterable[str], epoch: int) -> None:
        self.settings, self.topics, self.epoch = settings, sorted(topics), epoch
        self.seen: list[Seen] = []
        self.next: dict[TopicPartition, int] = {}
        self.read = asyncio.Event()  # set after each fetch
        self.errors: Counter[str] = Counter()

    async def start(self) -> None:
        self.consumer = AIOKafkaConsumer(
            **client_options(self.settings), enable_auto_commit=False, fetch_max_wait_ms=100
        )
        await self.consumer.start()
        await self.consumer.topics()
        self.partitions = [
            TopicPartition(t, p)
            for t in self.topics
            for p in sorted(self.consumer.partitions_for_topic(t) or ())
        ]
        self.consumer.assign(self.partitions)
        await self.consumer.seek_to_beginning(*self.partitions)
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            try:
                batches = await self.consumer.getmany(timeout_ms=200, max_records=5000)
            except Exception as exc:  # the broker away a moment: read on when it is back
                self.errors[type(exc).__name__] += 1
                await asyncio.sleep(0.5)
                continue
            for tp, records in batches.items():
                for r in records:
                    key = r.key.decode("utf-8", "replace") if r.key is not None else None
                    self.seen.append(
                        Seen(self.epoch, tp.topic, tp.partition, r.offset, r.timestamp, key, r.value)
                    )
                    self.next[tp] = r.offset + 1
            self.read.set()

    async def drain(self, within: float = 60) -> list[str]:
        """Until everything the topics hold now has been read; the partitions it could not read
        to their end within the time given (none, normally)."""
        ends = await self.consumer.end_offsets(self.partitions)
        behind = [tp for tp, end in ends.items() if self.next.get(tp, 0) < end]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while behind:
                    self.read.clear()
                    await self.read.wait()
                    behind = [tp for tp, end in ends.items() if self.next.get(tp, 0) < end]
        return [f"{tp.topic}/{tp.partition}: {self.next.get(tp, 0)} of {ends[tp]}" for tp in behind]

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
        # After the broker was killed, aiokafka's fetcher may end its close with a CancelledError
        # of its own making (its retry's sleep): the reader is done either way.
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.consumer.stop()


# ---- the calls ------------------------------------------------------------------------------------


@dataclass
class Call:
    call_id: str
    sent: float  # wall clock, seconds
    excepted: str | None = None  # why it is not held to "lost"


def make_calls(settings: Settings, run: str, n: int, seed: int) -> list[tuple[str, bytes]]:
    """Plausible calls (``make bench``'s: a compound of the jurisdiction, a complaint of some
    category), each with a caller, so that a resident is told. Call ids ``B<run>-…``."""
    from tools.bench import synthetic_calls

    rng = random.Random(seed)
    calls = []
    for call_id, value in synthetic_calls(load_jurisdiction(settings.jurisdiction_file), run, n, seed):
        event = orjson.loads(value)
        event["data"]["caller"] = {"name": "测试居民", "phone": f"139{rng.randrange(10**8):08d}"}
        event["source"] = "chaos/hotline"
        calls.append((call_id, orjson.dumps(event)))
    return calls


def retimed(value: bytes) -> bytes:
    """The call happens as it is sent: business time and the wall clock agree."""
    event = orjson.loads(value)
    event["time"] = datetime.now(UTC).isoformat()
    return orjson.dumps(event)


# ---- the verdict ----------------------------------------------------------------------------------

ORDER_TYPES = {"workorder.created", "workorder.merged"}


def _percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))], 3)


def _logical(topic: str, type_: str, key: str | None, data: dict[str, Any]) -> tuple[Any, ...] | None:
    """What one effect is, whatever its event id: two ids for one of these is a double."""
    if topic == contract.WORKORDER_EVENTS:
        if type_ == "workorder.created":
            return (type_, key)
        return (type_, key, data.get("caused_by"), data.get("status"), data.get("to_level"))
    if topic == contract.NOTIFICATIONS:
        return (type_, data.get("notification_id"), data.get("attempts"))
    if contract.is_department_topic(topic):
        if type_ == "dispatch.assigned":
            return (type_, data.get("dispatch_id"))
        if type_ == "dispatch.reminder":
            return (type_, data.get("dispatch_id"), data.get("deadline"), data.get("overdue"))
        return (type_, data.get("dispatch_id"))
    if topic == contract.ALERTS and type_ == "alert.sla_breached":
        return (
            type_,
            data.get("work_order_id"),
            data.get("department"),
            data.get("deadline"),
            data.get("due"),
            # One department can hold two of an order's dispatches due at once: one at a level
            # and, after a cluster raised the order at the same instant, one a level up.
            data.get("level"),
        )
    return None


def _status_follows(previous: str, status: str) -> bool:
    from services.dispatch.domain import ORDER_TRANSITIONS

    return status == previous or any(
        (previous, what) in ORDER_TRANSITIONS and ORDER_TRANSITIONS[(previous, what)] == status
        for _, what in ORDER_TRANSITIONS
    )


# Notify's notices of a cluster carry "cluster:<community>:<category>" where an order's id would be.
CLUSTER_NOTICE = "cluster:"


def verdict(calls: list[Call], seen: list[Seen], run: str) -> dict[str, Any]:
    """The counts, from the calls sent and every record read. Pure: tested on its own."""
    mine = f"WO-H-B{run}"
    by_id: dict[str, Call] = {c.call_id: c for c in calls}
    ids_seen: Counter[str] = Counter()
    logical: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    unexpected: Counter[str] = Counter()
    dead: Counter[str] = Counter()
    taken: set[str] = set()  # orders created or merged
    dispatched: dict[str, int] = {}  # order -> first lead dispatch.assigned (ms)
    told: set[str] = set()  # orders whose resident heard "received"
    received_ids: dict[str, set[str]] = defaultdict(set)  # order -> notification ids of "received"
    statuses: dict[tuple[int, str], list[str]] = defaultdict(list)  # (epoch, order) -> statuses
    firsts: dict[tuple[int, str], str] = {}
    dispatch_steps: dict[tuple[int, str], list[str]] = defaultdict(list)
    orders_before: set[str] = set()
    violations: list[str] = []  # "<order>: what" (the order first: excepted calls' are apart)
    stale_reminders = 0
    clusters = 0
    for s in sorted(seen, key=lambda s: (s.epoch, s.topic, s.partition, s.offset)):
        try:
            event = orjson.loads(s.value or b"")
            type_, event_id, data = event["type"], event["id"], event.get("data") or {}
        except (orjson.JSONDecodeError, KeyError, TypeError):
            unexpected["not an event"] += 1
            continue
        if s.topic == contract.DEADLETTER:
            dead[str(data.get("error", ""))[:60]] += 1
            continue
        order = data.get("work_order_id") if isinstance(data, dict) else None
        if s.topic == contract.NOTIFICATIONS and str(order).startswith(CLUSTER_NOTICE):
            clusters += 1  # a street told of a cluster (工单预警): about a place, not an order
            continue
        if s.topic not in (contract.HOTLINE_CALLS,) and order and not str(order).startswith(mine):
            unexpected[f"another run's order on {s.topic}"] += 1
            continue
        ids_seen[f"{s.topic}/{event_id}"] += 1
        if ids_seen[f"{s.topic}/{event_id}"] > 1:
            continue  # a same-id repeat: one event, counted below
        what = _logical(s.topic, type_, s.key, data)
        if what is not None:
            logical[(s.topic, *what)].add(event_id)
        if s.topic == contract.WORKORDER_EVENTS and order:
            if type_ in ORDER_TYPES:
                taken.add(order)
            if s.epoch == 0:
                orders_before.add(order)
            history = statuses[(s.epoch, order)]
            firsts.setdefault((s.epoch, order), type_)
            status = str(data.get("status"))
            if type_ == "workorder.merged":
                continue
            if history and history[-1] == "closed" and status != "closed":
                violations.append(f"{order}: {type_} after closed")
            elif history and not _status_follows(history[-1], status):
                violations.append(f"{order}: {history[-1]} -> {status} ({type_})")
            history.append(status)
        elif contract.is_department_topic(s.topic) and order:
            if type_ == "dispatch.assigned" and data.get("role") == "lead":
                dispatched.setdefault(order, s.timestamp)
            steps = dispatch_steps[(s.epoch, str(data.get("dispatch_id")))]
            if type_ == "dispatch.reminder":
                # Escalation's, not dispatch's: it learns of a cancellation from the order's events,
                # later, so a reminder after one is that race between two producers, counted apart.
                stale_reminders += bool(steps and steps[-1] == "dispatch.cancelled")
                continue
            if steps and steps[-1] == "dispatch.cancelled":
                violations.append(f"{order}: {type_} after dispatch.cancelled")
            elif not steps and type_ != "dispatch.assigned" and s.epoch == 0:
                violations.append(f"{order}: {type_} before dispatch.assigned")
            steps.append(type_)
        elif (
            s.topic == contract.NOTIFICATIONS
            and order
            and data.get("audience") == "resident"
            and str(data.get("template", "")).startswith("received")
        ):
            told.add(order)
            received_ids[order].add(str(data.get("notification_id")))
    for (epoch, order), first in firsts.items():
        if first != "workorder.created" and (epoch == 0 or order not in orders_before):
            violations.append(f"{order}: begins with {first}")
    excepted_orders = {f"WO-H-{c.call_id}" for c in calls if c.excepted}
    excepted_violations = [v for v in violations if v.split(":")[0] in excepted_orders]
    violations = [v for v in violations if v.split(":")[0] not in excepted_orders]
    doubled = {str(k): len(v) for k, v in logical.items() if len(v) > 1}
    doubled |= {f"resident told twice: {o}": len(v) for o, v in received_ids.items() if len(v) > 1}

    on_topic = {s.key for s in seen if s.topic == contract.HOTLINE_CALLS}
    lost: dict[str, list[str]] = {"order": [], "lead dispatch": [], "resident told": []}
    excepted: Counter[str] = Counter()
    latencies: list[float] = []
    for c in calls:
        order = f"WO-H-{c.call_id}"
        if order in dispatched:
            latencies.append(dispatched[order] / 1000 - c.sent)
        if c.excepted:
            excepted[c.excepted] += 1
            continue
        if order not in taken:
            lost["order"].append(c.call_id)
            continue
        if order not in dispatched:
            lost["lead dispatch"].append(c.call_id)
        if order not in told:
            lost["resident told"].append(c.call_id)
    repeats = sum(n - 1 for n in ids_seen.values() if n > 1)
    lost_ids = {call for calls_lost in lost.values() for call in calls_lost}
    extra = [o for o in taken if o.removeprefix("WO-H-") not in by_id]
    if extra:
        unexpected["orders for calls never sent"] += len(extra)
    return {
        "calls": len(calls),
        "excepted": dict(excepted),
        "lost": sum(len(v) for v in lost.values()),
        "lost_by_kind": {k: len(v) for k, v in lost.items()},
        "lost_examples": {k: v[:10] for k, v in lost.items() if v},
        # Calls acknowledged by the broker, then not on its topic when read: lost by the broker.
        "lost_calls_not_on_topic": sum(c not in on_topic for c in lost["order"]),
        "doubled": len(doubled),
        "doubled_examples": dict(list(doubled.items())[:10]),
        "same_id_repeats": repeats,
        "unexpected": dict(unexpected),
        "dead_letters": sum(dead.values()),
        "dead_letters_by_reason": dict(dead.most_common(10)),
        "order_violations": len(violations),
        "order_examples": violations[:10],
        "order_violations_of_excepted_calls": len(excepted_violations),
        "reminders_after_cancellation": stale_reminders,
        "cluster_notices": clusters,
        "call_to_dispatch_s": {
            "n": len(latencies),
            "p50": _percentile(latencies, 50),
            "p99": _percentile(latencies, 99),
            "max": _percentile(latencies, 100),
        },
        "records_read": len(seen),
        "lost_ids": lost_ids,  # for the run itself, not the report
    }


# ---- the run --------------------------------------------------------------------------------------


@dataclass
class Run:
    plan: Plan
    say: Say = print
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    calls: list[Call] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    recoveries: list[dict[str, Any]] = field(default_factory=list)
    broker_away: bool = False
    caller: AIOKafkaProducer | None = None  # the hotline's client; None while the broker is away
    unread: list[str] = field(default_factory=list)  # partitions the reader could not finish
    started: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.plan.seed)
        self.postgres = Postgres(self.plan.home / "pgdata", self.plan.postgres_port, CHAOS_POSTGRES)
        self.stack = Stack(
            home=self.plan.home, env=stack_env(self.plan), supervised=True, replicas=self.plan.replicas
        )
        self.settings = self.stack.settings
        self.taps: list[Tap] = []
        self.faults_done = asyncio.Event()

    # -- faults --

    async def _watch_recovery(self, part: str, killed: float, old_pid: int | None) -> None:
        async with httpx.AsyncClient(timeout=2) as http:
            deadline = killed + 180
            while time.time() < deadline:
                pid = self.stack.pid(part)
                if pid and pid != old_pid:
                    with contextlib.suppress(httpx.HTTPError):
                        if (
                            await http.get(f"http://127.0.0.1:{self.stack.port(part)}/readyz")
                        ).status_code == 200:
                            self.recoveries.append({"part": part, "seconds": round(time.time() - killed, 2)})
                            return
                await asyncio.sleep(0.1)  # polling readiness, under the deadline
        self.recoveries.append({"part": part, "seconds": None})

    async def _all_ready(self, since: float, what: str, old: dict[str, int | None] | None = None) -> None:
        """Every replica ready (and, given ``old`` pids, each a new process)."""
        parts = self.stack.parts()
        async with httpx.AsyncClient(timeout=2) as http:
            deadline = since + 240
            waiting = set(parts)
            while waiting and time.time() < deadline:
                for part in list(waiting):
                    if old and self.stack.pid(part) in (None, old.get(part)):
                        continue
                    with contextlib.suppress(httpx.HTTPError):
                        if (
                            await http.get(f"http://127.0.0.1:{self.stack.port(part)}/readyz")
                        ).status_code == 200:
                            waiting.discard(part)
                await asyncio.sleep(0.2)  # polling readiness, under the deadline
        seconds = round(time.time() - since, 2) if not waiting else None
        self.recoveries.append({"part": what, "seconds": seconds, "not_ready": sorted(waiting)})

    async def kill_one(self, watchers: list[asyncio.Task[None]]) -> None:
        part = self.rng.choice(self.stack.parts())
        pid = self.stack.pid(part)
        if not pid:
            return  # being restarted already
        at = time.time()
        await asyncio.to_thread(self.stack.kill, part)
        self.faults.append({"at": round(at - self.started, 1), "fault": "SIGKILL", "part": part})
        watchers.append(asyncio.create_task(self._watch_recovery(part, at, pid)))

    async def crash_postgres(self, watchers: list[asyncio.Task[None]]) -> None:
        at = time.time()
        await asyncio.to_thread(self.postgres.crash)
        self.faults.append({"at": round(at - self.started, 1), "fault": "postgres crash"})
        self.say("PostgreSQL crashed (pg_ctl stop -m immediate)")
        await asyncio.sleep(self.plan.down_seconds)  # the outage itself
        await asyncio.to_thread(self.postgres.start)
        await self._all_ready(time.time(), "every replica after postgres")  # before the next fault

    async def restart_broker(self, watchers: list[asyncio.Task[None]], simulator: Simulation) -> None:
        self.unread += await self.taps[-1].drain()  # what the broker holds, read before it forgets
        self.broker_away = True  # calls from now on are sent to a broker that will forget them
        # A call whose order, dispatch or notice the broker has not yet seen is in flight: what the
        # broker held of it is about to be forgotten, by definition of a broker that restarts empty.
        unfinished = verdict(self.calls, self._seen(), self.run)["lost_ids"]
        for call in self.calls:
            if call.call_id in unfinished and not call.excepted:
                call.excepted = "in flight when the broker forgot"
        await simulator.stop()
        at = time.time()
        await asyncio.to_thread(self.stack.kill, "broker")
        # The hotline's client is closed before the broker is back, and a new one sends the calls
        # after. One that lived through the restart sent its backlog beside the new calls, and
        # Tansu, given two writes of one partition at once, acknowledged records it never kept
        # (offsets written twice; "AlreadyExists" in its log).
        old, self.caller = self.caller, None
        if old is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(old.stop(), 30)  # its backlog fails: excepted already
        # As `make up` does before it starts a broker again: every service killed, so that none
        # commits offsets of the broker's past life into its new one.
        await asyncio.to_thread(self.stack.hold_services)
        await self.taps[-1].stop()
        self.faults.append({"at": round(at - self.started, 1), "fault": "broker restart"})
        self.say("broker killed; it comes back empty")
        await asyncio.sleep(self.plan.down_seconds)  # the outage itself
        # As `make up` after a broker restart: the broker, every topic, then every service again.
        await asyncio.to_thread(self.stack.start_broker)
        await asyncio.to_thread(self.stack.create_topics)
        self.caller = self._caller()
        await self.caller.start()
        self.broker_away = False
        back = time.time()
        old = {part: self.stack.pid(part) for part in self.stack.parts()}
        await asyncio.to_thread(self.stack.start_supervisor, restart=True)
        tap = Tap(self.settings, self.stack.topics(), epoch=1)
        await tap.start()
        self.taps.append(tap)
        await simulator.start()
        await self._all_ready(back, "every replica after the broker", old)  # before the next fault

    # -- load --

    def _caller(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            **client_options(self.settings),
            acks="all",
            linger_ms=5,
            enable_idempotence=False,
            request_timeout_ms=5000,
        )

    async def send_calls(self, stop_at: float) -> None:
        self.caller = self._caller()
        await self.caller.start()
        planned = make_calls(
            self.settings, self.run, int(self.plan.seconds * self.plan.rate * 3) + 1, self.plan.seed
        )
        pending: list[asyncio.Future[Any]] = []

        def refused(call: Call) -> Callable[[asyncio.Future[Any]], None]:
            def seen(done: asyncio.Future[Any]) -> None:
                if done.cancelled() or done.exception() is not None:
                    call.excepted = call.excepted or "not accepted by the broker"

            return seen

        try:
            next_at = time.monotonic()
            for call_id, value in planned:
                if time.monotonic() >= stop_at and self.faults_done.is_set():
                    break
                producer = self.caller
                away = "sent while the broker was away" if self.broker_away else None
                if producer is None:
                    away = "not sent: the broker was away"
                call = Call(call_id, time.time(), away)
                self.calls.append(call)
                if producer is not None:
                    try:
                        sent = await asyncio.wait_for(
                            producer.send(
                                contract.HOTLINE_CALLS, retimed(value), key=call_id.encode(), headers=HEADERS
                            ),
                            6,
                        )
                        sent.add_done_callback(refused(call))
                        pending.append(sent)
                    except Exception:
                        call.excepted = call.excepted or "not accepted by the broker"
                next_at += 1 / self.plan.rate
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))  # the call rate
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            if self.caller is not None:
                with contextlib.suppress(Exception):
                    await self.caller.stop()

    async def faults_loop(
        self, stop_at: float, watchers: list[asyncio.Task[None]], simulator: Simulation
    ) -> None:
        span = stop_at - time.monotonic()
        begin = time.monotonic()
        pending = []
        if self.plan.postgres_crash:
            pending.append((begin + 0.35 * span, "postgres"))
        if self.plan.broker_restart:
            pending.append((begin + 0.65 * span, "broker"))
        next_kill = begin + self.rng.uniform(*self.plan.kill_every)
        # Kills until the load's planned end; the crash and the restart whenever they are due,
        # even past it (a slow recovery before them must not leave one out). The load goes on
        # until they are done.
        while pending or time.monotonic() < stop_at - 3:
            now = time.monotonic()
            if pending and pending[0][0] <= now:
                _, what = pending.pop(0)
                if what == "postgres":
                    await self.crash_postgres(watchers)
                else:
                    await self.restart_broker(watchers, simulator)
                next_kill = time.monotonic() + self.rng.uniform(*self.plan.kill_every)
            elif now >= next_kill and now < stop_at - 3:
                await self.kill_one(watchers)
                next_kill = now + self.rng.uniform(*self.plan.kill_every)
            await asyncio.sleep(0.1)  # the fault schedule's resolution
        self.faults_done.set()

    async def settle(self) -> None:
        """Until every call held to "lost" is accounted for, or the plan's settle time is over."""
        deadline = time.monotonic() + self.plan.settle
        said = time.monotonic()
        while time.monotonic() < deadline:
            counts = verdict(self.calls, self._seen(), self.run)
            if counts["lost"] == 0:
                return
            if time.monotonic() - said > 15:
                self.say(f"still missing: {counts['lost_by_kind']}")
                said = time.monotonic()
            await asyncio.sleep(3)  # polling the reader's progress, under the deadline
        self.dump_tasks()

    def dump_tasks(self) -> None:
        """Calls still unaccounted for: every replica logs where its tasks wait (SIGUSR2), so that
        a stalled batch shows where it stalls."""
        for part in self.stack.known_parts():
            pid = self.stack.pid(part)
            if pid:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGUSR2)
        self.say(f"settle time over: where each replica's tasks wait is in {self.stack.home / 'logs'}")

    def _seen(self) -> list[Seen]:
        return [s for tap in self.taps for s in tap.seen]

    async def play(self) -> dict[str, Any]:
        tap = Tap(self.settings, self.stack.topics(), epoch=0)
        await tap.start()
        self.taps.append(tap)
        simulator = Simulation(self.settings)
        await simulator.start()
        watchers: list[asyncio.Task[None]] = []
        stop_at = time.monotonic() + self.plan.seconds
        self.say(f"{self.plan.seconds:.0f}s of calls at {self.plan.rate:g}/s, faults meanwhile ...")
        try:
            await asyncio.gather(self.send_calls(stop_at), self.faults_loop(stop_at, watchers, simulator))
            self.say(f"{len(self.calls)} calls sent; waiting for every one to be accounted for ...")
            await asyncio.gather(*watchers)
            await self.settle()
            # The final count reads the broker's last life afresh, from the beginning: a live
            # reader that joined just after the topics were recreated may have missed a partition.
            live = self.taps.pop()
            await live.stop()
            final = Tap(self.settings, self.stack.topics(), epoch=live.epoch)
            await final.start()
            self.taps.append(final)
            self.unread += await final.drain()
        finally:
            await simulator.stop()
            for t in self.taps:
                await t.stop()
        return verdict(self.calls, self._seen(), self.run)

    def fuzz(self) -> dict[str, Any]:
        """Bad messages on every topic the services consume, valid calls among them: each bad one
        dead-lettered naming its field, each valid call an order, no replica restarted by them."""
        from tools import fuzz

        self.say(f"{self.plan.fuzz_messages} fuzzed messages ...")
        ref = load_jurisdiction(self.settings.jurisdiction_file)
        restarts = self.stack.restarts()
        report = asyncio.run(
            fuzz.run(
                self.settings,
                self.plan.fuzz_messages,
                departments=tuple(d.code for d in ref.departments),
                places=tuple(c.name for _, _, c in ref.compounds),
                at_seed=self.plan.seed,
                within=900,
            )
        )
        crashed = sorted(part for part, n in self.stack.restarts().items() if n != restarts.get(part))
        self.say(report.line())
        return {
            "ok": report.ok and not crashed,
            "bad": report.bad,
            "absurd": report.absurd,
            "dead_lettered": report.dead_lettered,
            "valid": report.valid,
            "flowed": report.flowed,
            "missing": report.missing[:10],
            "unnamed": report.unnamed[:10],
            "stuck": report.stuck[:10],
            "restarted": crashed,
            "seconds": round(report.seconds, 1),
        }

    def execute(self) -> dict[str, Any]:
        began = time.time()
        self.say(
            f"a PostgreSQL of its own on {self.plan.postgres_port}, Tansu on {self.plan.broker_port}, "
            f"{self.plan.replicas} replicas of every service ..."
        )
        self.stack.down()
        self.postgres.create()
        self.postgres.start()
        try:
            # Ten processes starting cold on a busy machine take minutes: the faults begin once all
            # are ready.
            self.stack.up(timeout=600)
            self.say(f"stack up in {time.time() - began:.0f}s")
            self.started = time.time()
            counts = asyncio.run(self.play())
            counts.pop("lost_ids")
            # A run that has failed already is not fuzzed: twenty minutes more would not change it.
            failed = counts["lost"] or counts["doubled"] or counts["order_violations"]
            fuzzed = self.fuzz() if self.plan.fuzz_messages and not failed else None
            if failed and self.plan.fuzz_messages:
                self.say("not fuzzed: the faults' part failed already")
        finally:
            self.stack.down()
            self.postgres.stop()
        kills = [r["seconds"] for r in self.recoveries if not str(r["part"]).startswith("every")]
        return {
            "run": self.run,
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "plan": {
                "seconds": self.plan.seconds,
                "rate": self.plan.rate,
                "replicas": self.plan.replicas,
                "kill_every": list(self.plan.kill_every),
                "postgres_crash": self.plan.postgres_crash,
                "broker_restart": self.plan.broker_restart,
            },
            **counts,
            "faults": self.faults,
            "recovery_s": {
                "kills": len(kills),
                "p50": _percentile([k for k in kills if k is not None], 50),
                "max": _percentile([k for k in kills if k is not None], 100),
                "never": sum(k is None for k in kills),
                "each": self.recoveries,
            },
            "fuzz": fuzzed,
            "restarts": self.stack.restarts(),
            "reader": {"unread": self.unread, "errors": dict(sum((t.errors for t in self.taps), Counter()))},
            "seconds": round(time.time() - began, 1),
        }


class Simulation:
    """Departments and residents (``tools.simulate``), stopped and started again around the broker's
    restart: its consumer group is forgotten with everything else."""

    def __init__(self, settings: Settings) -> None:
        from tools.simulate import Simulator

        self.simulator = Simulator(settings)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.stop_event = asyncio.Event()
        self.task = asyncio.create_task(self.simulator.run(self.stop_event))

    async def stop(self) -> None:
        if self.task is not None:
            self.stop_event.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.task, 30)
            self.task = None


def passed(report: dict[str, Any]) -> bool:
    fuzzed = report.get("fuzz")
    return bool(
        report["lost"] == 0
        and report["doubled"] == 0
        and report["order_violations"] == 0
        and (fuzzed is None or fuzzed["ok"])
    )


def summary(report: dict[str, Any]) -> str:
    latency, recovery = report["call_to_dispatch_s"], report["recovery_s"]
    excepted = sum(report["excepted"].values())
    return (
        f"chaos {'PASSED' if passed(report) else 'FAILED'}: {report['calls']} calls ({excepted} excepted), "
        f"{len(report['faults'])} faults; lost {report['lost']}, doubled {report['doubled']}, "
        f"order violations {report['order_violations']}, same-id repeats {report['same_id_repeats']}, "
        f"dead letters {report['dead_letters']}, unexpected {sum(report['unexpected'].values())}; "
        f"recovery p50 {recovery['p50']}s max {recovery['max']}s; "
        f"call→dispatch p50 {latency['p50']}s p99 {latency['p99']}s"
        + (f"; fuzz {'ok' if fuzzed['ok'] else 'FAILED'}" if (fuzzed := report.get("fuzz")) else "")
    )


def write_report(report: dict[str, Any], folder: Path = REPORTS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    body = orjson.dumps(report, option=orjson.OPT_INDENT_2)
    path = folder / f"chaos-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_bytes(body)
    (folder / "chaos-latest.json").write_bytes(body)
    return path


def main(plan: Plan = FULL, folder: Path = REPORTS, say: Say = print) -> tuple[dict[str, Any], Path]:
    report = Run(plan, say).execute()
    return report, write_report(report, folder)
