"""`whistle trace WO-…`: an order's path across the services, from the topics: every event about it,
grouped by the trace its ``traceparent`` names, each trace drawn as a tree of the spans that
published them (a span's parent is in our ``tracestate`` entry, see ``shared.tracing``).

Reading a collector's spans is left out: no collector runs where this was written; with
``OTEL_EXPORTER_OTLP_ENDPOINT`` set, the trace ids printed here are the ones to look up in it."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import TopicPartition

from shared import tracing
from shared.messaging import make_consumer
from shared.settings import Settings

TOPICS = re.compile(r"^[a-z][a-z0-9_.]*\.v1$")


@dataclass(frozen=True, slots=True)
class Traced:
    """An event about the order, as a topic holds it."""

    topic: str
    type: str
    source: str
    time: str
    id: str
    trace: tracing.Trace | None  # None: it carries no traceparent (sent by an outside system)

    @property
    def service(self) -> str:
        return self.source.removeprefix("whistle/")


def about(order: str, key: str | None, event: dict[str, Any]) -> bool:
    """The order's events: keyed by it (or, before it existed, by its call or report), or naming it."""
    if key is not None and (key == order or f"WO-H-{key}" == order or f"WO-G-{key}" == order):
        return True
    data = event.get("data")
    if not isinstance(data, dict):
        return False
    ids = data.get("work_order_ids")
    return data.get("work_order_id") == order or (isinstance(ids, list) and order in ids)


def traced(topic: str, event: dict[str, Any]) -> Traced:
    trace = tracing.parse(event.get(tracing.TRACEPARENT))
    if trace is not None:
        trace = tracing.Trace(
            trace.trace_id, trace.span_id, trace.flags, tracing.parent_of(event.get(tracing.TRACESTATE))
        )
    return Traced(
        topic,
        str(event.get("type")),
        str(event.get("source")),
        str(event.get("time")),
        str(event.get("id")),
        trace,
    )


async def order_events(settings: Settings, order: str) -> list[Traced]:
    """Every event about the order on the project's topics, read from their beginning to where
    they end now."""
    call = order[5:].encode() if order.startswith(("WO-H-", "WO-G-")) else order.encode()
    reader = make_consumer(settings, None, enable_auto_commit=False)
    await reader.start()
    try:
        names = sorted(t for t in await reader.topics() if TOPICS.match(t))
        partitions = [
            TopicPartition(t, p) for t in names for p in sorted(reader.partitions_for_topic(t) or ())
        ]
        if not partitions:
            return []
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        ends = await reader.end_offsets(partitions)
        todo = {tp for tp in partitions if ends[tp] > await reader.position(tp)}
        found: list[Traced] = []
        while todo:
            batches = await reader.getmany(*todo, timeout_ms=500, max_records=5000)
            for tp, records in batches.items():
                for r in records:
                    if r.offset + 1 >= ends[tp]:
                        todo.discard(tp)
                    value = r.value or b""
                    if call not in value and (r.key or b"") != call:  # cheap: most records are not about it
                        continue
                    try:
                        event = orjson.loads(value)
                    except orjson.JSONDecodeError:
                        continue
                    key = r.key.decode("utf-8", "replace") if r.key else None
                    if isinstance(event, dict) and about(order, key, event):
                        found.append(traced(r.topic, event))
        return sorted(found, key=lambda e: e.time)
    finally:
        await reader.stop()


def render(events: Iterable[Traced]) -> list[str]:
    """The events as trees, one per trace (the one with the earliest event first): under each span,
    the events it published, then the spans that came from it."""
    by_trace: dict[str, list[Traced]] = defaultdict(list)
    untraced: list[Traced] = []
    for e in events:
        (by_trace[e.trace.trace_id] if e.trace else untraced).append(e)
    lines: list[str] = []
    for trace_id, members in sorted(by_trace.items(), key=lambda kv: min(e.time for e in kv[1])):
        lines.append(f"trace {trace_id}")
        spans: dict[str, list[Traced]] = defaultdict(list)
        for e in members:
            assert e.trace is not None
            spans[e.trace.span_id].append(e)
        children: dict[str | None, list[str]] = defaultdict(list)
        for span_id, published in spans.items():
            parent = published[0].trace.parent if published[0].trace else None
            children[parent if parent in spans else None].append(span_id)

        for top in sorted(children[None], key=lambda s: spans[s][0].time):
            _draw(top, "  ", spans, children, lines)
    if untraced:
        lines.append("without a traceparent (sent by a system outside the project)")
        lines.extend(f"  · {e.time}  {e.topic}  {e.type}  from {e.source}  id {e.id}" for e in untraced)
    return lines


def _draw(
    span_id: str,
    indent: str,
    spans: dict[str, list[Traced]],
    children: dict[str | None, list[str]],
    lines: list[str],
) -> None:
    """A span: its service, its id and where it came from; the events it published; its children."""
    published = spans[span_id]
    first = published[0]
    parent = first.trace.parent if first.trace else None
    if parent is None:
        origin = "started the trace"
    elif parent in spans:
        origin = f"parent {parent}"
    else:
        origin = f"parent {parent}, not on the topics"
    lines.append(f"{indent}{first.service}  span {span_id}  ({origin})")
    lines.extend(f"{indent}  · {e.time}  {e.topic}  {e.type}  id {e.id}" for e in published)
    for child in sorted(children[span_id], key=lambda s: spans[s][0].time):
        _draw(child, indent + "    ", spans, children, lines)
