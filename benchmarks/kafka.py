"""Kafka → ledger: events/s through one ``quipu worker`` and its consumer lag over time.

For each backend, a backlog of demo events keyed by stream name is produced to a fresh 4-partition topic,
then one worker (a real ``quipu worker`` process) drains it into a fresh ledger. Its events/s is the pace
between the log's first and last commit, by the record times the hash chain keeps for each event; the lag
(end offsets minus the group's committed offsets, summed over partitions) is sampled every half second. The
log is verified afterwards (head = events, hash chain intact).

Beside it, on the same events and machine:
- **ledger only**: the same events posted in-process in batches of the same size (the ceiling the worker
  works under: ``LedgerService.post`` itself);
- **aiokafka consume only**: consume and commit the topic with no append (the client's ceiling);
- **faust consume only** (``--faust``): a faust-streaming agent taking batches with ``noack_take`` and
  acking them, no append. Why the worker is not a faust agent (ADR 0022).

    python -m benchmarks.kafka --quick                 # 10,000 events, SQLite
    python -m benchmarks.kafka --backend both --faust  # 40,000 events, SQLite and PostgreSQL

The broker is the development one (shared/KAFKA.md), started here on a free port with a fresh data
directory unless ``--brokers`` names a running one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # type: ignore[import-untyped]

from adapters.bootstrap import open_ledger
from adapters.kafka.broker import ensure_topics
from benchmarks.common import (
    DEFAULT_RESULTS_DIR,
    backends,
    batches,
    check_pg,
    default_pg_url,
    demo_lines,
    drop_schema,
    machine,
    new_schema_name,
    pg_schema_url,
    print_table,
    probe_note,
    write_json,
)
from domain.catalog import parse_event, to_current
from domain.integrity import verify_chain
from domain.rules import stream_name

ROOT: Final = Path(__file__).resolve().parents[1]
PARTITIONS: Final = 4
FULL_EVENTS: Final = 40_000
QUICK_EVENTS: Final = 10_000
SEED: Final = 4242
SAMPLE_S: Final = 0.5
#: Give up on a run that makes no progress for this long (a hung worker, not a slow one).
STALL_S: Final = 120.0
FAUST_EVENTS_MAX: Final = 10_000


@dataclass(slots=True)
class KafkaCase:
    """One backend's figures."""

    backend: str
    events: int
    batch: int
    workers: int
    """``quipu worker`` processes in one consumer group, sharing the topic's partitions."""
    worker_events_per_s: float
    """Events/s between the first and the last commit, by the chain's record times (:func:`commit_rate`)."""
    worker_seconds: float
    startup_s: float
    """From starting the worker process to the first event in the log (imports, ledger, group join)."""
    ledger_only_events_per_s: float
    verified: bool
    lag: list[tuple[float, int, int]] = field(default_factory=list)
    """(seconds since the first append, events in the log, consumer lag in messages)"""
    problems: list[str] = field(default_factory=list)


@contextlib.contextmanager
def broker(explicit: str | None) -> Iterator[str]:
    """A running broker's bootstrap address: the one given, or a fresh one for this run."""
    if explicit:
        yield explicit
        return
    from tests.kafka_broker import LocalBroker, noida_binary

    binary = noida_binary()
    if binary is None:
        raise SystemExit("noida-db is not installed (pip install noida-db==0.2.3), and no --brokers given")
    with tempfile.TemporaryDirectory(prefix="quipu-bench-kafka-") as tmp:
        local = LocalBroker(binary, Path(tmp))
        local.start()
        try:
            yield local.bootstrap
        finally:
            local.stop()


def keyed(lines: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
    return [(stream_name(to_current(parse_event(line))).encode(), line) for line in lines]


async def produce(bootstrap: str, topic: str, messages: Sequence[tuple[bytes, bytes]]) -> None:
    await ensure_topics(bootstrap, [topic], PARTITIONS)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, v, key=k) for k, v in messages])
    finally:
        await producer.stop()


