"""Appending through an eventsourcing recorder: the part both stores share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from eventsourcing.persistence import IntegrityError

from adapters.store.mapper import PydanticMapper
from domain.ports import NewRecord, WriteConflict

#: An upper bound for "no upper bound" on positions in range queries.
NO_LIMIT: Final = 2**62


def append_via(recorder: Any, mapper: PydanticMapper, records: Sequence[NewRecord]) -> list[int]:
    """Insert ``records`` with the recorder's transaction (our subclass adds the chain rows and
    reports their positions); a taken stream version or event id becomes :class:`WriteConflict`."""
    stored = [mapper.to_stored_event(r) for r in records]
    positions: list[int] = []
    try:
        recorder.insert_events(stored, records=records, positions=positions)
    except IntegrityError as exc:
        raise WriteConflict(str(exc)) from exc
    return positions
