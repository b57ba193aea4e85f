"""The short crash test: writers and projectors killed with SIGKILL lose and duplicate nothing.

The long run is `python -m benchmarks.crash --kills 100` (see docs/reliability.md).
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.crash import run


def test_sigkilled_writers_and_projectors_lose_and_duplicate_nothing(ledger_url: str, tmp_path: Path) -> None:
    report = run(kills=6, events=4000, database=ledger_url, seed=5)
    assert report["processes_killed"], report  # the run really killed something
    assert report["stored"] == report["events"] == report["unique_ids"], report
    assert report["chain_ok"] and report["projections_equal_rebuild"] and report["final_post_ok"], report
