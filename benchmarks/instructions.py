"""Instructions per event on the ingest path, counted by valgrind: a measure of CPU work that the machine's noise
does not move.

Time on this project's two shared cores drifts by up to 2× within an hour, so a change worth 5% cannot be seen in
events/s or in CPU seconds without many alternating runs. The number of instructions a process executes barely
moves between identical runs (±0.01% here, with ``PYTHONHASHSEED`` fixed), so it tells a small gain from noise
in one run. It is a proxy: it does not see cache misses, the database server's own work, or waits.

For each backend, a child process under ``valgrind --tool=cachegrind --cache-sim=no`` posts ``--events`` demo
events in batches of 1,000 into a fresh ledger, three times: once stopping after start-up, once after
:func:`domain.service.prepare` (parse, validate, canonical bytes, hash, booking check), once after
:meth:`LedgerService.post_prepared` too (decide and append). The differences, divided by the events, are the
instructions per event of each part. The child runs from ``--source`` (default: this checkout), so two checkouts
(``git worktree add /tmp/base HEAD~3``) can be compared:

    python -m benchmarks.instructions                          # both backends, 4,000 events
    python -m benchmarks.instructions --backend sqlite --source /tmp/base --source .

Each child takes 15-40 s under valgrind. Needs valgrind (``apt-get install valgrind``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from benchmarks.common import (
    DEFAULT_RESULTS_DIR,
    backends,
    check_pg,
    default_pg_url,
    machine,
    print_table,
    write_json,
)

MODES: Final = ("startup", "prepare", "post")
_IR: Final = re.compile(r"I\s+refs:\s+([\d,]+)")


def child(backend: str, events: int, stop_after: str, pg_url: str) -> None:
    """What runs under valgrind: open a fresh ledger, then prepare and post ``events`` demo events, stopping after
    ``stop_after``."""
    from adapters.bootstrap import open_ledger
    from adapters.runtime import tune_gc
    from domain.service import prepare

    # The benchmark helpers of this checkout, not of the one measured, which may predate some of them.
    spec = importlib.util.spec_from_file_location("_quipu_bench_common", Path(__file__).with_name("common.py"))
    assert spec is not None and spec.loader is not None
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    lines = helpers.demo_lines(1000, events)
    with (
        tempfile.TemporaryDirectory(prefix="quipu-bench-ir-") as tmp,
        helpers.scratch_ledger_url(backend, Path(tmp), "ir", pg_url) as url,
        open_ledger(url) as ledger,
    ):
        tune_gc()  # as every quipu process does (ADR 0031)
        if stop_after != "startup":
            prepared = [prepare(chunk) for chunk in helpers.batches(lines, 1000)]
            if stop_after == "post":
                for batch in prepared:
                    ledger.service.post_prepared(batch)


def count(source: Path, backend: str, events: int, stop_after: str, pg_url: str) -> int:
    """Instructions the child executed, counted by cachegrind."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(source)}
    # This file is run by path, so an older checkout without it can be measured: everything it imports comes from
    # ``source`` (the working directory). Through runpy, not as ``python FILE``, which would put this directory on
    # the path, where benchmarks/projections.py would hide the projections package.
    run_this = f"import runpy; runpy.run_path({__file__!r}, run_name='__main__')"
    args = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", sys.executable,
            "-c", run_this, "--child", stop_after, "--backend", backend, "--events", str(events),
            "--pg-url", pg_url]  # fmt: skip
    done = subprocess.run(args, cwd=source, env=env, capture_output=True, text=True, timeout=1800, check=False)
    found = _IR.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"valgrind run failed ({done.returncode}): {done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def measure(source: Path, backend: str, events: int, pg_url: str) -> dict[str, float]:
    """Instructions per event of ``prepare`` and of ``post_prepared``, for the code in ``source``."""
    ir = {mode: count(source, backend, events, mode, pg_url) for mode in MODES}
    return {"prepare": (ir["prepare"] - ir["startup"]) / events, "post_prepared": (ir["post"] - ir["prepare"]) / events}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--events", type=int, default=4000, help="demo events per run (default 4,000)")
    ap.add_argument("--source", type=Path, action="append", help="a checkout to measure (repeatable; default .)")
    ap.add_argument("--pg-url", default=default_pg_url(), help="PostgreSQL server (scratch schemas are made in it)")
    ap.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    ap.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.events < 1000:
        ap.error("--events must be at least 1,000 (one batch)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        child(args.backend, args.events, args.child, args.pg_url)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: apt-get install valgrind", file=sys.stderr)
        return 2
    chosen = backends(args.backend)
    if "postgresql" in chosen and (why := check_pg(args.pg_url)) is not None:
        print(f"PostgreSQL: {why}", file=sys.stderr)
        return 2
    sources = [s.resolve() for s in args.source or [Path.cwd()]]
    results: list[tuple[str, Path, dict[str, float]]] = []
    for backend in chosen:
        for source in sources:
            per_event = measure(source, backend, args.events, args.pg_url)
            results.append((backend, source, per_event))
            print(f"  {backend:10} {source}: prepare {per_event['prepare']:,.0f}, "
                  f"post_prepared {per_event['post_prepared']:,.0f} instructions/event", flush=True)  # fmt: skip
    first = {backend: sum(ir.values()) for backend, source, ir in results if source == sources[0]}
    rows = [
        (backend, source, round(ir["prepare"]), round(ir["post_prepared"]), round(sum(ir.values())),
         f"{sum(ir.values()) / first[backend]:.3f}")
        for backend, source, ir in results
    ]  # fmt: skip
    print()
    print_table(["backend", "source", "prepare", "post_prepared", "total", "× first source"], rows)
    doc = {"benchmark": "instructions", "params": {"events": args.events},
           "results": [{"backend": b, "source": str(s), **ir} for b, s, ir in results],
           "machine": machine(args.pg_url if "postgresql" in chosen else None)}  # fmt: skip
    write_json(args.results_dir / "instructions.json", doc)
    print(f"wrote {args.results_dir / 'instructions.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
