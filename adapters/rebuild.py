"""``quipu project --rebuild``: the page-local projections folded by several processes (ADR 0037).

Pure Python folds one page at a time on one core. The journal, balances and trial balance read nothing but
the page, so worker processes fold pages side by side and commit them in log order
(:mod:`projections.parallel`); the projections that read their own views follow, serially, from the same
log. Small logs are rebuilt serially: starting a worker costs about a second of imports.
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing as mp
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Final, cast

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
    projections are folded by that many processes, ``page`` events at a time. The others then follow in at most
    ``workers`` processes, each a serial runner over a group of them (they read only their own tables).
    ``progress`` counts the two passes over the log as one job: ``(done, total)`` runs to twice the head, so
    that a progress bar does not start again from zero for the second pass.
    """
    # Checked before anything is emptied: a bad argument leaves the views as they were.
    if workers is not None and workers < 1:
        raise ValueError(f"workers: must be at least 1, not {workers}")
    if page < 1:
        raise ValueError(f"page: must be at least 1 event, not {page}")
    if to_position is not None and to_position < 0:
        raise ValueError(f"to_position: must be a log position (0 or more), not {to_position}")
    base = ledger.runner
    target = ledger.views if views is None else views
    chosen = list(base.projections if projections is None else projections)
    count = default_workers() if workers is None else workers
    head = ledger.store.head() if to_position is None else min(to_position, ledger.store.head())
    local = [p for p in chosen if page_local(p)]
    rest = [p for p in chosen if not page_local(p)]
    if count < 2 or head < min_events:
        target.reset(chosen)
        done = ProjectionRunner(ledger.store, target, chosen, base.batch_size, base.read_ahead).run(head, progress)
        return RebuildReport(done.start, done.end, done.events)
    passes = 2 if local and rest else 1

    def first(position: int, _head: int) -> None:
        if progress is not None:
            progress(position, passes * head)

    def second(position: int, _head: int) -> None:
        if progress is not None:
            progress((passes - 1) * head + position, passes * head)

    where = target.path if isinstance(target, SQLiteViewStore) else target.target
    peaks: list[float] = []
    if local:
        # The workers import and open while this process empties the views (their first commit waits for it).
        folded = _pages(ledger.url, where, [p.name for p in local], head, page, count, first,
                        lambda: target.reset(chosen))  # fmt: skip
        if folded is None:  # another runner moved a projection: finish serially from where everything stands
            ProjectionRunner(ledger.store, target, chosen, base.batch_size, base.read_ahead).run(head, second)
            rest = []
        else:
            peaks += folded
    else:
        target.reset(chosen)
    if rest:
        peaks += _lanes(ledger.url, where, rest, head, base.batch_size, count, second)
    end = min(target.positions([p.name for p in chosen]).values(), default=0)
    return RebuildReport(0, end, end, count, peaks)


class _Turns:
    """:class:`projections.parallel.Turns` between processes: counters in shared memory, polled.

    No lock is shared: a worker killed at any instant (SIGKILL, the OOM killer) cannot leave one held for
    the others to wait on forever. Each counter is one aligned word, written by the one process whose turn it
    is; a page's fold takes far longer than the polling interval.
    """

    POLL: Final = 0.0005

    def __init__(self, ctx: SpawnContext) -> None:
        # Page -1 is the parent's: emptying the views before page 0 commits.
        self._next = ctx.RawValue("q", -1)
        self._stopped = ctx.RawValue("b", 0)
        self._position = ctx.RawValue("q", 0)

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


Job = tuple[Callable[..., None], tuple[object, ...]]


