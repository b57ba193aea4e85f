"""Appending through a Quipu recorder: the part both stores share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from eventsourcing.persistence import IntegrityError

from adapters.store.mapper import check_bodies
from domain.ports import NewRecord, WriteConflict

#: An upper bound for "no upper bound" on positions in range queries.
NO_LIMIT: Final = 2**62


def append_via(recorder: Any, records: Sequence[NewRecord]) -> list[int]:
    """Insert ``records`` and their chain links with the recorder's ``append_records``; their positions. A taken
    stream version or event id becomes :class:`WriteConflict`."""
    check_bodies(records)
    try:
        positions: list[int] = recorder.append_records(records)
    except IntegrityError as exc:
        raise WriteConflict(str(exc)) from exc
    return positions
