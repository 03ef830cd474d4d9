"""Assembles a service: settings, broker, the batch subscriber, the relay, background tasks and the
HTTP endpoints (/metrics, /healthz, /readyz), and, for a service with an HTTP API of its own, the
app that serves both (``with_http``). Every service reads the same way because this is the one
place that wires them."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs

import orjson
import uvicorn
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.types import ASGIApp, Receive, Scope, Send
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import housekeeping, metrics, tracing
from shared.db import create_engine, migrate
from shared.logs import configure_logging, get_logger
from shared.messaging import (
    BatchConsumer,
    BatchPipeline,
    BatchUnit,
    Decoded,
    OutboxRelay,
    Route,
    make_broker,
    prompt_batches,
)
from shared.settings import Settings
from shared.topics import ensure_topics

log = get_logger(__name__)
Task = Callable[["Service"], Coroutine[Any, Any, None]]


class Lifespan(Protocol):
    """A part of a service started with it and stopped with it."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Service:
    name: str
    settings: Settings
    engine: AsyncEngine
    consumer: BatchConsumer
    relay: OutboxRelay
    publishes: list[str]
    tasks: list[Task]
    running: list[asyncio.Task[None]] = field(default_factory=list)
    stuck: str | None = None
    # Why it takes no work, while it takes none: set until start_tasks (its subscriber in its
    # group, its tasks running) and again by stop_tasks.
    idle_because: str | None = "starting: the consumer joining its group"


async def _parse_batch(records: tuple[Any, ...], original: Callable[[Any], Awaitable[Any]]) -> Any:
    """faststream reads every header of a batch as UTF-8 text. A record with a header it cannot
    read (not UTF-8, or without a value), from an outside producer, failed the whole batch before
    our handler saw it, and the batch was passed over. Such headers are left out: we read none but
    ce_type, a hint; the message itself is judged by its body."""
    try:
        return await original(records)
    except (UnicodeDecodeError, AttributeError):
        return await original(
            tuple(dataclasses.replace(r, headers=[(k, v) for k, v in r.headers if _text(v)]) for r in records)
        )


def _text(value: Any) -> bool:
    try:
        value.decode()
    except (AttributeError, UnicodeDecodeError):
        return False
    return True


def _raw_batch(msg: Any) -> list[bytes]:
    # We decode each record ourselves, so that one malformed record cannot fail the batch.
    return [r.value for r in msg.raw_message]


