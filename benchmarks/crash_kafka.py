"""The Kafka role of the crash harness, and the broker-restart scenario.

A producer thread in the harness sends the role's slice to the inbound topic of a real broker (the noida-db
binary the tests use, ``tests/kafka_broker.py``), keyed by stream (ADR 0010), as it is released; a send
that is not acknowledged is sent again (at least once: the topic may then hold an event twice, which the
ledger must record once). ``quipu worker`` children consume it; an event counts as acknowledged once the
worker's group has committed an offset past it. The role is done when every event was produced and the
group's committed offsets have reached the end of every partition.

The development broker never evicts a group member that died without leaving, so a worker that died is
replaced in a new consumer group that is given the old group's committed offsets first: what Kafka does
after the dead member's session timeout (the replacement resumes from the committed offsets). A limit of
this broker, not of Kafka (shared/KAFKA.md, ADR 0022). The broker also loses some messages it had
acknowledged (acks=all) when it is SIGTERMed under load; the role re-produces those at the end and
replays the dead letters their reordering caused, and the report counts both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # type: ignore[import-untyped]

from adapters.kafka.broker import ensure_topics
from adapters.kafka.dead_letters import REASON, SOURCE_OFFSET, SOURCE_PARTITION
from benchmarks.crash_cli import ProjectRole
from benchmarks.crash_common import (
    Child,
    Context,
    Disruptor,
    Event,
    Release,
    Restarter,
    Role,
    ScenarioReport,
    backend_of,
    cli_args,
    create_store,
    describe,
    finish,
    make_events,
    supervise,
)
from tests.kafka_broker import LocalBroker, noida_binary

PARTITIONS: Final = 4
#: Messages per send round of the producer (the acknowledgements of a round are awaited together).
PRODUCE_CHUNK: Final = 200
PROBE_EVERY_S: Final = 0.5
#: The worker's running totals line (``WorkerStats.line``).
_TOTALS: Final = re.compile(r"appended \d+, duplicates (\d+)")


class NoBroker(RuntimeError):
    """noida-db is not installed, so no broker can be started."""


@dataclass
class Topics:
    inbound: str
    dlq: str
    group: str

    @classmethod
    def fresh(cls) -> Topics:
        tag = uuid.uuid4().hex[:8]
        return cls(f"crash-in-{tag}", f"crash-dlq-{tag}", f"crash-{tag}")


@contextlib.contextmanager
def local_broker(work: Path | None = None) -> Iterator[LocalBroker]:
    """A broker of this run's own, on a free port with a fresh data directory."""
    # The harness's own producer and probe see the broker go away on purpose; aiokafka logs each refused
    # connection as an error.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    binary = noida_binary()
    if binary is None:
        raise NoBroker("noida-db is not installed (pip install noida-db==0.2.3; shared/KAFKA.md)")
    with tempfile.TemporaryDirectory(prefix="quipu-crash-kafka-", dir=work) as tmp:
        broker = LocalBroker(binary, Path(tmp))
        broker.start()
        try:
            yield broker
        finally:
            broker.stop()


class _Unacknowledged(Exception):
    """Some sends of a round were not acknowledged."""


