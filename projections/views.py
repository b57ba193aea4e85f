"""The view-store port: tables, the writes a fold produces, and the store that commits them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

import orjson

from domain.catalog import decode_stored
from domain.envelope import Envelope
from domain.ports import Recorded
from domain.posting_rules import BOOKING_TYPES, Doc, entry_for_doc
from ledger.errors import QuipuError
from ledger.journal import JournalEntry

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


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


@dataclass(frozen=True, slots=True)
class Put:
    """Insert keyed rows, or overwrite every non-key column of rows already there.

    For state a fold must read back later (an order's site, a hold's reason): each key
    appears at most once per write, its last value in the batch.
    """

    table: Table
    rows: list[tuple[Any, ...]]


Write = Insert | Increment | Put


class Event:
    """A recorded event, decoded lazily and at most once, shared by every fold of a batch."""

    __slots__ = ("_doc", "_entry", "_event", "record")

    _UNSET: Any = object()

    def __init__(self, record: Recorded) -> None:
        self.record = record
        self._doc: Doc | None = None
        self._event: Envelope | None = None
        self._entry: JournalEntry | None = Event._UNSET

    @property
    def event(self) -> Envelope:
        """The typed, re-validated event (costly: folds that can use :attr:`doc`, do)."""
        if self._event is None:
            self._event = decode_stored(self.record.body)
        return self._event

    @property
    def doc(self) -> Doc:
        """The stored body as JSON: trusted, it was validated when it was appended."""
        if self._doc is None:
            self._doc = orjson.loads(self.record.body)
        return self._doc

    @property
    def entry(self) -> JournalEntry | None:
        """The entry this event books."""
        if self._entry is Event._UNSET:
            # Most types never book: do not even decode them.
            self._entry = entry_for_doc(self.doc) if self.record.topic in BOOKING_TYPES else None
        return self._entry

    @property
    def occurred_at_us(self) -> int:
        """Business time in microseconds since 1970-01-01 UTC."""
        ts = datetime.fromisoformat(self.doc["occurred_at"])
        # Exact integer arithmetic, a third of the cost of the float ``timestamp()``.
        us = (ts - _EPOCH) // _MICROSECOND
        if us < 0:
            # Before 1970 the original formula truncated the seconds towards zero: kept, so a
            # rebuild writes what earlier versions wrote.
            return int(ts.timestamp()) * 1_000_000 + ts.microsecond
        return us


class ProjectionMoved(QuipuError):
    """Another runner advanced a projection first; this runner's batch was not applied."""


class ViewReader(Protocol):
    """Read access to the committed rows of view tables (what a stateful fold looks up)."""

    def lookup(self, table: Table, keys: Sequence[tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        """The committed rows (whole, in column order) of the given keys that exist, by key."""
        ...


class Projection(Protocol):
    """A deterministic fold of the log into tables."""

    name: str
    tables: tuple[Table, ...]

    def fold(self, batch: Sequence[Event], views: ViewReader) -> list[Write]:
        """The writes for a batch of consecutive events (no clock). ``views`` holds the rows
        committed up to the batch: a fold that reads them must overlay its own earlier
        writes of the same batch, so the result never depends on where batches split."""
        ...


class ViewStore(ViewReader, Protocol):
    """Where projections keep their tables and tracked positions."""

    def positions(self, names: Sequence[str]) -> dict[str, int]:
        """Each projection's tracked position (0 if never run)."""
        ...

    def commit(self, writes: Sequence[Write], moves: dict[str, tuple[int, int]]) -> None:
        """Apply the writes and move each projection from its expected position to a new one,
        in one transaction; raise :class:`ProjectionMoved` (writing nothing) if a projection is
        no longer at the expected position because another runner moved it first."""
        ...

    def reset(self, projections: Sequence[Projection]) -> None:
        """Empty the projections' tables and set their positions to 0, in one transaction."""
        ...

    def scan(self, table: Table) -> Iterator[tuple[Any, ...]]:
        """Every row of a table in key order (streamed)."""
        ...

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """A read-only query's rows, fetched in pages (several streams may be read side by side)."""
        ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A read-only report query in the store's dialect, with ``?`` placeholders."""
        ...
