"""Reconciliation matching at scale: N ledger items against N processor lines (level 2) and
their daily payouts against bank credits (level 3).

Setup (not measured) writes the reconciliation projection's rows directly into a fresh ledger's
tables — the ledger's side (captures with their fees and settlements) and the processor's side
(one report line per capture, one payout line per day) plus one bank credit per payout — with
one discrepancy planted per 10,000 items, so the run also records exceptions as events. The
measurement is one ``reconcile.run`` at levels 2 and 3 in a child process: wall time, rows
matched per second (ledger items + report lines) and the peak memory the run added (``VmHWM``
after minus resident set before), at N/10 and at N, to show whether memory grows with N.

    python -m benchmarks.recon                 # N = 1,000,000 (1M × 1M), SQLite
    python -m benchmarks.recon --quick         # N = 100,000
    python -m benchmarks.recon --items 200000 --backend postgresql
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adapters import reconcile
from adapters.bootstrap import open_ledger
from adapters.views.sqlite_views import SQLiteViewStore
from benchmarks.common import (
    DEFAULT_RESULTS_DIR,
    default_pg_url,
    drop_schema,
    machine,
    new_schema_name,
    pg_schema_url,
    write_json,
)

RUN_DATE = dt.date(2026, 11, 13)
PLANT_EVERY = 10_000
DAYS = 28


def populate(url: str, n: int) -> int:
    """Write n items and n report lines (and their payouts and bank credits); returns planted count."""
    planted = 0
    with open_ledger(url) as ledger:
        items: list[tuple[Any, ...]] = []
        lines: list[tuple[Any, ...]] = []
        batch_net: dict[str, int] = {}
        for i in range(n):
            day = dt.date(2026, 10, 1) + dt.timedelta(days=i % DAYS)
            paid = day + dt.timedelta(days=2)
            batch = f"cielo-PO-{paid:%Y%m%d}-BRL-1"
            ref = f"BR-P{i:09d}"
            gross = 10_000 + (i * 7919) % 500_000
            fee = gross * 3 // 100
            report_fee = fee + 100 if i % PLANT_EVERY == 1 else fee
            planted += i % PLANT_EVERY == 1
            eid = f"00000000-0000-4000-8000-{i:012x}"
            items.append((ref, "capture", "cielo", "S-1", "BRL", gross, fee, day.isoformat(), f'["{eid}"]', batch))
            lines.append((ref, "f" * 64, i + 2, "cielo.csv", "cielo", "processor", "payment", batch, "credit",
                          "BRL", gross, report_fee, gross - report_fee, day.isoformat(), paid.isoformat(), None,
                          eid))  # fmt: skip
            batch_net[batch] = batch_net.get(batch, 0) + gross - report_fee
        settlements = []
        for k, (batch, net) in enumerate(sorted(batch_net.items())):
            paid_on = batch.split("-")[2]
            value = f"{paid_on[:4]}-{paid_on[4:6]}-{paid_on[6:]}"
            eid = f"00000000-0000-4000-9000-{k:012x}"
            settlements.append(("cielo", batch, "BRL", net, 0, value, 1, eid))
            lines.append((batch, "f" * 64, n + 10 + k, "cielo.csv", "cielo", "processor", "payout", None, "debit",
                          "BRL", None, None, net, value, value, None, eid))  # fmt: skip
            lines.append((batch, "b" * 64, k + 1, "bank.xml", "bank-main", "bank", "bank_credit", None, "credit",
                          "BRL", None, None, net, value, value, None, eid))  # fmt: skip
        ins = ledger.views.conn.executemany if isinstance(ledger.views, SQLiteViewStore) else None
        _insert(ledger, "recon_items", items, ins)
        _insert(ledger, "recon_lines", lines, ins)
        _insert(ledger, "recon_settlements", settlements, ins)
    return planted


def _insert(ledger: Any, table: str, rows: list[tuple[Any, ...]], ins: Any) -> None:
    marks = ",".join("?" * len(rows[0]))
    if ins is not None:
        ledger.views.conn.execute("BEGIN")
        ins(f"INSERT INTO {table} VALUES ({marks})", rows)
        ledger.views.conn.execute("COMMIT")
        return
    with ledger.views.conn.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    ledger.views.conn.commit()


def _vm(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    return 0


def _child(url: str, q: Any) -> None:
    with open_ledger(url, migrate=False) as ledger:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        before = _vm("VmRSS:")
        start = time.perf_counter()
        report = reconcile.run(ledger, RUN_DATE, levels=(2, 3))
        seconds = time.perf_counter() - start
        added = (_vm("VmHWM:") - before) / 2**20
        q.put({"seconds": seconds, "added_mib": added, "findings": len(report.findings), "raised": report.raised,
               "matched": {s.level: s.matched for s in report.summaries.values()}})  # fmt: skip


def measure(url: str) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(url, q))
    p.start()
    result: dict[str, Any] = q.get(timeout=3600)
    p.join()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.recon", description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, help="ledger items and report lines each (default 1,000,000)")
    ap.add_argument("--quick", action="store_true", help="100,000 items")
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    args = ap.parse_args(argv)
    n = args.items or (100_000 if args.quick else 1_000_000)
    results = []
    for size in (n // 10, n):
        tmp = Path(tempfile.mkdtemp(prefix="quipu-bench-recon-"))
        schema = new_schema_name("recon") if args.backend == "postgresql" else ""
        url = f"sqlite:///{tmp}/ledger.db" if not schema else pg_schema_url(default_pg_url(), schema)
        try:
            t0 = time.perf_counter()
            planted = populate(url, size)
            print(f"recon {args.backend}: {size:,} items × {size:,} lines written in {time.perf_counter() - t0:.1f}s "
                  f"(setup), {planted} discrepancies planted", flush=True)  # fmt: skip
            r = measure(url)
            rate = 2 * size / r["seconds"]
            print(f"  run (levels 2+3): {r['seconds']:.1f}s, {rate:,.0f} rows/s, peak +{r['added_mib']:.0f} MiB, "
                  f"{r['findings']} exceptions ({r['raised']} recorded), matched {r['matched']}",
                  flush=True)  # fmt: skip
            if r["findings"] != planted:
                print(f"  ERROR: expected {planted} exceptions", file=sys.stderr)
                return 1
            results.append({"items": size, **r, "rows_per_s": rate})
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            if schema:
                drop_schema(default_pg_url(), schema)
    pg = default_pg_url() if args.backend == "postgresql" else None
    write_json(args.results_dir / "recon.json", {"machine": machine(pg), "backend": args.backend, "runs": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
