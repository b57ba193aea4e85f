"""Crash and restart harness (issue 10, item 2): kill ingest and projection at random, restart the database
and the broker under load, then prove that nothing acknowledged was lost and nothing was stored twice.

Usage:
    python -m benchmarks.crash --kills 100 --pg-restarts 5 --broker-restarts 5
                               [--database URL] [--events N] [--seed S] [--report bench-results/crash.json]

Three scenarios, each on a fresh ledger of its own (``--database``: a SQLite file in a temporary folder by
default; with a PostgreSQL URL, a new schema under it, dropped afterwards):

* ``sigkill`` (``--kills N``): ``quipu post`` batch writers, ``quipu serve`` (with a client posting over
  HTTP), ``quipu worker`` (with a producer filling the inbound topic of a real broker) and ``quipu project``
  all run at once; N SIGKILLs are spread evenly over the three ingest paths, plus a fifth as many over the
  projector, each at a random moment of its victim's life; every killed process is started again.
  benchmarks/crash_kills.py.
* ``pg-restarts`` (``--pg-restarts N``): the same writers on a PostgreSQL cluster of the harness's own
  (``scripts/pg-crash-cluster.sh``, never the main one), restarted N times with ``-m immediate`` while they
  write. benchmarks/crash_pg.py.
* ``broker-restarts`` (``--broker-restarts N``): a worker consuming while a producer produces; the broker
  is SIGTERMed and started again N times. benchmarks/crash_kafka.py.

Each ends the same way (benchmarks/crash_common.py): once every path has finished its slice, what is
stored is compared with what each path acknowledged (post exited 0; the API answered appended or duplicate;
the worker's group committed past the offset), then every event is posted once more (which must append
nothing), ``quipu verify`` walks the chain and ``quipu project --check`` compares every projection with its
rebuild. Prints a report per scenario and writes it as JSON; exit status 1 if anything failed.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import default_pg_url, machine, write_json
from benchmarks.crash_common import ScenarioReport, backend_of, scratch_ledger
from benchmarks.crash_kills import PATHS, run_kills


def run(
    kills: int,
    events: int,
    database: str,
    seed: int,
    paths: Sequence[str] = PATHS,
    deadline_s: float = 3600.0,
) -> dict[str, Any]:
    """The SIGKILL scenario on ``database`` (an empty ledger), as a dict (see :class:`ScenarioReport`)."""
    work = Path(tempfile.mkdtemp(prefix="quipu-crash-"))
    report = run_kills(database, work, kills, events, seed, paths, deadline_s)
    if report.ok:
        shutil.rmtree(work, ignore_errors=True)
    return report.as_dict()


def _say(line: str) -> None:
    print(line, flush=True)


def _work(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_all(args: argparse.Namespace) -> list[ScenarioReport]:
    root = Path(tempfile.mkdtemp(prefix="quipu-crash-"))
    paths = tuple(p.strip() for p in args.paths.split(",") if p.strip())
    reports: list[ScenarioReport] = []
    if args.kills:
        work = _work(root, "sigkill")
        with scratch_ledger(args.database, "kills", work, args.keep) as url:
            reports.append(run_kills(url, work, args.kills, args.events, args.seed, paths, progress=_say))
        _show(reports[-1])
    if args.pg_restarts:
        from benchmarks.crash_pg import run_pg_restarts

        work = _work(root, "pg-restarts")
        try:
            reports.append(
                run_pg_restarts(
                    work, args.pg_restarts, args.events, args.seed + 1, args.pg_cluster, paths, progress=_say
                )
            )
        except Exception as exc:  # no cluster: reported as a failed scenario, not a traceback
            failed = ScenarioReport("pg-restarts", "postgresql", f"cluster {args.pg_cluster}", work_dir=str(work))
            failed.problems.append(f"{type(exc).__name__}: {exc}")
            reports.append(failed)
        _show(reports[-1])
    if args.broker_restarts:
        from benchmarks.crash_kafka import run_broker_restarts

        work = _work(root, "broker-restarts")
        with scratch_ledger(args.database, "broker", work, args.keep) as url:
            reports.append(
                run_broker_restarts(url, work, args.broker_restarts, args.events, args.seed + 2, progress=_say)
            )
        _show(reports[-1])
    if all(r.ok for r in reports) and not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return reports


def _show(r: ScenarioReport) -> None:
    status = "OK" if r.ok else "FAILED"
    print(f"\n== {r.scenario} on {r.backend}: {status} in {r.seconds:,.1f} s  ({r.database})")
    kills = ", ".join(f"{k} {v}" for k, v in r.processes_killed.items() if v)
    restarts = ", ".join(f"{k} {v}" for k, v in r.process_restarts.items() if v)
    rows: list[tuple[str, object]] = [
        (f"{r.disruption}s", f"{r.disruptions} of {r.disruptions_asked}"),
        ("processes killed", f"{kills or 'none'} ({_killed_split(r)})"),
        ("  of which mid-work", ", ".join(f"{k} {v}" for k, v in r.kills_mid_work.items()) or "-"),
        ("processes restarted", restarts or "none"),
        ("events expected", f"{r.events:,}"),
        ("acknowledged by paths", f"{r.acknowledged:,}"),
        ("stored / unique ids", f"{r.stored:,} / {r.unique_ids:,}"),
        ("acknowledged, missing", r.acknowledged_missing),
        ("missing / duplicated", f"{r.missing} / {r.duplicates}"),
        ("stored, never sent", r.unexpected_ids),
        ("final re-post", r.final_post),
        ("chain verifies", "yes" if r.chain_ok else "NO"),
        ("projections = rebuild", "yes" if r.projections_equal_rebuild else "NO"),
    ]  # fmt: skip
    for label, value in rows:
        print(f"  {label:24} {value}")
    for name, info in r.paths.items():
        print(f"  path {name:19} {info}")
    if len(r.timeline) <= 10:
        for line in r.timeline:
            print(f"  {line.strip()}")
    for name, exits in r.unexpected_exits.items():
        print(f"  {name} exits nobody asked for ({len(exits)} shown):")
        for line in exits[:5]:
            print(f"      {line}")
    for problem in r.problems:
        print(f"  PROBLEM: {problem}")
    if not r.ok:
        print(f"  logs: {r.work_dir}")


def _killed_split(r: ScenarioReport) -> str:
    ingest = sum(v for k, v in r.processes_killed.items() if k != "project")
    return f"{ingest} on ingest paths, {r.processes_killed.get('project', 0)} on the projector"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=100, help="SIGKILLs over the ingest paths (0: skip)")
    ap.add_argument("--pg-restarts", type=int, default=0, help="PostgreSQL restarts under load (0: skip)")
    ap.add_argument("--broker-restarts", type=int, default=0, help="broker restarts under load (0: skip)")
    ap.add_argument("--database", default=None, help="SQLite or PostgreSQL base URL; default: SQLite in a temp dir")
    ap.add_argument("--events", type=int, default=20_000, help="events per scenario")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--paths", default=",".join(PATHS), help="ingest paths to use: post,api,worker")
    ap.add_argument("--pg-cluster", default="quipu_crash", help="the dedicated cluster's name")
    ap.add_argument("--report", type=Path, default=Path("bench-results/crash.json"))
    ap.add_argument("--keep", action="store_true", help="keep logs, ledgers and schemas")
    args = ap.parse_args(argv)
    unknown = set(args.paths.split(",")) - set(PATHS)
    if unknown:
        ap.error(f"--paths: unknown {', '.join(sorted(unknown))}; choose from {', '.join(PATHS)}")
    return args


def _interrupted(signum: int, _: object) -> None:
    # A SIGTERM (a CI timeout) unwinds like Ctrl-C, so every child, broker and schema is cleaned up.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupted)
    started = time.monotonic()
    reports = run_all(args)
    ok = bool(reports) and all(r.ok for r in reports)
    base = args.database if args.database and backend_of(args.database) == "postgresql" else default_pg_url()
    doc = {
        "command": "python -m benchmarks.crash " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(base),
        "seconds": round(time.monotonic() - started, 1),
        "ok": ok,
        "scenarios": [r.as_dict() for r in reports],
    }
    write_json(args.report, doc)
    verdict = "ALL OK" if ok else "FAILED"
    print(f"\n{verdict}: {len(reports)} scenario(s) in {doc['seconds']:,.0f} s; report in {args.report}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
