"""Kafka ingestion and the journal outbox against a real broker, with the worker as a real process.

The broker is the noida-db binary (shared/KAFKA.md), started once per test process on a free port with a
fresh data directory, and SIGTERMed at the end. Without noida-db these tests skip, and fail under
``CI=true``. Every test uses its own topics and consumer group. The broker keeps its data as one JSON
file rewritten on each save, so the tests use thousands of events, not the issue's 100,000.

Waits have generous deadlines and name what they waited for; nothing asserts on a duration.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import IN_CI, drop_schema, pg_url_for_new_schema
from tests.kafka_broker import LocalBroker, noida_binary

if not IN_CI:
    pytest.importorskip("aiokafka", reason="aiokafka is not installed (pip install aiokafka)")

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # type: ignore[import-untyped]

from adapters.bootstrap import open_ledger
from adapters.kafka import dead_letters
from adapters.kafka.broker import ensure_topics
from adapters.kafka.ingest import Incoming, ingest_batch, key_problem
from adapters.kafka.outbox import OutboxSettings, publish, stored_position
from benchmarks.common import alive, children, demo_lines
from domain.catalog import parse_event, to_current
from domain.integrity import verify_chain
from domain.posting_rules import entry_for_body
from domain.rules import stream_name

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 4
#: How long any one wait may take before the test fails naming what it waited for (a hung worker,
#: not a slow one: the figures are in benchmarks/kafka.py).
DEADLINE_S = 120.0


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """One broker per test process (pytest-xdist runs one per worker), on a free port, fresh data."""
    binary = noida_binary()
    if binary is None:
        reason = "noida-db is not installed (pip install noida-db==0.2.3; shared/KAFKA.md)"
        if IN_CI:
            pytest.fail(f"CI=true and a Kafka broker is required: {reason}")
        pytest.skip(reason)
    broker = LocalBroker(binary, tmp_path_factory.mktemp("kafka"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def names() -> dict[str, str]:
    """Topics and a group of this test's own: the broker is shared by the whole session."""
    tag = uuid.uuid4().hex[:8]
    return {"in": f"in-{tag}", "dlq": f"dlq-{tag}", "out": f"out-{tag}", "group": f"g-{tag}"}


