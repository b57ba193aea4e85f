"""The tamper-evident hash chain over the event log.

Each stored event's *canonical bytes* are exactly the bytes the store holds for it (the
JSON produced once, at append, from the validated envelope; see ADR 0004). Its link is::

    body_sha256  = SHA-256(canonical bytes)
    chain_sha256 = SHA-256(previous chain_sha256 || position as 8 bytes big-endian
                           || event id as 16 bytes || recorded_at as 8 bytes big-endian
                           (microseconds since 1970-01-01 UTC) || body_sha256)

The first link's previous hash is :data:`GENESIS`. Because the position is inside the link,
swapping, removing or inserting an event breaks the chain at the first affected position,
even when the bodies themselves are intact.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Final, NamedTuple
from uuid import UUID

GENESIS: Final = bytes(32)
_PACK: Final = struct.Struct(">Q").pack


def body_hash(canonical: bytes) -> bytes:
    """SHA-256 of an event's canonical bytes."""
    return hashlib.sha256(canonical).digest()


def link_hash(previous: bytes, position: int, event_id: UUID, recorded_at_us: int, body_sha256: bytes) -> bytes:
    """The chain hash of the event at ``position`` given the previous link's hash."""
    return hashlib.sha256(previous + _PACK(position) + event_id.bytes + _PACK(recorded_at_us) + body_sha256).digest()


@dataclass(frozen=True, slots=True)
class BrokenLink:
    """The first position at which the chain does not verify, and why."""

    position: int
    event_id: str | None
    reason: str


class Link(NamedTuple):
    """One computed link of the chain (a named tuple: one per appended event, built in a third of a frozen
    dataclass's time)."""

    position: int
    event_id: UUID
    recorded_at_us: int
    body_sha256: bytes
    chain_sha256: bytes


def extend(
    head_position: int,
    head_hash: bytes,
    head_recorded_at_us: int,
    new: list[tuple[UUID, bytes]],
    now_us: int,
) -> list[Link]:
    """Links for ``new`` (event id, body SHA-256) appended after the given head.

    Record times never go backwards along the chain, even if the clock does, so "as of
    recorded time" is a prefix of the log.
    """
    recorded = max(now_us, head_recorded_at_us)
    links = []
    previous = head_hash
    for position, (event_id, digest) in enumerate(new, start=head_position + 1):
        previous = link_hash(previous, position, event_id, recorded, digest)
        links.append(Link(position, event_id, recorded, digest, previous))
    return links
