"""Prometheus metrics of the HTTP API: what was appended or refused, how long requests took, projection lag."""

from __future__ import annotations

from collections import Counter as Tally
from typing import TYPE_CHECKING, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from domain.service import PostResult

if TYPE_CHECKING:
    from adapters.bootstrap import Ledger


class ApiMetrics:
    """One registry per app, so several apps in one process (tests) never collide."""

    BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter("quipu_events_total", "Posted events by outcome", ["outcome"], registry=self.registry)
        self.rejections = Counter(
            "quipu_event_rejections_total", "Refused events by the field at fault", ["field"], registry=self.registry
        )
        self.latency = Histogram(
            "quipu_http_request_seconds", "Request latency", ["route", "method", "status"],
            buckets=self.BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.lag_events = Gauge(
            "quipu_projection_lag_events", "Events recorded but not yet projected", ["projection"],
            registry=self.registry,
        )  # fmt: skip
        self.lag_seconds = Gauge(
            "quipu_projection_lag_seconds",
            "Recording time between the event at the projection's position and the newest event in the log "
            "(both recorded_at from the log itself, not the clock; 0 when the projection is at the head; "
            "from the first event when it has projected nothing)",
            ["projection"], registry=self.registry,
        )  # fmt: skip
        # Labelled children by label values: prometheus_client looks each up under a lock on every call.
        self._latency_of: dict[tuple[str, str, str], Histogram] = {}
        self._events_of: dict[str, Counter] = {}

    def observe_request(self, route: str, method: str, status: str, seconds: float) -> None:
        """One request's latency."""
        key = (route, method, status)
        child = self._latency_of.get(key)
        if child is None:
            child = self._latency_of[key] = self.latency.labels(route, method, status)
        child.observe(seconds)

    def count(self, results: list[PostResult]) -> None:
        """Record each post's outcome, and the field named by each refusal."""
        # Tallied first: a labelled child's look-up and increment take a lock each, 1,000 times a batch.
        outcomes = Tally(r.outcome.value for r in results)
        fields = Tally(
            r.reason.split(":", 1)[0][:60] for r in results if r.reason and r.outcome.value in ("rejected", "conflict")
        )
        for outcome, n in outcomes.items():
            child = self._events_of.get(outcome)
            if child is None:
                child = self._events_of[outcome] = self.events.labels(outcome)
            child.inc(n)
        for name, n in fields.items():
            self.rejections.labels(name).inc(n)

    def observe_projections(self, ledger: Ledger) -> None:
        """Set each projection's lag, in events and in recording seconds, from the log and the views."""
        store = ledger.store
        head = store.head()
        recorded: dict[int, int] = {}

        def recorded_at_us(position: int) -> int:
            if position not in recorded:
                records = store.read(position - 1, 1)
                recorded[position] = records[0].recorded_at_us if records else 0
            return recorded[position]

        for name, position in ledger.runner.positions().items():
            self.lag_events.labels(name).set(head - position)
            behind = 0.0
            if position < head:
                behind = (recorded_at_us(head) - recorded_at_us(max(position, 1))) / 1_000_000
            self.lag_seconds.labels(name).set(max(0.0, behind))
