"""The SIGKILL scenario: every ingest path and the projector killed at random moments on one ledger.

The events are cut by stream into one slice per path (``quipu post`` batch files, the HTTP API, the Kafka
worker); the three paths and a ``quipu project`` loop run at once on the same ledger, and a killer
SIGKILLs one of their processes at a time, spreading ``kills`` over the ingest paths (and a fifth as many
again over the projector), each at a random moment of the victim's life, paced over the run. Where the
harness can see work (a request in flight, a worker with messages waiting) a kill waits up to 2 s for it,
so most of those cut work short. The supervisor starts every killed process again.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from benchmarks.crash_api import ApiRole
from benchmarks.crash_cli import PostRole, ProjectRole
from benchmarks.crash_common import (
    Context,
    Event,
    Killer,
    Release,
    Role,
    ScenarioReport,
    backend_of,
    create_store,
    describe,
    finish,
    make_events,
    split_by_stream,
    supervise,
)

PATHS: Final = ("post", "api", "worker")
#: Seconds one kill-and-restart cycle of each role takes here, roughly (start-up, the random moment, and
#: for the worker the broker restart): the release of work is spread so the last kills still find work.
CYCLE_S: Final = {"post": 1.5, "api": 6.0, "worker": 8.0, "project": 1.5}


def quotas(kills: int, paths: Sequence[str]) -> dict[str, int]:
    """``kills`` spread evenly over the ingest paths, plus a fifth as many for the projector."""
    out = {p: kills // len(paths) + (1 if i < kills % len(paths) else 0) for i, p in enumerate(paths)}
    if kills:
        out["project"] = max(1, kills // 5)
    return out


def run_kills(
    database: str,
    work: Path,
    kills: int,
    events: int,
    seed: int,
    paths: Sequence[str] = PATHS,
    deadline_s: float = 3600.0,
    progress: Callable[[str], None] | None = None,
) -> ScenarioReport:
    started = time.monotonic()
    report = ScenarioReport("sigkill", backend_of(database), describe(database), work_dir=str(work))
    rng = random.Random(seed)
    evs = make_events(seed, events)
    slices = dict(zip(paths, split_by_stream(evs, len(paths)), strict=True))
    quota = quotas(kills, paths)
    spread = max(q * CYCLE_S[r] for r, q in quota.items()) if quota else 1.0
    killer = Killer(quota, rng, (0.1, 0.6), spread)
    release = Release(spread, killer.progress)
    ctx = Context(database, work, rng, release, wants_kills=killer.wants_more)
    create_store(database)
    with contextlib.ExitStack() as stack:
        roles = ingest_roles(ctx, slices, work, stack)
        supervise(report, ctx, roles, killer, deadline_s, progress)
    finish(report, ctx, roles, killer, evs)
    report.seconds = round(time.monotonic() - started, 1)
    return report


def ingest_roles(ctx: Context, slices: dict[str, list[Event]], work: Path, stack: contextlib.ExitStack) -> list[Role]:
    """A role per ingest path that has a slice of the events (the worker's broker lives on ``stack``), and the
    projector."""
    roles: list[Role] = []
    if "post" in slices:
        roles.append(PostRole(ctx, slices["post"]))
    if "api" in slices:
        roles.append(ApiRole(ctx, slices["api"]))
    if "worker" in slices:
        from benchmarks.crash_kafka import Topics, WorkerRole, local_broker

        broker = stack.enter_context(local_broker(work))
        roles.append(WorkerRole(ctx, slices["worker"], broker, Topics.fresh()))
    roles.append(ProjectRole(ctx))
    return roles
