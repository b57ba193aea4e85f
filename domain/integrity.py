"""Walking the hash chain: the first broken link, or none."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson

from domain.checkpoints import Checkpoint
from domain.ports import EventStore
from ledger.chain import GENESIS, BrokenLink, body_hash, link_hash


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The outcome of a walk: how far it got and the first broken link, if any."""

    events: int
    head_hash: str
    broken: BrokenLink | None


def verify_chain(
    store: EventStore,
    page: int = 5000,
    progress: Callable[[int, int], None] | None = None,
    checkpoint: Checkpoint | None = None,
) -> ChainReport:
    """Recompute every link from position 1 and name the first one that does not hold.

    With a checkpoint, the walk stops at its position and the recomputed head must equal
    the signed one: that also catches a log rewritten with a self-consistent chain (an
    event inserted or removed and every later link recomputed).
    """
    head = store.head() if checkpoint is None else checkpoint.position
    previous, expected, last_recorded = GENESIS, 1, 0
    while expected <= head:
        records = store.read(expected - 1, min(page, head - expected + 1), to_position=head)
        if not records:
            break
        for r in records:
            eid = str(r.event_id)
            if r.position != expected:
                return _broken(expected - 1, previous, expected, None, f"event at position {expected} is missing")
            if body_hash(r.body) != r.body_sha256:
                return _broken(expected - 1, previous, r.position, eid, "body altered: its SHA-256 does not match")
            try:
                doc = orjson.loads(r.body)
            except orjson.JSONDecodeError:
                return _broken(expected - 1, previous, r.position, eid, "body altered: not valid JSON")
            if doc.get("event_id") != eid or doc.get("type") != r.topic:
                return _broken(expected - 1, previous, r.position, eid, "event id or type differs from its body")
            if r.recorded_at_us < last_recorded:
                return _broken(expected - 1, previous, r.position, eid, "recorded time goes backwards")
            link = link_hash(previous, r.position, r.event_id, r.recorded_at_us, r.body_sha256)
            if link != r.chain_sha256:
                return _broken(
                    expected - 1, previous, r.position, eid, "chain hash does not follow from the previous link"
                )
            previous, last_recorded, expected = link, r.recorded_at_us, expected + 1
        if progress is not None:
            progress(expected - 1, head)
    if expected - 1 < head:
        reason = f"event at position {expected} is missing"
        if checkpoint is not None:
            reason += f" (the checkpoint covers {checkpoint.position} events)"
        return _broken(expected - 1, previous, expected, None, reason)
    if checkpoint is not None and previous.hex() != checkpoint.head_sha256:
        return _broken(
            expected - 1,
            previous,
            checkpoint.position,
            None,
            "the chain up to the checkpoint does not end at the signed head: events before it were "
            "inserted, removed, reordered or altered and the chain recomputed",
        )
    return ChainReport(expected - 1, previous.hex(), None)


def _broken(good: int, previous: bytes, position: int, event_id: str | None, reason: str) -> ChainReport:
    return ChainReport(good, previous.hex(), BrokenLink(position, event_id, reason))
