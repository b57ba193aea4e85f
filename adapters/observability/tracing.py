"""OpenTelemetry traces: off unless ``QUIPU_OTEL_EXPORTER`` names an exporter (ADR 0023).

- ``QUIPU_OTEL_EXPORTER=otlp`` sends spans over OTLP/HTTP; the exporter reads the standard
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (default
  ``http://localhost:4318``) and ``OTEL_EXPORTER_OTLP_HEADERS``;
- ``console`` writes each finished span as one JSON line on stderr;
- ``none`` (the default) installs nothing: the API's no-op tracer costs about a microsecond a span.

Spans: the HTTP request (``SERVER``, parented by an incoming W3C ``traceparent``), ``quipu.append``
around each :meth:`LedgerService.post` (event count and outcomes), and in the worker one
``quipu.kafka.batch`` (``CONSUMER``) per consumed batch, linked to the ``traceparent`` each message
carried in its Kafka headers. Quipu keeps its provider to itself instead of installing a global
one, so a program embedding it (or a test) chooses its own.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final

from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Link, Span, SpanKind

from adapters.bootstrap import Ledger
from domain.service import LedgerService, Outcome, PostResult, Prepared
from ledger.errors import QuipuError

EXPORTERS: Final = ("none", "otlp", "console")
INSTRUMENTATION: Final = "quipu"
APPEND_SPAN: Final = "quipu.append"
BATCH_SPAN: Final = "quipu.kafka.batch"


class _Quipu:
    """The provider Quipu's spans go to, and its tracer (made on first use)."""

    provider: trace.TracerProvider | None = None
    tracer: trace.Tracer | None = None


def use_tracer_provider(provider: trace.TracerProvider | None) -> None:
    """Quipu's spans go to ``provider`` (``None``: OpenTelemetry's global one, a no-op unless set)."""
    _Quipu.provider, _Quipu.tracer = provider, None


def tracing_active() -> bool:
    """Whether a span made now could be recorded: Quipu has a provider, or the program set a global one.

    When not, a caller may skip making spans at all: OpenTelemetry's no-op spans still cost a context switch,
    attribute dictionaries and header parsing on every request (~20 µs on the API's hottest route).
    """
    return _Quipu.provider is not None or not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def tracer() -> trace.Tracer:
    if _Quipu.tracer is None:
        _Quipu.tracer = trace.get_tracer(INSTRUMENTATION, tracer_provider=_Quipu.provider)
    return _Quipu.tracer


def exporter_choice(value: str | None = None) -> str:
    choice = (value or os.environ.get("QUIPU_OTEL_EXPORTER") or "none").strip().lower()
    if choice not in EXPORTERS:
        raise QuipuError(f"QUIPU_OTEL_EXPORTER: {choice!r} is not one of {', '.join(EXPORTERS)}")
    return choice


def configure_tracing(service_name: str, exporter: str | None = None) -> TracerProvider | None:
    """Install Quipu's provider for ``exporter`` (else ``QUIPU_OTEL_EXPORTER``); ``None`` when tracing is off.

    ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` win over ``service_name``, as the spec says.
    """
    choice = exporter_choice(exporter)
    if choice == "none":
        return None
    span_exporter: SpanExporter
    if choice == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter()
    else:
        span_exporter = ConsoleSpanExporter(out=sys.stderr, formatter=lambda span: span.to_json(indent=None) + "\n")
    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    provider = TracerProvider(resource=Resource.create({} if named else {"service.name": service_name}))
    processor = BatchSpanProcessor(span_exporter) if choice == "otlp" else SimpleSpanProcessor(span_exporter)
    provider.add_span_processor(processor)
    use_tracer_provider(provider)
    return provider


def shutdown_tracing() -> None:
    """Flush and stop Quipu's provider, if it has one that can be shut down."""
    provider = _Quipu.provider
    use_tracer_provider(None)
    if isinstance(provider, TracerProvider):
        provider.shutdown()


#: The requests whose events share the current post (group commit): linked from its ``quipu.append`` span.
_GROUPED: ContextVar[tuple[trace.SpanContext, ...]] = ContextVar("quipu_grouped_requests", default=())


def current_span_context() -> trace.SpanContext | None:
    """The span the caller runs in, if it is a real one (what a grouped append should link to)."""
    context = trace.get_current_span().get_span_context()
    return context if context.is_valid else None


