"""Identifiers Quipu derives itself (quotes, payouts, holds): stable for the same key, so a
retry is a duplicate, and never a long digit run that the card-number check would refuse."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Any, Final

NAMESPACE: Final = uuid.UUID("d1c0f3a2-5b4e-4a69-8c7d-0e1f2a3b4c5d")


def derived_id(prefix: str, key: str, length: int = 20) -> str:
    """``prefix`` + base32 of a name-based UUID of ``key`` (letters and the digits 2-7)."""
    return prefix + base64.b32encode(uuid.uuid5(NAMESPACE, key).bytes).decode()[:length]


def derived_event_id(namespace: uuid.UUID, key: str) -> uuid.UUID:
    """The id :func:`derived_event` gives the event of ``key``: what a command looks up to answer its own retry."""
    return uuid.uuid5(namespace, key)


def derived_event(
    namespace: uuid.UUID, key: str, kind: str, at: dt.datetime, source: str, payload: Any, version: int = 1
) -> dict[str, Any]:
    """The raw document of an event Quipu posts itself, its id a name-based UUID of ``key`` in
    ``namespace``: deciding the same thing again gives the same id, so a rerun is a duplicate."""
    return {"event_id": str(derived_event_id(namespace, key)), "type": kind, "schema_version": version,
            "occurred_at": at.isoformat(), "source": source, "payload": payload}  # fmt: skip
