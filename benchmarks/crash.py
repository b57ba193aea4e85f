"""Crash test: SIGKILL `quipu post` and `quipu project` at random moments, then prove nothing was lost.

Usage: python -m benchmarks.crash [--kills 100] [--events 20000] [--database URL] [--seed 1]

Each round starts a writer (and every third round a projector) as a child process on the same
ledger and kills it with SIGKILL after a random delay. Afterwards the whole file is posted once
more to completion, and the run checks: every event is stored exactly once (appended +
duplicates = lines, head = lines, no repeated event id), the hash chain verifies, and every
projection equals its rebuild from 0. Prints a report; exit status 1 if anything fails.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from adapters.bootstrap import open_ledger
from adapters.demo import generate, iter_jsonl
from domain.integrity import verify_chain


def _child(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "adapters.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=tempfile.gettempdir(), env={**os.environ})  # fmt: skip


def run(kills: int, events: int, database: str, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="quipu-crash-"))
    source = work / "events.jsonl"
    with source.open("wb") as fh:
        fh.writelines(iter_jsonl(generate(seed, events)))
    lines = sum(1 for _ in source.open("rb"))
    with open_ledger(database):
        pass  # create the store before the children race
    killed = 0
    for round_ in range(kills):
        children = [
            _child(["post", str(source), "--database", database, "--batch-size", str(rng.choice((50, 200, 1000)))])
        ]
        if round_ % 3 == 2:
            children.append(_child(["project", "--database", database]))
        time.sleep(rng.uniform(0.2, 2.0))
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
                killed += 1
            child.wait()
    final = subprocess.run([sys.executable, "-m", "adapters.cli", "post", str(source), "--database", database],
                           capture_output=True, text=True, cwd=tempfile.gettempdir(), check=False)  # fmt: skip
    check = subprocess.run([sys.executable, "-m", "adapters.cli", "project", "--check", "--database", database],
                           capture_output=True, text=True, cwd=tempfile.gettempdir(), check=False)  # fmt: skip
    with open_ledger(database) as ledger:
        head = ledger.store.head()
        ids = [r.event_id for r in ledger.store.read(0, lines + 10)]
        chain = verify_chain(ledger.store)
    summary = final.stdout.strip().splitlines()[-1] if final.stdout.strip() else final.stderr[-300:]
    report: dict[str, object] = {
        "rounds": kills,
        "processes_killed": killed,
        "events": lines,
        "stored": head,
        "unique_ids": len(set(ids)),
        "final_post": summary,
        "final_post_ok": final.returncode == 0,
        "chain_ok": chain.broken is None,
        "projections_equal_rebuild": check.returncode == 0,
    }
    report["ok"] = bool(
        report["final_post_ok"] and report["chain_ok"] and report["projections_equal_rebuild"]
        and head == lines and len(set(ids)) == lines
    )  # fmt: skip
    return report


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--database", default=None, help="default: a fresh SQLite file in a temporary folder")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    database = args.database or f"sqlite:///{tempfile.mkdtemp(prefix='quipu-crash-db-')}/ledger.db"
    report = run(args.kills, args.events, database, args.seed)
    for key, value in report.items():
        print(f"{key:28} {value}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
