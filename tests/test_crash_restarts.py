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
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from adapters.bootstrap import open_ledger
from adapters.store.pg_url import parse_pg_url
from benchmarks.crash_common import ScenarioReport, create_store, make_events, run_cli, write_lines
from benchmarks.crash_kafka import run_broker_restarts
from benchmarks.crash_pg import ClusterUnavailable, dedicated_cluster, run_pg_restarts
from tests.conftest import IN_CI, PG_URL, drop_schema, pg_url_for_new_schema
from tests.kafka_broker import noida_binary

DEADLINE_S = 240.0
#: Seconds between restarts (the long run draws 3-7 s).
GAP_S = (2.0, 4.0)
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
    report = run_pg_restarts(tmp_path, restarts=2, events=1200, seed=7, cluster_name=TEST_CLUSTER,
                             deadline_s=DEADLINE_S, gap_s=GAP_S)  # fmt: skip
    assert report.disruptions == 2, report.as_dict()
    # Each restart fell while the server and the worker were running and acknowledgements were moving
    # (crash_common.Restarter); a batch writer is running too unless it had nothing left to post.
    assert all("writers running: " in line and "api, worker" in line for line in report.timeline), report.as_dict()
    _assert_nothing_lost_or_doubled(report, 1200)


def test_the_broker_restarted_under_load_loses_and_duplicates_nothing(tmp_path: Path, broker_available: None) -> None:
    report = run_broker_restarts(f"sqlite:///{tmp_path}/ledger.db", tmp_path, restarts=2, events=2000, seed=8,
                                 deadline_s=DEADLINE_S, gap_s=GAP_S)  # fmt: skip
    assert report.disruptions == 2, report.as_dict()
    assert report.process_restarts.get("worker", 0) == 0, report.as_dict()  # the worker rode them out
    _assert_nothing_lost_or_doubled(report, 2000)


@pytest.mark.postgres
def test_a_post_whose_connection_is_cut_says_so_in_one_line_and_a_rerun_completes(tmp_path: Path) -> None:
    """What a supervisor sees when the database goes away under ``quipu post``: one line, status 2, no
    traceback; posting the same file again records exactly what is missing."""
    url, schema = pg_url_for_new_schema()
    try:
        create_store(url)
        events = make_events(9, 4000)
        source = write_lines(tmp_path / "events.jsonl", events)
        # The child's connections carry this name (libpq reads PGAPPNAME), so only they are cut.
        tag = f"quipu-crash-{uuid.uuid4().hex[:8]}"
        args = [sys.executable, "-m", "adapters.cli", "post", str(source), "--database", url, "--batch-size", "20"]
        with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PGAPPNAME": tag}) as proc:  # fmt: skip
            with open_ledger(url, migrate=False) as reader:
                deadline = time.monotonic() + 120
                while reader.store.head() < 200:
                    assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                    time.sleep(0.05)
            # Cut every connection it has or opens, for as long as it runs (as a server that stays away would):
            # sooner or later one is cut in the middle of a statement.
            cut = 0
            with psycopg.connect(parse_pg_url(PG_URL).conninfo, autocommit=True) as admin:
                deadline = time.monotonic() + 60
                while proc.poll() is None and time.monotonic() < deadline:
                    row = admin.execute(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
                        (tag,),
                    ).fetchone()
                    cut += row[0] if row else 0
                    time.sleep(0.01)
            stdout, stderr = proc.communicate(timeout=120)
        assert cut >= 1
        assert proc.returncode == 2, (stdout, stderr)
        assert "Traceback" not in stderr and "╭" not in stderr, stderr
        assert "error: --database: lost the connection" in stderr, stderr
        again = run_cli(["post", str(source), "--database", url], tmp_path)
        assert again.returncode == 0, again.stdout + again.stderr
        with open_ledger(url, migrate=False) as ledger:
            assert ledger.store.head() == len(events)
            assert sorted(str(r.event_id) for r in ledger.store.read(0, len(events) + 10)) == sorted(
                e.event_id for e in events
            )
    finally:
        drop_schema(schema)
