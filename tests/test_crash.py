"""The short crash test: SIGKILLs on every ingest path and the projector lose and duplicate nothing.

``quipu post`` batch writers, ``quipu serve`` (with a client posting over HTTP), ``quipu worker`` (with a
producer filling a real broker's topic) and ``quipu project`` run at once on one ledger while processes are
SIGKILLed at random moments and started again (benchmarks/crash_kills.py). The long run is
``python -m benchmarks.crash --kills 100`` (docs/reliability.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.crash import run
from tests.conftest import IN_CI
from tests.kafka_broker import noida_binary

#: A hung scenario fails the test instead of hanging the suite.
DEADLINE_S = 240.0


@pytest.fixture
def broker_available() -> None:
    if noida_binary() is None:
        reason = "noida-db is not installed (pip install noida-db==0.2.3; shared/KAFKA.md)"
        if IN_CI:
            pytest.fail(f"CI=true and a Kafka broker is required: {reason}")
        pytest.skip(reason)


def test_sigkills_on_every_ingest_path_lose_and_duplicate_nothing(
    ledger_url: str, tmp_path: Path, broker_available: None
) -> None:
    report = run(kills=6, events=1000, database=ledger_url, seed=5, deadline_s=DEADLINE_S)
    # Every path really lost processes: two kills each, and the projector one.
    assert report["processes_killed"] == {"post": 2, "api": 2, "worker": 2, "project": 1}, report
    assert report["acknowledged_missing"] == 0, report
    assert report["acknowledged"] == report["events"] == 1000, report
    assert report["stored"] == report["unique_ids"] == report["events"], report
    assert report["missing"] == report["duplicates"] == report["unexpected_ids"] == 0, report
    assert report["final_post_appended"] == 0, report  # re-posting everything found nothing missing
    assert report["chain_ok"] and report["projections_equal_rebuild"], report
    assert report["problems"] == [] and report["ok"], report
