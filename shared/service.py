"""Assembles a service: settings, broker, the batch subscriber, the relay, background tasks and the
HTTP endpoints (/metrics, /healthz, /readyz). Every service reads the same way because this is the
one place that wires them."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import metrics
from shared.db import create_engine, migrate
from shared.logs import configure_logging, get_logger
from shared.messaging import BatchConsumer, BatchPipeline, BatchUnit, Decoded, OutboxRelay, Route, make_broker
from shared.settings import Settings
from shared.topics import ensure_topics, existing_topics

log = get_logger(__name__)
Task = Callable[["Service"], Coroutine[Any, Any, None]]


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
    unit: BatchUnit | None = None,
    prepare_message: Callable[[Decoded], Any] | None = None,
    write_behind: bool = False,
) -> tuple[AsgiFastStream, Service]:
    configure_logging(name, settings.log_level)
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
        prepare_message=prepare_message,
        write_behind=write_behind,
    )
    pipeline = BatchPipeline(consumer)
    svc = Service(name, settings, engine, consumer, relay, sorted(set(publishes)), list(tasks))

    @broker.subscriber(
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
    async def on_batch(_: list[bytes], message: KafkaMessage) -> None:
        records = message.raw_message
        await pipeline.take(records if isinstance(records, tuple) else (records,), message.consumer)  # type: ignore[arg-type]

    async def prepare() -> None:
        await migrate(name, url)
        await ensure_topics(settings, [*consumer.topics, *svc.publishes])
        await relay.start()

    async def start_tasks() -> None:
        # What start-up loaded (reference data, modules, clients) lives as long as the process:
        # frozen out of the cyclic collector's sight, a full collection no longer walks it all
        # again while batches allocate (it took a fifth of intake's time with a large jurisdiction).
        gc.freeze()
        # A batch allocates and frees hundreds of thousands of objects, nearly all freed by their
        # reference counts: collect the young generation every 50,000 allocations, not every 700.
        gc.set_threshold(50_000, 20, 20)
        svc.running.append(asyncio.create_task(relay.run(), name=f"{name}-relay"))
        svc.running.append(asyncio.create_task(_watch_topics(svc), name=f"{name}-watchdog"))
        for task in svc.tasks:
            svc.running.append(asyncio.create_task(task(svc), name=f"{name}-{task.__name__}"))
        log.info("service started", topics=consumer.topics)

    async def stop_tasks() -> None:
        await pipeline.close()  # the batch in its transaction commits, or fails and comes again
        for task in svc.running:
            task.cancel()
        await asyncio.gather(*svc.running, return_exceptions=True)
        await relay.stop()
        await engine.dispose()

    @get
    async def metrics_endpoint(scope: Any) -> AsgiResponse:
        # ?name[]=...: only those series, as Prometheus' own exposition allows; a full scrape
        # costs a busy service milliseconds, and a watcher polling one counter needs no more.
        names = parse_qs(scope.get("query_string", b"").decode()).get("name[]")
        registry = metrics.REGISTRY.restricted_registry(names) if names else metrics.REGISTRY
        return AsgiResponse(generate_latest(registry), 200, headers={"content-type": CONTENT_TYPE_LATEST})

    @get
    async def healthz(scope: Any) -> AsgiResponse:
        return AsgiResponse(b'{"status": "ok"}', 200, headers={"content-type": "application/json"})

    @get
    async def readyz(scope: Any) -> AsgiResponse:
        problems = await _readiness_problems(svc, broker)
        if problems:
            body = ('{"status": "unready", "problems": ["' + '", "'.join(problems) + '"]}').encode()
            return AsgiResponse(body, 503, headers={"content-type": "application/json"})
        return AsgiResponse(b'{"status": "ready"}', 200, headers={"content-type": "application/json"})

    app = AsgiFastStream(
        broker,
        asgi_routes=[("/metrics", metrics_endpoint), ("/healthz", healthz), ("/readyz", readyz)],
        on_startup=[prepare],
        after_startup=[start_tasks],
        on_shutdown=[stop_tasks],
    )
    return app, svc


async def _readiness_problems(svc: Service, broker: Any) -> list[str]:
    problems = []
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
    if svc.stuck:
        problems.append(svc.stuck)
    return problems


async def _watch_topics(svc: Service) -> None:
    """A broker that lost its topics (an in-memory broker restarted) leaves group consumers looping
    forever. Notice it, report unready, and exit so that a supervisor starts us afresh."""
    while True:
        await asyncio.sleep(10)
        try:
            have = await existing_topics(svc.settings)
        except Exception:
            continue  # unreachable is reported by /readyz; only a broker that answers can be wrong
        missing = sorted(set(svc.consumer.topics) - have)
        if missing:
            svc.stuck = f"subscribed topics vanished from the broker: {missing}"
            log.error("stuck: exiting so that a supervisor restarts the service", missing=missing)
            os.kill(os.getpid(), signal.SIGTERM)
            return


def run(app: AsgiFastStream, service: str, settings: Settings) -> None:
    """Serve the app (broker and HTTP endpoints) until SIGINT/SIGTERM."""
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.port_for(service),
        log_config=None,
        access_log=False,
        lifespan="on",
        # uvloop: the event loop runs every socket read and write to the broker and the database;
        # with uvloop's, intake took about a seventh less CPU per call.
        loop="uvloop",
    )


def main(service: str, create_app: Callable[[Settings], tuple[AsgiFastStream, Service]]) -> None:
    """The body of every ``python -m services.<name>``."""
    from shared.settings import get_settings

    settings = get_settings()
    app, _ = create_app(settings)
    run(app, service, settings)
