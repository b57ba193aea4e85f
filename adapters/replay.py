"""Replays into named snapshots: any projection as of a position, a record time or a business time.

A snapshot is a separate view store (``<ledger dir>/snapshots/NAME.db`` beside a SQLite
ledger, or the schema ``<schema>_snap_NAME`` beside a PostgreSQL one); the live views are
never touched. Two snapshots can be compared row by row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.audit import positions_between
from adapters.bootstrap import Ledger, sqlite_path
from adapters.views.postgres_views import PostgresViewStore
from adapters.views.sqlite_views import SQLiteViewStore
from ledger.errors import QuipuError
from projections.runner import ProjectionRunner, RunReport
from projections.views import Event, Projection, Table, ViewReader, Write


class ReplayError(QuipuError, ValueError):
    """A replay that cannot be made as asked."""


class AsOfEffective:
    """A projection that only folds events that had happened (business time) by a moment."""

    def __init__(self, inner: Projection, until_us: int) -> None:
        self.inner = inner
        self.name = inner.name
        self.tables: tuple[Table, ...] = inner.tables
        self.until_us = until_us

    def fold(self, batch: Sequence[Event], views: ViewReader) -> list[Write]:
        return self.inner.fold([e for e in batch if e.occurred_at_us <= self.until_us], views)


def check_name(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9_]{1,40}", name):
        raise ReplayError(f"--name: {name!r} must be 1-40 lower-case letters, digits or underscores")
    return name


def snapshot_store(ledger: Ledger, name: str) -> SQLiteViewStore | PostgresViewStore:
    """The view store of a named snapshot (created empty if new)."""
    check_name(name)
    if isinstance(ledger.views, PostgresViewStore):
        return PostgresViewStore(ledger.views.target.with_schema(f"{ledger.views.target.schema}_snap_{name}"))
    return SQLiteViewStore(sqlite_path(ledger.url).parent / "snapshots" / f"{name}.db")


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What a replay folded."""

    name: str
    to_position: int
    run: RunReport


def replay(
    ledger: Ledger,
    name: str,
    projections: Sequence[Projection],
    to_position: int | None = None,
    as_of_recorded_us: int | None = None,
    as_of_effective_us: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayReport:
    """Rebuild ``projections`` into snapshot ``name`` from position 0 under one as-of rule."""
    chosen = [x for x in (to_position, as_of_recorded_us, as_of_effective_us) if x is not None]
    if len(chosen) != 1:
        raise ReplayError("give exactly one of --to-position, --as-of-recorded, --as-of-effective")
    head = ledger.store.head()
    stop = head
    folds: list[Projection] = list(projections)
    if to_position is not None:
        if to_position > head:
            raise ReplayError(f"--to-position: {to_position} is beyond the head of the log ({head})")
        stop = to_position
    elif as_of_recorded_us is not None:
        stop = positions_between(ledger.store, None, as_of_recorded_us)[1]
    elif as_of_effective_us is not None:
        folds = [AsOfEffective(p, as_of_effective_us) for p in projections]
    store = snapshot_store(ledger, name)
    try:
        store.upgrade()
        runner = ProjectionRunner(ledger.store, store, folds, ledger.runner.batch_size, ledger.runner.read_ahead)
        report = runner.rebuild(stop, progress)
    finally:
        store.close()
    return ReplayReport(name, stop, report)


def diff(ledger: Ledger, a: str, b: str, projections: Sequence[Projection]) -> list[dict[str, Any]]:
    """Rows that differ between two snapshots, keyed by each table's key."""
    left, right = snapshot_store(ledger, a), snapshot_store(ledger, b)
    rows: list[dict[str, Any]] = []
    try:
        for proj in projections:
            for table in proj.tables:
                key_idx = [table.columns.index(k) for k in table.key]
                la = {tuple(r[i] for i in key_idx): r for r in left.scan(table)}
                rb = {tuple(r[i] for i in key_idx): r for r in right.scan(table)}
                for key in sorted(set(la) | set(rb), key=repr):
                    x, y = la.get(key), rb.get(key)
                    if x == y:
                        continue
                    rows.append(
                        {
                            "table": table.name,
                            "key": "/".join(map(str, key)),
                            a: _show(table, x),
                            b: _show(table, y),
                        }
                    )
    finally:
        left.close()
        right.close()
    return rows


def _show(table: Table, row: tuple[Any, ...] | None) -> str:
    if row is None:
        return "(absent)"
    return ", ".join(f"{c}={v}" for c, v in zip(table.columns, row, strict=True) if c not in table.key)