class LagProbe:
    """The group's lag (end offsets minus committed offsets, summed over partitions) through one client."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        self.runner = asyncio.Runner()
        self.parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        self.consumer: Any = self.runner.run(self._start(bootstrap, group))

    @staticmethod
    async def _start(bootstrap: str, group: str) -> Any:
        # Not a group member (it subscribes to nothing): it only reads the group's committed offsets.
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await consumer.start()
        return consumer

    def lag(self) -> int:
        return self.runner.run(self._lag())

    async def _lag(self) -> int:
        ends = await self.consumer.end_offsets(self.parts)
        behind = 0
        for tp in self.parts:
            behind += ends[tp] - ((await self.consumer.committed(tp)) or 0)
        return behind

    def close(self) -> None:
        self.runner.run(self.consumer.stop())
        self.runner.close()


def ledger_only(url: str, lines: Sequence[bytes], batch: int) -> float:
    with open_ledger(url) as ledger:
        start = time.perf_counter()
        for chunk in batches(lines, batch):
            ledger.service.post(chunk)
        return len(lines) / (time.perf_counter() - start)


def run_worker(url: str, bootstrap: str, topic: str, events: int, batch: int, log: Path, workers: int = 1) -> KafkaCase:
    """Drain ``topic`` into the ledger at ``url`` with ``workers`` processes in one group; sample head and lag."""
    group = f"bench-{uuid.uuid4().hex[:8]}"
    with open_ledger(url):  # the schema exists before the worker and the sampler open it
        pass
    args = [sys.executable, "-m", "adapters.cli", "worker", "--database", url, "--brokers", bootstrap]
    args += ["--topic", topic, "--group", group, "--dlq-topic", f"{topic}-dlq", "--batch", str(batch)]
    lag: list[tuple[float, int, int]] = []
    probe = LagProbe(bootstrap, topic, group)
    with log.open("wb") as out, open_ledger(url, migrate=False) as reader, contextlib.closing(probe):
        launched = time.perf_counter()
        procs = [
            subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            for _ in range(workers)
        ]
        try:
            first = last = 0.0
            progress_at, last_head = time.perf_counter(), -1
            while True:
                head = reader.store.head()
                now = time.perf_counter()
                if head and not first:
                    first = now
                if head != last_head:
                    progress_at, last_head = now, head
                lag.append((round(now - first, 2) if first else 0.0, head, probe.lag()))
                if head >= events:
                    last = now
                    break
                if any(p.poll() is not None for p in procs) or now - progress_at > STALL_S:
                    raise RuntimeError(f"worker stalled at {head}/{events}: {log.read_text()[-2000:]}")
                time.sleep(SAMPLE_S)
            # Until the last offsets are committed, so the final sample shows the lag at zero.
            while (behind := probe.lag()) > 0 and all(p.poll() is None for p in procs):
                time.sleep(0.1)
            lag.append((round(time.perf_counter() - first, 2), events, behind))
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
            for proc in procs:
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:  # a member stuck leaving its group: the figures are taken
                    proc.kill()
                    proc.wait()
        problems: list[str] = []
        if reader.store.head() != events:
            problems.append(f"head {reader.store.head()} != {events}")
        if (broken := verify_chain(reader.store).broken) is not None:
            problems.append(f"chain broken at {broken}")
        rate = commit_rate(reader.store)
    seconds = max(last - first, 1e-9)
    if rate is None:  # one commit held everything: only the sampled clock is left
        rate = events / seconds
    else:
        seconds = events / rate
    return KafkaCase("", events, batch, workers, rate, seconds, first - launched, 0.0, not problems, lag, problems)


def commit_rate(store: Any) -> float | None:
    """Events/s between the log's first and last commit, from the times the chain recorded for them.

    The sampler looks at the log every half second, so its first and last sightings were each up to 0.5 s
    late: over a 2.5 s run, ±20%, and the figures came out in steps (13.2k, 15.9k, 19.9k for 40,000 events).
    The chain's record times are the commits' own. The first commit's events are left out (its work happened
    before its time), so this is the pace of everything after it. ``None`` when one commit held everything.
    """
    times: list[int] = []
    after = 0
    while page := store.read(after, 10_000):
        times.extend(r.recorded_at_us for r in page)
        after = page[-1].position
    if not times or times[-1] <= times[0]:
        return None
    after_first = sum(1 for t in times if t > times[0])
    return after_first / ((times[-1] - times[0]) / 1e6)


async def consume_only(bootstrap: str, topic: str, events: int, batch: int) -> float:
    """Consume and commit every message with a fresh group, appending nothing."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"bench-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=batch,
    )  # fmt: skip
    await consumer.start()
    try:
        got, start = 0, 0.0
        while got < events:
            polled = await consumer.getmany(timeout_ms=1000, max_records=batch)
            if polled and not start:
                start = time.perf_counter()
            got += sum(len(r) for r in polled.values())
            if polled:
                await consumer.commit({tp: r[-1].offset + 1 for tp, r in polled.items()})
        return got / (time.perf_counter() - start)
    finally:
        await consumer.stop()


