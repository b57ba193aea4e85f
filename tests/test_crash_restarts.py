"""The short restart tests: PostgreSQL and the Kafka broker restarted under load lose and duplicate nothing.

PostgreSQL is restarted with ``-m immediate`` (a crash: no checkpoint, WAL replay on the way up) on a cluster
of the harness's own (``scripts/pg-crash-cluster.sh``, named ``quipu_crash_test``; never the main cluster the
rest of the suite uses), while ``quipu post``, ``quipu serve`` with its client and ``quipu worker`` write.
The broker is SIGTERMed and started again while a worker consumes and a producer produces. Locally these
skip without root, PostgreSQL's tools or noida-db; under ``CI=true`` they fail instead. The long runs are
``python -m benchmarks.crash --pg-restarts 5 --broker-restarts 5`` (docs/reliability.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks.crash_common import ScenarioReport
from benchmarks.crash_kafka import run_broker_restarts
from benchmarks.crash_pg import ClusterUnavailable, dedicated_cluster, run_pg_restarts
from tests.conftest import IN_CI
from tests.kafka_broker import noida_binary

DEADLINE_S = 240.0
TEST_CLUSTER = "quipu_crash_test"


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true and this test is required: {reason}")
    pytest.skip(reason)


@pytest.fixture
def broker_available() -> None:
    if noida_binary() is None:
        _unavailable("noida-db is not installed (pip install noida-db==0.2.3; shared/KAFKA.md)")


def _assert_nothing_lost_or_doubled(report: ScenarioReport, events: int) -> None:
    summary = report.as_dict()
    assert report.acknowledged_missing == 0, summary
    assert report.acknowledged == report.events == events, summary
    assert report.stored == report.unique_ids == events, summary
    assert report.missing == report.duplicates == report.unexpected_ids == 0, summary
    assert report.final_post_appended == 0, summary  # re-posting everything found nothing missing
    assert report.chain_ok and report.projections_equal_rebuild, summary
    assert report.problems == [], summary


@pytest.mark.postgres
def test_postgresql_restarted_under_load_loses_and_duplicates_nothing(tmp_path: Path, broker_available: None) -> None:
    if os.geteuid() != 0:
        _unavailable("creating and restarting a PostgreSQL cluster needs root (pg_createcluster, pg_ctlcluster)")
    try:
        dedicated_cluster(TEST_CLUSTER)
    except ClusterUnavailable as exc:
        _unavailable(str(exc))
    report = run_pg_restarts(tmp_path, restarts=2, events=1500, seed=7, cluster_name=TEST_CLUSTER,
                             deadline_s=DEADLINE_S)  # fmt: skip
    assert report.disruptions == 2, report.as_dict()
    # Each restart fell while the server and the worker were running and acknowledgements were moving
    # (crash_common.Restarter); a batch writer is running too unless it had nothing left to post.
    assert all("writers running: " in line and "api, worker" in line for line in report.timeline), report.as_dict()
    _assert_nothing_lost_or_doubled(report, 1500)


def test_the_broker_restarted_under_load_loses_and_duplicates_nothing(tmp_path: Path, broker_available: None) -> None:
    report = run_broker_restarts(f"sqlite:///{tmp_path}/ledger.db", tmp_path, restarts=2, events=2000, seed=8,
                                 deadline_s=DEADLINE_S)  # fmt: skip
    assert report.disruptions == 2, report.as_dict()
    assert report.process_restarts.get("worker", 0) == 0, report.as_dict()  # the worker rode them out
    _assert_nothing_lost_or_doubled(report, 2000)
