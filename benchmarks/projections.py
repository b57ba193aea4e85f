"""Each projection's own rebuild speed on the same log, and the AML projection against balances.

The AML issue's bar: the AML projection (per-seller sliding windows, alerts) must run at no
less than half the speed of the balances projection. This builds one log of demo traffic on
SQLite (``--events``, default 1,000,000; ``--quick`` 50,000), then rebuilds each projection on
its own, from position 0, and reports events/s and the ratio to balances.

    python -m benchmarks.projections [--quick] [--events N] [--only balances aml]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from adapters.bootstrap import open_ledger
from benchmarks.common import DEFAULT_RESULTS_DIR, machine, write_json
from benchmarks.rebuild import build_log
from projections.runner import ProjectionRunner


def measure(url: str, names: Sequence[str] | None) -> dict[str, float]:
    """events/s of a from-zero rebuild of each projection alone."""
    out: dict[str, float] = {}
    with open_ledger(url) as ledger:
        head = ledger.store.head()
        for proj in ledger.runner.projections:
            if names and proj.name not in names:
                continue
            runner = ProjectionRunner(ledger.store, ledger.views, [proj])
            start = time.perf_counter()
            runner.rebuild()
            seconds = time.perf_counter() - start
            out[proj.name] = head / seconds
            print(
                f"  {proj.name:>16}: {head:,} events in {seconds:6.2f}s  {head / seconds:>9,.0f} events/s", flush=True
            )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.projections", description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, help="log length (default 1,000,000; --quick 50,000)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="*", help="projection names (default: all)")
    ap.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    args = ap.parse_args(argv)
    events = args.events or (50_000 if args.quick else 1_000_000)
    tmp = Path(tempfile.mkdtemp(prefix="quipu-bench-proj-"))
    try:
        url = f"sqlite:///{tmp}/log.db"
        print(f"projections: building a {events:,}-event SQLite log (setup, not measured)", flush=True)
        build_log(url, events)
        speeds = measure(url, args.only)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ratio = speeds["aml"] / speeds["balances"] if "aml" in speeds and "balances" in speeds else None
    if ratio is not None:
        verdict = "meets" if ratio >= 0.5 else "misses"
        print(f"aml / balances = {ratio:.2f} ({verdict} the bar of at least 0.5)")
    doc = {"machine": machine(None), "events": events, "events_per_s": speeds, "aml_over_balances": ratio}
    write_json(args.results_dir / "projections.json", doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