def faust_only(bootstrap: str, topic: str, events: int, batch: int, tmp: Path) -> float:
    """A faust agent in its own process (``_faust`` below) taking and acking batches, appending nothing."""
    args = [sys.executable, "-m", "benchmarks.kafka", "_faust", bootstrap, topic, str(events), str(batch), str(tmp)]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    result = tmp / "faust.json"
    if not result.exists():
        raise RuntimeError(f"faust run wrote no result: {done.stdout[-2000:]} {done.stderr[-2000:]}")
    rate: float = json.loads(result.read_text())["events_per_s"]
    return rate


def _faust_agent(bootstrap: str, topic: str, events: int, batch: int, datadir: str) -> None:  # pragma: no cover
    """The faust-streaming way: an agent over the topic, ``noack_take`` batches, ack each event after."""
    import faust

    app = faust.App(
        f"bench-faust-{uuid.uuid4().hex[:8]}", broker=f"kafka://{bootstrap}", value_serializer="raw",
        key_serializer="raw", web_enabled=False, topic_disable_leader=True, consumer_auto_offset_reset="earliest",
        datadir=datadir, broker_commit_every=batch, broker_commit_interval=1.0,
    )  # fmt: skip
    source = app.topic(topic, key_type=bytes, value_type=bytes)
    seen = {"n": 0, "start": 0.0}

    @app.agent(source)
    async def drain(stream: Any) -> None:
        async for taken in stream.noack_take(batch, within=0.2):
            if not seen["start"]:
                seen["start"] = time.perf_counter()
            for event in taken:
                await stream.ack(event)
            seen["n"] += len(taken)
            if seen["n"] >= events:
                rate = seen["n"] / (time.perf_counter() - seen["start"])
                # A file, not stdout: faust turns the worker's stdout into log lines.
                (Path(datadir) / "faust.json").write_text(json.dumps({"events_per_s": rate}))
                os._exit(0)  # faust's own shutdown takes seconds and measures nothing

    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()