class Producer(threading.Thread):
    """Produces the released part of a slice in order, re-sending whatever the broker did not acknowledge."""

    def __init__(self, bootstrap: str, topic: str, events: Sequence[Event], released: Callable[[], int]) -> None:
        super().__init__(name="crash-producer", daemon=True)
        self.bootstrap = bootstrap
        self.topic = topic
        self.events = list(events)
        self.released = released
        self.stop = threading.Event()
        self.acked: set[str] = set()
        """Ids of the events the broker acknowledged (acks=all)."""
        self.acked_upto = 0
        self.sends = 0
        self.resends = 0
        self.errors: Counter[str] = Counter()
        self._extra: list[Event] = []
        self._lock = threading.Lock()

    @property
    def finished(self) -> bool:
        with self._lock:
            return self.acked_upto >= len(self.events) and not self._extra

    def send_again(self, events: Sequence[Event]) -> None:
        """Produce these once more (events the broker acknowledged and then lost)."""
        with self._lock:
            self._extra.extend(events)

    def run(self) -> None:
        asyncio.run(self._main())

    def _next(self) -> tuple[list[Event], int]:
        """The next round to send, and how far into the slice it reaches."""
        with self._lock:
            if self._extra:
                extra, self._extra = self._extra, []
                return extra, self.acked_upto
        upto = min(self.released(), self.acked_upto + PRODUCE_CHUNK)
        return self.events[self.acked_upto : upto], upto

    async def _main(self) -> None:
        producer: Any = None
        pending: list[Event] = []
        upto = 0
        try:
            while not self.stop.is_set():
                if not pending:
                    pending, upto = self._next()
                    if not pending:
                        await asyncio.sleep(0.05)
                        continue
                try:
                    if producer is None:
                        producer = AIOKafkaProducer(
                            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
                            request_timeout_ms=10_000,
                        )  # fmt: skip
                        await producer.start()
                    pending = await self._send(producer, pending)
                    if pending:
                        raise _Unacknowledged
                except Exception as exc:
                    # The broker went away, or came back without the producer's sequence state (an idempotent
                    # producer's OutOfOrderSequenceNumber is fatal): a new producer sends what is left again.
                    self.errors[type(exc).__name__] += 1
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    producer = None
                    await asyncio.sleep(0.5)
                    continue
                with self._lock:
                    self.acked_upto = max(self.acked_upto, upto)
        finally:
            if producer is not None:
                with contextlib.suppress(Exception):
                    await producer.stop()

    async def _send(self, producer: Any, events: Sequence[Event]) -> list[Event]:
        """Send ``events``; return those whose acknowledgement did not come (to be sent again)."""
        futures = []
        for e in events:
            futures.append(await producer.send(self.topic, e.line, key=e.stream.encode()))
            self.sends += 1
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        again = []
        for e, meta in zip(events, outcomes, strict=True):
            if isinstance(meta, BaseException):
                self.errors[f"send: {type(meta).__name__}"] += 1
                again.append(e)
            else:
                self.acked.add(e.event_id)
        self.resends += len(again)
        return again


@dataclass(frozen=True, slots=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]


async def read_topic(bootstrap: str, topic: str) -> list[Record]:
    """Every message of ``topic`` now, partition by partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=10_000)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        out: list[Record] = []
        deadline = time.monotonic() + 120
        while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end")
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                out += [Record(tp.partition, r.offset, r.key, r.value, dict(r.headers or ())) for r in records]
        return out
    finally:
        await consumer.stop()


async def copy_offsets(bootstrap: str, topic: str, offsets: dict[int, int], group: str) -> None:
    """Commit ``offsets`` for ``group`` from a client that is no member (the group has none yet)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                request_timeout_ms=5000)  # fmt: skip
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in offsets]
        consumer.assign(parts)
        if offsets := {TopicPartition(topic, p): o for p, o in offsets.items() if o}:
            await consumer.commit(offsets)
    finally:
        await consumer.stop()


def _batch_duplicates(line: str) -> int | None:
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or doc.get("msg") != "batch" or not isinstance(doc.get("duplicates"), int):
        return None
    return int(doc["duplicates"])


