"""Ingest throughput: concurrent writer processes posting into one fresh ledger.

For every backend × batch size × writer count, a fresh ledger is created (a new SQLite file
in a temporary directory, or a new PostgreSQL schema, dropped afterwards). Each writer is
its own process (``multiprocessing``, spawn) and posts its own month of demo events
(``generate(seed=1000 + w)``, disjoint ids and streams) in order, in batches of the given
size, through ``LedgerService.post``. Generating, serialising and opening the ledger happen
before a start barrier; the clock runs from the barrier to the moment the last writer
reports it is done. Throughput = events appended / that wall time.

Afterwards the log is checked: the events the writers saw appended equal the head position,
positions are 1..head with no gap, event ids are unique and the hash chain verifies.

    python -m benchmarks.ingest                 # full: 40,000 events (2,000 at batch size 1)
    python -m benchmarks.ingest --quick         # small sizes, a few seconds per case
    python -m benchmarks.ingest --backend sqlite --batch 100 --writers 8 --events 100000
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Barrier, Lock
from pathlib import Path
from threading import BrokenBarrierError
from typing import Any, Final

from adapters.bootstrap import open_ledger
from adapters.runtime import tune_gc
from benchmarks.common import (
    DEFAULT_RESULTS_DIR,
    backends,
    batches,
    check_pg,
    default_pg_url,
    demo_lines,
    machine,
    pg_wal_bytes,
    print_table,
    probe_note,
    scratch_ledger_url,
    write_json,
    written_bytes,
)
from domain.integrity import verify_chain
from domain.service import Outcome

BATCH_SIZES: Final = (1, 100, 1000)
WRITER_COUNTS: Final = (1, 8)
FULL_EVENTS: Final = 40_000
FULL_EVENTS_BATCH1: Final = 2_000
QUICK_EVENTS: Final = 8_000
QUICK_EVENTS_BATCH1: Final = 800
SEED_BASE: Final = 1000
#: How long a writer may take to get ready, and a whole case to finish, before we give up.
READY_TIMEOUT: Final = 300.0
CASE_TIMEOUT: Final = 3600.0


@dataclass(frozen=True, slots=True)
class WriterReport:
    """What one writer process sends back."""

    writer: int
    posted: int
    outcomes: dict[str, int]
    seconds: float
    """From the barrier to its last post returning (its own clock)."""
    written: int = 0
    """Bytes the writer sent to storage meanwhile (SQLite: its commits and checkpoints)."""
    cpu_seconds: float = 0.0
    """CPU the writer process used meanwhile (user + system)."""
    append_seconds: float = 0.0
    """Time spent in the store's append (the transaction that inserts, chains and commits a batch, waits for the
    write lock included)."""
    error: str | None = None


@dataclass(slots=True)
class CaseResult:
    """One backend × batch size × writer count."""

    backend: str
    batch: int
    writers: int
    events: int
    """Events appended (what throughput is computed from)."""
    seconds: float
    events_per_s: float
    posted: int
    outcomes: dict[str, int]
    head: int
    verified: bool
    problems: list[str] = field(default_factory=list)
    slowest_writer_s: float = 0.0
    fastest_writer_s: float = 0.0
    cpu_us_per_event: float = 0.0
    """The writers' CPU (user + system) per appended event: all the cores together can do no better than
    cores / this."""
    cpu_busy: float = 0.0
    """The writers' CPU seconds over (wall seconds × the machine's cores): below 1, cores sat idle (a writer
    waiting for the write lock, or fewer writers than cores)."""
    append_us_per_event: float = 0.0
    """Time in the store's append per event, summed over the writers. With one writer it is the time the write
    lock is held, which no number of cores runs in parallel: 1 / this is the serial ceiling."""
    kib_written_per_event: float = 0.0
    """SQLite: bytes the writers sent to storage; PostgreSQL: WAL the server wrote (whole server), per event."""


def _writer(
    url: str,
    writer: int,
    seed: int,
    events: int,
    batch: int,
    opening: Lock,
    ready: Barrier,
    reports: mp.Queue[WriterReport],
) -> None:
    """A writer process: prepare, wait at the barrier, post every batch, report."""
    try:
        lines = demo_lines(seed, events)
        # One process opens at a time: PostgresEventStore re-runs eventsourcing's DDL on
        # every open (CREATE OR REPLACE FUNCTION ...), and concurrent runs of that DDL fail
        # with "tuple concurrently updated" even when the schema already exists. (Harmless
        # once the store serialises its own DDL.)
        with opening:
            ledger = open_ledger(url, migrate=False)
    except BaseException as exc:
        ready.abort()
        reports.put(WriterReport(writer, 0, {}, 0.0, error=f"setup: {exc!r}"))
        raise
    try:
        tune_gc()  # as `quipu post` and every other quipu process does
        in_append = _time_appends(ledger.service.store)
        ready.wait(READY_TIMEOUT)
        start = time.perf_counter()
        cpu = time.process_time()
        written = written_bytes()
        counts: Counter[str] = Counter()
        for chunk in batches(lines, batch):
            for result in ledger.service.post(chunk):
                counts[result.outcome.value] += 1
        elapsed = time.perf_counter() - start
        reports.put(
            WriterReport(
                writer,
                len(lines),
                dict(counts),
                elapsed,
                written_bytes() - written,
                time.process_time() - cpu,
                in_append[0],
            )
        )
    except BaseException as exc:
        ready.abort()
        reports.put(WriterReport(writer, 0, {}, 0.0, error=f"post: {exc!r}"))
        raise
    finally:
        ledger.close()


def _time_appends(store: object) -> list[float]:
    """Wrap ``store.append`` to add up the seconds spent in it; the one-element list it returns holds the sum."""
    spent = [0.0]
    append = store.append  # type: ignore[attr-defined]

    def timed(records: Any) -> Any:
        started = time.perf_counter()
        try:
            return append(records)
        finally:
            spent[0] += time.perf_counter() - started

    setattr(store, "append", timed)  # noqa: B010 - an instance attribute shadows the method (mypy refuses it)
    return spent


def run_case(url: str, backend: str, batch: int, writers: int, total: int, pg_url: str | None = None) -> CaseResult:
    """Create the ledger at ``url``, run ``writers`` processes on it, time and verify (``pg_url``: the server
    whose WAL is counted)."""
    with open_ledger(url):  # create the log and migrate the views once, before the writers race
        pass
    per_writer = max(1, total // writers)
    ctx = mp.get_context("spawn")
    ready = ctx.Barrier(writers + 1)
    opening = ctx.Lock()
    reports: mp.Queue[WriterReport] = ctx.Queue()
    procs: list[BaseProcess] = [
        ctx.Process(
            target=_writer,
            args=(url, w, SEED_BASE + w, per_writer, batch, opening, ready, reports),
            name=f"quipu-bench-writer-{w}",
        )
        for w in range(writers)
    ]
    for p in procs:
        p.start()
    got: list[WriterReport] = []
    try:
        try:
            ready.wait(READY_TIMEOUT)
        except BrokenBarrierError:
            got.extend(_drain(reports, procs, writers, 30.0))
            raise RuntimeError(f"a writer failed before the start: {[r.error for r in got if r.error]}") from None
        wal = pg_wal_bytes(pg_url) if pg_url else 0
        start = time.perf_counter()
        got.extend(_drain(reports, procs, writers, CASE_TIMEOUT))
        seconds = time.perf_counter() - start
        wal = pg_wal_bytes(pg_url) - wal if pg_url else 0
    finally:
        for p in procs:
            p.join(60)
            if p.is_alive():  # pragma: no cover - only on a hung writer
                p.terminate()
                p.join()
    errors = [f"writer {r.writer}: {r.error}" for r in got if r.error]
    if errors or len(got) != writers:
        raise RuntimeError(f"{len(got)}/{writers} writers reported; errors: {errors}")
    outcomes: Counter[str] = Counter()
    for r in got:
        outcomes.update(r.outcomes)
    appended = outcomes[Outcome.APPENDED.value]
    posted = sum(r.posted for r in got)
    head, problems = verify(url, appended)
    if appended != posted:
        problems.append(f"{posted - appended} of {posted} posted events were not appended: {dict(outcomes)}")
    return CaseResult(
        backend=backend,
        batch=batch,
        writers=writers,
        events=appended,
        seconds=seconds,
        events_per_s=appended / seconds if seconds > 0 else 0.0,
        posted=posted,
        outcomes=dict(outcomes),
        head=head,
        verified=not problems,
        problems=problems,
        slowest_writer_s=max(r.seconds for r in got),
        fastest_writer_s=min(r.seconds for r in got),
        cpu_us_per_event=sum(r.cpu_seconds for r in got) * 1e6 / max(1, appended),
        cpu_busy=sum(r.cpu_seconds for r in got) / (seconds * (os.cpu_count() or 1)) if seconds > 0 else 0.0,
        append_us_per_event=sum(r.append_seconds for r in got) * 1e6 / max(1, appended),
        kib_written_per_event=(wal if pg_url else sum(r.written for r in got)) / 1024 / max(1, appended),
    )


def _drain(
    reports: mp.Queue[WriterReport], procs: Sequence[BaseProcess], expected: int, timeout: float
) -> list[WriterReport]:
    """Collect ``expected`` reports, noticing writers that died without one."""
    got: list[WriterReport] = []
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        try:
            got.append(reports.get(timeout=0.05))
        except queue.Empty:
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead and reports.empty():
                time.sleep(0.5)  # a report may still be in the pipe
                while not reports.empty():
                    got.append(reports.get())
                break
    return got


def verify(url: str, appended: int) -> tuple[int, list[str]]:
    """The head, and what is wrong with the log (nothing, we hope)."""
    problems: list[str] = []
    with open_ledger(url, migrate=False) as ledger:
        head = ledger.store.head()
        if head != appended:
            problems.append(f"head is {head} but writers saw {appended} events appended")
        ids = set()
        expected = 1
        while records := ledger.store.read(expected - 1, 5000):
            for r in records:
                if r.position != expected:
                    problems.append(f"position {expected} missing (next is {r.position})")
                    expected = r.position
                ids.add(r.event_id)
                expected += 1
        if expected - 1 != head:
            problems.append(f"read {expected - 1} positions, head is {head}")
        if len(ids) != head:
            problems.append(f"{head - len(ids)} duplicate event ids")
        chain = verify_chain(ledger.store)
        if chain.broken is not None:
            problems.append(f"hash chain broken at {chain.broken}")
    return head, problems


def run(
    backend_names: Sequence[str],
    batch_sizes: Sequence[int],
    writer_counts: Sequence[int],
    events: int,
    events_batch1: int,
    pg_url: str,
) -> list[CaseResult]:
    """Every case, each on a fresh ledger; prints a line per case as it finishes."""
    results: list[CaseResult] = []
    with tempfile.TemporaryDirectory(prefix="quipu-bench-ingest-") as tmp:
        for backend in backend_names:
            for batch in batch_sizes:
                for writers in writer_counts:
                    total = events_batch1 if batch == 1 else events
                    with scratch_ledger_url(backend, Path(tmp), f"ingest-{batch}-{writers}", pg_url) as url:
                        r = run_case(url, backend, batch, writers, total, pg_url if backend == "postgresql" else None)
                    status = "ok" if r.verified else "FAILED: " + "; ".join(r.problems)
                    print(
                        f"  {backend:10} batch={batch:<5} writers={writers}  {r.events:>7,} events "
                        f"in {r.seconds:7.2f}s  {r.events_per_s:>9,.0f} events/s  "
                        f"{r.kib_written_per_event:5.1f} KiB/event written  CPU {r.cpu_us_per_event:5.1f} µs/event "
                        f"(cores {r.cpu_busy:4.0%} busy)  append {r.append_us_per_event:5.1f} µs/event  [{status}]",
                        flush=True,
                    )
                    results.append(r)
    return results


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ingest", description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--batch", type=int, nargs="+", default=list(BATCH_SIZES), help="batch sizes (default 1 100 1000)")
    ap.add_argument("--writers", type=int, nargs="+", default=list(WRITER_COUNTS), help="writer processes (1 8)")
    ap.add_argument("--events", type=int, help=f"events per case for batch > 1 (default {FULL_EVENTS:,})")
    ap.add_argument("--events-batch1", type=int, help=f"events per case at batch 1 (default {FULL_EVENTS_BATCH1:,})")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_EVENTS:,} / {QUICK_EVENTS_BATCH1:,} events")
    ap.add_argument("--pg-url", default=default_pg_url(), help="PostgreSQL server (a scratch schema per case)")
    ap.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR, help="where ingest.json goes")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    events: int = args.events or (QUICK_EVENTS if args.quick else FULL_EVENTS)
    events_batch1: int = args.events_batch1 or (QUICK_EVENTS_BATCH1 if args.quick else FULL_EVENTS_BATCH1)
    names = backends(args.backend)
    if "postgresql" in names and (problem := check_pg(args.pg_url)) is not None:
        print(f"PostgreSQL unreachable at {args.pg_url}: {problem}", file=sys.stderr)
        print("start it with `. scripts/start-postgres.sh`, or pass --backend sqlite", file=sys.stderr)
        return 2
    print(f"ingest: backends={','.join(names)} batch={args.batch} writers={args.writers} "
          f"events={events:,} (batch 1: {events_batch1:,})", flush=True)  # fmt: skip
    results = run(names, args.batch, args.writers, events, events_batch1, args.pg_url)
    print()
    print_table(
        ("backend", "batch", "writers", "events", "seconds", "events/s", "KiB written/event", "CPU µs/event",
         "cores busy", "append µs/event", "verified"),
        [
            (r.backend, r.batch, r.writers, r.events, r.seconds, r.events_per_s, r.kib_written_per_event,
             r.cpu_us_per_event, f"{r.cpu_busy:.0%}", r.append_us_per_event, r.verified)
            for r in results
        ],
    )  # fmt: skip
    print(
        "\nCPU µs/event: the writers' CPU per event; the cores can do no better than cores / it. Append µs/event: "
        "time in the store's append per event; with one writer that is the write lock held, a serial ceiling of "
        "1 / it however many cores."
    )
    out = args.results_dir / "ingest.json"
    doc: dict[str, Any] = {
        "benchmark": "ingest",
        "mode": "quick" if args.quick else "full",
        "params": {"events": events, "events_batch1": events_batch1, "batch": args.batch, "writers": args.writers},
        "machine": machine(args.pg_url if "postgresql" in names else None),
        "results": [asdict(r) for r in results],
    }
    write_json(out, doc)
    print(f"\n{probe_note(doc['machine'])}\nwrote {out}")
    return 0 if all(r.verified for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