def _supervise(
    jobs: list[Job],
    stop: Callable[[], None],
    tick: Callable[[], None],
    started: Callable[[], None] | None = None,
    interrupted: Callable[[], None] | None = None,
) -> dict[int, _Result]:
    """Run each job in its own process, ``tick`` meanwhile, and collect their results by job index.

    A job is called with its arguments and then a pipe to answer on (one pipe each, not a shared queue: a
    process killed while writing cannot block the others'). A process that dies without answering calls
    ``stop``, so that the others do not wait for it. ``started`` runs once the processes are started;
    ``interrupted`` (default ``stop``) if this process is interrupted while they run.
    """
    ctx = mp.get_context("spawn")
    procs: dict[int, BaseProcess] = {}
    waiting: dict[int, Connection] = {}
    got: dict[int, _Result] = {}
    try:
        for i, (fn, args) in enumerate(jobs):
            receiver, sender = ctx.Pipe(duplex=False)
            procs[i] = ctx.Process(target=fn, args=(*args, sender), name=f"quipu-rebuild-{i}")
            procs[i].start()
            sender.close()  # the parent's copy: the pipe's end of file is then the process's exit
            waiting[i] = receiver
        if started is not None:
            started()
        while waiting:
            for ready in wait(list(waiting.values()), timeout=PROGRESS_EVERY):
                i = next(k for k, r in waiting.items() if r is ready)
                receiver = waiting.pop(i)
                try:
                    got[i] = cast(_Result, receiver.recv())
                except EOFError:  # it died without a word (killed)
                    stop()
                receiver.close()
            tick()
    except BaseException:
        (interrupted or stop)()
        raise
    finally:
        for p in procs.values():
            p.join()
        for receiver in waiting.values():
            receiver.close()
    for i in range(len(jobs)):
        if i not in got:
            got[i] = _Result(i, error=f"exited without reporting (exit code {procs[i].exitcode})")
    return got


def _pages(
    url: str,
    views: Path | PgTarget,
    names: list[str],
    head: int,
    size: int,
    workers: int,
    progress: Progress,
    reset: Callable[[], None],
) -> list[float] | None:
    """``reset`` the views, and fold the named page-local projections from 0 to ``head`` in ``workers``
    processes; their peak memory added, or ``None`` if another runner moved a projection meanwhile."""
    ctx = mp.get_context("spawn")
    turns = _Turns(ctx)

    def started() -> None:
        reset()
        turns.done(-1, 0)

    with _open_lock() as opening:
        jobs: list[Job] = [(_page_worker, (url, views, names, head, size, w, workers, turns, opening))
                           for w in range(workers)]  # fmt: skip
        got = _supervise(jobs, turns.stop, lambda: progress(turns.position, head), started)
    errors = [f"worker {i}: {r.error}" for i, r in sorted(got.items()) if r.error and not r.moved]
    if not errors and not any(r.moved for r in got.values()) and turns.position != head:
        errors.append(f"the workers stopped short of position {head}")
    if errors:
        raise RebuildFailed(f"rebuild stopped at position {turns.position}: {'; '.join(errors)}")
    if any(r.moved for r in got.values()):
        return None
    return [got[w].peak_mib for w in range(workers)]


