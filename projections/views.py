"""The view-store port: tables, the writes a fold produces, and the store that commits them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from domain.catalog import decode_stored
from domain.envelope import Envelope
from domain.ports import Recorded
from domain.posting_rules import RULES, entry_for
from ledger.journal import JournalEntry

_BOOKING_TYPES = frozenset(t for t, _ in RULES)


@dataclass(frozen=True, slots=True)
class Table:
    """A view table: its columns and the key that orders it (for checksums)."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Insert:
    """Append rows (each a tuple in the table's column order)."""

    table: Table
    rows: list[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Increment:
    """Add to numeric columns of keyed rows, creating them at zero first.

    Rows are ``key values + fixed values + increments``; ``fixed`` columns are written on
    creation only (e.g. an account's currency).
    """

    table: Table
    fixed: tuple[str, ...]
    sums: tuple[str, ...]
    rows: list[tuple[Any, ...]]


Write = Insert | Increment


class Event:
    """A recorded event with its typed form decoded on first use (and only then)."""

    __slots__ = ("__dict__", "record")

    def __init__(self, record: Recorded) -> None:
        self.record = record

    @cached_property
    def event(self) -> Envelope:
        """The typed event (decoding costs most of a fold: folds that can skip, do)."""
        return decode_stored(self.record.body)

    @cached_property
    def entry(self) -> JournalEntry | None:
        """The entry this event books, shared by every projection of the batch."""
        if self.record.topic not in _BOOKING_TYPES:
            return None  # most types never book: do not even decode them
        return entry_for(self.event)


class Projection(Protocol):
    """A deterministic fold of the log into tables."""

    name: str
    tables: tuple[Table, ...]

    def fold(self, batch: Sequence[Event]) -> list[Write]:
        """The writes for a batch of consecutive events (no IO, no clock)."""
        ...


class ViewStore(Protocol):
    """Where projections keep their tables and tracked positions."""

    def positions(self, names: Sequence[str]) -> dict[str, int]:
        """Each projection's tracked position (0 if never run)."""
        ...

    def commit(self, writes: Sequence[Write], positions: dict[str, int]) -> None:
        """Apply the writes and set the positions in one transaction."""
        ...

    def reset(self, projections: Sequence[Projection]) -> None:
        """Empty the projections' tables and set their positions to 0, in one transaction."""
        ...

    def scan(self, table: Table) -> Iterator[tuple[Any, ...]]:
        """Every row of a table in key order (streamed)."""
        ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A read-only report query in the store's dialect, with ``?`` placeholders."""
        ...
