"""eventsourcing's mapper and transcoder, made pydantic-aware and orjson-fast.

The library's default mapper pickles an object's ``__dict__`` through a JSON transcoder
that knows neither pydantic models nor Decimals, and skips validation on the way back.
Here a stored event's state is exactly the event's canonical bytes (ADR 0004), and reading
one back validates it against its schema version and upcasts it to the current shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from pydantic import BaseModel

from domain.catalog import canonical_bytes, parse_event, to_current
from domain.envelope import Envelope
from domain.ports import NewRecord
from ledger.chain import body_hash


class OrjsonTranscoder(Transcoder):
    """orjson for plain JSON values; a pydantic model is written by its own schema's serialiser."""

    def encode(self, obj: Any) -> bytes:
        if isinstance(obj, BaseModel):
            return canonical_bytes(obj)  # type: ignore[arg-type]
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)


class StateMismatch(RuntimeError):
    """The bytes about to be stored are not the ones the chain will hash: a bug, never input."""


def check_bodies(records: Sequence[NewRecord]) -> None:
    """:class:`StateMismatch` unless each record's bytes are the ones its chain link will cover.

    The service made ``body`` with canonical_bytes once; storing exactly those bytes (not a second serialisation
    of the event) and checking them against their hash keeps ADR 0004's "the stored bytes are the hashed bytes"
    for a sixth of the cost. It also guards the bytes an HTTP worker shipped to its committer (ADR 0042).
    """
    for record in records:
        if body_hash(record.body) != record.body_sha256:
            raise StateMismatch(f"event {record.event_id}: stored bytes differ from the bytes the chain hashes")


class PydanticMapper(Mapper[UUID]):
    """Between typed events (as posted) and eventsourcing's stored events."""

    def __init__(self) -> None:
        super().__init__(transcoder=OrjsonTranscoder())

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        record: NewRecord = domain_event
        check_bodies((record,))
        return StoredEvent(record.stream_id, record.version, record.topic, record.body)

    # Quipu's events are envelopes, not the library's aggregate events: a narrower return type.
    def to_domain_event(self, stored_event: StoredEvent) -> Envelope:  # type: ignore[override]
        return to_current(parse_event(self.transcoder.decode(stored_event.state)))
