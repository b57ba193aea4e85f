"""``quipu project --rebuild``: the page-local projections folded by several processes (ADR 0037).

Pure Python folds one page at a time on one core. The journal, balances and trial balance read nothing but
the page, so worker processes fold pages side by side and commit them in log order
(:mod:`projections.parallel`); the projections that read their own views follow, serially, from the same
log. Small logs are rebuilt serially: starting a worker costs about a second of imports.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnContext
from multiprocessing.synchronize import Lock
from pathlib import Path
from typing import Final, cast

from adapters.bootstrap import Ledger, first_line, open_ledger
from adapters.runtime import reset_peak, status_mib, tune_gc
from adapters.store.pg_url import PgTarget
from adapters.views.postgres_views import PostgresViewStore
from adapters.views.sqlite_views import SQLiteViewStore
from ledger.errors import QuipuError
from projections.parallel import fold_pages, page_local
from projections.runner import Progress, ProjectionRunner, RunReport
from projections.views import Projection, ProjectionMoved

#: Below this many events a serial rebuild finishes before the workers have started.
MIN_PARALLEL_EVENTS: Final = 200_000
#: Events per page a worker folds and commits: fewer, larger commits than the serial runner's pages measured
#: ~10 % faster here (2,000: 55k events/s; 5,000: 61k; 10,000: 58k at a million events, two workers).
PAGE: Final = 5000
#: How long a worker waits for another to finish opening the ledger, in seconds.
OPEN_TIMEOUT: Final = 300.0
#: How often the parent reports progress while the workers run, in seconds.
PROGRESS_EVERY: Final = 0.25


class RebuildFailed(QuipuError):
    """A rebuild worker failed; the pages committed before it stay, and a later run resumes from them."""


@dataclass(frozen=True, slots=True)
class RebuildReport(RunReport):
    """A rebuild's run, with the workers it used and the memory each added to its own process."""

    workers: int = 1
    worker_peaks_mib: list[float] = field(default_factory=list)