def keyed(lines: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
    """Each event with its stream name as the key (ADR 0010)."""
    return [(stream_name(to_current(parse_event(line))).encode(), line) for line in lines]


def produce(bootstrap: str, topic: str, messages: Sequence[tuple[bytes | None, bytes]]) -> None:
    async def run() -> None:
        await ensure_topics(bootstrap, [topic], PARTITIONS)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
        await producer.start()
        try:
            pending = [await producer.send(topic, value, key=key) for key, value in messages]
            await asyncio.gather(*pending)
        finally:
            await producer.stop()

    asyncio.run(run())


def consume_all(bootstrap: str, topic: str) -> list[Any]:
    """Every record of ``topic`` from the beginning to its current end, partition by partition."""

    async def run() -> list[Any]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
            if not parts:
                return []
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            ends = await consumer.end_offsets(parts)
            got: list[Any] = []
            deadline = time.monotonic() + DEADLINE_S
            while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
                assert time.monotonic() < deadline, f"could not read {topic} to its end"
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    got.extend(records)
            return got
        finally:
            await consumer.stop()

    return asyncio.run(run())


def committed(bootstrap: str, topic: str, group: str) -> tuple[dict[int, int], dict[int, int]]:
    """The group's committed offsets and the partitions' end offsets."""

    async def run() -> tuple[dict[int, int], dict[int, int]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            ends = await consumer.end_offsets(parts)
            done = {tp.partition: (await consumer.committed(tp)) or 0 for tp in parts}
            return done, {tp.partition: ends[tp] for tp in parts}
        finally:
            await consumer.stop()

    return asyncio.run(run())


def start_worker(
    url: str,
    kafka: LocalBroker,
    names: dict[str, str],
    log: Path,
    batch: int = 500,
    committer: str = "process",
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "adapters.cli", "worker", "--database", url, "--brokers", kafka.bootstrap]
    args += ["--topic", names["in"], "--group", names["group"], "--dlq-topic", names["dlq"], "--batch", str(batch)]
    args += ["--committer", committer]
    with log.open("ab") as out:
        return subprocess.Popen(
            args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )  # fmt: skip


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(DEADLINE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def wait_for(
    what: str, check: Callable[[], bool], proc: subprocess.Popen[bytes] | None = None, log: Path | None = None
) -> None:
    """Poll ``check`` until true; fail naming ``what`` if the deadline passes or ``proc`` exits first."""
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"worker exited ({proc.returncode}) before {what}:\n{log.read_text() if log else ''}")
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}:\n{log.read_text() if log else ''}")
        time.sleep(0.05)


def head_of(url: str, request: pytest.FixtureRequest) -> Callable[[], int]:
    """The log's head, read by this test's own connection while the worker writes."""
    ledger = open_ledger(url, migrate=False)
    request.addfinalizer(ledger.close)
    return ledger.store.head


def assert_recorded_once(url: str, lines: Sequence[bytes]) -> None:
    """Exactly the given events are in the log, each once, and the chain verifies."""
    expected = sorted(orjson.loads(line)["event_id"] for line in lines)
    with open_ledger(url, migrate=False) as ledger:
        assert ledger.store.head() == len(lines)
        found = sorted(str(r.event_id) for r in ledger.store.read(0, len(lines) + 10))
        assert found == expected
        report = verify_chain(ledger.store)
        assert report.broken is None


@pytest.mark.parametrize("committer", ["process", "thread"])
def test_the_worker_appends_every_event_once_and_commits_every_offset(
    kafka: LocalBroker, names: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest, committer: str
) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    lines = demo_lines(71, 5000)
    produce(kafka.bootstrap, names["in"], keyed(lines))
    head = head_of(url, request)
    log = tmp_path / "worker.log"
    worker = start_worker(url, kafka, names, log, batch=1000, committer=committer)
    try:
        wait_for("all 5,000 events appended", lambda: head() >= len(lines), worker, log)
        # The offsets move after the append: wait for the commit of the last batch before stopping.
        wait_for("every offset committed", lambda: _all_committed(kafka, names), worker, log)
    finally:
        assert stop(worker) == 0, log.read_text()
    assert_recorded_once(url, lines)
    assert consume_all(kafka.bootstrap, names["dlq"]) == []
    assert "appended 5000, duplicates 0" in log.read_text()


def _all_committed(kafka: LocalBroker, names: dict[str, str]) -> bool:
    done, ends = committed(kafka.bootstrap, names["in"], names["group"])
    return done == ends


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_worker_killed_mid_stream_and_restarted_loses_and_duplicates_nothing(
    kafka: LocalBroker, names: dict[str, str], tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    # 4,000 in the suite; the full run is QUIPU_KAFKA_KILL_EVENTS=100000 (docs/reliability.md).
    url, lines, head = _backlog(backend, 72, int(os.environ.get("QUIPU_KAFKA_KILL_EVENTS", "4000")), kafka, names,
                                tmp_path, request)  # fmt: skip
    log = tmp_path / "worker.log"
    first = start_worker(url, kafka, names, log, batch=200)
    try:
        # Killed in the middle: once about a third of the events are in.
        wait_for("the first batches appended", lambda: head() >= len(lines) // 3, first, log)
        committers = _spawned(first.pid)
    finally:
        stop(first, signal.SIGKILL)
    killed_at = head()
    # Its committer dies with it (PR_SET_PDEATHSIG): nothing is appended for a worker that cannot commit offsets.
    wait_for("the committer gone with its worker", lambda: not any(alive(pid) for pid in committers))
    # The broker never evicts a member killed without leaving; a restart clears its group state and
    # keeps the committed offsets (shared/KAFKA.md). Kafka itself would evict it after its session timeout.
    kafka.restart()
    second = start_worker(url, kafka, names, log, batch=200)
    try:
        wait_for("every event appended after the restart", lambda: head() >= len(lines), second, log)
        wait_for("every offset committed", lambda: _all_committed(kafka, names), second, log)
    finally:
        assert stop(second) == 0, log.read_text()
    assert_recorded_once(url, lines)
    assert consume_all(kafka.bootstrap, names["dlq"]) == []
    print(f"killed at head {killed_at} of {len(lines)}")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_committer_killed_mid_stream_is_replaced_and_its_batches_are_sent_again_in_order(
    kafka: LocalBroker, names: dict[str, str], tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    # ADR 0045: two batches may be with the committer. Killed, it fails both; the worker starts another and sends
    # them again, oldest first. Out of order, a capture would arrive before its authorization and be dead-lettered.
    url, lines, head = _backlog(backend, 73, 4000, kafka, names, tmp_path, request)
    log = tmp_path / "worker.log"
    worker = start_worker(url, kafka, names, log, batch=200)
    try:
        wait_for("the first batches appended", lambda: head() >= len(lines) // 3, worker, log)
        (committer,) = _spawned(worker.pid)
        os.kill(committer, signal.SIGKILL)
        wait_for("every event appended after the committer died", lambda: head() >= len(lines), worker, log)
        wait_for("every offset committed", lambda: _all_committed(kafka, names), worker, log)
        assert _spawned(worker.pid) not in ([], [committer])  # a new committer took over
    finally:
        assert stop(worker) == 0, log.read_text()
    assert_recorded_once(url, lines)
    assert consume_all(kafka.bootstrap, names["dlq"]) == []
    assert "the committer process went away" in log.read_text()


def test_the_committer_process_appends_each_batch_inside_the_batch_span(
    kafka: LocalBroker, names: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url, lines, head = _backlog("sqlite", 74, 300, kafka, names, tmp_path, request)
    log = tmp_path / "worker.log"
    # The console exporter: both processes write their spans, one JSON object per line, to the same log.
    worker = start_worker(url, kafka, names, log, batch=100, env={"QUIPU_OTEL_EXPORTER": "console"})
    try:
        wait_for("every event appended", lambda: head() >= len(lines), worker, log)
        wait_for("every offset committed", lambda: _all_committed(kafka, names), worker, log)
    finally:
        assert stop(worker) == 0, log.read_text()
    spans = [json.loads(line) for line in log.read_text().splitlines() if line.startswith('{"name"')]
    batches = {s["context"]["span_id"]: s for s in spans if s["name"] == "quipu.kafka.batch"}
    appends = [s for s in spans if s["name"] == "quipu.append"]
    assert batches and appends
    for append in appends:  # made in the committer process, under the batch span of the worker
        parent = batches[append["parent_id"]]
        assert append["context"]["trace_id"] == parent["context"]["trace_id"]
        assert append["resource"]["attributes"]["service.name"] == "quipu-worker"


def _spawned(pid: int) -> list[int]:
    """The committer processes of the worker ``pid`` (its spawned children; not the resource tracker)."""
    found = []
    for child in children(pid):
        with open(f"/proc/{child}/cmdline", "rb") as cmd:
            if b"spawn_main" in cmd.read():
                found.append(child)
    return found


def _backlog(
    backend: str,
    seed: int,
    events: int,
    kafka: LocalBroker,
    names: dict[str, str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> tuple[str, list[bytes], Callable[[], int]]:
    """A fresh ledger (created before the worker and the test open it), ``events`` demo events waiting in the
    inbound topic, and a reader of the ledger's head."""
    url = _url(backend, tmp_path, request)
    with open_ledger(url):
        pass
    lines = demo_lines(seed, events)
    produce(kafka.bootstrap, names["in"], keyed(lines))
    return url, lines, head_of(url, request)


def _url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.db"
    url, schema = pg_url_for_new_schema()
    request.addfinalizer(lambda: drop_schema(schema))
    return url


def test_poison_messages_go_to_the_dead_letter_topic_and_the_rest_flows(
    kafka: LocalBroker, names: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    good = keyed(demo_lines(73, 600))
    other = [orjson.loads(line) for line in demo_lines(74, 200)]
    order = next(e for e in other if e["type"] == "order.placed")
    rate, other_rate = [e for e in other if e["type"] == "fx.rate_published"][:2]
    float_amount = {**order, "payload": {**order["payload"], "total": {"amount": 839.02, "currency": "BRL"}}}
    first_key, first_value = good[0]
    conflicting = orjson.loads(first_value) | {"source": "someone-else"}
    # Each poison message shares its partition with good events after it (same key): if it blocked its
    # partition, those would never be appended.
    poison: list[tuple[str, bytes | None, bytes]] = [
        ("rejected", good[10][0], b"{not json"),
        ("rejected", good[20][0], b"\xff\xfe\x00 not utf-8"),
        ("rejected", stream_name(to_current(parse_event(order))).encode(), orjson.dumps(float_amount)),
        ("wrong_key", b"order:not-its-stream", orjson.dumps(rate)),
        ("wrong_key", None, orjson.dumps(other_rate)),
        ("conflict", first_key, orjson.dumps(conflicting)),
    ]
    messages = [good[0], *[(k, v) for _, k, v in poison], *good[1:]]
    produce(kafka.bootstrap, names["in"], messages)
    head = head_of(url, request)
    log = tmp_path / "worker.log"
    worker = start_worker(url, kafka, names, log)
    try:
        wait_for("every good event appended", lambda: head() >= len(good), worker, log)
        wait_for("every offset committed", lambda: _all_committed(kafka, names), worker, log)
    finally:
        assert stop(worker) == 0, log.read_text()
    assert_recorded_once(url, [v for _, v in good])

    dead = consume_all(kafka.bootstrap, names["dlq"])
    by_value = {bytes(r.value): r for r in dead}
    assert len(dead) == len(poison)
    for kind, key, value in poison:
        record = by_value.get(value)
        assert record is not None, f"{kind} message {value[:30]!r} is not in the dead-letter topic"
        headers = dict(record.headers)
        assert record.key == key
        assert record.value == value  # the original bytes, untouched
        assert headers[dead_letters.KIND].decode() == kind
        assert headers[dead_letters.SOURCE_TOPIC].decode() == names["in"]
        assert int(headers[dead_letters.SOURCE_OFFSET]) >= 0
    reasons = {headers_of(r)[dead_letters.REASON].decode() for r in dead}
    assert any(r.startswith("event: not valid JSON") for r in reasons)
    assert any(r.startswith("payload.total.amount") for r in reasons), reasons
    assert any("is not the event's stream" in r for r in reasons)
    assert any(r.startswith("key: missing") for r in reasons)
    assert any(r.startswith("event_id:") and "different body" in r for r in reasons)


def headers_of(record: Any) -> dict[str, bytes]:
    return dict(record.headers)


def test_key_check_and_refusals_without_a_broker(tmp_path: Path) -> None:
    """The batch logic alone: what is posted, what is dead-lettered and why (no Kafka involved)."""
    lines = demo_lines(75, 50)
    msgs = [Incoming("t", 0, i, k, v) for i, (k, v) in enumerate(keyed(lines))]
    assert key_problem(b"wallet:x", "payment:p1") == "key: 'wallet:x' is not the event's stream 'payment:p1'"
    assert key_problem(None, "payment:p1") == "key: missing; the event's stream is 'payment:p1'"
    assert key_problem(b"payment:p1", "payment:p1") is None
    with open_ledger(f"sqlite:///{tmp_path}/ledger.db") as ledger:
        first = ingest_batch(ledger.service, msgs)
        again = ingest_batch(ledger.service, msgs)  # a redelivery: all duplicates, nothing dead
    assert (first.appended, first.duplicates, first.dead) == (50, 0, [])
    assert (again.appended, again.duplicates, again.dead) == (0, 50, [])


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_outbox_publishes_every_entry_and_its_position_never_passes_an_unacknowledged_one(
    kafka: LocalBroker, names: dict[str, str], tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    url = _url(backend, tmp_path, request)
    lines = demo_lines(76, 2000)
    with open_ledger(url) as ledger:
        ledger.service.post(lines[:500])
        log = tmp_path / "outbox.log"
        args = [sys.executable, "-m", "adapters.cli", "outbox", "publish", "--database", url,
                "--brokers", kafka.bootstrap, "--topic", names["out"], "--page", "50", "--follow"]  # fmt: skip
        with log.open("ab") as out:
            follower = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_for("the first entries published", lambda: stored_position(ledger, names["out"]) > 0, follower, log)
            # New events while it follows; killed straight after, most likely with a page in flight.
            for i in range(500, len(lines), 250):
                ledger.service.post(lines[i : i + 250])
        finally:
            stop(follower, signal.SIGKILL)
        at_kill = stored_position(ledger, names["out"])
        print(f"outbox killed at position {at_kill} of {ledger.store.head()}")
        books = {r.position: str(r.event_id) for r in ledger.store.read(0, 5000) if entry_for_body(r.body) is not None}
        seen = _positions(consume_all(kafka.bootstrap, names["out"]))
        # Everything at or before the stored position had been acknowledged by the broker.
        assert {p for p in books if p <= at_kill} <= set(seen)

        stats = asyncio.run(publish(ledger, OutboxSettings(kafka.bootstrap, names["out"], page=300)))
        assert stats.position == ledger.store.head() == stored_position(ledger, names["out"])
        records = consume_all(kafka.bootstrap, names["out"])
        seen = _positions(records)
        assert set(seen) == set(books)  # every entry at least once; republished ones are duplicates
        assert {p: seen[p] for p in books} == books  # and each message names its event
        # Per key, the first time each entry appears is in log order.
        by_key: dict[bytes, list[int]] = defaultdict(list)
        for r in sorted(records, key=lambda r: (r.partition, r.offset)):
            position = orjson.loads(r.value)["position"]
            if position not in by_key[r.key]:
                by_key[r.key].append(position)
        assert all(ps == sorted(ps) for ps in by_key.values())
        sample = orjson.loads(records[0].value)
        assert sample["postings"] and isinstance(sample["postings"][0]["amount"], str)
        assert records[0].key.decode() == sample["stream"]


def _positions(records: Sequence[Any]) -> dict[int, str]:
    seen: dict[int, str] = {}
    for r in records:
        doc = orjson.loads(r.value)
        seen[doc["position"]] = doc["event_id"]
        assert dict(r.headers)["quipu.event_id"].decode() == doc["event_id"]
    return seen


def test_a_failing_database_is_retried_without_committing_and_nothing_is_dead_lettered(
    kafka: LocalBroker, names: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process: the first two appends fail as a locked database would; the third passes."""
    from adapters.kafka import worker as worker_module

    url = f"sqlite:///{tmp_path}/ledger.db"
    lines = demo_lines(77, 300)
    produce(kafka.bootstrap, names["in"], keyed(lines))
    real = ingest_batch
    committed_while_failing: list[dict[int, int]] = []

    def flaky(service: Any, messages: Sequence[Incoming]) -> Any:
        if len(committed_while_failing) < 2:
            committed_while_failing.append(committed(kafka.bootstrap, names["in"], names["group"])[0])
            raise sqlite3.OperationalError("database is locked")
        return real(service, messages)

    monkeypatch.setattr(worker_module, "ingest_batch", flaky)
    monkeypatch.setattr(worker_module, "RETRY_FIRST_S", 0.05)
    settings = worker_module.WorkerSettings(
        url, kafka.bootstrap, names["in"], names["group"], names["dlq"], 1000, committer="thread"
    )
    metrics = worker_module.WorkerMetrics()
    worker = worker_module.IngestWorker(settings, metrics=metrics)

    async def run() -> None:
        stop_event = asyncio.Event()
        task = asyncio.create_task(worker.run(stop_event))
        deadline = time.monotonic() + DEADLINE_S
        while worker.stats.messages < len(lines) and not task.done():
            assert time.monotonic() < deadline, "the worker never got past the failures"
            await asyncio.sleep(0.05)
        stop_event.set()
        await task

    asyncio.run(run())
    assert committed_while_failing == [dict.fromkeys(range(PARTITIONS), 0)] * 2
    assert worker.stats.retries == 2
    assert (worker.stats.appended, sum(worker.stats.dead.values())) == (len(lines), 0)
    assert consume_all(kafka.bootstrap, names["dlq"]) == []
    assert _all_committed(kafka, names)
    assert_recorded_once(url, lines)
    assert metrics.registry.get_sample_value("quipu_events_total", {"outcome": "appended"}) == len(lines)


def test_an_unknown_committer_is_refused_by_name_before_the_worker_touches_a_broker(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "adapters.cli", "worker", "--database", f"sqlite:///{tmp_path}/ledger.db",
            "--brokers", "127.0.0.1:9", "--committer", "fork"]  # fmt: skip
    run = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode != 0
    assert "committer (QUIPU_COMMITTER): 'fork' is not one of process, thread" in run.stdout + run.stderr
    assert not (tmp_path / "ledger.db").exists()  # refused before anything was opened


def test_a_worker_stuck_after_the_stop_signal_is_abandoned_after_the_grace_period() -> None:
    """What `quipu worker` does on SIGTERM, without a broker: the run ends in time, or is given up on."""
    from adapters.cli_worker import run_until_stopped

    async def prompt(stop: asyncio.Event) -> str:
        await stop.wait()
        return "stopped"

    async def stuck(stop: asyncio.Event) -> str:
        await stop.wait()
        await asyncio.sleep(3600)  # leaving a consumer group that never finishes rebalancing
        return "never"

    async def finished(_: asyncio.Event) -> str:
        return "drained"

    async def scenario(run: Any) -> tuple[Any, float]:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.05, stop.set)
        began = time.monotonic()
        result = await run_until_stopped(run, stop, grace_s=0.3)
        return result, time.monotonic() - began

    assert asyncio.run(scenario(prompt))[0] == "stopped"
    assert asyncio.run(scenario(finished))[0] == "drained"
    result, took = asyncio.run(scenario(stuck))
    assert result is None and 0.3 <= took < 5
