"""One batched, tracked runner for every projection, on any view store.

It pulls the log in pages, folds each page through every projection that is behind, and
commits the page's writes and the new positions in one transaction: exactly-once
projection under crashes (ADR 0006). Memory holds one page (two when reading ahead, ADR 0032),
whatever the log's length.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Final

import orjson

from domain.ports import EventStore, Recorded
from projections.views import Event, Projection, ProjectionMoved, ViewStore, Write

DEFAULT_BATCH: Final = 2000

#: Called after each committed page with (position reached, head of the log).
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class RunReport:
    """What a run did."""

    start: int
    end: int
    events: int


class ProjectionRunner:
    """Keeps a set of projections up to date with the log."""

    def __init__(
        self,
        store: EventStore,
        views: ViewStore,
        projections: Sequence[Projection],
        batch_size: int = DEFAULT_BATCH,
        read_ahead: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.store = store
        self.views = views
        self.projections = list(projections)
        self.batch_size = batch_size
        #: Read the next page on a second thread while this one is folded and committed. Worth it when the
        #: log lives in a server that works on another core meanwhile (PostgreSQL: ADR 0032); with SQLite the
        #: two threads only contend for the interpreter, and it measured slower.
        self.read_ahead = read_ahead

    def positions(self) -> dict[str, int]:
        """Each projection's tracked position."""
        return self.views.positions([p.name for p in self.projections])

    def run(self, to_position: int | None = None, progress: Progress | None = None) -> RunReport:
        """Catch up to the head of the log (or stop at ``to_position``)."""
        if not self.projections:
            return RunReport(0, 0, 0)  # nothing to fold: do not read the log for nobody
        tracked = self.positions()
        start = min(tracked.values(), default=0)
        head = self.store.head() if to_position is None else min(to_position, self.store.head())
        position, seen = start, 0
        with ThreadPoolExecutor(1, thread_name_prefix="quipu-read-ahead") if self.read_ahead else nullcontext() as pool:

            def read(after: int) -> Future[Sequence[Recorded]] | None:
                if after >= head:
                    return None
                if pool is not None:
                    return pool.submit(self.store.read, after, self.batch_size, head)
                page: Future[Sequence[Recorded]] = Future()
                page.set_result(self.store.read(after, self.batch_size, to_position=head))
                return page

            pending = read(position)
            while pending is not None:
                records = pending.result()
                if not records:
                    break
                # The next page is read while this one is folded and committed; it starts after this page
                # whatever happens to it (a commit that loses a race reads again from the new positions).
                pending = read(records[-1].position)
                batch = [Event(r) for r in records]
                writes: list[Write] = []
                moves: dict[str, tuple[int, int]] = {}
                first = records[0].position
                for proj in self.projections:
                    # Usually every projection is at the same position: the whole page, no copy.
                    at = tracked[proj.name]
                    behind = batch if at < first else [e for e in batch if e.record.position > at]
                    if behind:
                        writes.extend(proj.fold(behind, self.views))
                        moves[proj.name] = (tracked[proj.name], behind[-1].record.position)
                try:
                    self.views.commit(writes, moves)
                except ProjectionMoved:
                    # Another runner got there first: take its positions and go on from them.
                    if pending is not None:
                        pending.result()  # one read in flight at a time; its page is not used
                    tracked = self.positions()
                    position = min(tracked.values(), default=0)
                    pending = read(position)
                    continue
                tracked.update({name: new for name, (_, new) in moves.items()})
                position = records[-1].position
                seen += len(records)
                if progress is not None:
                    progress(position, head)
        return RunReport(start, position, seen)

    def rebuild(self, to_position: int | None = None, progress: Progress | None = None) -> RunReport:
        """Empty the views and fold the log again from position 0."""
        self.views.reset(self.projections)
        return self.run(to_position, progress)

    def checksums(self) -> dict[str, str]:
        """SHA-256 per projection over its tables' rows in key order, and its position."""
        tracked = self.positions()
        out = {}
        for proj in self.projections:
            h = hashlib.sha256(f"{proj.name}@{tracked[proj.name]}".encode())
            for table in proj.tables:
                h.update(table.name.encode())
                for row in self.views.scan(table):
                    h.update(orjson.dumps(row))
            out[proj.name] = h.hexdigest()
        return out
