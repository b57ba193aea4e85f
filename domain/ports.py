"""The event store port: what the application service needs from any store.

Adapters implement it on SQLite and PostgreSQL (``adapters.store``). The port speaks in
stream UUIDs, versions and canonical bytes; it knows nothing of event types.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol
from uuid import UUID

from domain.envelope import Envelope
from ledger.errors import QuipuError


class NewRecord(NamedTuple):
    """An event ready to append: its stream slot, its canonical bytes and their hash.

    A named tuple rather than a frozen dataclass: every appended event makes one, and a tuple is built in a third
    of the time (0.27 against 0.85 µs).
    """

    stream_id: UUID
    version: int
    topic: str
    body: bytes
    event_id: UUID
    body_sha256: bytes
    event: Envelope
    """The event as posted; ``body`` is its canonical bytes."""


class Recorded:
    """An event as the log holds it, with its position and chain link.

    Ids arrive as raw bytes and become :class:`UUID` objects only when asked for: a rebuild
    reads millions of records and never needs them.
    """

    __slots__ = ("_event_id", "_stream_id", "body", "body_sha256", "chain_sha256", "position", "recorded_at_us",
                 "topic", "version")  # fmt: skip

    def __init__(
        self,
        position: int,
        event_id: bytes,
        stream_id: bytes,
        version: int,
        topic: str,
        body: bytes,
        recorded_at_us: int,
        body_sha256: bytes,
        chain_sha256: bytes,
    ) -> None:
        self.position = position
        """1-based, gap-free, in commit order."""
        self._event_id = event_id
        self._stream_id = stream_id
        self.version = version
        self.topic = topic
        self.body = body
        self.recorded_at_us = recorded_at_us
        """When the ledger recorded it: microseconds since 1970-01-01 UTC."""
        self.body_sha256 = body_sha256
        self.chain_sha256 = chain_sha256

    @property
    def event_id(self) -> UUID:
        """The event's idempotency key."""
        return UUID(bytes=self._event_id)

    @property
    def stream_id(self) -> UUID:
        """The consistency boundary the event was appended to."""
        return UUID(bytes=self._stream_id)

    def __repr__(self) -> str:
        return f"Recorded(position={self.position}, event_id={self.event_id}, topic={self.topic!r})"


class WriteConflict(QuipuError):
    """Another writer appended to one of the same streams (or the same event id) first.

    Nothing of the batch was written; the caller reloads state and decides again.
    """


class EventStore(Protocol):
    """An append-only, hash-chained event log with streams guarded by version."""

    def known_events(self, event_ids: Sequence[UUID]) -> dict[UUID, tuple[int, bytes]]:
        """For the ids already stored: (position, body SHA-256)."""
        ...

    def stream_events(
        self, stream_ids: Sequence[UUID], after: Sequence[int] | None = None
    ) -> dict[UUID, list[tuple[int, Envelope]]]:
        """Each stream's (version, event in its current shape) in version order; absent streams are omitted.

        With ``after``, only each stream's events above the version at the same index (a cached state
        catches up on what other writers appended since, without reading the stream again).
        """
        ...

    def append(self, records: Sequence[NewRecord]) -> list[int]:
        """Append atomically and return the positions; raise :class:`WriteConflict`."""
        ...

    def read(self, after: int, limit: int, to_position: int | None = None) -> Sequence[Recorded]:
        """Up to ``limit`` events with position > ``after`` (and ≤ ``to_position``), in order."""
        ...

    def head(self) -> int:
        """The position of the last recorded event (0 when empty)."""
        ...
