"""One consumed batch in, one ``LedgerService.post_prepared`` call, and the dead letters out.

Plain synchronous code with no Kafka client in it. The worker stages a batch (:func:`stage`: parse, validate,
check keys) and sends it to its committer process, then reads the answer with :func:`outcome_of` (ADR 0045); with
``--committer thread`` it runs :func:`ingest_batch` on its database thread. The tests call them directly.
Messages are checked in the order they were consumed; each partition's messages keep their order in the batch,
which is all the ledger needs (ADR 0010: one stream, one key, one partition).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from adapters.kafka.dead_letters import DeadKind, DeadLetter
from domain.service import LedgerService, Outcome, PostResult, Prepared, prepare


@dataclass(frozen=True, slots=True)
class Incoming:
    """A consumed message, reduced to what the ledger and a dead letter need."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(slots=True)
class BatchOutcome:
    """What one batch did: the service's results for the posted messages and the dead letters."""

    results: list[PostResult] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)

    @property
    def appended(self) -> int:
        return sum(1 for r in self.results if r.outcome is Outcome.APPENDED)

    @property
    def duplicates(self) -> int:
        """Redeliveries after a crash or a rebalance land here: recorded once, reported as duplicates."""
        return sum(1 for r in self.results if r.outcome is Outcome.DUPLICATE)


def key_problem(key: bytes | None, stream: str) -> str | None:
    """Why a message keyed ``key`` may not carry an event of ``stream`` (the partition key is the
    stream name, ADR 0010), or ``None``."""
    if key is None:
        return f"key: missing; the event's stream is {stream!r}"
    got = key.decode("utf-8", errors="replace")
    if got != stream:
        return f"key: {got!r} is not the event's stream {stream!r}"
    return None


@dataclass(frozen=True, slots=True)
class Staged:
    """A consumed batch after the part of posting that needs no ledger: parsed, validated, keys checked."""

    messages: Sequence[Incoming]
    prepared: Prepared
    wrong_key: frozenset[int]
    """Indexes of the messages whose key is not their event's stream: refused, never posted."""


def stage(messages: Sequence[Incoming]) -> Staged:
    """Prepare a batch (:func:`domain.service.prepare`), each message's key checked against its event's stream
    from that same parse. Needs no ledger: the worker stages a batch and its committer process decides and
    appends it (ADR 0045)."""
    wrong_key: set[int] = set()

    def check(index: int, stream: str) -> str | None:
        why = key_problem(messages[index].key, stream)
        if why is not None:
            wrong_key.add(index)
        return why

    prepared = prepare([m.value for m in messages], stream_check=check)
    return Staged(messages, prepared, frozenset(wrong_key))


def outcome_of(staged: Staged, results: Sequence[PostResult]) -> BatchOutcome:
    """The service's results for a staged batch, with its refusals turned into dead letters."""
    outcome = BatchOutcome()
    for i, (m, r) in enumerate(zip(staged.messages, results, strict=True)):
        if i in staged.wrong_key:  # never posted: a dead letter only
            outcome.dead.append(_dead(m, DeadKind.WRONG_KEY, r.reason or "wrong key"))
            continue
        outcome.results.append(r)
        if r.outcome is Outcome.REJECTED:
            outcome.dead.append(_dead(m, DeadKind.REJECTED, r.reason or "rejected", r.event_id))
        elif r.outcome is Outcome.CONFLICT:
            outcome.dead.append(_dead(m, DeadKind.CONFLICT, r.reason or "conflict", r.event_id))
    return outcome


def ingest_batch(service: LedgerService, messages: Sequence[Incoming]) -> BatchOutcome:
    """Post the batch in one call, its keys checked from the service's own parse, and turn
    refusals into dead letters (staged and decided in this thread: the worker's ``thread`` committer).

    Raises whatever the service raises when the database fails: then nothing of the batch may be
    committed, and the caller retries the same messages (appending is idempotent by event id).
    """
    if not messages:
        return BatchOutcome()
    staged = stage(messages)
    return outcome_of(staged, service.post_prepared(staged.prepared))


def _dead(m: Incoming, kind: DeadKind, reason: str, event_id: str | None = None) -> DeadLetter:
    return DeadLetter(m.topic, m.partition, m.offset, m.key, m.value, m.headers, kind, reason, event_id)
