"""Projection rebuild: fold a long log into the views from position 0, timed, with peak memory.

Per backend, a log of N events is built once (setup, not the measurement, though its rate
is printed): demo months generated in chunks of 50,000 with one seed per chunk, so memory
stays bounded, posted in batches of 1,000. Then, each in a fresh child process (spawn)
that only opens the ledger and calls ``ledger.runner.rebuild()``:

* a rebuild up to position N/10, then
* a full rebuild (N events),

each reporting wall time (``time.perf_counter``), events/s and the memory the rebuild added
to the child's peak: peak resident set after the rebuild minus the resident set after
opening. On Linux the peak is ``VmHWM``, reset to the current RSS right after opening; plain
``ru_maxrss`` (also recorded) is useless here, because a spawned child's ``ru_maxrss``
starts at its parent's RSS, and the parent has just built the log. The runner holds one page
of the log at a time, so the two peaks should be about the same.

    python -m benchmarks.rebuild                          # 1,000,000 events, both backends
    python -m benchmarks.rebuild --quick                  # 40,000 events
    python -m benchmarks.rebuild --backend sqlite --events 200000 --keep /var/tmp/quipu-bench
    python -m benchmarks.rebuild --quick --only journal balances trial_balance   # the foundation issue's bar
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import queue
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from adapters.bootstrap import open_ledger
from adapters.rebuild import MIN_PARALLEL_EVENTS, default_workers, rebuild
from adapters.runtime import reset_peak, status_mib, tune_gc
from benchmarks.common import (
    DEFAULT_RESULTS_DIR,
    backends,
    batches,
    check_pg,
    default_pg_url,
    demo_lines,
    drop_schema,
    machine,
    new_schema_name,
    pg_schema_url,
    print_table,
    write_json,
)
from domain.service import Outcome

FULL_EVENTS: Final = 1_000_000
QUICK_EVENTS: Final = 40_000
CHUNK: Final = 50_000
POST_BATCH: Final = 1000
SEED_BASE: Final = 2000
CHILD_TIMEOUT: Final = 6 * 3600.0


@dataclass(frozen=True, slots=True)
class RebuildRun:
    """One rebuild, measured in its own process."""

    to_position: int
    events: int
    seconds: float
    events_per_s: float
    baseline_mib: float
    """Resident memory after opening the ledger (the peak is reset to it, see :func:`adapters.runtime.reset_peak`)."""
    peak_mib: float
    """Peak resident memory at the end of the rebuild."""
    delta_mib: float
    """What the rebuild added: ``peak_mib - baseline_mib``."""
    method: str
    """``VmHWM`` (Linux, peak reset after opening) or ``ru_maxrss``."""
    ru_maxrss_before_mib: float
    ru_maxrss_after_mib: float
    workers: int = 1
    """Processes folding the page-local projections (1: the serial runner, ADR 0037)."""
    worker_peaks_mib: list[float] = field(default_factory=list)
    """What each worker process added to its own peak; ``delta_mib`` includes their sum."""
    error: str | None = None


@dataclass(slots=True)
class BackendResult:
    """Everything measured on one backend."""

    backend: str
    events: int
    reused_log: bool
    build_seconds: float
    build_events_per_s: float
    tenth: RebuildRun
    full: RebuildRun
    memory_growth: float
    """``full.delta_mib / tenth.delta_mib``: about 1 when memory does not grow with the log."""


def _ru_maxrss_mib() -> float:
    # Linux reports KiB (macOS bytes; this benchmark targets Linux).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rebuild_child(
    url: str,
    to_position: int | None,
    out: mp.Queue[RebuildRun],
    only: Sequence[str] | None,
    workers: int,
    min_events: int,
) -> None:
    """Open the ledger, note the memory, rebuild, note the peak."""
    try:
        with open_ledger(url, migrate=False) as ledger:
            gc.collect()
            tune_gc()  # as `quipu project` does
            ru_before = _ru_maxrss_mib()
            hwm = reset_peak()
            baseline = (status_mib("VmRSS") if hwm else None) or ru_before
            start = time.perf_counter()
            chosen = [p for p in ledger.runner.projections if not only or p.name in only]
            # As `quipu project --rebuild --workers N` does: workers from `min_events` events on (the command's own
            # threshold unless --min-events says otherwise), the serial runner below.
            report = rebuild(ledger, chosen, to_position, workers=workers, min_events=min_events)
            seconds = time.perf_counter() - start
            ru_after = _ru_maxrss_mib()
            peak = (status_mib("VmHWM") if hwm else None) or ru_after
        out.put(
            RebuildRun(
                to_position=report.end,
                events=report.events,
                seconds=seconds,
                events_per_s=report.events / seconds if seconds > 0 else 0.0,
                baseline_mib=baseline,
                peak_mib=peak,
                delta_mib=peak - baseline + sum(report.worker_peaks_mib),
                method="VmHWM" if hwm else "ru_maxrss",
                ru_maxrss_before_mib=ru_before,
                ru_maxrss_after_mib=ru_after,
                workers=report.workers,
                worker_peaks_mib=report.worker_peaks_mib,
            )
        )
    except BaseException as exc:
        out.put(RebuildRun(0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, "", 0.0, 0.0, error=repr(exc)))
        raise


def measure_rebuild(
    url: str,
    to_position: int | None,
    only: Sequence[str] | None = None,
    workers: int = 1,
    min_events: int = MIN_PARALLEL_EVENTS,
) -> RebuildRun:
    """One rebuild in a fresh spawned process."""
    ctx = mp.get_context("spawn")
    out: mp.Queue[RebuildRun] = ctx.Queue()
    proc = ctx.Process(
        target=_rebuild_child, args=(url, to_position, out, only, workers, min_events), name="quipu-bench-rebuild"
    )
    proc.start()
    deadline = time.monotonic() + CHILD_TIMEOUT
    try:
        while True:
            try:
                run = out.get(timeout=1.0)
                break
            except queue.Empty:
                if not proc.is_alive() and out.empty():
                    raise RuntimeError(f"rebuild process died (exit code {proc.exitcode})") from None
                if time.monotonic() > deadline:
                    raise RuntimeError("rebuild process timed out") from None
    finally:
        proc.join(60)
        if proc.is_alive():  # pragma: no cover - only on a hung child
            proc.terminate()
            proc.join()
    if run.error is not None:
        raise RuntimeError(f"rebuild failed: {run.error}")
    return run


def build_log(url: str, events: int, chunk: int = CHUNK, batch: int = POST_BATCH) -> tuple[int, float]:
    """Post ``events`` demo events (one seed per chunk) into the empty ledger at ``url``.

    Returns (events appended, seconds spent posting); generation is not counted.
    """
    posting = 0.0
    outcomes: Counter[str] = Counter()
    with open_ledger(url) as ledger:
        if ledger.store.head() != 0:
            raise RuntimeError(f"{url} is not empty")
        for k, first in enumerate(range(0, events, chunk)):
            lines = demo_lines(SEED_BASE + k, min(chunk, events - first))
            start = time.perf_counter()
            for part in batches(lines, batch):
                for r in ledger.service.post(part):
                    outcomes[r.outcome.value] += 1
            posting += time.perf_counter() - start
            done = outcomes[Outcome.APPENDED.value]
            print(f"    built {done:>10,} / {events:,}  ({done / posting:,.0f} events/s posting)", flush=True)
        head = ledger.store.head()
    appended = outcomes[Outcome.APPENDED.value]
    if appended != head or appended != sum(outcomes.values()):
        raise RuntimeError(f"build went wrong: head {head}, outcomes {dict(outcomes)}")
    return head, posting


@dataclass(slots=True)
class LogPlace:
    """Where a backend's log lives and how to clean up after it."""

    url: str
    schema: str | None
    marker: Path | None
    """With ``--keep``: a file saying the log there was built completely."""


