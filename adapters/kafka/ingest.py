"""One consumed batch in, one ``LedgerService.post`` call, and the dead letters out.

Plain synchronous code with no Kafka client in it: the worker runs it on its database thread, and the
tests call it directly. Messages are checked in the order they were consumed; each partition's messages
keep their order in the batch, which is all the ledger needs (ADR 0010: one stream, one key, one partition).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from adapters.kafka.dead_letters import DeadKind, DeadLetter
from domain.catalog import InvalidEvent, parse_event, to_current
from domain.rules import stream_name
from domain.service import LedgerService, Outcome, PostResult


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


def key_problem(key: bytes | None, value: bytes) -> tuple[DeadKind, str] | None:
    """Why this message cannot be posted before the service sees it, or ``None``.

    The key must be the event's stream name. That needs the event parsed, so unparsable bytes are
    refused here with the reason the service would give them (the same :class:`InvalidEvent` text).
    """
    try:
        event = to_current(parse_event(value))
    except InvalidEvent as exc:
        return DeadKind.REJECTED, str(exc)
    expected = stream_name(event)
    if key is None:
        return DeadKind.WRONG_KEY, f"key: missing; the event's stream is {expected!r}"
    got = key.decode("utf-8", errors="replace")
    if got != expected:
        return DeadKind.WRONG_KEY, f"key: {got!r} is not the event's stream {expected!r}"
    return None


def ingest_batch(service: LedgerService, messages: Sequence[Incoming]) -> BatchOutcome:
    """Check every message's key, post the rest in one call, and turn refusals into dead letters.

    Raises whatever the service raises when the database fails: then nothing of the batch may be
    committed, and the caller retries the same messages (appending is idempotent by event id).
    """
    outcome = BatchOutcome()
    posted: list[Incoming] = []
    for m in messages:
        problem = key_problem(m.key, m.value)
        if problem is None:
            posted.append(m)
        else:
            outcome.dead.append(_dead(m, *problem))
    if not posted:
        return outcome
    outcome.results = service.post([m.value for m in posted])
    for m, r in zip(posted, outcome.results, strict=True):
        if r.outcome is Outcome.REJECTED:
            outcome.dead.append(_dead(m, DeadKind.REJECTED, r.reason or "rejected", r.event_id))
        elif r.outcome is Outcome.CONFLICT:
            outcome.dead.append(_dead(m, DeadKind.CONFLICT, r.reason or "conflict", r.event_id))
    return outcome


def _dead(m: Incoming, kind: DeadKind, reason: str, event_id: str | None = None) -> DeadLetter:
    return DeadLetter(m.topic, m.partition, m.offset, m.key, m.value, m.headers, kind, reason, event_id)
