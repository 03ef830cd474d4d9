"""Exporting spans: intake's batch consumer against the real PostgreSQL with an in-memory exporter
installed as OTLP's would be. A batch is a span linked to its messages; each message a span, the
child of the span it came from (or a new trace's root); its events carry that span; the batch's
queries are asyncpg spans under it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.handlers import routes
from services.intake.store import Inbox, Outbox
from services.intake.unit import IntakeUnit
from shared import contract, tracing
from shared.messaging import HEADERS, BatchConsumer
from shared.reference import DEFAULT_JURISDICTION, load_jurisdiction
from shared.settings import Settings
from tests.integration.databases import fresh_database
from tests.integration.flows import call, uid

pytestmark = pytest.mark.integration
REF = load_jurisdiction(DEFAULT_JURISDICTION)
CAME_FROM = tracing.Trace("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")


@pytest.fixture
async def engine() -> AsyncIterator[AsyncEngine]:
    async with fresh_database("whistle_test_spans") as engine:
        yield engine


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.shutdown()


def record(offset: int, key: str, event: dict[str, Any]) -> ConsumerRecord[Any, Any]:
    value = orjson.dumps(event)
    return ConsumerRecord(
        contract.HOTLINE_CALLS, 0, offset, 0, 0, key.encode(), value, None, len(key), len(value), HEADERS
    )


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    assert span.context is not None
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


async def test_a_batch_and_its_messages_are_exported_as_spans(
    engine: AsyncEngine, exported: InMemorySpanExporter
) -> None:
    traced_call, fresh_call = uid(), uid()
    traced = call(traced_call, "海景苑", "楼道灯坏了一个星期了") | {"traceparent": CAME_FROM.traceparent}
    fresh = call(fresh_call, "蓝海公馆", "小区门口垃圾没人清")
    unit = IntakeUnit(REF, Settings())
    consumer = BatchConsumer(
        service="intake",
        engine=engine,
        inbox=Inbox.__table__,  # type: ignore[arg-type]
        outbox=Outbox.__table__,  # type: ignore[arg-type]
        routes=routes(unit),
        strict_topics=[contract.HOTLINE_CALLS, contract.GRID_REPORTS],
        unit=unit,
        prepare_messages=unit.prepare,
        write_behind=True,
    )
    await consumer.apply(
        await consumer.prepare([record(0, traced_call, traced), record(1, fresh_call, fresh)])
    )

    spans = exported.get_finished_spans()
    consumed = [s for s in spans if s.kind == SpanKind.CONSUMER]
    [batch] = [s for s in consumed if "messaging.batch.message_count" in (s.attributes or {})]
    messages = {(s.attributes or {}).get("messaging.message.id"): s for s in consumed if s is not batch}
    assert batch.name == f"process {contract.HOTLINE_CALLS}" and batch.parent is None
    assert [hex_ids(link) for link in batch.links] == [(CAME_FROM.trace_id, CAME_FROM.span_id)]  # type: ignore[arg-type]

    # The traced call's span continues its trace; the other starts one. Both link to the batch.
    on_traced, on_fresh = messages[traced["id"]], messages[fresh["id"]]
    assert on_traced.parent is not None and on_traced.parent.is_remote
    assert (f"{on_traced.parent.trace_id:032x}", f"{on_traced.parent.span_id:016x}") == (
        CAME_FROM.trace_id,
        CAME_FROM.span_id,
    )
    assert hex_ids(on_traced)[0] == CAME_FROM.trace_id
    assert on_fresh.parent is None and hex_ids(on_fresh)[0] != CAME_FROM.trace_id
    for s in (on_traced, on_fresh):
        assert [hex_ids(link) for link in s.links] == [hex_ids(batch)]  # type: ignore[arg-type]

    # What each message published carries its span, and the span it came from.
    async with engine.connect() as conn:
        events = [orjson.loads(p) for p in (await conn.execute(text("SELECT payload FROM outbox"))).scalars()]
    for event in events:
        assert event["subject"] in (f"WO-H-{traced_call}", f"WO-H-{fresh_call}"), event["type"]
        on = on_traced if event["subject"] == f"WO-H-{traced_call}" else on_fresh
        trace_id, span_id = hex_ids(on)
        assert on.context is not None
        flags = int(on.context.trace_flags)  # sampled, and the SDK's trace ids random (W3C level 2)
        assert event["traceparent"] == f"00-{trace_id}-{span_id}-{flags:02x}" and flags & 1
        assert event.get("tracestate") == (f"whistle={CAME_FROM.span_id}" if on is on_traced else None)
    assert {e["type"] for e in events} >= {"workorder.created", "intake.order.opened"}

    # The batch's queries, by the asyncpg instrumentation, are the batch span's children.
    queries = [s for s in spans if (s.attributes or {}).get("db.system") == "postgresql"]
    assert queries, sorted({s.name for s in spans})
    assert batch.context is not None
    assert {q.parent.span_id for q in queries if q.parent} == {batch.context.span_id}
