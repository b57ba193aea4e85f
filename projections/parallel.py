"""Folding pages of the log side by side, committing them in log order (ADR 0037).

A *page-local* projection's writes for a page depend on that page's events alone: it never reads its views
(the journal, the balances, the trial balance). Several processes can then fold different pages at the
same time, as long as the pages commit in order: each commit still moves the projections' tracked positions
from where the previous page left them, with that page's rows, in one transaction. A run stopped anywhere
leaves the same views as a serial run stopped at that page, and resumes from there.

Page *j* of a run starting after position ``start`` covers the positions ``start + j*size + 1`` to
``start + (j+1)*size`` (bounded by ``head``): workers agree on the pages without talking to each other.
Worker *w* of *n* folds pages *w*, *w+n*, ... and waits for its turn (page *j-1* committed) to commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from domain.ports import EventStore
from projections.views import Event, Projection, ViewStore, Write


def page_local(projection: Projection) -> bool:
    """Whether the projection declares its fold reads nothing but the page (``page_local = True``)."""
    return getattr(projection, "page_local", False) is True


class Turns(Protocol):
    """The order in which pages commit, shared by the workers of one run."""

    def wait(self, page: int) -> bool:
        """Block until the page before ``page`` is committed; ``False`` if the run was stopped meanwhile."""
        ...

    def done(self, page: int, position: int) -> None:
        """``page`` is committed; the projections are now at ``position``."""
        ...

    def stop(self) -> None:
        """Stop the run: every waiting and later ``wait`` answers ``False``."""
        ...


def pages(start: int, head: int, size: int) -> int:
    """How many pages the positions after ``start`` up to ``head`` make."""
    return max(0, -(-(head - start) // size))


def fold_pages(
    store: EventStore,
    views: ViewStore,
    projections: Sequence[Projection],
    start: int,
    head: int,
    size: int,
    worker: int,
    workers: int,
    turns: Turns,
) -> int:
    """Fold and commit this worker's pages; returns the events it folded.

    Every projection must be page-local and at ``start``. Any failure stops the whole run (the pages
    already committed stay: they are a consistent prefix) and is raised.
    """
    if not all(page_local(p) for p in projections):
        raise ValueError("only page-local projections can be folded page by page in parallel")
    folded = 0
    try:
        for page in range(worker, pages(start, head, size), workers):
            after = start + page * size
            upper = min(after + size, head)
            records = store.read(after, size, upper)
            batch = [Event(r) for r in records]
            writes: list[Write] = []
            for proj in projections:
                writes.extend(proj.fold(batch, views))
            if not turns.wait(page):
                return folded
            views.commit(writes, {p.name: (after, upper) for p in projections})
            turns.done(page, upper)
            folded += len(records)
    except BaseException:
        turns.stop()
        raise
    return folded
