"""What the log already holds under an event id: how an operator's command answers its own retry.

Commands that stamp their event with the time they run (a payout request, an AML case action) derive
the event id from the caller's own id, so a retry names the same event; but it runs later, so its body
differs and posting it again would be a conflict. The command looks the id up first and compares what
the caller asked for, not the time it was asked.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from adapters.bootstrap import Ledger
from domain.service import Outcome, PostResult


def recorded_event(ledger: Ledger, event_id: uuid.UUID) -> tuple[int, dict[str, Any]] | None:
    """The log position and document of ``event_id``, or None when it was never recorded."""
    known = ledger.store.known_events([event_id])
    if event_id not in known:
        return None
    position = known[event_id][0]
    document: dict[str, Any] = orjson.loads(ledger.store.read(position - 1, 1)[0].body)
    return position, document


def retry_result(
    event_id: uuid.UUID, position: int, field: str, key: str, asked: Mapping[str, object], was: Mapping[str, object]
) -> PostResult:
    """A duplicate when every asked value is the recorded one, else a conflict naming what differs."""
    differ = [f"{name} {was.get(name)} (asked {value})" for name, value in asked.items() if was.get(name) != value]
    if differ:
        reason = f"{field}: {key} was already requested with " + ", ".join(differ)
        return PostResult(0, Outcome.CONFLICT, str(event_id), position, reason=reason)
    return PostResult(0, Outcome.DUPLICATE, str(event_id), position)