def default_workers() -> int:
    """One worker per core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def rebuild(
    ledger: Ledger,
    projections: Sequence[Projection] | None = None,
    to_position: int | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    min_events: int = MIN_PARALLEL_EVENTS,
    page: int = PAGE,
    views: SQLiteViewStore | PostgresViewStore | None = None,
) -> RebuildReport:
    """Empty the views of ``projections`` (default: all) and fold the log into them again from 0.

    ``views`` is where (default: the ledger's own; ``quipu project --check`` passes a scratch store).

    With ``workers`` > 1 (default: one per core) and at least ``min_events`` in the log, the page-local
    projections are folded by that many processes, ``page`` events at a time, and the others follow serially.
    ``progress`` then counts the two passes over the log as one job: ``(done, total)`` runs to twice the head,
    so that a progress bar does not start again from zero for the second pass.
    """
    base = ledger.runner
    target = ledger.views if views is None else views
    chosen = list(base.projections if projections is None else projections)
    count = default_workers() if workers is None else workers
    head = ledger.store.head() if to_position is None else min(to_position, ledger.store.head())
    local = [p for p in chosen if page_local(p)]
    rest = [p for p in chosen if not page_local(p)]
    if count < 2 or not local or head < min_events:
        target.reset(chosen)
        done = ProjectionRunner(ledger.store, target, chosen, base.batch_size, base.read_ahead).run(head, progress)
        return RebuildReport(done.start, done.end, done.events)
    passes = 2 if rest else 1

    def first(position: int, _head: int) -> None:
        if progress is not None:
            progress(position, passes * head)

    def second(position: int, _head: int) -> None:
        if progress is not None:
            progress((passes - 1) * head + position, passes * head)

    # The workers import and open while this process empties the views (their first commit waits for it).
    where = target.path if isinstance(target, SQLiteViewStore) else target.target
    peaks = _parallel(ledger.url, where, [p.name for p in local], head, page, count, first,
                      lambda: target.reset(chosen))  # fmt: skip
    if peaks is None:  # another runner moved a projection: finish serially from where everything stands
        peaks = []
        rest = chosen
    if rest:
        ProjectionRunner(ledger.store, target, rest, base.batch_size, base.read_ahead).run(head, second)
    end = min(target.positions([p.name for p in chosen]).values(), default=0)
    return RebuildReport(0, end, end, count, peaks)


class _Turns:
    """:class:`projections.parallel.Turns` between processes: counters in shared memory, polled.

    No lock is shared: a worker killed at any instant (SIGKILL, the OOM killer) cannot leave one held for
    the others to wait on forever. Each counter is one aligned word, written by the one process whose turn it
    is; a page's fold takes far longer than the polling interval.
    """

    POLL: Final = 0.0005

    def __init__(self, ctx: SpawnContext, start: int) -> None:
        # Page -1 is the parent's: emptying the views before page 0 commits.
        self._next = ctx.RawValue("q", -1)
        self._stopped = ctx.RawValue("b", 0)
        self._position = ctx.RawValue("q", start)

    def wait(self, page: int) -> bool:
        while not self._stopped.value:
            if self._next.value == page:
                return True
            time.sleep(self.POLL)
        return False

    def done(self, page: int, position: int) -> None:
        self._position.value = position
        self._next.value = page + 1

    def stop(self) -> None:
        self._stopped.value = 1

    @property
    def stopped(self) -> bool:
        return bool(self._stopped.value)

    @property
    def position(self) -> int:
        return int(self._position.value)


@dataclass(frozen=True, slots=True)
class _Result:
    worker: int
    peak_mib: float = 0.0
    error: str | None = None
    moved: bool = False


def _parallel(
    url: str,
    views: Path | PgTarget,
    names: list[str],
    head: int,
    size: int,
    workers: int,
    progress: Progress,
    reset: Callable[[], None],
) -> list[float] | None:
    """``reset`` the views, and fold the named projections from 0 to ``head`` in ``workers`` processes; their
    peak memory added, or ``None`` if another runner moved a projection meanwhile."""
    ctx = mp.get_context("spawn")
    turns = _Turns(ctx, 0)
    opening = ctx.Lock()
    # One pipe per worker, not a shared queue: a worker killed while writing cannot block the others'.
    pipes = [ctx.Pipe(duplex=False) for _ in range(workers)]
    procs = [
        ctx.Process(
            target=_worker,
            args=(url, views, names, head, size, w, workers, turns, opening, pipes[w][1]),
            name=f"quipu-rebuild-{w}",
        )
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    for _, sender in pipes:
        sender.close()  # the parent's copy: a worker's end of file is then its own exit
    got: dict[int, _Result] = {}
    try:
        reset()
        turns.done(-1, 0)
        waiting = {w: pipes[w][0] for w in range(workers)}
        while waiting:
            for ready in wait(list(waiting.values()), timeout=PROGRESS_EVERY):
                w = next(k for k, r in waiting.items() if r is ready)
                receiver = waiting.pop(w)
                try:
                    got[w] = cast(_Result, receiver.recv())
                except EOFError:  # it died without a word (killed): nobody takes its turns
                    turns.stop()
            progress(turns.position, head)
    finally:
        if len(got) < workers:  # interrupted, or a worker died: the others must not wait for its turns
            turns.stop()
        for p in procs:
            p.join()
        for receiver, _ in pipes:
            receiver.close()
    errors = [f"worker {r.worker}: {r.error}" for r in got.values() if r.error and not r.moved]
    if len(got) < workers:
        codes = [p.exitcode for p in procs]
        errors.append(f"{workers - len(got)} worker(s) exited without reporting (exit codes {codes})")
    if not errors and not any(r.moved for r in got.values()) and turns.position != head:
        errors.append(f"the workers stopped short of position {head}")
    if errors:
        raise RebuildFailed(f"rebuild stopped at position {turns.position}: {'; '.join(errors)}")
    if any(r.moved for r in got.values()):
        return None
    return [got[w].peak_mib for w in range(workers)]


def _worker(
    url: str,
    views: Path | PgTarget,
    names: list[str],
    head: int,
    size: int,
    worker: int,
    workers: int,
    turns: _Turns,
    opening: Lock,
    results: Connection,
) -> None:
    try:
        # One opens at a time: opening runs the store's DDL, which PostgreSQL refuses to run twice at once. Never
        # waiting for ever: a worker killed while opening would hold the lock, and the run may have stopped.
        deadline = time.monotonic() + OPEN_TIMEOUT
        while not opening.acquire(timeout=0.5):
            if turns.stopped:
                raise RebuildFailed("the rebuild stopped before this worker could open the ledger")
            if time.monotonic() > deadline:
                raise RebuildFailed(f"could not take the turn to open the ledger within {OPEN_TIMEOUT:.0f} s")
        try:
            ledger = open_ledger(url, migrate=False)
        finally:
            opening.release()
        with ledger, contextlib.closing(_open_views(views)) as target:
            tune_gc()
            measured = reset_peak()
            baseline = status_mib("VmRSS") or 0.0
            chosen = [p for p in ledger.runner.projections if p.name in names]
            fold_pages(ledger.store, target, chosen, 0, head, size, worker, workers, turns)
            peak = (status_mib("VmHWM") if measured else None) or baseline
        results.send(_Result(worker, max(0.0, peak - baseline)))
    except ProjectionMoved as exc:  # fold_pages has stopped the run: the pages after this one get no turn
        results.send(_Result(worker, error=first_line(exc), moved=True))
    except BaseException as exc:  # reported to the parent, which raises it there
        turns.stop()
        results.send(_Result(worker, error=f"{type(exc).__name__}: {first_line(exc)}"))


def _open_views(where: Path | PgTarget) -> SQLiteViewStore | PostgresViewStore:
    """The view store a worker commits to: the parent's, by its file or its PostgreSQL schema."""
    return SQLiteViewStore(where) if isinstance(where, Path) else PostgresViewStore(where)
