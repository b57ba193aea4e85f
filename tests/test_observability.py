"""Request ids, JSON logs, traces and metrics of the HTTP API and the Kafka worker.

The API runs in-process (``TestClient``) over SQLite; spans go to an in-memory exporter installed as
Quipu's provider; logs go to a string through the same handler ``quipu serve`` installs. The worker
test uses a real broker (noida-db), skipped without it like tests/test_kafka.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from adapters.bootstrap import open_ledger
from adapters.http.app import create_app
from adapters.http.auth import add_client
from adapters.http.metrics import ApiMetrics
from adapters.observability.logs import TextFormatter, configure_logging, log_time, redact
from adapters.observability.tracing import (
    APPEND_SPAN,
    BATCH_SPAN,
    configure_tracing,
    shutdown_tracing,
    tracing_active,
    use_tracer_provider,
)
from ledger.errors import QuipuError
from tests.conftest import IN_CI
from tests.factories import authorized, captured
from tests.kafka_broker import LocalBroker, noida_binary

ROOT = Path(__file__).resolve().parents[1]
SECRET = "observability-test-secret-0123456789-abcdefghijklmnop"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
PAN = "4111 1111 1111 1111"


@pytest.fixture
def logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Quipu's log lines, parsed (each must be one JSON object)."""
    stream = io.StringIO()
    handler = configure_logging("json", stream=stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logging.getLogger("quipu").removeHandler(handler)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    use_tracer_provider(provider)
    yield exporter
    use_tracer_provider(None)
    provider.shutdown()


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/ledger.db"


@pytest.fixture
def api(db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("QUIPU_API_SECRET", SECRET)
    monkeypatch.delenv("QUIPU_JWKS_URL", raising=False)
    with TestClient(create_app(db)) as client:
        yield client


def token(sub: str = "svc-a", scope: str = "events:write ledger:read") -> str:
    exp = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    return jwt.encode({"iss": "quipu", "sub": sub, "scope": scope, "exp": exp}, SECRET, algorithm="HS256")


def test_the_request_id_is_kept_when_sane_made_otherwise_and_in_every_problem(api: TestClient) -> None:
    auth = {"Authorization": f"Bearer {token()}"}
    kept = api.post("/v1/events", json=authorized("p1", "10.00"), headers={**auth, "X-Request-ID": "req-42.a:b"})
    assert kept.status_code == 201 and kept.headers["X-Request-ID"] == "req-42.a:b"
    for insane in ("has spaces", "x" * 200, "<script>", "-starts-with-a-dash", 'quote"d'):
        made = api.get("/v1/trial-balance", headers={**auth, "X-Request-ID": insane})
        assert made.status_code == 200
        assert made.headers["X-Request-ID"] != insane and uuid.UUID(made.headers["X-Request-ID"])
    assert uuid.UUID(api.get("/v1/trial-balance", headers=auth).headers["X-Request-ID"])

    bad = captured("p1", "10.00")
    bad["payload"]["amount"]["amount"] = 10.0
    problems = [
        api.post("/v1/events", json=bad, headers={**auth, "X-Request-ID": "bad-event-1"}),  # 422
        api.get("/v1/trial-balance", headers={"X-Request-ID": "no-token-1"}),  # 401
        api.post("/v1/events", json=bad, headers={"Authorization": f"Bearer {token(scope='ledger:read')}"}),  # 403
        api.get("/v1/balances", params={"as_of": "yesterday"}, headers=auth),  # 422
    ]
    assert [p.status_code for p in problems] == [422, 401, 403, 422]
    for p in problems:
        assert p.headers["content-type"] == "application/problem+json"
        assert p.json()["request_id"] == p.headers["X-Request-ID"]
        assert int(p.headers["content-length"]) == len(p.content)
    assert problems[0].json()["request_id"] == "bad-event-1" and problems[1].json()["request_id"] == "no-token-1"
    assert problems[0].json()["errors"] == [
        'payload.amount.amount: must be a decimal string such as "12.34", not a JSON number'
    ]  # the rest of the document is untouched
    assert "WWW-Authenticate" in problems[1].headers


def test_one_json_line_per_request_with_its_id_and_client_and_never_a_secret(
    db: str, api: TestClient, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    with open_ledger(db) as ledger:
        client_secret = add_client(ledger, "checkout", ["events:write"])
    issued = api.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "checkout",
                                            "client_secret": client_secret})  # fmt: skip
    bearer = issued.json()["access_token"]
    posted = api.post("/v1/events", json=authorized("p1", "10.00"),
                      headers={"Authorization": f"Bearer {bearer}", "X-Request-ID": "log-me-1"})  # fmt: skip
    assert posted.status_code == 201
    assert api.get("/nowhere", headers={"Authorization": f"Bearer {bearer}"}).status_code == 404
    lines = logs()
    requests = [line for line in lines if line["logger"] == "quipu.http"]
    assert [(r["method"], r["route"], r["status"]) for r in requests] == [
        ("POST", "/oauth/token", 200), ("POST", "/v1/events", 201), ("GET", "unmatched", 404),
    ]  # fmt: skip
    line = requests[1]
    assert line["request_id"] == "log-me-1" and line["client_id"] == "checkout" and line["msg"] == "request"
    assert line["path"] == "/v1/events" and line["level"] == "info" and line["duration_ms"] >= 0
    assert dt.datetime.fromisoformat(line["ts"]).tzinfo is not None
    assert requests[2]["client_id"] is None and uuid.UUID(requests[2]["request_id"])
    text = json.dumps(lines)
    assert bearer not in text and client_secret not in text and "Bearer" not in text


def test_anything_logged_is_redacted_whoever_logged_it(logs: Callable[[], list[dict[str, Any]]]) -> None:
    bearer = token()
    logging.getLogger("quipu.test").warning(
        "upstream said: Authorization: Bearer %s for card %s", bearer, PAN,
        extra={"header": f"Bearer {bearer}", "form": "client_id=x&client_secret=hunter2", "nested": {"t": bearer}},
    )  # fmt: skip
    (line,) = logs()
    text = json.dumps(line)
    assert bearer not in text and "4111" not in text and "hunter2" not in text
    assert "Bearer [redacted]" in line["msg"] and "digits removed" in line["msg"]
    assert line["form"] == "client_id=x&client_secret=[redacted]"
    assert redact("event 123e4567 at position 42 for 100.00 BRL") == "event 123e4567 at position 42 for 100.00 BRL"
    record = logging.LogRecord("quipu.test", logging.INFO, __file__, 1, "sent Bearer %s", (bearer,), None)
    record.card = PAN
    as_text = TextFormatter().format(record)
    assert as_text.split()[1:4] == ["INFO", "quipu.test", "sent"] and bearer not in as_text and "4111" not in as_text


def test_the_access_log_writes_no_secret_that_came_in_through_the_request_id_the_path_or_the_token(
    api: TestClient, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    # The access log writes its fields without searching them again: each must be made safe on the way in.
    jwt_like = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    for insane in ("4111111111111111", jwt_like):  # sane by shape, yet a card number and a token
        answer = api.get("/v1/trial-balance", headers={"Authorization": f"Bearer {token()}", "X-Request-ID": insane})
        assert answer.status_code == 200 and uuid.UUID(answer.headers["X-Request-ID"])
    carded = token(sub="svc-4111111111111111")  # a caller's id comes from its token: an external issuer's, say
    assert (
        api.get(f"/v1/trial-balance/{PAN.replace(' ', '')}", headers={"Authorization": f"Bearer {carded}"}).status_code
        == 404
    )
    assert api.get("/v1/trial-balance", headers={"Authorization": f"Bearer {carded}"}).status_code == 200
    requests = [line for line in logs() if line["logger"] == "quipu.http"]
    assert len(requests) == 4
    text = json.dumps(requests)
    assert "4111111111111111" not in text and jwt_like not in text
    assert requests[3]["client_id"] == "svc-<16 digits removed>" and "digits removed" in requests[2]["path"]


def test_spans_are_skipped_only_when_nothing_could_record_them(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not tracing_active()  # no provider of Quipu's, none set globally: the API makes no spans
    provider = TracerProvider()
    use_tracer_provider(provider)
    try:
        assert tracing_active()
    finally:
        use_tracer_provider(None)
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)  # a program embedding Quipu set one
    assert tracing_active()


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_log_times_are_what_datetime_writes(created: float) -> None:
    expected = dt.datetime.fromtimestamp(created, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert log_time(created) == expected


def test_the_request_span_is_the_parent_of_the_append_span(
    api: TestClient, spans: InMemorySpanExporter, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    auth = {"Authorization": f"Bearer {token()}"}
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    one = api.post("/v1/events", json=authorized("p1", "10.00"), headers={**auth, "traceparent": traceparent})
    assert one.status_code == 201
    (server, append) = _by_name(spans.get_finished_spans(), "POST /v1/events", APPEND_SPAN)
    assert server.kind is SpanKind.SERVER and append.kind is SpanKind.INTERNAL
    assert format(server.context.trace_id, "032x") == TRACE_ID  # the caller's trace goes on
    assert server.parent is not None and format(server.parent.span_id, "016x") == PARENT_ID
    assert append.parent is not None and append.parent.span_id == server.context.span_id
    assert append.context.trace_id == server.context.trace_id
    assert dict(append.attributes or {}) == {
        "quipu.events.count": 1, "quipu.events.appended": 1, "quipu.events.duplicate": 0,
        "quipu.events.conflict": 0, "quipu.events.rejected": 0,
        "quipu.log.first_position": 1, "quipu.log.last_position": 1,
    }  # fmt: skip
    attributes = dict(server.attributes or {})
    assert attributes["http.route"] == "/v1/events" and attributes["http.response.status_code"] == 201
    assert attributes["enduser.id"] == "svc-a" and attributes["quipu.request_id"] == one.headers["X-Request-ID"]
    (logged,) = [line for line in logs() if line.get("route") == "/v1/events"]
    assert logged["trace_id"] == TRACE_ID and logged["span_id"] == format(server.context.span_id, "016x")

    spans.clear()
    batch = api.post("/v1/events/batch", json=[captured("p1", "6.00"), authorized("p2", "1.00"), {"type": "nope"}],
                     headers=auth)  # fmt: skip
    assert [r["outcome"] for r in batch.json()["results"]] == ["appended", "appended", "rejected"]
    (server, append) = _by_name(spans.get_finished_spans(), "POST /v1/events/batch", APPEND_SPAN)
    assert server.parent is None  # no traceparent: a new trace starts here
    assert append.parent is not None and append.parent.span_id == server.context.span_id
    counts = dict(append.attributes or {})
    assert (counts["quipu.events.count"], counts["quipu.events.appended"], counts["quipu.events.rejected"]) == (3, 2, 1)


def _by_name(finished: Sequence[ReadableSpan], *names: str) -> list[ReadableSpan]:
    found = {s.name: s for s in finished}
    assert set(names) <= set(found), [s.name for s in finished]
    return [found[n] for n in names]


def test_metrics_expose_projection_lag_in_seconds_from_the_log(api: TestClient, db: str) -> None:
    auth = {"Authorization": f"Bearer {token()}"}
    for pid in ("p1", "p2", "p3"):
        assert api.post("/v1/events", json=authorized(pid, "10.00"), headers=auth).status_code == 201
    with open_ledger(db, migrate=False) as ledger:
        recorded = [r.recorded_at_us for r in ledger.store.read(0, 10)]
        names = sorted(ledger.runner.positions())
    assert len(recorded) == 3 and names
    behind = _samples(api.get("/metrics").text)
    # Nothing projected yet: from the first event's recording to the newest one's.
    for name in names:
        assert behind[("quipu_projection_lag_events", name)] == 3
        assert behind[("quipu_projection_lag_seconds", name)] == pytest.approx((recorded[2] - recorded[0]) / 1e6)
    assert api.get("/v1/trial-balance", headers=auth).status_code == 200  # projects to the head
    caught_up = _samples(api.get("/metrics").text)
    for name in names:
        assert caught_up[("quipu_projection_lag_events", name)] == 0
        assert caught_up[("quipu_projection_lag_seconds", name)] == 0
    assert "# HELP quipu_projection_lag_seconds Recording time between" in api.get("/metrics").text


def _samples(text: str) -> dict[tuple[str, str], float]:
    found = {}
    for name, projection, value in re.findall(
        r'^(quipu_projection_lag_\w+)\{projection="([^"]+)"\} (\S+)$', text, re.M
    ):
        found[(name, projection)] = float(value)
    return found


def test_the_dashboard_reads_exactly_the_metrics_quipu_exports() -> None:
    from adapters.kafka.worker import WorkerMetrics

    exported: dict[str, str] = {}
    for registry in (ApiMetrics().registry, WorkerMetrics().registry):
        for family in registry.collect():
            exported[family.name] = family.type
    series = {name: family for family, kind in exported.items() for name in _series(family, kind)}
    dashboard = json.loads((ROOT / "docs/grafana/quipu-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    used = {name for expr in exprs for name in re.findall(r"\bquipu_[a-z0-9_]+\b", expr)}
    assert used, "the dashboard reads no Quipu metric"
    assert used <= set(series), f"the dashboard reads series nobody exports: {sorted(used - set(series))}"
    assert {series[name] for name in used} == set(exported), "a metric Quipu exports has no panel"


def _series(family: str, kind: str) -> list[str]:
    if kind == "counter":
        return [f"{family}_total", f"{family}_created"]
    if kind == "histogram":
        return [f"{family}_bucket", f"{family}_count", f"{family}_sum", f"{family}_created"]
    return [family]


def test_tracing_is_off_by_default_and_each_exporter_works(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from adapters.observability.tracing import tracer

    monkeypatch.delenv("QUIPU_OTEL_EXPORTER", raising=False)
    assert configure_tracing("quipu-test") is None
    with tracer().start_as_current_span("unseen") as span:
        assert not span.is_recording()
    with pytest.raises(QuipuError, match="'jaeger' is not one of none, otlp, console"):
        configure_tracing("quipu-test", "jaeger")

    assert configure_tracing("quipu-test", "console") is not None
    with tracer().start_as_current_span("to-the-console"):
        pass
    shutdown_tracing()
    printed = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert [(s["name"], s["resource"]["attributes"]["service.name"]) for s in printed] == [
        ("to-the-console", "quipu-test")
    ]

    received: list[tuple[str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    collector = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{collector.server_address[1]}")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "named-by-the-environment")
        monkeypatch.setenv("QUIPU_OTEL_EXPORTER", "otlp")
        assert configure_tracing("quipu-test") is not None
        with tracer().start_as_current_span("over-otlp"):
            pass
        shutdown_tracing()  # flushes the batch
    finally:
        collector.shutdown()
        collector.server_close()
    assert [path for path, _ in received] == ["/v1/traces"]
    assert b"over-otlp" in received[0][1] and b"named-by-the-environment" in received[0][1]


# --- the worker ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    binary = noida_binary()
    if binary is None:
        reason = "noida-db is not installed (pip install noida-db==0.2.3; shared/KAFKA.md)"
        if IN_CI:
            pytest.fail(f"CI=true and a Kafka broker is required: {reason}")
        pytest.skip(reason)
    broker = LocalBroker(binary, tmp_path_factory.mktemp("kafka-observability"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_the_worker_links_each_batch_to_its_messages_traces_and_logs_their_offsets(
    kafka: LocalBroker, tmp_path: Path, spans: InMemorySpanExporter, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

    from adapters.kafka import worker as worker_module
    from adapters.kafka.broker import ensure_topics
    from benchmarks.common import demo_lines
    from domain.catalog import parse_event, to_current
    from domain.rules import stream_name

    tag = uuid.uuid4().hex[:8]
    topic, dlq, group = f"in-{tag}", f"dlq-{tag}", f"g-{tag}"
    lines = demo_lines(81, 30)
    keyed = [(stream_name(to_current(parse_event(v))).encode(), v) for v in lines]
    traces = {i: uuid.uuid4().hex for i in range(0, 30, 3)}  # every third message carries a traceparent
    poison_trace = uuid.uuid4().hex
    messages: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = [
        (key, value, [("traceparent", f"00-{traces[i]}-{PARENT_ID}-01".encode())] if i in traces else [])
        for i, (key, value) in enumerate(keyed)
    ]
    messages.append((keyed[0][0], b"{not json", [("traceparent", f"00-{poison_trace}-{PARENT_ID}-01".encode())]))

    async def produce() -> None:
        await ensure_topics(kafka.bootstrap, [topic], 2)
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            await asyncio.gather(*[await producer.send(topic, v, key=k, headers=h) for k, v, h in messages])
        finally:
            await producer.stop()

    asyncio.run(produce())
    # On the database thread, so the append spans end in this process's exporter (a committer process's spans:
    # tests/test_kafka.py).
    url = f"sqlite:///{tmp_path}/ledger.db"
    settings = worker_module.WorkerSettings(url, kafka.bootstrap, topic, group, dlq, committer="thread")
    worker = worker_module.IngestWorker(settings)

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        deadline = time.monotonic() + 120
        while worker.stats.messages < len(messages) and not task.done():
            assert time.monotonic() < deadline, "the worker did not consume every message"
            await asyncio.sleep(0.05)
        stop.set()
        await task

    asyncio.run(run())
    assert (worker.stats.appended, sum(worker.stats.dead.values())) == (30, 1)

    finished = spans.get_finished_spans()
    batches = {s.context.span_id: s for s in finished if s.name == BATCH_SPAN}
    appends = [s for s in finished if s.name == APPEND_SPAN]
    assert batches and appends
    linked = {format(link.context.trace_id, "032x") for b in batches.values() for link in b.links}
    assert linked == {*traces.values(), poison_trace}
    for b in batches.values():
        assert b.kind is SpanKind.CONSUMER and b.parent is None
        attributes = dict(b.attributes or {})
        assert (
            attributes["messaging.destination.name"] == topic and attributes["messaging.consumer.group.name"] == group
        )
    counted = [dict(b.attributes or {})["messaging.batch.message_count"] for b in batches.values()]
    assert sum(int(str(n)) for n in counted) == len(messages)
    for a in appends:  # each append is inside its batch, on the database thread
        assert a.parent is not None and a.parent.span_id in batches
        assert a.context.trace_id == batches[a.parent.span_id].context.trace_id

    logged = logs()
    batch_lines = [line for line in logged if line["logger"] == "quipu.worker" and line["msg"] == "batch"]
    assert sum(line["messages"] for line in batch_lines) == len(messages)
    assert all(line["topic"] == topic for line in batch_lines)
    covered = sum(last - first + 1 for line in batch_lines for first, last in line["offsets"].values())
    assert covered == len(messages)  # the offset ranges account for every message, once
    (dead,) = [line for line in logged if line["msg"] == "dead letter"]
    assert (dead["topic"], dead["kind"], dead["level"]) == (topic, "rejected", "warning")
    assert isinstance(dead["partition"], int) and isinstance(dead["offset"], int)
    assert dead["reason"].startswith("event: not valid JSON")
    assert dead["trace_id"] in {format(b.context.trace_id, "032x") for b in batches.values()}
    assert orjson.dumps(logged)  # every line was one JSON object


def test_api_metrics_count_a_batch_by_outcome_and_by_the_field_at_fault() -> None:
    from adapters.http.metrics import ApiMetrics
    from domain.service import Outcome, PostResult

    metrics = ApiMetrics()
    results = [PostResult(i, Outcome.APPENDED, f"e{i}", i + 1) for i in range(3)]
    results += [
        PostResult(3, Outcome.REJECTED, None, reason="payload.amount.amount: must be a decimal string"),
        PostResult(4, Outcome.REJECTED, None, reason="payload.amount.amount: too many decimals"),
        PostResult(5, Outcome.CONFLICT, "e5", reason="event_id: e5 was already recorded with a different body"),
        PostResult(6, Outcome.DUPLICATE, "e0", 1),
    ]
    metrics.count(results)
    metrics.count(results[:1])
    sample = metrics.registry.get_sample_value
    assert sample("quipu_events_total", {"outcome": "appended"}) == 4
    assert sample("quipu_events_total", {"outcome": "rejected"}) == 2
    assert (
        sample("quipu_events_total", {"outcome": "conflict"}),
        sample("quipu_events_total", {"outcome": "duplicate"}),
    ) == (1, 1)
    assert sample("quipu_event_rejections_total", {"field": "payload.amount.amount"}) == 2
    assert sample("quipu_event_rejections_total", {"field": "event_id"}) == 1