@contextmanager
def grouped_with(contexts: Sequence[trace.SpanContext]) -> Iterator[None]:
    """Appends made inside link to ``contexts``: the other requests whose events they commit."""
    token = _GROUPED.set(tuple(contexts))
    try:
        yield
    finally:
        _GROUPED.reset(token)


class TracedLedgerService(LedgerService):
    """The application service with a ``quipu.append`` span around each post."""

    def post_prepared(self, batch: Prepared) -> list[PostResult]:
        # Around deciding and appending: every way in goes through here. Preparing comes before it, and for a big
        # HTTP group runs in the worker rather than the committer (ADR 0042).
        if not tracing_active():
            return super().post_prepared(batch)
        links = [Link(c) for c in _GROUPED.get()]
        with tracer().start_as_current_span(APPEND_SPAN, kind=SpanKind.INTERNAL, links=links) as span:
            span.set_attribute("quipu.events.count", batch.size)
            results = super().post_prepared(batch)
            if span.is_recording():
                outcomes = Counter(r.outcome for r in results)
                for outcome in Outcome:
                    span.set_attribute(f"quipu.events.{outcome.value}", outcomes[outcome])
                positions = [r.position for r in results if r.outcome is Outcome.APPENDED and r.position is not None]
                if positions:
                    span.set_attribute("quipu.log.first_position", min(positions))
                    span.set_attribute("quipu.log.last_position", max(positions))
            return results


def instrument(ledger: Ledger) -> Ledger:
    """Give ``ledger`` a traced service (a fresh one: nothing is cached before the first post)."""
    if not isinstance(ledger.service, TracedLedgerService):
        ledger.service = TracedLedgerService(ledger.store, shared=ledger.service.shared)
    return ledger


class _KafkaHeaders(Getter[Sequence[tuple[str, bytes]]]):
    """Reads W3C trace context (``traceparent``, ``tracestate``) from a Kafka message's headers."""

    def get(self, carrier: Sequence[tuple[str, bytes]], key: str) -> list[str] | None:
        found = [v.decode("latin-1") for k, v in carrier if k.lower() == key and isinstance(v, bytes)]
        return found or None

    def keys(self, carrier: Sequence[tuple[str, bytes]]) -> list[str]:
        return [k for k, _ in carrier]


_KAFKA_HEADERS: Final = _KafkaHeaders()


def message_context(headers: Sequence[tuple[str, bytes]]) -> trace.SpanContext | None:
    """The span that produced a message, from its ``traceparent`` header; ``None`` without a valid one."""
    if not headers:
        return None
    context = trace.get_current_span(propagate.extract(headers, getter=_KAFKA_HEADERS)).get_span_context()
    return context if context.is_valid else None


def start_batch_span(topic: str, group: str, messages: Sequence[tuple[int, int, Sequence[tuple[str, bytes]]]]) -> Span:
    """One ``CONSUMER`` span for a consumed batch of ``(partition, offset, headers)``, linked to each
    message's producer span, started but not made current: a batch in flight to the committer process keeps its
    span open while the next batch is fetched (ADR 0045). End it, or make it current with ``trace.use_span``."""
    links = []
    for partition, offset, headers in messages:
        if (context := message_context(headers)) is not None:
            links.append(Link(context, {"messaging.kafka.partition": partition, "messaging.kafka.offset": offset}))
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": topic,
        "messaging.consumer.group.name": group,
        "messaging.batch.message_count": len(messages),
        "quipu.kafka.linked_messages": len(links),
    }
    # A fresh root: a batch mixes messages of many traces, each reachable through its link.
    return tracer().start_span(
        BATCH_SPAN, context=trace.set_span_in_context(trace.INVALID_SPAN), kind=SpanKind.CONSUMER,
        attributes=attributes, links=links,
    )  # fmt: skip


def span_carrier(span: Span) -> dict[str, str]:
    """W3C trace-context headers naming ``span`` as the parent (empty when tracing is off)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


@contextmanager
def batch_span(
    topic: str, group: str, messages: Sequence[tuple[int, int, Sequence[tuple[str, bytes]]]]
) -> Iterator[Span]:
    """:func:`start_batch_span`, current for the ``with`` block: the batch's appends, dead letters and commit are
    its children."""
    with trace.use_span(start_batch_span(topic, group, messages), end_on_exit=True) as span:
        yield span
