"""What eventsourcing alone appends on SQLite, as a yardstick for Quipu's own ingest.

Each writer process saves 1,000 new aggregates of one small event per call through the library's
``Application.save`` into one fresh SQLite file: no validation against a schema, no canonical bytes, no hash
chain, no card-number scan, no event-id index, no booking check, none of the rules. The aggregates are made before
a start barrier; the clock runs from the barrier until the last writer is done, as in ``benchmarks.ingest``.

    python -m benchmarks.library_floor                 # 1 and 2 writers, 40,000 events each
    python -m benchmarks.library_floor --writers 2 --events 80000
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from benchmarks.common import machine, probe_note

BATCH = 1000


def _configure(path: Path) -> None:
    os.environ.update(PERSISTENCE_MODULE="eventsourcing.sqlite", SQLITE_DBNAME=str(path), SQLITE_LOCK_TIMEOUT="60")


def _writer(path: Path, events: int, ready: Barrier, results: mp.Queue[tuple[float, float]]) -> None:
    _configure(path)
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    class Fee(Aggregate):
        @event("Charged")
        def __init__(self, seller_id: str, amount: str, currency: str, kind: str) -> None:
            self.seller_id, self.amount, self.currency, self.kind = seller_id, amount, currency, kind

    app: Any = Application()
    batches = [
        [Fee(seller_id=f"S{i % 300}", amount="127.84", currency="BRL", kind="commission") for i in range(BATCH)]
        for _ in range(events // BATCH)
    ]
    ready.wait()
    started, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        app.save(*batch)
    results.put((time.perf_counter() - started, time.process_time() - cpu))


def run(writers: int, events: int) -> tuple[float, float, int]:
    """Events/s, CPU µs per event, and the events the file holds afterwards, for ``writers`` processes saving
    ``events`` in all."""
    with tempfile.TemporaryDirectory(prefix="quipu-library-floor-") as tmp:
        path = Path(tmp) / "library.db"
        _configure(path)
        from eventsourcing.application import Application

        Application()  # creates the table once, before the writers race
        ctx = mp.get_context("spawn")
        ready = ctx.Barrier(writers + 1)
        results: mp.Queue[tuple[float, float]] = ctx.Queue()
        per_writer = events // writers // BATCH * BATCH
        procs = [ctx.Process(target=_writer, args=(path, per_writer, ready, results)) for _ in range(writers)]
        for p in procs:
            p.start()
        ready.wait()
        started = time.perf_counter()
        cpu = sum(results.get()[1] for _ in procs)
        seconds = time.perf_counter() - started
        for p in procs:
            p.join()
        total = per_writer * writers
        with sqlite3.connect(path) as conn:
            stored = int(conn.execute("SELECT count(*) FROM stored_events").fetchone()[0])
        return total / seconds, cpu * 1e6 / total, stored


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.library_floor", description=__doc__.split("\n\n")[0])
    ap.add_argument("--writers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--events", type=int, default=40_000)
    args = ap.parse_args(argv)
    for writers in args.writers:
        rate, cpu, stored = run(writers, args.events)
        print(f"eventsourcing Application.save, SQLite, {writers} writer(s), {BATCH:,} per call: "
              f"{rate:,.0f} events/s, {cpu:.1f} µs CPU per event ({stored:,} events stored)", flush=True)  # fmt: skip
    print(probe_note(machine(None)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