def _lanes(
    url: str,
    views: Path | PgTarget,
    projections: list[Projection],
    head: int,
    size: int,
    workers: int,
    progress: Progress,
) -> list[float]:
    """Fold the projections from 0 to ``head`` in at most ``workers`` processes, each a serial runner over a
    group of them; the groups' peak memory added. A failed group does not stop the others: each projection
    keeps its own views and position, and ``quipu project`` carries a stopped one on from where it is."""
    groups = lane_groups(projections, workers)
    ctx = mp.get_context("spawn")
    stopped = ctx.RawValue("b", 0)
    positions = ctx.RawArray("q", len(groups))

    def stop() -> None:
        stopped.value = 1

    def tick() -> None:
        # Together: the share of the whole second pass done, each group counting for its part.
        progress(sum(positions) // len(groups), head)

    with _open_lock() as opening:
        jobs: list[Job] = [(_lane_worker, (url, views, names, head, size, positions, i, stopped, opening))
                           for i, names in enumerate(groups)]  # fmt: skip
        got = _supervise(jobs, lambda: None, tick, interrupted=stop)
    errors = [f"{', '.join(groups[i])}: {r.error}" for i, r in sorted(got.items()) if r.error]
    if errors:
        raise RebuildFailed(f"rebuild failed: {'; '.join(errors)}")
    return [got[i].peak_mib for i in range(len(groups))]


def lane_groups(projections: Sequence[Projection], lanes: int) -> list[list[str]]:
    """The projections' names split into at most ``lanes`` groups of about equal cost, the costliest first.

    Each group is one runner: its projections share a read and a decoding of every event, so fewer groups
    cost less in all, and the slowest group sets the time. ``rebuild_cost`` (µs an event, measured with
    ``benchmarks.projections``; 10 when not declared) is only a scheduling hint.
    """
    costs = {p.name: float(getattr(p, "rebuild_cost", 10)) for p in projections}
    groups: list[list[str]] = [[] for _ in range(max(1, min(lanes, len(projections))))]
    loads = [0.0] * len(groups)
    for name in sorted(costs, key=lambda n: -costs[n]):
        lightest = loads.index(min(loads))
        groups[lightest].append(name)
        loads[lightest] += costs[name]
    return [g for g in groups if g]


def _page_worker(
    url: str,
    views: Path | PgTarget,
    names: list[str],
    head: int,
    size: int,
    worker: int,
    workers: int,
    turns: _Turns,
    opening: str,
    results: Connection,
) -> None:
    def work(ledger: Ledger, target: SQLiteViewStore | PostgresViewStore) -> None:
        chosen = [p for p in ledger.runner.projections if p.name in names]
        fold_pages(ledger.store, target, chosen, 0, head, size, worker, workers, turns)

    _in_process(url, views, opening, lambda: turns.stopped, turns.stop, worker, results, work)


def _lane_worker(
    url: str,
    views: Path | PgTarget,
    names: list[str],
    head: int,
    size: int,
    positions: Any,
    index: int,
    stopped: Any,
    opening: str,
    results: Connection,
) -> None:
    def reached(position: int, _head: int) -> None:
        positions[index] = position
        if stopped.value:
            raise RebuildFailed("stopped")

    def work(ledger: Ledger, target: SQLiteViewStore | PostgresViewStore) -> None:
        chosen = [p for p in ledger.runner.projections if p.name in names]
        ProjectionRunner(ledger.store, target, chosen, size, ledger.runner.read_ahead).run(head, reached)

    # A failed group stops nobody else: the other groups' projections are independent of it.
    _in_process(url, views, opening, lambda: bool(stopped.value), lambda: None, index, results, work)


def _in_process(
    url: str,
    views: Path | PgTarget,
    opening: str,
    stopped: Callable[[], bool],
    stop: Callable[[], None],
    index: int,
    results: Connection,
    work: Callable[[Ledger, SQLiteViewStore | PostgresViewStore], None],
) -> None:
    """A rebuild process: open in turn, do the ``work``, and answer on ``results`` with the memory it added
    or what went wrong (``stop`` is called first, for the processes that depend on this one)."""
    try:
        ledger = _open_in_turn(url, opening, stopped)
        with ledger, contextlib.closing(_open_views(views)) as target:
            tune_gc()
            measured = reset_peak()
            baseline = status_mib("VmRSS") or 0.0
            work(ledger, target)
            peak = (status_mib("VmHWM") if measured else None) or baseline
        results.send(_Result(index, max(0.0, peak - baseline)))
    except ProjectionMoved as exc:  # another runner got there first: the parent hands over to a serial run
        stop()
        results.send(_Result(index, error=first_line(exc), moved=True))
    except BaseException as exc:  # reported to the parent, which raises it there
        stop()
        results.send(_Result(index, error=f"{type(exc).__name__}: {first_line(exc)}"))


def _open_views(where: Path | PgTarget) -> SQLiteViewStore | PostgresViewStore:
    """The view store a worker commits to: the parent's, by its file or its PostgreSQL schema."""
    return SQLiteViewStore(where) if isinstance(where, Path) else PostgresViewStore(where)


@contextlib.contextmanager
def _open_lock() -> Iterator[str]:
    """A lock file for :func:`_open_in_turn`, removed afterwards."""
    fd, path = tempfile.mkstemp(prefix="quipu-rebuild-open-", suffix=".lock")
    os.close(fd)
    try:
        yield path
    finally:
        os.unlink(path)


def _open_in_turn(url: str, lock_file: str, stopped: Callable[[], bool]) -> Ledger:
    """Open the ledger, one process at a time: opening runs the store's DDL, which PostgreSQL refuses to run
    twice at once. The turn is an advisory lock on a file, which the kernel releases when its holder dies (a
    process killed while opening must not block the others), and waiting stops with the run."""
    deadline = time.monotonic() + OPEN_TIMEOUT
    with open(lock_file, "rb") as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if stopped():
                    raise RebuildFailed("the rebuild stopped before this process could open the ledger") from None
                if time.monotonic() > deadline:
                    raise RebuildFailed(
                        f"could not take the turn to open the ledger within {OPEN_TIMEOUT:.0f} s"
                    ) from None
                time.sleep(0.05)
        try:
            return open_ledger(url, migrate=False)
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
