"""Prometheus metrics of the HTTP API: what was appended or refused, how long requests took, projection lag."""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from domain.service import PostResult


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

    def count(self, results: list[PostResult]) -> None:
        """Record each post's outcome, and the field named by each refusal."""
        for r in results:
            self.events.labels(r.outcome.value).inc()
            if r.reason and r.outcome.value in ("rejected", "conflict"):
                self.rejections.labels(r.reason.split(":", 1)[0][:60]).inc()