def _event_id(value: bytes) -> str | None:
    try:
        return str(orjson.loads(value)["event_id"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


class OffsetProbe:
    """The group's committed offsets and the partitions' ends, through a client that is no group member."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        self.bootstrap, self.topic, self.group = bootstrap, topic, group
        self.runner = asyncio.Runner()
        self.consumer: Any = None

    def switch(self, group: str) -> None:
        self._drop()
        self.group = group

    def read(self) -> tuple[dict[int, int], dict[int, int]] | None:
        """(committed, end) per partition, or ``None`` while the broker does not answer."""
        try:
            return self.runner.run(asyncio.wait_for(self._read(), 5.0))
        except Exception:
            self._drop()
            return None

    async def _read(self) -> tuple[dict[int, int], dict[int, int]]:
        if self.consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap, group_id=self.group, enable_auto_commit=False,
                request_timeout_ms=4000,
            )  # fmt: skip
            await consumer.start()
            self.consumer = consumer
        parts = [TopicPartition(self.topic, p) for p in range(PARTITIONS)]
        ends = await self.consumer.end_offsets(parts)
        committed = {tp.partition: (await self.consumer.committed(tp)) or 0 for tp in parts}
        return committed, {tp.partition: ends[tp] for tp in parts}

    def _drop(self) -> None:
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                self.runner.run(asyncio.wait_for(self.consumer.stop(), 5.0))
            self.consumer = None

    def close(self) -> None:
        self._drop()
        self.runner.close()


class WorkerRole(Role):
    """``quipu worker`` kept running on the inbound topic while the producer fills it.

    A worker that died is replaced in a new consumer group holding the old group's committed offsets:
    the development broker never evicts a member that died without leaving, so the old group would never
    rebalance (Kafka evicts it after its session timeout; the replacement then resumes from the same
    offsets, which is what the copy reproduces).
    """

    name = "worker"
    #: Rounds of re-producing what the broker lost, and replaying dead letters, before the role gives up.
    MAX_SETTLE_ROUNDS: Final = 5

    def __init__(self, ctx: Context, events: Sequence[Event], broker: LocalBroker, topics: Topics) -> None:
        super().__init__(ctx, events)
        self.broker = broker
        self.topics = topics
        self.generation = 0
        self.producer: Producer | None = None
        self.probe = OffsetProbe(broker.bootstrap, topics.inbound, self.group)
        self.committed: dict[int, int] = {}
        self.ends: dict[int, int] = {}
        self._probed_at = 0.0
        self._replace = False
        self._committed_at_spawn = 0
        self.found_recorded = 0
        self.settle_rounds: list[dict[str, int]] = []
        self._replayed: set[tuple[int, int]] = set()
        self.in_topic: list[Record] | None = None
        self.dead: list[Record] = []

    @property
    def group(self) -> str:
        return f"{self.topics.group}-{self.generation}"

    def tick(self, now: float) -> None:
        if self.producer is None:
            asyncio.run(ensure_topics(self.broker.bootstrap, [self.topics.inbound, self.topics.dlq], PARTITIONS))
            self.producer = Producer(
                self.broker.bootstrap, self.topics.inbound, self.events,
                lambda: self.ctx.release.count(len(self.events)),
            )  # fmt: skip
            self.producer.start()
        child = self.child
        if (rc := self._reap(now)) is not None and child is not None:
            self._replace = rc != 0
            self._count_duplicates(child)
        if self.in_topic is not None:
            return
        if now - self._probed_at >= PROBE_EVERY_S:
            self._probed_at = now
            finished = self.producer.finished  # before the read: the ends must include its last sends
            if (read := self.probe.read()) is None:
                return
            self.committed, self.ends = read
            moved = sum(self.committed.values()) > self._committed_at_spawn
            if self.child is not None and moved and self.kill_at > now + 2.0:
                self.kill_at = now + self.ctx.rng.uniform(0.0, 2.0)
            if self.ctx.finishing and finished and self._drained():
                self._settle()
                return
        if self.child is None and self._may_start(now):
            self._start_worker(now)

    def _count_duplicates(self, child: Child) -> None:
        """Redelivered messages a worker found already recorded: from its per-batch log records when it
        writes them (JSON lines), else from its last running-totals line (a worker killed before printing
        one counts nothing there, so that is a lower bound)."""
        text = child.output(limit=2_000_000)
        batches = [_batch_duplicates(line) for line in text.splitlines() if '"batch"' in line]
        if any(n is not None for n in batches):
            self.found_recorded += sum(n or 0 for n in batches)
        elif found := _TOTALS.findall(text):
            self.found_recorded += int(found[-1])

    def _drained(self) -> bool:
        """The group committed exactly the end of every partition (a committed offset past the end means
        the broker lost messages the worker had read: not drained until the worker has reset and caught up)."""
        return bool(self.ends) and all(self.committed.get(p) == end for p, end in self.ends.items())

    def _settle(self) -> None:
        """At the end: what the broker acknowledged and then lost is produced again, and new dead letters are
        replayed to the inbound topic as an operator would; done when there is neither."""
        assert self.producer is not None
        topic = asyncio.run(read_topic(self.broker.bootstrap, self.topics.inbound))
        dead = asyncio.run(read_topic(self.broker.bootstrap, self.topics.dlq))
        held = {_event_id(r.value) for r in topic}
        lost = [e for e in self.events if e.event_id in self.producer.acked and e.event_id not in held]
        fresh = [d for d in dead if (d.partition, d.offset) not in self._replayed]
        if (lost or fresh) and len(self.settle_rounds) < self.MAX_SETTLE_ROUNDS:
            self.settle_rounds.append({"lost_by_broker": len(lost), "dead_letters_replayed": len(fresh)})
            self._replayed |= {(d.partition, d.offset) for d in fresh}
            replay = [Event(d.value, _event_id(d.value) or "", (d.key or b"").decode()) for d in fresh]
            self.producer.send_again([*lost, *replay])
            return
        self.in_topic, self.dead = topic, dead
        if self.child is not None:
            self.child.terminate()
            self._count_duplicates(self.child)
            self.child = None

    def _start_worker(self, now: float) -> None:
        if self._replace:
            if (read := self.probe.read()) is None:
                return  # the broker is away; try again on a later tick
            committed, _ = read
            try:
                asyncio.run(copy_offsets(self.broker.bootstrap, self.topics.inbound, committed,
                                         f"{self.topics.group}-{self.generation + 1}"))  # fmt: skip
            except Exception:
                return
            self.generation += 1
            self.probe.switch(self.group)
            self._replace = False
        s = self.topics
        self._spawn(cli_args(
            "worker", "--database", self.ctx.database, "--brokers", self.broker.bootstrap, "--topic", s.inbound,
            "--group", self.group, "--dlq-topic", s.dlq, "--batch", str(self.ctx.rng.choice((100, 500, 1000))),
        ))  # fmt: skip
        # The moment is drawn once the worker is seen committing (start-up takes 2-3 s here); a worker with
        # nothing to read becomes fair game after a while anyway.
        self.kill_at = now + 15.0
        self._committed_at_spawn = sum(self.committed.values())

    def lag(self) -> int | None:
        if not self.ends:
            return None
        return sum(max(0, end - self.committed.get(p, 0)) for p, end in self.ends.items())

    def has_work(self) -> bool:
        return self.producer is None or not self.producer.finished or not self._drained()

    def working(self) -> bool:
        """The current worker has been seen committing, and messages are waiting."""
        return sum(self.committed.values()) > self._committed_at_spawn and self.lag() != 0

    def done(self) -> bool:
        return self.in_topic is not None

    def stop(self) -> None:
        if self.producer is not None:
            self.producer.stop.set()
            self.producer.join(60)
        super().stop()
        self.probe.close()

    def progress(self) -> int:
        return sum(self.committed.values())

    def acknowledged(self) -> set[str]:
        """Events the worker committed past and did not dead-letter: it said they are recorded."""
        if self.in_topic is None:
            return set()
        refused = {
            (int(d.headers.get(SOURCE_PARTITION, b"-1")), int(d.headers.get(SOURCE_OFFSET, b"-1"))) for d in self.dead
        }
        return {
            eid
            for r in self.in_topic
            if r.offset < self.committed.get(r.partition, 0)
            and (r.partition, r.offset) not in refused
            and (eid := _event_id(r.value)) is not None
        }

    def problems(self) -> list[str]:
        lost = sum(r["lost_by_broker"] for r in self.settle_rounds)
        if self.dead and not lost:
            reasons = Counter(d.headers.get(REASON, b"?").decode(errors="replace")[:120] for d in self.dead)
            return [f"{len(self.dead)} events dead-lettered although the broker lost nothing: {dict(reasons)}"]
        return []

    def details(self) -> dict[str, Any]:
        p = self.producer
        reasons = Counter(d.headers.get(REASON, b"?").decode(errors="replace")[:100] for d in self.dead)
        return {
            "produced_acknowledged": len(p.acked) if p else 0,
            "messages_in_topic": len(self.in_topic) if self.in_topic is not None else None,
            "producer_resends": p.resends if p else 0,
            "producer_errors": dict(p.errors) if p else {},
            "end_rounds": self.settle_rounds,
            "dead_letters": len(self.dead),
            "dead_letter_reasons": dict(reasons.most_common(3)),
            "consumer_groups": self.generation + 1,
            "redelivered_and_found_recorded": self.found_recorded,
        }


class BrokerRestarter(Restarter):
    """SIGTERM the broker and start it again on the same port and data, while the worker consumes."""

    kind = "broker restart"

    def __init__(self, total: int, broker: LocalBroker, rng: random.Random, gap_s: tuple[float, float]) -> None:
        super().__init__(total, rng, gap_s)
        self.broker = broker

    def restart(self) -> str:
        t0 = time.monotonic()
        self.broker.restart()
        return f"SIGTERM and start, {time.monotonic() - t0:.1f} s"


def run_broker_restarts(
    database: str,
    work: Path,
    restarts: int,
    events: int,
    seed: int,
    deadline_s: float = 1800.0,
    progress: Callable[[str], None] | None = None,
    gap_s: tuple[float, float] = (3.0, 7.0),
) -> ScenarioReport:
    """A worker consumes while a producer produces; the broker is SIGTERMed and restarted ``restarts`` times."""
    started = time.monotonic()
    report = ScenarioReport("broker-restarts", backend_of(database), describe(database), work_dir=str(work))
    rng = random.Random(seed)
    evs = make_events(seed, events)
    disruptor: Disruptor
    with local_broker(work) as broker:
        disruptor = BrokerRestarter(restarts, broker, rng, gap_s)
        release = Release(restarts * sum(gap_s) / 2 + 2.0, disruptor.progress)
        ctx = Context(database, work, rng, release)
        create_store(database)
        roles: list[Role] = [WorkerRole(ctx, evs, broker, Topics.fresh()), ProjectRole(ctx)]
        supervise(report, ctx, roles, disruptor, deadline_s, progress)
    finish(report, ctx, roles, disruptor, evs)
    report.seconds = round(time.monotonic() - started, 1)
    return report