def build_service(
    name: str,
    settings: Settings,
    *,
    inbox: Table,
    outbox: Table,
    routes: Iterable[Route],
    strict_topics: Iterable[str],
    publishes: Iterable[str],
    tasks: Iterable[Task] = (),
    unit: BatchUnit[Any] | None = None,
    prepare_messages: Callable[[list[Decoded]], Awaitable[Sequence[Any]]] | None = None,
    write_behind: bool = False,
    lifespan: Iterable[Lifespan] = (),
    remember_traces: bool = False,
    prunable: Iterable[housekeeping.Prunable] = (),
) -> tuple[AsgiFastStream, Service]:
    """``remember_traces``: the service's timers publish on behalf of orders, in the trace of the
    first event it handled for each (``shared.tracing.TraceMemory``). ``prunable``: what the
    housekeeping task prunes beside the inbox (``shared.housekeeping``). ``lifespan``: what the
    service starts before its first batch and stops after its last (intake's tagger processes)."""
    lifespan = list(lifespan)
    configure_logging(name, settings.log_level)
    tracing.configure(name)  # spans exported only with OTEL_EXPORTER_OTLP_ENDPOINT; ids always
    if remember_traces:
        tracing.remember_traces()
    url = settings.database_url_for(name)
    engine = create_engine(url, settings.db_pool_size)
    broker = make_broker(settings, name)
    broker.add_middleware(KafkaPrometheusMiddleware(registry=metrics.REGISTRY, app_name=f"whistle-{name}"))
    relay = OutboxRelay(
        service=name,
        engine=engine,
        outbox=outbox,
        settings=settings,
    )
    consumer = BatchConsumer(
        service=name,
        engine=engine,
        inbox=inbox,
        outbox=outbox,
        routes=routes,
        strict_topics=strict_topics,
        after_commit=relay.notify,
        unit=unit,
        prepare_messages=prepare_messages,
        write_behind=write_behind,
    )
    pipeline = BatchPipeline(consumer)
    pruned = [housekeeping.inbox(inbox), *prunable]

    async def prune(svc: Service) -> None:
        await housekeeping.prune_forever(
            name,
            engine,
            pruned,
            after_days=settings.prune_after_days,
            interval=settings.prune_interval_seconds,
            batch=settings.prune_batch_rows,
        )

    svc = Service(name, settings, engine, consumer, relay, sorted(set(publishes)), [*tasks, prune])

    subscriber = broker.subscriber(
        *consumer.topics,
        batch=True,
        group_id=f"whistle-{name}",
        ack_policy=AckPolicy.MANUAL,  # the pipeline commits each batch's offsets after its transaction
        auto_offset_reset="earliest",
        max_records=settings.batch_max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        parser=_parse_batch,
        decoder=_raw_batch,
    )

    @prompt_batches(subscriber)
    async def on_batch(_: list[bytes], message: KafkaMessage) -> None:
        records = message.raw_message
        await pipeline.take(records if isinstance(records, tuple) else (records,), message.consumer)  # type: ignore[arg-type]

    async def prepare() -> None:
        if settings.migrate_on_start:
            await migrate(name, url)
        await ensure_topics(settings, [*consumer.topics, *svc.publishes])
        for part in lifespan:
            await part.start()
        await relay.start()

    async def start_tasks() -> None:
        # What start-up loaded (reference data, modules, clients) lives as long as the process:
        # frozen out of the cyclic collector's sight, a full collection no longer walks it all
        # again while batches allocate (it took a fifth of intake's time with a large jurisdiction).
        gc.freeze()
        # A batch allocates and frees hundreds of thousands of objects, nearly all freed by their
        # reference counts: collect the young generation every 50,000 allocations, not every 700.
        gc.set_threshold(50_000, 20, 20)
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, _log_tasks)
        svc.running.append(asyncio.create_task(relay.run(), name=f"{name}-relay"))
        svc.running.append(asyncio.create_task(_watch_topics(svc), name=f"{name}-watchdog"))
        for task in svc.tasks:
            svc.running.append(asyncio.create_task(task(svc), name=f"{name}-{task.__name__}"))
        svc.idle_because = None
        log.info("service started", topics=consumer.topics)

    async def stop_tasks() -> None:
        svc.idle_because = "stopping: the batch in flight finishing"
        await pipeline.close()  # the batch in its transaction commits, or fails and comes again
        for task in svc.running:
            task.cancel()
        await asyncio.gather(*svc.running, return_exceptions=True)
        await relay.stop()
        for part in lifespan:
            await part.stop()
        await engine.dispose()
        tracing.shutdown()  # the spans still buffered, exported

    @get
    async def metrics_endpoint(scope: Any) -> AsgiResponse:
        # ?name[]=...: only those series, as Prometheus' own exposition allows; a full scrape
        # costs a busy service milliseconds, and a watcher polling one counter needs no more.
        names = parse_qs(scope.get("query_string", b"").decode()).get("name[]")
        registry = metrics.REGISTRY.restricted_registry(names) if names else metrics.REGISTRY
        return AsgiResponse(generate_latest(registry), 200, headers={"content-type": CONTENT_TYPE_LATEST})

    @get
    async def healthz(scope: Any) -> AsgiResponse:
        return _json({"status": "ok"}, 200)

    @get
    async def readyz(scope: Any) -> AsgiResponse:
        problems = await _readiness_problems(svc, broker)
        if problems:
            return _json({"status": "unready", "problems": problems}, 503)
        return _json({"status": "ready"}, 200)

    app = AsgiFastStream(
        broker,
        asgi_routes=[("/metrics", metrics_endpoint), ("/healthz", healthz), ("/readyz", readyz)],
        on_startup=[prepare],
        after_startup=[start_tasks],
        on_shutdown=[stop_tasks],
    )
    return app, svc


def _log_tasks() -> None:
    """SIGUSR2: where every task of the process waits, one log line each (file, line, function;
    never a value). For a service that stalls with nothing to show for it: a transaction left
    idle, a batch that does not move."""
    for task in asyncio.all_tasks():
        log.warning("task", name=task.get_name(), waits_in=" -> ".join(_awaiting(task.get_coro())))


