"""Traces: the W3C trace context on every event we publish, as the CloudEvents distributed-tracing
extension (``traceparent``, ``tracestate``), so that one call's path through the services is one
trace; spans exported over OTLP only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

Propagation always happens, export only when configured:
- not exporting (the default), a handled message is a span only by its id: a random span id,
  the message's trace id (a message without one starts a trace), and the span it came from in
  ``tracestate`` (``whistle=<parent span id>``), so that the path can be drawn from the topics
  alone (``whistle trace``). No SDK object is made per message;
- exporting, each batch is a span linked to its messages, each message a span whose parent is the
  message's own context, and the events a message causes carry that span's context; asyncpg and
  httpx are instrumented.

Where a trace comes from when no message is being handled: an HTTP request to the api (its
``traceparent`` header, or a new trace), and the timers (escalation's clocks, notify's sender),
which publish on behalf of an order: they continue the trace of the first event their process
handled for that order, remembered in a bounded memory (``TraceMemory``); an order it no longer
remembers (a restart, another replica) starts a trace of its own.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import random
import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the SDK is imported only when exporting
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
STATE_KEY = "whistle"  # our entry in tracestate: the span the carrying span came from
# New traces are flagged sampled: a downstream service that exports records them.
SAMPLED = "01"
_VALID = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
_bits = random.getrandbits  # what the SDK's own RandomIdGenerator draws from


def new_span_id() -> str:
    return f"{_bits(64) or 1:016x}"


def new_trace_id() -> str:
    return f"{_bits(128) or 1:032x}"


# Not frozen: one is made per handled message, and a frozen one costs several times to make.
@dataclass(slots=True)
class Trace:
    """A span's context as an event carries it: the span that published the event (``span_id``)
    and the span that one came from (``parent``, None at a trace's root)."""

    trace_id: str
    span_id: str
    flags: str = SAMPLED
    parent: str | None = None

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    @property
    def tracestate(self) -> str | None:
        return f"{STATE_KEY}={self.parent}" if self.parent else None

    def child(self) -> Trace:
        """A span of this one's trace, started by it."""
        return Trace(self.trace_id, new_span_id(), self.flags, self.span_id)


def parse(traceparent: Any) -> Trace | None:
    """A ``traceparent`` as W3C defines it (version 00, or a later one read as 00), or None for
    anything else: an invalid one starts a new trace, as the recommendation says."""
    if not isinstance(traceparent, str) or len(traceparent) < 55:
        return None
    match = _VALID.fullmatch(traceparent, 0, 55)
    if match is None or traceparent.startswith("ff"):
        return None
    if len(traceparent) > 55 and (traceparent.startswith("00") or traceparent[55] != "-"):
        return None  # version 00 is exactly 55 characters; a later one may add fields after a dash
    trace_id, span_id, flags = match.groups()
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return Trace(trace_id, span_id, flags)


def parent_of(tracestate: Any) -> str | None:
    """The span a span came from, as our ``tracestate`` entry names it."""
    if not isinstance(tracestate, str):
        return None
    for entry in tracestate.split(","):
        name, _, value = entry.strip().partition("=")
        if name == STATE_KEY and len(value) == 16:
            return value
    return None


def root() -> Trace:
    """A new trace, for a cause that carried none: its ids drawn at once (intake starts one per call)."""
    ids = f"{_bits(192):048x}"
    trace_id, span_id = ids[:32], ids[32:]
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:  # W3C forbids them; about never drawn
        return Trace(new_trace_id(), new_span_id())
    return Trace(trace_id, span_id)


def handling(extensions: Mapping[str, Any] | None) -> Trace:
    """The span of handling a message, from the message's extension attributes, when not
    exporting: a child of the message's span, or the root of a new trace."""
    parent = parse(extensions.get(TRACEPARENT)) if extensions else None
    return parent.child() if parent is not None else root()


# ---- when no message is being handled -----------------------------------------------------------

# The trace of what the current task does outside a handler: an HTTP request to the api.
CURRENT: contextvars.ContextVar[Trace | None] = contextvars.ContextVar("whistle_trace", default=None)


class TraceMemory:
    """The trace of the first event a process handled for each order, for its timers: they
    publish on behalf of an order long after, and store no trace of their own (that would take a
    column, a migration, in each service's tables). Bounded: the oldest orders are forgotten first."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self._traces: OrderedDict[str, Trace] = OrderedDict()

    def note(self, order: str | None, trace: Trace) -> None:
        if order and order not in self._traces:
            self._traces[order] = trace
            if len(self._traces) > self.size:
                self._traces.popitem(last=False)

    def __contains__(self, order: object) -> bool:
        return order in self._traces

    def recall(self, order: str | None) -> Trace | None:
        return self._traces.get(order) if order else None


# Set in the services whose timers publish (escalation, notify); see build_service.
MEMORY: TraceMemory | None = None


def remember_traces(size: int = 100_000) -> TraceMemory:
    global MEMORY
    if MEMORY is None:
        MEMORY = TraceMemory(size)
    return MEMORY


def order_of(key: str | None, data: Any) -> str | None:
    """The order an event is about: its data's ``work_order_id``, else its key (an alert's key is
    its area)."""
    order = data.get("work_order_id") if isinstance(data, dict) else getattr(data, "work_order_id", None)
    return order if isinstance(order, str) else key


def publishing(topic: str, order: str | None) -> Trace:
    """The trace an event built outside a handler carries: the current HTTP request's, else the
    one remembered for its order (continued by a span of its own), else a new one."""
    current = CURRENT.get()
    if current is not None:
        return current
    remembered = MEMORY.recall(order) if MEMORY is not None else None
    if TRACER is None:
        return remembered.child() if remembered is not None else root()
    with span(f"create {topic}", kind="producer", parent=remembered) as created:
        return created


# ---- export -------------------------------------------------------------------------------------

TRACER: Tracer | None = None  # set when exporting
_PROVIDER: TracerProvider | None = None


def exporting_configured(environ: Mapping[str, str] = os.environ) -> bool:
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure(service: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Export spans over OTLP (HTTP/protobuf) when an endpoint is configured; otherwise nothing
    (ids are still propagated). Returns whether spans are exported."""
    if not exporting_configured(environ):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES and the exporter's OTEL_* settings are read by the SDK.
    provider = TracerProvider(resource=Resource.create({"service.name": f"whistle-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install(provider)
    return True


def install(provider: TracerProvider) -> None:
    """Export through ``provider`` (``configure``'s, or a test's with an in-memory exporter), and
    instrument asyncpg and httpx."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    global TRACER, _PROVIDER
    _PROVIDER = provider
    TRACER = provider.get_tracer("whistle")
    AsyncPGInstrumentor().instrument(  # type: ignore[no-untyped-call]
        tracer_provider=provider
    )
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)


def shutdown() -> None:
    """Flush what is left to export, and stop exporting."""
    global TRACER, _PROVIDER
    if _PROVIDER is None:
        return
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
    HTTPXClientInstrumentor().uninstrument()
    _PROVIDER.shutdown()
    TRACER, _PROVIDER = None, None


def _otel_parent(trace: Trace | None) -> Any:
    from opentelemetry import trace as otel
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

    if trace is None:
        return otel.set_span_in_context(otel.INVALID_SPAN)  # a root: not the span current now
    state = TraceState([(STATE_KEY, trace.parent)]) if trace.parent else TraceState()
    context = SpanContext(
        int(trace.trace_id, 16), int(trace.span_id, 16), True, TraceFlags(int(trace.flags, 16)), state
    )
    return otel.set_span_in_context(NonRecordingSpan(context))


def carried(s: Span, parent: Trace | None) -> Trace:
    """What an event published under span ``s`` carries; ``parent`` is the span it came from."""
    c = s.get_span_context()
    return Trace(
        f"{c.trace_id:032x}",
        f"{c.span_id:016x}",
        f"{int(c.trace_flags):02x}",
        parent.span_id if parent else None,
    )


@contextlib.contextmanager
def span(
    name: str,
    *,
    kind: str = "internal",
    parent: Trace | None = None,
    links: Sequence[Trace] = (),
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Trace]:
    """An exported span, current while the block runs; yields what the events it publishes carry.
    Exporting only (``TRACER`` set)."""
    from opentelemetry.trace import Link, SpanKind

    assert TRACER is not None
    otel_links = [Link(_span_context(t)) for t in links]
    with TRACER.start_as_current_span(
        name,
        context=_otel_parent(parent),
        kind=SpanKind[kind.upper()],
        links=otel_links,
        attributes=dict(attributes or {}),
    ) as s:
        yield carried(s, parent)


def _span_context(trace: Trace) -> Any:
    from opentelemetry.trace import SpanContext, TraceFlags

    return SpanContext(
        int(trace.trace_id, 16), int(trace.span_id, 16), True, TraceFlags(int(trace.flags, 16))
    )


@contextlib.contextmanager
def http_request(headers: Sequence[tuple[bytes, bytes]], method: str, path: str) -> Iterator[None]:
    """An HTTP request to the api: what it publishes carries the request's ``traceparent`` header's
    trace (a child span), or a new trace."""
    incoming = None
    for name, value in headers:
        if name == b"traceparent":
            incoming = parse(value.decode("latin-1"))
            break
    if TRACER is None:
        token = CURRENT.set(incoming.child() if incoming is not None else root())
        try:
            yield
        finally:
            CURRENT.reset(token)
        return
    # Named by the method alone: the path holds ids, and the route is known only to the app.
    attributes = {"http.request.method": method, "url.path": path}
    with span(method, kind="server", parent=incoming, attributes=attributes) as trace:
        token = CURRENT.set(trace)
        try:
            yield
        finally:
            CURRENT.reset(token)