def run(
    names: Sequence[str], events: int, batch: int, bootstrap: str, pg_url: str, faust: bool, workers: Sequence[int]
) -> dict[str, Any]:
    lines = demo_lines(SEED, events)
    messages = keyed(lines)
    cases: list[KafkaCase] = []
    consume_rate = faust_rate = 0.0
    with tempfile.TemporaryDirectory(prefix="quipu-bench-kafka-run-") as tmp:
        for backend in names:
            topic = f"bench-in-{uuid.uuid4().hex[:8]}"
            asyncio.run(produce(bootstrap, topic, messages))
            urls, schemas = [], []
            for role in ("direct", *(f"workers{n}" for n in workers)):
                if backend == "sqlite":
                    urls.append(f"sqlite:///{Path(tmp).resolve()}/{backend}-{role}.db")
                else:
                    schemas.append(new_schema_name(f"bench_kafka_{role}"))
                    urls.append(pg_schema_url(pg_url, schemas[-1]))
            try:
                direct = ledger_only(urls[0], lines, batch)
                for n, url in zip(workers, urls[1:], strict=True):
                    log = Path(tmp) / f"{backend}-workers{n}.log"
                    case = run_worker(url, bootstrap, topic, events, batch, log, workers=n)
                    case.backend, case.ledger_only_events_per_s = backend, direct
                    cases.append(case)
                    print(
                        f"  {backend:10} {events:,} events, {n} worker(s): {case.worker_events_per_s:,.0f} events/s "
                        f"(ledger only {direct:,.0f}), startup {case.startup_s:.1f}s, "
                        f"{'verified' if case.verified else 'FAILED: ' + '; '.join(case.problems)}",
                        flush=True,
                    )
            finally:
                for schema in schemas:
                    drop_schema(pg_url, schema)
            if not consume_rate:
                consume_rate = asyncio.run(consume_only(bootstrap, topic, events, batch))
                print(f"  aiokafka consume+commit only: {consume_rate:,.0f} messages/s", flush=True)
            if faust and not faust_rate:
                faust_rate = faust_only(bootstrap, topic, min(events, FAUST_EVENTS_MAX), batch, Path(tmp))
                print(f"  faust noack_take+ack only: {faust_rate:,.0f} messages/s", flush=True)
    return {"cases": cases, "consume_only_per_s": consume_rate, "faust_only_per_s": faust_rate or None}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.kafka", description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="sqlite")
    ap.add_argument("--events", type=int, help=f"events (default {FULL_EVENTS:,}; --quick {QUICK_EVENTS:,})")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--batch", type=int, default=1000, help="worker --batch and the ledger-only batch size")
    ap.add_argument("--brokers", help="a running broker (default: start one for this run)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1], help="worker counts to compare, e.g. 1 2 4")
    ap.add_argument("--committer", choices=("process", "thread"), default="process",
                    help="the workers' --committer (ADR 0045; default process)")  # fmt: skip
    ap.add_argument("--faust", action="store_true", help=f"also time a faust agent (≤{FAUST_EVENTS_MAX:,} events)")
    ap.add_argument("--pg-url", default=default_pg_url())
    ap.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR, help="where kafka.json goes")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:1] == ["_faust"]:  # the faust agent's own process (see faust_only)
        _faust_agent(raw[1], raw[2], int(raw[3]), int(raw[4]), raw[5])
        return 0
    args = parse_args(raw)
    events: int = args.events or (QUICK_EVENTS if args.quick else FULL_EVENTS)
    names = backends(args.backend)
    if "postgresql" in names and (problem := check_pg(args.pg_url)) is not None:
        print(f"PostgreSQL unreachable at {args.pg_url}: {problem}", file=sys.stderr)
        return 2
    os.environ["QUIPU_COMMITTER"] = args.committer  # the worker processes inherit it
    print(f"kafka: backends={','.join(names)} events={events:,} batch={args.batch} partitions={PARTITIONS} "
          f"committer={args.committer}")  # fmt: skip
    with broker(args.brokers) as bootstrap:
        found = run(names, events, args.batch, bootstrap, args.pg_url, args.faust, args.workers)
    cases: list[KafkaCase] = found["cases"]
    print()
    print_table(
        ("backend", "workers", "events", "batch", "worker events/s", "ledger only events/s", "startup s", "verified"),
        [(c.backend, c.workers, c.events, c.batch, c.worker_events_per_s, c.ledger_only_events_per_s, c.startup_s,
          c.verified) for c in cases],
    )  # fmt: skip
    for c in cases:
        print(
            f"\n{c.backend}, {c.workers} worker(s): consumer lag over time (s since first append, events in log, lag)"
        )
        for t, head, behind in c.lag[:: max(1, len(c.lag) // 12)] + c.lag[-1:]:
            print(f"  {t:7.1f}  {head:>8,}  {behind:>8,}")
    out = args.results_dir / "kafka.json"
    write_json(out, {
        "benchmark": "kafka",
        "mode": "quick" if args.quick else "full",
        "params": {"events": events, "batch": args.batch, "partitions": PARTITIONS, "workers": args.workers,
                   "committer": args.committer},
        "machine": (used := machine(args.pg_url if "postgresql" in names else None)),
        "results": [asdict(c) for c in cases],
        "consume_only_per_s": found["consume_only_per_s"],
        "faust_only_per_s": found["faust_only_per_s"],
    })  # fmt: skip
    print(f"\n{probe_note(used)}\nwrote {out}")
    return 0 if all(c.verified for c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