def _awaiting(coro: Any) -> list[str]:
    """The chain of awaits a coroutine is suspended in, outermost first."""
    where: list[str] = []
    while coro is not None and len(where) < 40:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            where.append(type(coro).__name__)
            break
        where.append(f"{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return where


def _json(body: dict[str, Any], status: int) -> AsgiResponse:
    return AsgiResponse(orjson.dumps(body), status, headers={"content-type": "application/json"})


async def _readiness_problems(svc: Service, broker: Any) -> list[str]:
    # Ready is taking work: a restarted consumer waits seconds for its group (an old member's
    # session to lapse), and its background tasks start only once it has joined.
    problems = [svc.idle_because] if svc.idle_because else []
    try:
        async with asyncio.timeout(2):
            async with svc.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception:
        problems.append("database unreachable")
    if not await broker.ping(timeout=2):
        problems.append("broker unreachable")
    if not svc.relay.healthy:
        problems.append("outbox relay failing")
    if svc.relay.held:
        problems.append(
            f"outbox relay holding events for topics the broker does not list: {sorted(svc.relay.held)}"
        )
    if svc.stuck:
        problems.append(svc.stuck)
    return problems


WATCH_EVERY = 1.0  # seconds between two looks at the broker's topics


async def _watch_topics(svc: Service, every: float = WATCH_EVERY) -> None:
    """A broker that lost its topics (an in-memory broker restarted) leaves group consumers looping
    forever. Notice it within a second, report unready, and exit so that a supervisor starts us
    afresh (start-up creates the topics). One metadata request a look, on the relay's connection."""
    while True:
        await asyncio.sleep(every)
        try:
            async with asyncio.timeout(5):
                have = await svc.relay.broker_topics()
        except Exception:
            # Unready in /readyz; the gauge lets an alert say why while no batch arrives.
            metrics.BROKER_REACHABLE.labels(svc.name).set(0)
            continue  # only a broker that answers can be wrong about the topics
        metrics.BROKER_REACHABLE.labels(svc.name).set(1)
        missing = sorted(set(svc.consumer.topics) - have)
        if missing:
            svc.stuck = f"subscribed topics vanished from the broker: {missing}"
            log.error("stuck: exiting so that a supervisor restarts the service", missing=missing)
            os.kill(os.getpid(), signal.SIGTERM)
            return


class WithHttp:
    """A service's app with an HTTP API of its own (``http``, e.g. FastAPI). Lifespan events and the
    kit's exact paths (/metrics, /healthz, /readyz) go to the faststream app, which starts and stops
    the service; every other HTTP request goes to ``http``. ``http``'s own lifespan is not run:
    what it needs (engine, relay, settings) lives in the Service, which the faststream app starts,
    and uvicorn serves no request before that start-up has completed."""

    def __init__(self, app: AsgiFastStream, http: ASGIApp) -> None:
        self.app, self.http = app, http
        self.own = frozenset(path for path, _ in app.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self.own:
            # What the request publishes continues its traceparent header's trace, or starts one.
            with tracing.http_request(scope["headers"], scope["method"], scope["path"]):
                await self.http(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def with_http(app: AsgiFastStream, http: ASGIApp) -> ASGIApp:
    """``app`` (from ``build_service``) serving ``http`` beside its own endpoints; see ``WithHttp``."""
    return WithHttp(app, http)


def run(app: ASGIApp, service: str, settings: Settings) -> None:
    """Serve the app (broker and HTTP endpoints) until SIGINT/SIGTERM."""
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.port_for(service),
        log_config=None,
        access_log=False,
        lifespan="on",
        # uvloop: the event loop runs every socket read and write to the broker and the database,
        # and uvloop's costs less CPU per call (docs/performance.md).
        loop="uvloop",
    )


def main(service: str, create_app: Callable[[Settings], tuple[ASGIApp, Service]]) -> None:
    """The body of every ``python -m services.<name>``."""
    from shared.settings import get_settings

    settings = get_settings()
    app, _ = create_app(settings)
    run(app, service, settings)
