"""The PostgreSQL-restart scenario: the server restarted under load, on a cluster of the harness's own.

Never the machine's main cluster: the test suite runs against it in parallel. ``scripts/pg-crash-cluster.sh``
creates a cluster named ``quipu_crash`` (reused afterwards) on a free port and starts it; the scenario
holds a lock on it, so two runs never restart it under each other.

Restarts use ``pg_ctlcluster … restart -m immediate``: the server quits without a checkpoint and replays
its WAL on the way up, as after a crash or a power cut, which is the harsher test of "acknowledged means
durable". ``-m fast`` would roll back open transactions and write a checkpoint first.

Writers that lose their connection are not expected to survive it: ``quipu post`` and ``quipu project``
exit and are started again by the supervisor; the API server answers errors until its connections are
replaced, and its client sends the same batch again; the worker retries the batch on its own (ADR 0022).
"""

from __future__ import annotations

import contextlib
import fcntl
import random
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from benchmarks.common import drop_schema, new_schema_name, pg_schema_url
from benchmarks.crash_common import (
    Context,
    Release,
    Restarter,
    ScenarioReport,
    create_store,
    describe,
    finish,
    make_events,
    split_by_stream,
    supervise,
)
from benchmarks.crash_kills import ingest_roles

ROOT: Final = Path(__file__).resolve().parents[1]
DEFAULT_CLUSTER: Final = "quipu_crash"
PATHS: Final = ("post", "api", "worker")


class ClusterUnavailable(RuntimeError):
    """The dedicated cluster could not be created or started (not root, no PostgreSQL tools, …)."""


@dataclass(frozen=True)
class Cluster:
    version: str
    name: str
    url: str

    def restart(self, mode: str = "immediate") -> float:
        """Restart the server; returns the seconds until it accepted connections again."""
        t0 = time.monotonic()
        done = subprocess.run(
            ["pg_ctlcluster", self.version, self.name, "restart", "-m", mode],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise ClusterUnavailable(f"pg_ctlcluster restart failed: {done.stderr.strip()[-500:]}")
        return time.monotonic() - t0


def dedicated_cluster(name: str = DEFAULT_CLUSTER) -> Cluster:
    """Create (once) and start the harness's own cluster; its URL with the postgres role's password."""
    try:
        done = subprocess.run(
            [str(ROOT / "scripts" / "pg-crash-cluster.sh"), name],
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
    except OSError as exc:
        raise ClusterUnavailable(f"scripts/pg-crash-cluster.sh: {exc}") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not lines[-1].startswith("postgresql://"):
        raise ClusterUnavailable(f"scripts/pg-crash-cluster.sh {name} failed: {(done.stdout + done.stderr)[-800:]}")
    version = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True).stdout.split()[0]
    return Cluster(version, name, lines[-1])


@contextlib.contextmanager
def cluster_lock(name: str, timeout_s: float = 900.0) -> Iterator[None]:
    """Only one scenario at a time restarts a cluster (a test run and a long run may overlap)."""
    with open(f"/tmp/quipu-crash-cluster-{name}.lock", "w") as fh:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ClusterUnavailable(f"cluster {name} stayed busy for {timeout_s:.0f} s") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class PgRestarter(Restarter):
    """``pg_ctlcluster … restart -m immediate`` while the writers write."""

    kind = "PostgreSQL restart"

    def __init__(self, total: int, cluster: Cluster, rng: random.Random, gap_s: tuple[float, float]) -> None:
        super().__init__(total, rng, gap_s)
        self.cluster = cluster

    def restart(self) -> str:
        return f"-m immediate, back in {self.cluster.restart('immediate'):.1f} s"


def run_pg_restarts(
    work: Path,
    restarts: int,
    events: int,
    seed: int,
    cluster_name: str = DEFAULT_CLUSTER,
    paths: Sequence[str] = PATHS,
    deadline_s: float = 1800.0,
    progress: Callable[[str], None] | None = None,
    gap_s: tuple[float, float] = (3.0, 7.0),
) -> ScenarioReport:
    """Every path writing at once while the dedicated cluster is restarted ``restarts`` times, ``gap_s`` apart."""
    started = time.monotonic()
    cluster = dedicated_cluster(cluster_name)
    schema = new_schema_name("crash_pg")
    database = pg_schema_url(cluster.url, schema)
    report = ScenarioReport("pg-restarts", "postgresql", describe(database), work_dir=str(work))
    rng = random.Random(seed)
    evs = make_events(seed, events)
    slices = dict(zip(paths, split_by_stream(evs, len(paths)), strict=True))
    with cluster_lock(cluster_name), contextlib.ExitStack() as stack:
        disruptor = PgRestarter(restarts, cluster, rng, gap_s)
        release = Release(restarts * sum(gap_s) / 2 + 2.0, disruptor.progress)
        ctx = Context(database, work, rng, release)
        create_store(database)
        stack.callback(lambda: drop_schema(cluster.url, schema))
        roles = ingest_roles(ctx, slices, work, stack)
        supervise(report, ctx, roles, disruptor, deadline_s, progress)
        finish(report, ctx, roles, disruptor, evs)
    report.seconds = round(time.monotonic() - started, 1)
    return report