def _place(backend: str, keep: Path | None, tmp: Path, pg_url: str) -> LogPlace:
    if backend == "sqlite":
        base = keep if keep is not None else tmp
        path = (base / "rebuild.db").resolve()
        return LogPlace(f"sqlite:///{path}", None, keep / "sqlite.built.json" if keep else None)
    if keep is None:
        schema = new_schema_name("bench_rebuild")
    else:
        name_file = keep / "postgresql-schema.txt"
        if name_file.exists():
            schema = name_file.read_text().strip()
        else:
            schema = new_schema_name("bench_rebuild_keep")
            name_file.write_text(schema + "\n")
    return LogPlace(pg_schema_url(pg_url, schema), schema, keep / "postgresql.built.json" if keep else None)


def _reusable(place: LogPlace) -> int:
    """The head of a completely built kept log at ``place``, else 0."""
    if place.marker is None or not place.marker.exists():
        return 0
    built = int(json.loads(place.marker.read_text())["head"])
    with open_ledger(place.url) as ledger:
        return built if ledger.store.head() == built else 0


def _discard(place: LogPlace, pg_url: str) -> None:
    """Throw away a (partial) kept log so it can be built again."""
    if place.schema is not None:
        drop_schema(pg_url, place.schema)
    elif place.url.startswith("sqlite:///"):
        db = Path(place.url[len("sqlite:///") :])
        for f in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            f.unlink(missing_ok=True)


