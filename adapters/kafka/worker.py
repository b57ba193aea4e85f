"""``quipu worker``: consume the inbound topic in batches, append each batch, then commit its offsets.

The loop is plain aiokafka with manual commits (ADR 0022 says why not a faust agent):

1. ``getmany`` up to ``batch`` messages (each partition's messages in offset order);
2. stage them (parse, validate, check keys: :func:`~adapters.kafka.ingest.stage`) and have them decided and
   appended: by the worker's committer process (the default; ADR 0045), which is sent the next batch while it
   appends this one, or with ``--committer thread`` on the worker's database thread, so the event loop keeps
   the group's heartbeats going while the database works;
3. produce the refusals to the dead-letter topic and wait for the broker's acknowledgements;
4. only then commit the offsets after the batch. Batches are answered, and steps 3 and 4 taken, in the order
   they were consumed.

A crash anywhere before step 4 redelivers the batch, and the ledger reports the events already recorded
as duplicates: at-least-once delivery plus an idempotent append records each event exactly once. A
database that fails (down, locked, a conflict storm) is retried with back-off on the same messages and
nothing is committed meanwhile; those messages never go to the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sqlite3
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, TypeVarTuple, Unpack

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.errors import CommitFailedError  # type: ignore[import-untyped]
from opentelemetry import trace
from opentelemetry.trace import Span

from adapters.bootstrap import DATABASE_LOST, DatabaseUnavailable, Ledger, database_url, first_line, open_ledger
from adapters.committer import DEPTH, CommitterLost, CommitterProcess
from adapters.http.metrics import ApiMetrics
from adapters.kafka.broker import DEFAULT_PARTITIONS, ensure_topics
from adapters.kafka.dead_letters import DeadLetter
from adapters.kafka.ingest import BatchOutcome, Incoming, Staged, ingest_batch, outcome_of, stage
from adapters.observability.kafka import log_batch
from adapters.observability.tracing import batch_span, instrument, span_carrier, start_batch_span
from domain.ports import WriteConflict
from domain.service import PostResult

#: Failures of the database, not of the message: retried, never dead-lettered. A WriteConflict here
#: means the service's own retries ran out (writers fighting over one stream); later it will pass.
TRANSIENT: Final = (DatabaseUnavailable, *DATABASE_LOST, sqlite3.OperationalError, WriteConflict, OSError)
T = TypeVar("T")
Ts = TypeVarTuple("Ts")

#: The first wait after a database failure; it doubles up to ``retry_max_s``.
RETRY_FIRST_S: Final = 0.5
#: How long ``getmany`` waits for messages before the loop looks at the stop flag again.
POLL_TIMEOUT_MS: Final = 500


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """Where to read, where to write, and how much at once."""

    database: str | None
    brokers: str
    topic: str
    group: str
    dlq_topic: str
    batch: int = 1000
    """Messages per ``getmany`` and so per ``post`` call (the service takes at most 10,000)."""
    retry_max_s: float = 30.0
    """The longest wait between two attempts at a batch the database refused."""
    partitions: int = DEFAULT_PARTITIONS
    """Partitions of the inbound and dead-letter topics when the worker has to create them."""
    committer: str = "process"
    """Where batches are decided and appended: ``process`` (a committer process, ADR 0045) or ``thread`` (the
    worker's database thread)."""


@dataclass(slots=True)
class WorkerStats:
    """Running totals, reported while the worker runs and when it stops."""

    messages: int = 0
    appended: int = 0
    duplicates: int = 0
    dead: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    retries: int = 0
    commit_failures: int = 0
    lag: dict[int, int] = field(default_factory=dict)
    """Per partition: the partition's high watermark minus the worker's position, after the last batch."""

    def line(self) -> str:
        dead = ", ".join(f"{k} {v}" for k, v in sorted(self.dead.items())) or "0"
        return (
            f"messages {self.messages}, appended {self.appended}, duplicates {self.duplicates}, dead letters {dead}, "
            f"batches {self.batches}, database retries {self.retries}, lag {sum(self.lag.values())}"
        )


class WorkerMetrics:
    """The worker's Prometheus series, on the same registry class the HTTP API uses."""

    def __init__(self) -> None:
        from prometheus_client import Counter as PromCounter
        from prometheus_client import Gauge

        self.api = ApiMetrics()
        self.registry = self.api.registry
        self.lag = Gauge(
            "quipu_kafka_consumer_lag", "Messages behind the partition's high watermark", ["topic", "partition"],
            registry=self.registry,
        )  # fmt: skip
        self.dead = PromCounter(
            "quipu_kafka_dead_letters_total", "Messages sent to the dead-letter topic", ["kind"],
            registry=self.registry,
        )  # fmt: skip


class IngestWorker:
    """One consumer in the group: every partition it is assigned goes through the same loop."""

    def __init__(
        self,
        settings: WorkerSettings,
        report: Callable[[str], None] = lambda _: None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.report = report
        self.metrics = metrics
        self.stats = WorkerStats()
        # One thread owns the ledger: its SQLite and psycopg connections are only ever used from it.
        self._db = ThreadPoolExecutor(1, thread_name_prefix="quipu-ledger")
        self._ledger: Ledger | None = None

    async def run(self, stop: asyncio.Event) -> WorkerStats:
        """Consume until ``stop`` is set; the batch in hand is finished and committed first."""
        s = self.settings
        await ensure_topics(s.brokers, [s.topic, s.dlq_topic], s.partitions)
        # Opened here in either mode, so a ledger that cannot be opened fails the start at once, and the ledger and
        # its views exist before anything is consumed. A committer process then opens its own.
        self._ledger = await self._on_db(_open_traced, s.database, True)
        if s.committer == "process":
            await self._on_db(self._close_ledger)
        consumer = AIOKafkaConsumer(
            s.topic,
            bootstrap_servers=s.brokers,
            group_id=s.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=s.batch,
            # Aborted transactional writes of a producer must never be appended.
            isolation_level="read_committed",
        )
        producer = AIOKafkaProducer(bootstrap_servers=s.brokers, acks="all", enable_idempotence=True, linger_ms=5)
        await producer.start()
        try:
            await consumer.start()
            try:
                if s.committer == "process":
                    await self._loop_committed(consumer, producer, stop)
                else:
                    await self._loop(consumer, producer, stop)
            finally:
                # Leaves the group at once, so the partitions move to the other workers now.
                await consumer.stop()
        finally:
            await producer.stop()
            await self._on_db(self._close_ledger)
            self._db.shutdown(wait=True)
        return self.stats

    async def _loop(self, consumer: Any, producer: Any, stop: asyncio.Event) -> None:
        last_report = time.monotonic()
        while not stop.is_set():
            polled: dict[Any, list[Any]] = await consumer.getmany(
                timeout_ms=POLL_TIMEOUT_MS, max_records=self.settings.batch
            )
            if polled:
                messages = _messages(polled)
                # No fetching while the database thread works: every fetch response wakes the event loop,
                # and each wake-up takes the GIL from the thread that is posting. Measured with the
                # development broker, posting went ~1.5x faster paused (ADR 0022). Heartbeats go on.
                held = consumer.assignment()
                consumer.pause(*held)
                # One span per batch, linked to each message's traceparent; the append is its child.
                with batch_span(self.settings.topic, self.settings.group,
                                [(m.partition, m.offset, m.headers) for m in messages]):  # fmt: skip
                    try:
                        outcome = await self._post_until_done(messages, stop)
                    finally:
                        # A rebalance during the append may have taken some of them away.
                        consumer.resume(*(tp for tp in held if tp in consumer.assignment()))
                    if outcome is None:
                        return  # stopped while the database was away: nothing committed, all redelivered
                    await self._send_dead_letters(producer, outcome.dead)
                    await self._commit(consumer, {tp: records[-1].offset + 1 for tp, records in polled.items()})
                    self._count(messages, outcome)
                    log_batch(messages, outcome)
            await self._measure_lag(consumer)
            if time.monotonic() - last_report >= 5.0:
                self.report(self.stats.line())
                last_report = time.monotonic()

    async def _loop_committed(self, consumer: Any, producer: Any, stop: asyncio.Event) -> None:
        """The loop with a committer process (ADR 0045): while it decides and appends a batch, the next is fetched
        and staged here and sent behind it (at most :data:`~adapters.committer.DEPTH` in flight). Each batch's
        dead letters and offsets are handled when its answer comes, in consuming order, as in :meth:`_loop`."""
        committer = CommitterProcess(database_url(self.settings.database), stop_after_failure=True,
                                     service="quipu-worker")  # fmt: skip
        in_flight: deque[_InFlight] = deque()
        fetching: asyncio.Task[dict[Any, list[Any]]] | None = None
        last_report = time.monotonic()
        try:
            if not await self._restart(committer, in_flight, None, stop):
                return
            while True:
                if fetching is None and len(in_flight) < DEPTH and not stop.is_set():
                    consumer.resume(*consumer.assignment())
                    fetching = asyncio.ensure_future(
                        consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=self.settings.batch)
                    )
                waits: set[asyncio.Future[Any]] = {fetching} if fetching is not None else set()
                if in_flight:
                    waits.add(in_flight[0].answer)
                if not waits:
                    return  # stopped, and every batch in flight answered and committed
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if fetching is not None and fetching.done():
                    polled, fetching = fetching.result(), None
                    if polled:
                        # No fetching while batches are in flight: every fetch response wakes the event loop, and
                        # the development broker answers an idle fetch at once, so a running fetcher spins.
                        consumer.pause(*consumer.assignment())
                        in_flight.append(self._send(committer, polled))
                    else:
                        await self._measure_lag(consumer)
                while in_flight and in_flight[0].answer.done():
                    try:
                        results = in_flight[0].answer.result()
                    except CommitterLost as exc:
                        if not await self._restart(committer, in_flight, exc, stop):
                            return  # stopped while the database was away: nothing more committed, all redelivered
                        continue
                    await self._finish(consumer, producer, in_flight.popleft(), results)
                if time.monotonic() - last_report >= 5.0:
                    self.report(self.stats.line())
                    last_report = time.monotonic()
        finally:
            if fetching is not None:
                fetching.cancel()
            for left in in_flight:
                left.span.end()
            await committer.close()

    def _send(self, committer: CommitterProcess, polled: dict[Any, list[Any]]) -> _InFlight:
        """Stage a fetched batch here and send it to the committer, behind any batch already in flight."""
        messages = _messages(polled)
        # One span per batch, linked to each message's traceparent; the committer's append is its child.
        span = start_batch_span(self.settings.topic, self.settings.group,
                                [(m.partition, m.offset, m.headers) for m in messages])  # fmt: skip
        staged = stage(messages)
        carrier = span_carrier(span)
        return _InFlight(polled, staged, span, carrier, committer.send(staged.prepared, carrier, []))

    async def _finish(self, consumer: Any, producer: Any, done: _InFlight, results: list[PostResult]) -> None:
        """An answered batch: its dead letters acknowledged, then its offsets committed."""
        with trace.use_span(done.span, end_on_exit=True):
            outcome = outcome_of(done.staged, results)
            await self._send_dead_letters(producer, outcome.dead)
            await self._commit(consumer, {tp: records[-1].offset + 1 for tp, records in done.polled.items()})
            self._count(done.staged.messages, outcome)
            log_batch(done.staged.messages, outcome)
        await self._measure_lag(consumer)

    async def _restart(
        self, committer: CommitterProcess, in_flight: deque[_InFlight], failure: Exception | None, stop: asyncio.Event
    ) -> bool:
        """Start a committer (after ``failure``: a fresh one, with back-off) and send it every batch in flight
        again, in order; ``False`` when stopped first. The committer that failed exited after its failed batch
        (``stop_after_failure``), so no batch behind it was appended ahead of it; a batch appended before the
        failure answers duplicates the second time."""
        delay = RETRY_FIRST_S
        while True:
            if failure is not None:
                self.stats.retries += 1
                self.report(f"the committer could not append ({first_line(failure)}); retrying in {delay:.1f} s")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                if stop.is_set():
                    return False
                delay = min(delay * 2, self.settings.retry_max_s)
            try:
                await committer.start()
            except CommitterLost as exc:
                failure = exc
                continue
            for item in in_flight:
                item.answer = committer.send(item.staged.prepared, item.trace, [])
            return True

    async def _post_until_done(self, messages: Sequence[Incoming], stop: asyncio.Event) -> BatchOutcome | None:
        """Post the batch, retrying database failures with back-off; ``None`` when stopped before it passed."""
        delay = RETRY_FIRST_S
        while True:
            try:
                if self._ledger is None:
                    self._ledger = await self._on_db(_open_traced, self.settings.database, False)
                ledger = self._ledger
                return await self._on_db(ingest_batch, ledger.service, messages)
            except TRANSIENT as exc:
                self.stats.retries += 1
                self.report(f"database failed ({type(exc).__name__}: {first_line(exc)}); retrying in {delay:.1f} s")
                # A broken connection stays broken: open the ledger afresh on the next attempt.
                await self._on_db(self._close_ledger)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                if stop.is_set():
                    return None
                delay = min(delay * 2, self.settings.retry_max_s)

    async def _send_dead_letters(self, producer: Any, dead: Sequence[DeadLetter]) -> None:
        if not dead:
            return
        pending = [
            await producer.send(self.settings.dlq_topic, d.value, key=d.key, headers=d.dlq_headers()) for d in dead
        ]
        # Every dead letter acknowledged (acks=all) before the offsets move past its original.
        await asyncio.gather(*pending)

    async def _commit(self, consumer: Any, offsets: dict[Any, int]) -> None:
        try:
            await consumer.commit(offsets)
        except CommitFailedError as exc:
            # The group rebalanced while the batch was being appended: these partitions belong to another
            # member now, which redelivers from the last commit; the ledger calls them duplicates.
            self.stats.commit_failures += 1
            self.report(f"offsets not committed (group rebalanced): {first_line(exc)}")

    async def _measure_lag(self, consumer: Any) -> None:
        lag: dict[int, int] = {}
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue  # no fetch answered for this partition yet
            lag[tp.partition] = max(0, high - await consumer.position(tp))
        self.stats.lag = lag
        if self.metrics is not None:
            for partition, behind in lag.items():
                self.metrics.lag.labels(self.settings.topic, str(partition)).set(behind)

    def _count(self, messages: Sequence[Incoming], outcome: BatchOutcome) -> None:
        st = self.stats
        st.messages += len(messages)
        st.appended += outcome.appended
        st.duplicates += outcome.duplicates
        st.batches += 1
        for d in outcome.dead:
            st.dead[d.kind.value] += 1
        if self.metrics is not None:
            self.metrics.api.count(outcome.results)
            for d in outcome.dead:
                self.metrics.dead.labels(d.kind.value).inc()

    def _close_ledger(self) -> None:
        ledger, self._ledger = self._ledger, None
        if ledger is not None:
            with contextlib.suppress(Exception):  # closing a connection the server already dropped
                ledger.close()

    async def _on_db(self, fn: Callable[[Unpack[Ts]], T], *args: *Ts) -> T:
        # In a copy of this task's context, so the batch's span is the parent of the append's.
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self._db, lambda: context.run(fn, *args))


@dataclass(slots=True)
class _InFlight:
    """A batch sent to the committer process and not yet answered."""

    polled: dict[Any, list[Any]]
    staged: Staged
    span: Span
    """The batch's span: open until its dead letters are sent and its offsets committed."""
    trace: dict[str, str]
    """Its trace context, sent with it so the committer's append span is its child."""
    answer: asyncio.Future[list[PostResult]]


def _messages(polled: dict[Any, list[Any]]) -> list[Incoming]:
    """A ``getmany`` result as the ledger's messages, each partition's in offset order."""
    return [
        Incoming(tp.topic, tp.partition, r.offset, r.key, r.value, tuple(r.headers or ()))
        for tp, records in polled.items()
        for r in records
    ]


def _open_traced(url: str | None, migrate: bool) -> Ledger:
    """The ledger with a ``quipu.append`` span around each post (a no-op unless tracing is on)."""
    return instrument(open_ledger(url, migrate))
