"""Dead letters: what the worker could not append, with why, as the original bytes.

A dead letter keeps the original key and value byte for byte (so it can be inspected, fixed and produced
to the inbound topic again), the original headers, and adds headers saying why and where it came from.
Headers rather than a JSON envelope: the original value may not be JSON, or not even UTF-8.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

#: Header names, all under ``quipu.dlq.`` so they never collide with a producer's own headers.
REASON: Final = "quipu.dlq.reason"
KIND: Final = "quipu.dlq.kind"
EVENT_ID: Final = "quipu.dlq.event_id"
SOURCE_TOPIC: Final = "quipu.dlq.topic"
SOURCE_PARTITION: Final = "quipu.dlq.partition"
SOURCE_OFFSET: Final = "quipu.dlq.offset"
#: A reason is cut to this many characters: a header is no place for a whole validation report.
REASON_MAX_CHARS: Final = 2000


class DeadKind(str, Enum):
    """Why a message is dead: the service's outcome, or a check made before the service is called."""

    REJECTED = "rejected"
    """The service refused the event (invalid JSON, a field at fault, a rule violation)."""
    CONFLICT = "conflict"
    """The event id was already recorded with a different body."""
    WRONG_KEY = "wrong_key"
    """The message key is not the event's stream name (ADR 0010): appending it could break per-stream order."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message the worker gives up on, with its origin."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    kind: DeadKind
    reason: str
    event_id: str | None = None

    def dlq_headers(self) -> list[tuple[str, bytes]]:
        """The original headers followed by Quipu's: kind, reason, event id (when known) and origin."""
        ours = [
            (KIND, self.kind.value.encode()),
            (REASON, self.reason[:REASON_MAX_CHARS].encode()),
            (SOURCE_TOPIC, self.topic.encode()),
            (SOURCE_PARTITION, str(self.partition).encode()),
            (SOURCE_OFFSET, str(self.offset).encode()),
        ]
        if self.event_id:
            ours.append((EVENT_ID, self.event_id.encode()))
        return [*self.headers, *ours]
