"""The application service: validate, decide and append once.

Every way in (``quipu post``, the HTTP API, the Kafka worker) calls :meth:`LedgerService.post`.

**Batch semantics.** A batch is decided event by event, in order, each seeing the effects
of the accepted events before it; the accepted events are then appended in one
transaction. The result is reported per event (appended, duplicate, conflict, rejected),
so one bad event does not block the rest; the accepted ones are all-or-nothing together.
If another writer got to one of the same streams first, nothing is written and the batch
is decided again against the fresh state (:data:`MAX_ATTEMPTS` times; ADR 0034).
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final
from uuid import UUID

from domain.catalog import VERSIONS, InvalidEvent, canonical_bytes, parse_event, refuse_nul, to_current
from domain.envelope import Envelope
from domain.ports import EventStore, NewRecord, WriteConflict
from domain.posting_rules import books, entry_for_body
from domain.rules import OPENS_STREAM, RuleViolation, State, evolve, initial_state, stream_id, stream_name
from ledger.chain import body_hash
from ledger.errors import QuipuError, UnbalancedEntryError

MAX_ATTEMPTS: Final = 12
#: The most events one call may post; larger inputs are split by the caller.
MAX_BATCH: Final = 10_000


class Outcome(str, Enum):
    """What happened to one posted event."""

    APPENDED = "appended"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    REJECTED = "rejected"


@dataclass(slots=True)
class PostResult:
    """The fate of the event at ``index`` in the posted batch. Treat it as immutable.

    Not frozen: every posted event gets one, and a frozen dataclass's ``__init__`` (``object.__setattr__`` per
    field) takes four times as long (0.75 against 0.17 µs). Nothing changes a result once it is made.
    """

    index: int
    outcome: Outcome
    event_id: str | None
    position: int | None = None
    """Where it is in the log (the original's position for a duplicate)."""
    reason: str | None = None
    """For conflicts and rejections: the field at fault and why."""
    problems: tuple[str, ...] = ()
    """An invalid event's problems one by one, each ``field: reason`` (``reason`` joins them with "; ", which
    a quoted value may hold too)."""


#: A prepared batch as :meth:`Prepared.compact` ships it: its size, the refused results, and for each other event
#: ``(index, type, schema_version, canonical bytes, their SHA-256, stream name, why it cannot be booked or None)``.
CompactBatch = tuple[int, list["PostResult"], list[tuple[int, str, int, bytes, bytes, str, str | None]]]

#: ``(index in the batch, the event's stream name) -> reason to refuse it, or None``.
StreamCheck = Callable[[int, str], str | None]


class BatchTooLarge(QuipuError, ValueError):
    """More events in one call than :data:`MAX_BATCH`."""


@dataclass(slots=True)
class _Parsed:
    index: int
    event: Envelope
    posted: Envelope
    body: bytes
    digest: bytes
    stream: str
    sid: UUID
    unbooked: str | None
    """Why the event's journal entry cannot be booked (it would not balance), or None. Booking needs no state, so
    :func:`prepare` works it out: on the HTTP batch path that is the worker, beside the serial committer."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A batch after the part of posting that needs no state: parsed, validated, in canonical bytes, hashed, filed
    under its streams, and its journal entries tried. :meth:`LedgerService.post_prepared` decides and appends it.

    Preparing needs no ledger, so it can run in another process than the deciding: an HTTP worker prepares its big
    groups itself and its committer process only decides and appends them (ADR 0042).
    """

    size: int
    """How many events were posted (the results' length)."""
    refused: dict[int, PostResult]
    """The results already known: events refused by their parse or by ``stream_check``."""
    parsed: list[_Parsed]
    """The rest, in input order."""

    def compact(self) -> CompactBatch:
        """This batch for another process of this program (the HTTP worker's committer, ADR 0042): each event as
        its canonical bytes with what was worked out about it, instead of its models. :meth:`expand` reads the
        bytes back with their schema version's model, which is much cheaper than preparing afresh (no second
        parse of the posted text, no canonical serialisation, no card-number scan, no hashing) and cheaper than
        pickling the models."""
        events = [
            (p.index, p.posted.type, p.posted.schema_version, p.body, p.digest, p.stream, p.unbooked)
            for p in self.parsed
        ]
        return self.size, list(self.refused.values()), events

    @staticmethod
    def expand(batch: CompactBatch) -> Prepared:
        """The batch :meth:`compact` gave. The bytes are trusted to be the canonical bytes of a valid event, and the
        booking verdict to be theirs (the store still checks each event's bytes against its hash before writing
        it)."""
        size, refused, events = batch
        parsed = []
        for index, kind, version, body, digest, stream, unbooked in events:
            posted = VERSIONS[(kind, version)].model_validate_json(body)
            parsed.append(_Parsed(index, to_current(posted), posted, body, digest, stream, stream_id(stream), unbooked))
        return Prepared(size, {r.index: r for r in refused}, parsed)


def prepare(raws: Sequence[bytes | str | dict[str, Any]], stream_check: StreamCheck | None = None) -> Prepared:
    """The stateless part of :meth:`LedgerService.post`: parse and validate each event, its canonical bytes,
    their hash, its stream, and whether its journal entry balances. :class:`BatchTooLarge` beyond
    :data:`MAX_BATCH` events."""
    if len(raws) > MAX_BATCH:
        raise BatchTooLarge(f"batch of {len(raws)} events exceeds the limit of {MAX_BATCH}")
    refused: dict[int, PostResult] = {}
    parsed: list[_Parsed] = []
    for i, raw in enumerate(raws):
        try:
            posted = parse_event(raw)
            event = to_current(posted)
            # The log keeps the event as posted (an older version stays that version); the
            # rules decide on its current shape.
            body = canonical_bytes(posted)
            if b"\\u0000" in body:  # escaped in the canonical JSON; rare, so only then walk it
                refuse_nul(posted)
        except InvalidEvent as exc:
            refused[i] = PostResult(i, Outcome.REJECTED, _raw_id(raw), reason=str(exc), problems=tuple(exc.problems))
            continue
        name = stream_name(event)
        if stream_check is not None and (why := stream_check(i, name)) is not None:
            refused[i] = PostResult(i, Outcome.REJECTED, str(event.event_id), reason=why, problems=(why,))
            continue
        parsed.append(_Parsed(i, event, posted, body, body_hash(body), name, stream_id(name), _unbooked(posted, body)))
    return Prepared(len(raws), refused, parsed)


class LedgerService:
    """Decides and appends events against an :class:`EventStore`.

    Stream states are cached (LRU) between batches. A cached state is either trusted as it is
    (one writer: nothing else moves the streams) or caught up first on the events other writers
    appended since (``shared``: several processes post to the same streams, as the HTTP server's
    workers do). A shared service whose last two appends were back to back in the log trusts its
    cache too: nobody else is writing (ADR 0043). Either way a write conflict catches the batch's
    streams up and decides again, so the cache can never make a stale decision stick.
    """

    def __init__(self, store: EventStore, cache_streams: int = 200_000, shared: bool = False) -> None:
        self.store = store
        # Keyed by stream name: a str caches its hash, a UUID computes it in Python every time.
        self._cache: OrderedDict[str, tuple[int, State]] = OrderedDict()
        self._cache_max = cache_streams
        self.shared = shared
        self._last_position = -1
        """The log position of the last event this service appended (-1: none yet; a first append proves nothing)."""
        self._alone = False
        """Whether this service's last two appends were back to back in the log: nobody else appended between."""

    def post(
        self, raws: Sequence[bytes | str | dict[str, Any]], stream_check: StreamCheck | None = None
    ) -> list[PostResult]:
        """Validate, decide and append a batch; one result per input, in input order.

        ``stream_check(index, stream)`` lets a transport that routes by stream (a Kafka
        message key) refuse an event filed under the wrong one, from the parse the append
        uses anyway: a reason makes that event rejected with it, ``None`` lets it through.
        """
        return self.post_prepared(prepare(raws, stream_check))

    def post_prepared(self, batch: Prepared) -> list[PostResult]:
        """Decide and append a batch :func:`prepare` made ready; one result per input, in input order."""
        results = dict(batch.refused)
        for attempt in range(MAX_ATTEMPTS):
            try:
                first = attempt == 0
                results.update(
                    # A shared service that has been appending alone trusts its cache like a sole writer: a
                    # write from elsewhere since still shows, as a write conflict, and is caught up (ADR 0043).
                    self._decide_and_append(
                        batch.parsed, trust_cache=first and (not self.shared or self._alone), presume_new=first
                    )
                )
                break
            except WriteConflict:
                self._alone = False
                if attempt == MAX_ATTEMPTS - 1:
                    raise
                if attempt:
                    # Writers racing on one hot stream (a busy seller's wallet) would otherwise
                    # collide again at once: back off a little, randomly, longer each time. The
                    # first retry goes at once: catching up is cheap and the window is short.
                    time.sleep(random.uniform(0, 0.005 * 2 ** (attempt - 1)))
        return [results[i] for i in range(batch.size)]

    def _decide_and_append(self, parsed: list[_Parsed], trust_cache: bool, presume_new: bool) -> dict[int, PostResult]:
        results: dict[int, PostResult] = {}
        # States first, then known ids: an event another writer committed in between is then
        # seen as known (a duplicate), never as an effect already in the state (a refusal).
        states, unread = self._load(parsed, trust_cache, presume_new)
        # A first attempt looks the ids up only when the answer can matter (ADR 0036): until an event is refused,
        # each is presumed new, and the store's unique event id refuses an append that holds one already recorded
        # (a write conflict: the batch is then decided again with the ids looked up first).
        known = None if presume_new else self._known(parsed)
        batch_ids: dict[int, tuple[int, bytes]] = {}
        accepted: list[_Parsed] = []
        records: list[NewRecord] = []
        in_batch_duplicates = False
        for p in parsed:
            event = p.event
            eid = event.event_id
            key = eid.int
            seen = batch_ids.get(key) if known is None else known.get(key) or batch_ids.get(key)
            if seen is not None:
                results[p.index] = _seen(p, seen)
                in_batch_duplicates |= seen[0] < 0
                continue
            name = p.stream
            known_state = states.get(name)
            version, state = known_state if known_state is not None else (0, initial_state(name))
            try:
                new_state = evolve(state, event)
                if p.unbooked is not None:
                    raise UnbalancedEntryError(p.unbooked)
            except (RuleViolation, UnbalancedEntryError) as exc:
                # A refusal is only ever reported on the stream as stored. A state taken from the cache (ADR
                # 0043) or presumed new (ADR 0046) was not read: if the log holds newer events of the stream,
                # decide the batch again from the store; if not, the state was current and the refusal stands
                # (one small read, not a second decision of the whole batch).
                if p.stream in unread and self.store.stream_events([p.sid], [unread.pop(p.stream)]).get(p.sid):
                    raise WriteConflict(f"stream {p.stream} was not read and has moved on") from None
                if known is None:
                    # The state may hold this very event's effect, recorded by an earlier post: look first.
                    known = self._known(parsed)
                    if any(r.event_id.int in known for r in records):
                        raise WriteConflict("an event presumed new is already recorded") from None
                    if (seen := known.get(key)) is not None:
                        results[p.index] = _seen(p, seen)
                        continue
                results[p.index] = PostResult(p.index, Outcome.REJECTED, str(eid), reason=_reason(exc))
                continue
            states[name] = (version + 1, new_state)
            batch_ids[key] = (-1 - len(records), p.digest)
            records.append(NewRecord(p.sid, version + 1, event.type, p.body, eid, p.digest, p.posted))
            accepted.append(p)
        positions = self.store.append(records) if records else []
        if positions:
            self._alone = positions[0] == self._last_position + 1
            self._last_position = positions[-1]
        appended = Outcome.APPENDED
        for p, position in zip(accepted, positions, strict=True):
            results[p.index] = PostResult(p.index, appended, str(p.event.event_id), position)
        if in_batch_duplicates:
            # Duplicates of events accepted in this same batch learn their position now.
            for i, r in list(results.items()):
                if r.outcome is Outcome.DUPLICATE and r.position is not None and r.position < 0:
                    results[i] = PostResult(i, r.outcome, r.event_id, positions[-1 - r.position])
        self._remember(states)
        return results

    def _known(self, parsed: list[_Parsed]) -> dict[int, tuple[int, bytes]]:
        """The batch's ids already recorded, as integers (hashed in C, not by ``UUID.__hash__``)."""
        return {k.int: v for k, v in self.store.known_events([p.event.event_id for p in parsed]).items()}

    def _load(
        self, parsed: list[_Parsed], trust_cache: bool, presume_new: bool
    ) -> tuple[dict[str, tuple[int, State]], dict[str, int]]:
        """States by stream name (those absent are new streams), and the versions of the streams decided on
        without a read: served from the cache unchecked (``trust_cache``; otherwise a cached state catches up on
        newer events), or presumed new at version 0 (``presume_new``: uncached streams whose first event in the
        batch only an empty stream accepts, ADR 0046)."""
        states: dict[str, tuple[int, State]] = {}
        unread: dict[str, int] = {}
        # Keyed by stream name, never by UUID: a str caches its hash, UUID.__hash__ runs in Python every time.
        to_read: dict[str, tuple[UUID, tuple[int, State] | None]] = {}
        cache = self._cache
        for p in parsed:
            name = p.stream
            if name in states or name in to_read or name in unread:
                continue
            hit = cache.get(name)
            if hit is not None:
                if trust_cache:
                    states[name] = hit
                    unread[name] = hit[0]
                else:
                    to_read[name] = (p.sid, hit)
            elif presume_new and type(p.event) in OPENS_STREAM:
                unread[name] = 0
            else:
                to_read[name] = (p.sid, None)
        if to_read:
            pending = list(to_read.items())
            sids = [sid for _, (sid, _) in pending]
            after = [hit[0] if hit is not None else 0 for _, (_, hit) in pending]
            rows_by_sid = self.store.stream_events(sids, after)
            for name, (sid, hit) in pending:
                version, state = hit if hit is not None else (0, None)
                if rows := rows_by_sid.get(sid):
                    for _, event in rows:
                        state = evolve(state if state is not None else initial_state(name), event)
                    version = rows[-1][0]
                if state is not None:
                    states[name] = (version, state)
        return states, unread

    def _remember(self, states: dict[str, tuple[int, State]]) -> None:
        """Cache these streams' states as the most recently used, and evict the least recently used beyond the
        limit."""
        cache = self._cache
        move_to_end = cache.move_to_end
        for name, vs in states.items():
            if name in cache:  # a new key goes to the end by itself; a known one must be moved there
                move_to_end(name)
            cache[name] = vs
        while len(cache) > self._cache_max:
            cache.popitem(last=False)

    def forget(self) -> None:
        """Drop every cached stream state (after a restore, say)."""
        self._cache.clear()


def _unbooked(posted: Envelope, body: bytes) -> str | None:
    """Why an event's entry cannot be booked, or None. Its rule is tried here, once, and the entry dropped: the
    journal projection books it again from the stored bytes. Types that book nothing (orders, authorisations …)
    are not parsed again for it."""
    if not books(posted.type, posted.schema_version):
        return None
    try:
        entry_for_body(body)
    except UnbalancedEntryError as exc:
        return str(exc)
    return None


def _seen(p: _Parsed, seen: tuple[int, bytes]) -> PostResult:
    # A negative position stands for "accepted earlier in this batch" until it is appended.
    position, digest = seen
    eid = str(p.event.event_id)
    if digest == p.digest:
        return PostResult(p.index, Outcome.DUPLICATE, eid, position)
    return PostResult(
        p.index,
        Outcome.CONFLICT,
        eid,
        position if position > 0 else None,
        reason=f"event_id: {eid} was already recorded with a different body",
    )


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnbalancedEntryError):
        return f"payload: {exc}"
    return str(exc)


def _raw_id(raw: object) -> str | None:
    if isinstance(raw, dict):
        value = raw.get("event_id")
        return value if isinstance(value, str) else None
    return None
