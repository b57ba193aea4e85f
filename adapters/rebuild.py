"""``quipu project --rebuild``: the page-local projections folded by several processes (ADR 0037).

Pure Python folds one page at a time on one core. The journal, balances and trial balance read nothing but
the page, so worker processes fold pages side by side and commit them in log order
(:mod:`projections.parallel`); the projections that read their own views follow, serially, from the same
log. Small logs are rebuilt serially: starting a worker costs about a second of imports.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.context import SpawnContext
from multiprocessing.synchronize import Condition, Lock
from typing import Final

from adapters.bootstrap import Ledger, first_line, open_ledger
from adapters.runtime import reset_peak, status_mib, tune_gc
from ledger.errors import QuipuError
from projections.parallel import fold_pages, page_local
from projections.runner import Progress, ProjectionRunner, RunReport
from projections.views import Projection, ProjectionMoved

#: Below this many events a serial rebuild finishes before the workers have started.
MIN_PARALLEL_EVENTS: Final = 200_000
#: Events per page a worker folds and commits: fewer, larger commits than the serial runner's pages measured
#: ~10 % faster here (2,000: 55k events/s; 5,000: 61k; 10,000: 58k at a million events, two workers).
PAGE: Final = 5000
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
) -> RebuildReport:
    """Empty the views of ``projections`` (default: all) and fold the log into them again from 0.

    With ``workers`` > 1 (default: one per core) and at least ``min_events`` in the log, the page-local
    projections are folded by that many processes, ``page`` events at a time, and the others follow serially.
    """
    base = ledger.runner
    chosen = list(base.projections if projections is None else projections)
    count = default_workers() if workers is None else workers
    head = ledger.store.head() if to_position is None else min(to_position, ledger.store.head())
    local = [p for p in chosen if page_local(p)]
    rest = [p for p in chosen if not page_local(p)]
    if count < 2 or not local or head < min_events:
        ledger.views.reset(chosen)
        done = ProjectionRunner(ledger.store, ledger.views, chosen, base.batch_size, base.read_ahead).run(
            head, progress
        )
        return RebuildReport(done.start, done.end, done.events)
    # The workers import and open while this process empties the views (their first commit waits for it).
    peaks = _parallel(ledger.url, [p.name for p in local], head, page, count, progress,
                      lambda: ledger.views.reset(chosen))  # fmt: skip
    if peaks is None:  # another runner moved a projection: finish serially from where everything stands
        peaks = []
        rest = chosen
    if rest:
        ProjectionRunner(ledger.store, ledger.views, rest, base.batch_size, base.read_ahead).run(head, progress)
    end = min(ledger.views.positions([p.name for p in chosen]).values(), default=0)
    return RebuildReport(0, end, end, count, peaks)


class _Turns:
    """:class:`projections.parallel.Turns` between processes: a shared page counter under a condition."""

    def __init__(self, ctx: SpawnContext, start: int) -> None:
        self._cond: Condition = ctx.Condition()
        # Page -1 is the parent's: emptying the views before page 0 commits.
        self._next = ctx.Value("q", -1, lock=False)
        self._stopped = ctx.Value("b", 0, lock=False)
        self._position = ctx.Value("q", start, lock=False)

    def wait(self, page: int) -> bool:
        with self._cond:
            while self._next.value != page and not self._stopped.value:
                self._cond.wait(1.0)
            return not self._stopped.value

    def done(self, page: int, position: int) -> None:
        with self._cond:
            self._next.value = page + 1
            self._position.value = position
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped.value = 1
            self._cond.notify_all()

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
    names: list[str],
    head: int,
    size: int,
    workers: int,
    progress: Progress | None,
    reset: Callable[[], None],
) -> list[float] | None:
    """``reset`` the views, and fold the named projections from 0 to ``head`` in ``workers`` processes; their
    peak memory added, or ``None`` if another runner moved a projection meanwhile."""
    ctx = mp.get_context("spawn")
    turns = _Turns(ctx, 0)
    opening = ctx.Lock()
    results: mp.Queue[_Result] = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(url, names, head, size, w, workers, turns, opening, results),
            name=f"quipu-rebuild-{w}",
        )
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    got: list[_Result] = []
    try:
        reset()
        turns.done(-1, 0)
        while len(got) < workers:
            try:
                got.append(results.get(timeout=PROGRESS_EVERY))
            except queue.Empty:
                if any(p.exitcode not in (None, 0) for p in procs):
                    turns.stop()  # a worker was killed: nobody takes its turns, so the others must not wait
                if not any(p.is_alive() for p in procs) and results.empty():
                    break  # reported below
            if progress is not None:
                progress(turns.position, head)
    finally:
        if len(got) < workers:  # interrupted, or a worker died: the others must not wait for its turns
            turns.stop()
        for p in procs:
            p.join()
    errors = [f"worker {r.worker}: {r.error}" for r in got if r.error and not r.moved]
    if len(got) < workers:
        errors.append(
            f"{workers - len(got)} worker(s) exited without reporting (exit codes {[p.exitcode for p in procs]})"
        )
    if errors:
        raise RebuildFailed(f"rebuild stopped at position {turns.position}: {'; '.join(errors)}")
    if any(r.moved for r in got):
        return None
    return [r.peak_mib for r in sorted(got, key=lambda r: r.worker)]


def _worker(
    url: str,
    names: list[str],
    head: int,
    size: int,
    worker: int,
    workers: int,
    turns: _Turns,
    opening: Lock,
    results: mp.Queue[_Result],
) -> None:
    try:
        # One opens at a time: opening runs the store's DDL, which PostgreSQL refuses to run twice at once.
        with opening:
            ledger = open_ledger(url, migrate=False)
        with ledger:
            tune_gc()
            measured = reset_peak()
            baseline = status_mib("VmRSS") or 0.0
            chosen = [p for p in ledger.runner.projections if p.name in names]
            fold_pages(ledger.store, ledger.views, chosen, 0, head, size, worker, workers, turns)
            peak = (status_mib("VmHWM") if measured else None) or baseline
        results.put(_Result(worker, max(0.0, peak - baseline)))
    except ProjectionMoved as exc:
        results.put(_Result(worker, error=first_line(exc), moved=True))
    except BaseException as exc:  # reported to the parent, which raises it there
        turns.stop()
        results.put(_Result(worker, error=f"{type(exc).__name__}: {first_line(exc)}"))