def run_backend(
    backend: str,
    events: int,
    keep: Path | None,
    tmp: Path,
    pg_url: str,
    only: Sequence[str] | None = None,
    workers: int = 1,
    min_events: int = MIN_PARALLEL_EVENTS,
) -> BackendResult:
    """Build (or reuse) the log, then measure the N/10 and the full rebuild."""
    place = _place(backend, keep, tmp, pg_url)
    try:
        head = _reusable(place)
        reused = head > 0
        if reused:
            print(f"  {backend}: reusing the {head:,}-event log kept in {keep}", flush=True)
            build_seconds = 0.0
            if head != events:
                print(f"  {backend}: note: it has {head:,} events, not the {events:,} asked for", flush=True)
        else:
            if place.marker is not None:
                place.marker.unlink(missing_ok=True)
                _discard(place, pg_url)
            print(f"  {backend}: building a {events:,}-event log (setup, not measured)", flush=True)
            head, build_seconds = build_log(place.url, events)
            if place.marker is not None:
                where = place.schema if place.schema is not None else place.url  # no password on disk
                place.marker.write_text(json.dumps({"head": head, "where": where}) + "\n")
        tenth = measure_rebuild(place.url, max(1, head // 10), only, workers, min_events)
        _print_run(backend, tenth)
        full = measure_rebuild(place.url, None, only, workers, min_events)
        _print_run(backend, full)
        if full.events != head:
            raise RuntimeError(f"full rebuild folded {full.events:,} events, the log has {head:,}")
    finally:
        if keep is None and place.schema is not None:
            drop_schema(pg_url, place.schema)
    return BackendResult(
        backend=backend,
        events=head,
        reused_log=reused,
        build_seconds=build_seconds,
        build_events_per_s=head / build_seconds if build_seconds > 0 else 0.0,
        tenth=tenth,
        full=full,
        memory_growth=full.delta_mib / tenth.delta_mib if tenth.delta_mib > 0 else float("nan"),
    )


def _print_run(backend: str, r: RebuildRun) -> None:
    print(
        f"  {backend}: rebuild to {r.to_position:>10,}: {r.events:>10,} events in {r.seconds:8.2f}s "
        f"{r.events_per_s:>9,.0f} events/s  {r.workers} worker(s)  peak +{r.delta_mib:,.1f} MiB "
        f"(baseline {r.baseline_mib:,.1f} MiB)",
        flush=True,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.rebuild", description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--events", type=int, help=f"log length N (default {FULL_EVENTS:,}; --quick {QUICK_EVENTS:,})")
    ap.add_argument("--quick", action="store_true", help=f"N = {QUICK_EVENTS:,}")
    ap.add_argument("--keep", type=Path, metavar="DIR", help="keep the built logs in DIR and reuse them next time")
    ap.add_argument("--pg-url", default=default_pg_url(), help="PostgreSQL server (a scratch schema per run)")
    ap.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR, help="where rebuild.json goes")
    ap.add_argument(
        "--only", nargs="*", help="rebuild only these projections (e.g. journal balances trial_balance); default all"
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="processes folding the page-local projections side by side (default: one per core; 1: serial)",
    )
    ap.add_argument(
        "--min-events",
        type=int,
        default=MIN_PARALLEL_EVENTS,
        help=f"start workers only for a rebuild of at least this many events (default {MIN_PARALLEL_EVENTS:,}, as "
        "`quipu project --rebuild`; 0: always)",
    )
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    events: int = args.events or (QUICK_EVENTS if args.quick else FULL_EVENTS)
    names = backends(args.backend)
    if "postgresql" in names and (problem := check_pg(args.pg_url)) is not None:
        print(f"PostgreSQL unreachable at {args.pg_url}: {problem}", file=sys.stderr)
        print("start it with `. scripts/start-postgres.sh`, or pass --backend sqlite", file=sys.stderr)
        return 2
    keep: Path | None = args.keep
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    which = ",".join(args.only) if args.only else "all projections"
    print(f"rebuild: backends={','.join(names)} events={events:,} ({which})", flush=True)
    results: list[BackendResult] = []
    tmp = Path(tempfile.mkdtemp(prefix="quipu-bench-rebuild-"))
    try:
        for backend in names:
            results.append(
                run_backend(backend, events, keep, tmp, args.pg_url, args.only, args.workers, args.min_events)
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    rows: list[tuple[object, ...]] = []
    for r in results:
        for label, run in (("N/10", r.tenth), ("N", r.full)):
            rows.append((r.backend, label, run.events, run.seconds, run.events_per_s, run.delta_mib, run.peak_mib))
    print_table(("backend", "log", "events", "seconds", "events/s", "peak +MiB", "peak MiB"), rows)
    print()
    for r in results:
        build = f"{r.build_events_per_s:,.0f} events/s" if not r.reused_log else "reused"
        print(f"{r.backend}: ingest setup {build}; rebuild peak at N vs N/10: ×{r.memory_growth:.2f}")
    out = args.results_dir / "rebuild.json"
    doc: dict[str, Any] = {
        "benchmark": "rebuild",
        "mode": "quick" if args.quick else "full",
        "params": {"events": events, "chunk": CHUNK, "post_batch": POST_BATCH, "only": args.only},
        "machine": machine(args.pg_url if "postgresql" in names else None),
        "results": [asdict(r) for r in results],
    }
    write_json(out, doc)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
