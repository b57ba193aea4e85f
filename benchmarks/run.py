"""Run every benchmark and print one summary line per measurement.

    python -m benchmarks.run --quick     # small sizes, about 2 minutes on 2 cores
    python -m benchmarks.run             # full: 40,000-event ingest cases, 1,000,000-event rebuild

Results go to ``bench-results/ingest.json`` and ``bench-results/rebuild.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import ingest, rebuild
from benchmarks.common import DEFAULT_RESULTS_DIR, default_pg_url


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (about 2 minutes)")
    ap.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--only", choices=("ingest", "rebuild"), help="run just one benchmark")
    ap.add_argument("--keep", type=Path, metavar="DIR", help="rebuild: keep/reuse the built logs in DIR")
    ap.add_argument("--pg-url", default=default_pg_url(), help="PostgreSQL server (scratch schemas are made in it)")
    ap.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    common = ["--backend", args.backend, "--pg-url", args.pg_url, "--results-dir", str(args.results_dir)]
    if args.quick:
        common.append("--quick")
    started = time.perf_counter()
    codes: dict[str, int] = {}
    if args.only in (None, "ingest"):
        print("=" * 30, "ingest", "=" * 30, flush=True)
        codes["ingest"] = ingest.main(common)
    if args.only in (None, "rebuild"):
        print("\n" + "=" * 30, "rebuild", "=" * 30, flush=True)
        codes["rebuild"] = rebuild.main(common + (["--keep", str(args.keep)] if args.keep else []))
    print("\n" + "=" * 30, "summary", "=" * 30)
    for line in summary(args.results_dir, codes):
        print(line)
    print(f"(total {time.perf_counter() - started:.0f}s; {'quick' if args.quick else 'full'} mode)")
    return max(codes.values(), default=0)


def summary(results_dir: Path, codes: dict[str, int]) -> list[str]:
    """One line per measurement, from the JSON the benchmarks wrote."""
    lines: list[str] = []
    if "ingest" in codes:
        doc = _load(results_dir / "ingest.json")
        for r in doc.get("results", []):
            flag = "" if r["verified"] else "  VERIFY FAILED"
            lines.append(
                f"ingest   {r['backend']:<10} batch={r['batch']:<5} writers={r['writers']:<2} "
                f"{r['events_per_s']:>10,.0f} events/s  ({r['events']:,} events){flag}"
            )
    if "rebuild" in codes:
        doc = _load(results_dir / "rebuild.json")
        for r in doc.get("results", []):
            full, tenth = r["full"], r["tenth"]
            lines.append(
                f"rebuild  {r['backend']:<10} N={r['events']:<9,} {full['events_per_s']:>10,.0f} events/s  "
                f"peak +{full['delta_mib']:.1f} MiB (N/10: +{tenth['delta_mib']:.1f} MiB)"
            )
            if not r["reused_log"]:
                lines.append(
                    f"setup    {r['backend']:<10} batch=1000  writers=1  "
                    f"{r['build_events_per_s']:>10,.0f} events/s  (building the rebuild log)"
                )
    for name, code in codes.items():
        if code != 0:
            lines.append(f"{name}: exit code {code}")
    return lines


def _load(path: Path) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc


if __name__ == "__main__":
    sys.exit(main())
