"""The crash harness's machinery: child processes, roles a supervisor keeps running, the release of work
over time, the disruptions, and the checks that end every scenario.

A scenario runs *roles* (a ``quipu post`` batch writer, a ``quipu serve`` API server and its client, a
``quipu worker`` and its producer, a ``quipu project`` catch-up loop) as child processes on one ledger.
The supervisor loop restarts whatever dies, as an init system would, while a *disruptor* (SIGKILLs,
PostgreSQL restarts, broker restarts) strikes at random moments. Each role owns a slice of the events,
cut by stream so that the order within a stream (the only order the rules depend on) is kept whatever
path the slice travels. Work is released over time, never ahead of the disruptions, so that the last
disruption still meets writers with work in hand.

After the disruptions every role finishes its slice, and before anything is posted again the run takes
what was stored and compares it with what each path had acknowledged (``post`` exited 0, the API answered
appended/duplicate, the worker's group committed past it without dead-lettering it). Only then is
everything re-posted once more (which must append nothing), the chain verified and every projection
compared with its rebuild.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import orjson

from adapters.bootstrap import open_ledger, redacted
from benchmarks.common import demo_lines, drop_schema, new_schema_name, pg_schema_url
from domain.catalog import parse_event, to_current
from domain.rules import stream_name

#: How often the supervisor looks at its children.
TICK_S: Final = 0.05
_ERROR_LINE: Final = re.compile(r"^([\w.]*(Error|Exception|Unavailable)\b|error:|line \d+: )")


# ---------------------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Event:
    line: bytes
    event_id: str
    stream: str


def make_events(seed: int, count: int) -> list[Event]:
    """``count`` demo events (self-consistent in file order) with their ids and streams."""
    out = []
    for raw in demo_lines(seed, count):
        line = raw.rstrip(b"\n")
        event = to_current(parse_event(line))
        out.append(Event(line, str(orjson.loads(line)["event_id"]), stream_name(event)))
    return out


def split_by_stream(events: Sequence[Event], ways: int) -> list[list[Event]]:
    """``ways`` slices, each stream wholly in one, each slice in the original order.

    The rules only ever look at an event's own stream, so a slice posted on its own, in any interleaving
    with the others, is accepted exactly as the whole file would be.
    """
    out: list[list[Event]] = [[] for _ in range(ways)]
    for e in events:
        out[zlib.crc32(e.stream.encode()) % ways].append(e)
    return out


def write_lines(path: Path, events: Sequence[Event]) -> Path:
    """Write a JSONL file atomically: a child never reads one half-written."""
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        for e in events:
            fh.write(e.line + b"\n")
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------------------------- children


def cli_args(*args: str) -> list[str]:
    return [sys.executable, "-m", "adapters.cli", *args]


class Child:
    """One child process, its output appended to a log the report can quote."""

    def __init__(self, args: Sequence[str], log: Path, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.args = list(args)
        self.log_path = log
        self._log: IO[bytes] = log.open("ab")
        self._offset = self._log.tell()
        self.started = time.monotonic()
        self.killed = False
        full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
        self.proc = subprocess.Popen(
            self.args, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd, env=full_env
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def exited(self) -> int | None:
        """The exit status once the child has gone (its log closed), else ``None``."""
        rc = self.proc.poll()
        if rc is not None and not self._log.closed:
            self._log.close()
        return rc

    def kill(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.killed = True
        self.proc.wait()
        self.exited()

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM (a worker finishes its batch, a server drains), SIGKILL after ``timeout``."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = self.proc.wait()
        self.exited()
        return rc

    def output(self, limit: int = 4000) -> str:
        """What this run of the child wrote (the log is shared by every run of a role)."""
        with self.log_path.open("rb") as fh:
            fh.seek(self._offset)
            return fh.read().decode(errors="replace")[-limit:]

    def last_line(self) -> str:
        """The error a child died with: its last ``SomethingError: ...`` or ``error: ...`` line, else its last line."""
        lines = [ln.strip(" │╰╯─\t") for ln in self.output().splitlines()]
        lines = [ln for ln in lines if ln]
        for ln in reversed(lines):
            if _ERROR_LINE.match(ln):
                return ln[:300]
        return lines[-1][:300] if lines else ""


def run_cli(args: Sequence[str], cwd: Path, timeout: float = 900.0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        cli_args(*args), capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout, check=False
    )


# ---------------------------------------------------------------------------------------------- release


class Release:
    """How much of every slice is out by now: a share of ``spread_s``, but never ahead of the disruptions.

    ``fraction`` is ``min(elapsed / spread_s, (done + 0.5) / total)`` until the disruptor is done, then 1:
    when a disruption is late (a restart took long) the work waits for it, so every disruption falls while
    some work is still to come and no path has finished and gone. Nothing is out before :meth:`begin`.
    """

    def __init__(self, spread_s: float, progress: Callable[[], tuple[int, int]]) -> None:
        self.spread_s = max(spread_s, 1.0)
        self.progress = progress
        self.started: float | None = None
        self._final = False

    def begin(self) -> None:
        self.started = time.monotonic()

    def fraction(self) -> float:
        if self._final:
            return 1.0
        done, total = self.progress()
        if done >= total:
            self._final = True
            return 1.0
        if self.started is None:
            return 0.0
        return min(1.0, (time.monotonic() - self.started) / self.spread_s, (done + 0.5) / total)

    def count(self, size: int) -> int:
        return size if self.fraction() >= 1.0 else int(size * self.fraction())

    def held(self) -> bool:
        """Whether what is out waits on the disruptions, not on the clock: nothing more comes out until the
        next one happens, so a role must not wait for more before it runs."""
        if self._final or self.started is None:
            return False
        done, total = self.progress()
        return done < total and (done + 0.5) / total <= (time.monotonic() - self.started) / self.spread_s


# ---------------------------------------------------------------------------------------------- roles


@dataclass(slots=True)
class RoleStats:
    spawned: int = 0
    killed: int = 0
    killed_mid_work: int | None = None
    """Kills that fell while the child was seen working (a request in flight, a worker committing);
    ``None`` for roles where the harness cannot see it."""
    restarts: int = 0
    """Children started again after one died (killed, or failed on its own)."""
    failures: list[str] = field(default_factory=list)
    """Exits nobody asked for: status and the last line the child wrote."""


class Role:
    """Something the supervisor keeps running until its work is acknowledged."""

    name: str = "role"
    ingest: bool = True
    #: Children failing on their own are started again after this, doubling to ``MAX_BACKOFF_S``.
    BACKOFF_S: Final = 0.3
    MAX_BACKOFF_S: Final = 4.0

    def __init__(self, ctx: Context, events: Sequence[Event]) -> None:
        self.ctx = ctx
        self.events = list(events)
        self.stats = RoleStats()
        self.child: Child | None = None
        self.kill_at = 0.0
        self._backoff = self.BACKOFF_S
        self._not_before = 0.0
        self._died = False

    # The supervisor's side.
    def tick(self, now: float) -> None:
        raise NotImplementedError

    #: How long past its drawn moment a kill waits for the child to be seen working, before it strikes anyway.
    PATIENCE_S: Final = 2.0

    def killable(self, now: float) -> bool:
        """Alive and past its randomly drawn moment; where the harness can see work (a request in flight, a
        worker with messages), it waits a little for the child to be busy, so most kills cut work short."""
        if self.child is None or not self.child.alive() or now < self.kill_at:
            return False
        return self.working() is not False or now >= self.kill_at + self.PATIENCE_S

    def kill(self) -> None:
        assert self.child is not None
        self.stats.killed += 1
        if (busy := self.working()) is not None:
            self.stats.killed_mid_work = (self.stats.killed_mid_work or 0) + int(busy)
        self.child.kill()

    def working(self) -> bool | None:
        """Whether the child is busy right now, when the harness can tell."""
        return None

    def up(self) -> bool:
        """A process of this role is running (and, for a server, accepting connections)."""
        return self.child is not None and self.child.alive()

    def has_work(self) -> bool:
        return not self.done()

    def done(self) -> bool:
        raise NotImplementedError

    def stop(self) -> None:
        if self.child is not None:
            self.child.terminate()

    def acknowledged(self) -> set[str]:
        """Ids this path was told are durably recorded."""
        return set()

    def problems(self) -> list[str]:
        """What this path saw go wrong that the generic checks cannot see."""
        return []

    def progress(self) -> int:
        """How many of its events the path has had acknowledged so far (for the progress lines)."""
        return len(self.acknowledged())

    def details(self) -> dict[str, Any]:
        return {}

    # Helpers for subclasses.
    def _spawn(self, args: Sequence[str], env: dict[str, str] | None = None) -> Child:
        self.stats.spawned += 1
        if self._died:
            self.stats.restarts += 1
            self._died = False
        self.child = Child(args, self.ctx.work / f"{self.name}.log", self.ctx.work, env)
        return self.child

    def _reap(self, now: float) -> int | None:
        """The finished child's status (``None`` while it runs or when there is none); books failures."""
        if self.child is None or (rc := self.child.exited()) is None:
            return None
        child, self.child = self.child, None
        self._died = rc != 0
        if rc == 0:
            self._backoff = self.BACKOFF_S
        elif not child.killed:
            self.stats.failures.append(f"exit {rc}: {child.last_line()}")
            self._not_before = now + self._backoff
            self._backoff = min(self._backoff * 2, self.MAX_BACKOFF_S)
        return rc

    def _may_start(self, now: float) -> bool:
        return now >= self._not_before


@dataclass
class Context:
    """What every role of one scenario shares."""

    database: str
    work: Path
    rng: random.Random
    release: Release
    finishing: bool = False
    """Set once the disruptions are over: roles finish their slices and the projector stops."""
    wants_kills: Callable[[str], bool] = lambda _: False
    """Whether the killer still has kills to spend on the named role (a role keeps a process up for it)."""


# ---------------------------------------------------------------------------------------------- disruptors


class Disruptor:
    """Strikes at random moments until it has struck ``total`` times."""

    kind = "disruption"

    def __init__(self, total: int, rng: random.Random) -> None:
        self.total = total
        self.done_count = 0
        self.rng = rng
        self.started = time.monotonic()
        self.next_at = float("inf")
        self.log: list[str] = []

    def progress(self) -> tuple[int, int]:
        return self.done_count, self.total

    def begin(self, now: float) -> None:
        """The writers are all up: the disruptions may start."""
        self.started = now
        self.next_at = now

    def finished(self) -> bool:
        return self.done_count >= self.total

    def tick(self, now: float, roles: Sequence[Role]) -> None:
        raise NotImplementedError


class Restarter(Disruptor):
    """Restarts a server at random moments, each while every writer is up and writing.

    A restart waits for every ingest role to have a live process and for acknowledgements to have moved
    since the previous restart (so it never lands on writers still starting up or waiting to be restarted),
    but never more than ``MAX_WAIT_S`` past its drawn moment.
    """

    MAX_WAIT_S: Final = 30.0

    def __init__(self, total: int, rng: random.Random, gap_s: tuple[float, float]) -> None:
        super().__init__(total, rng)
        self.gap_s = gap_s
        self._progress_at_last = 0

    def begin(self, now: float) -> None:
        self.started = now
        self.next_at = now + self.rng.uniform(*self.gap_s)

    def restart(self) -> str:
        """Restart the server; a few words on how it went."""
        raise NotImplementedError

    def tick(self, now: float, roles: Sequence[Role]) -> None:
        if self.finished() or now < self.next_at:
            return
        writers = [r for r in roles if r.ingest]
        progress = sum(r.progress() for r in writers)
        if now < self.next_at + self.MAX_WAIT_S and (
            progress <= self._progress_at_last or not all(r.up() for r in writers)
        ):
            return
        running = ", ".join(r.name for r in writers if r.child is not None and r.child.alive()) or "none"
        how = self.restart()
        self.done_count += 1
        self._progress_at_last = sum(r.progress() for r in writers)
        self.log.append(
            f"{now - self.started:7.1f}s {self.kind}: {how}; writers running: {running}, acknowledged {progress}"
        )
        self.next_at = time.monotonic() + self.rng.uniform(*self.gap_s)


class Killer(Disruptor):
    """SIGKILL a child of a role whose quota is not spent, at a random moment of its life."""

    kind = "sigkill"

    def __init__(self, quotas: dict[str, int], rng: random.Random, gap_s: tuple[float, float], spread_s: float) -> None:
        super().__init__(sum(quotas.values()), rng)
        self.quotas = quotas
        self.killed: dict[str, int] = dict.fromkeys(quotas, 0)
        self.gap_s = gap_s
        self.spread_s = spread_s

    def wants(self, role: str) -> bool:
        """Kills left for ``role``, paced over the run: a role that restarts fast (a batch job) would
        otherwise spend its whole quota in the first minute, on the first few batches."""
        quota = self.quotas.get(role, 0)
        elapsed = max(0.0, time.monotonic() - self.started) if self.next_at != float("inf") else 0.0
        allowed = min(quota, int(quota * elapsed / self.spread_s) + 1)
        return self.killed.get(role, 0) < allowed

    def wants_more(self, role: str) -> bool:
        """Kills left for ``role`` at all (paced or not)."""
        return self.killed.get(role, 0) < self.quotas.get(role, 0)

    def tick(self, now: float, roles: Sequence[Role]) -> None:
        if self.finished() or now < self.next_at:
            return
        victims = [r for r in roles if self.wants(r.name) and r.killable(now)]
        if not victims:
            self.next_at = now + 0.1
            return
        # The role furthest behind its quota first, so the kills spread over every path.
        victims.sort(key=lambda r: (r.stats.killed / self.quotas[r.name], self.rng.random()))
        victim = victims[0]
        self.killed[victim.name] += 1
        busy = victim.working()
        victim.kill()
        self.done_count += 1
        state = {True: " (mid-work)", False: " (idle)", None: ""}[busy]
        self.log.append(f"{now - self.started:7.1f}s SIGKILL {victim.name}{state}")
        self.next_at = now + self.rng.uniform(*self.gap_s)


# ---------------------------------------------------------------------------------------------- report


@dataclass
class ScenarioReport:
    scenario: str
    backend: str
    database: str
    events: int = 0
    seconds: float = 0.0
    disruption: str = ""
    disruptions: int = 0
    disruptions_asked: int = 0
    processes_killed: dict[str, int] = field(default_factory=dict)
    kills_mid_work: dict[str, int] = field(default_factory=dict)
    process_restarts: dict[str, int] = field(default_factory=dict)
    unexpected_exits: dict[str, list[str]] = field(default_factory=dict)
    acknowledged: int = 0
    stored: int = 0
    unique_ids: int = 0
    acknowledged_missing: int = 0
    missing: int = 0
    duplicates: int = 0
    unexpected_ids: int = 0
    final_post: str = ""
    final_post_appended: int = -1
    chain_ok: bool = False
    projections_equal_rebuild: bool = False
    paths: dict[str, dict[str, Any]] = field(default_factory=dict)
    timeline: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    work_dir: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def create_store(database: str) -> None:
    """Create the ledger (tables, schema, migrations) before children race to do it."""
    with open_ledger(database):
        pass


def stored_ids(database: str, limit: int) -> list[str]:
    with open_ledger(database, migrate=False) as ledger:
        return [str(r.event_id) for r in ledger.store.read(0, limit)]


def finish(
    report: ScenarioReport, ctx: Context, roles: Sequence[Role], disruptor: Disruptor, events: Sequence[Event]
) -> ScenarioReport:
    """Compare what was stored with what was acknowledged, re-post everything, verify, check the views."""
    expected = {e.event_id for e in events}
    acked: set[str] = set()
    for r in roles:
        acked |= r.acknowledged()
        report.processes_killed[r.name] = r.stats.killed
        if r.stats.killed_mid_work is not None:
            report.kills_mid_work[r.name] = r.stats.killed_mid_work
        report.process_restarts[r.name] = r.stats.restarts
        if r.stats.failures:
            report.unexpected_exits[r.name] = r.stats.failures[-20:]
        report.paths[r.name] = {"events": len(r.events), **r.details()}
        report.problems += r.problems()
    report.disruption = disruptor.kind
    report.disruptions = disruptor.done_count
    report.disruptions_asked = disruptor.total
    report.timeline = disruptor.log
    # Before anything is posted again: a re-post would hide an acknowledged event that was lost.
    ids = stored_ids(ctx.database, len(events) * 2 + 100)
    have = set(ids)
    report.events = len(events)
    report.acknowledged = len(acked)
    report.stored = len(ids)
    report.unique_ids = len(have)
    report.acknowledged_missing = len(acked - have)
    report.missing = len(expected - have)
    report.duplicates = len(ids) - len(have)
    report.unexpected_ids = len(have - expected)
    everything = write_lines(ctx.work / "all.jsonl", events)
    final = run_cli(["post", str(everything), "--database", ctx.database], ctx.work)
    report.final_post = (final.stdout.strip().splitlines() or [final.stderr.strip()[-300:]])[-1]
    with contextlib.suppress(ValueError, IndexError):
        report.final_post_appended = int(report.final_post.split(",")[0].split()[-1])
    verify = run_cli(["verify", "--database", ctx.database], ctx.work)
    report.chain_ok = verify.returncode == 0
    check = run_cli(["project", "--check", "--database", ctx.database], ctx.work)
    report.projections_equal_rebuild = check.returncode == 0
    _judge(report, final.returncode, verify, check)
    return report


def _judge(
    report: ScenarioReport,
    final_rc: int,
    verify: subprocess.CompletedProcess[str],
    check: subprocess.CompletedProcess[str],
) -> None:
    p = report.problems
    if report.disruptions < report.disruptions_asked:
        p.append(f"only {report.disruptions} of {report.disruptions_asked} {report.disruption}s happened")
    if report.acknowledged_missing:
        p.append(f"{report.acknowledged_missing} acknowledged events are not stored")
    if report.acknowledged != report.events:
        p.append(f"{report.events - report.acknowledged} events were never acknowledged by their path")
    if report.missing:
        p.append(f"{report.missing} events missing after the paths finished")
    if report.duplicates:
        p.append(f"{report.duplicates} events stored more than once")
    if report.unexpected_ids:
        p.append(f"{report.unexpected_ids} stored events nobody sent")
    if final_rc != 0 or report.final_post_appended != 0:
        p.append(f"the final re-post of every event was not all duplicates: {report.final_post}")
    if not report.chain_ok:
        p.append(f"quipu verify failed: {(verify.stdout + verify.stderr).strip()[-300:]}")
    if not report.projections_equal_rebuild:
        p.append(f"quipu project --check failed: {(check.stdout + check.stderr).strip()[-500:]}")


# ---------------------------------------------------------------------------------------------- the loop


#: The longest wait for every writer's first start before the work and the disruptions begin anyway.
WARMUP_MAX_S: Final = 90.0
#: How often a long run says where it is.
PROGRESS_EVERY_S: Final = 10.0


def _progress_line(elapsed: float, ctx: Context, roles: Sequence[Role], disruptor: Disruptor) -> str:
    parts = []
    for r in roles:
        state = "up" if r.child is not None and r.child.alive() else "down"
        acked = f" {r.progress()}/{len(r.events)}" if r.ingest else ""
        parts.append(f"{r.name}{acked} {state} k{r.stats.killed}")
    return (
        f"  {elapsed:6.0f}s {disruptor.kind}s {disruptor.done_count}/{disruptor.total}, "
        f"released {ctx.release.fraction():.0%}: " + "; ".join(parts)
    )


class Stalled(RuntimeError):
    """The scenario did not finish within its deadline."""


def supervise(
    report: ScenarioReport,
    ctx: Context,
    roles: Sequence[Role],
    disruptor: Disruptor,
    deadline_s: float,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Keep the roles running through the disruptions and until every role's slice is acknowledged.

    A run that fails (stalls past ``deadline_s``, a role that cannot start) becomes a problem of ``report``
    rather than an exception: what was stored is still checked by :func:`finish` afterwards."""
    try:
        _supervise(ctx, roles, disruptor, deadline_s, progress)
    except Exception as exc:
        report.problems.append(f"{type(exc).__name__}: {exc}")


def _supervise(
    ctx: Context,
    roles: Sequence[Role],
    disruptor: Disruptor,
    deadline_s: float,
    progress: Callable[[str], None] | None,
) -> None:
    started = time.monotonic()
    shown = started
    warm = False
    try:
        while True:
            now = time.monotonic()
            if not warm and (all(r.up() for r in roles if r.ingest) or now - started > WARMUP_MAX_S):
                # Servers and workers are up: the clock of the work and of the disruptions starts now, so
                # no disruption is spent on a first start-up.
                warm = True
                ctx.release.begin()
                disruptor.begin(now)
            if progress is not None and now - shown >= PROGRESS_EVERY_S:
                shown = now
                progress(_progress_line(now - started, ctx, roles, disruptor))
            if disruptor.finished() and not ctx.finishing:
                ctx.finishing = True
            for role in roles:
                role.tick(now)
            disruptor.tick(time.monotonic(), roles)
            if ctx.finishing and all(r.done() for r in roles if r.ingest):
                break
            if now - started > deadline_s:
                waiting = [r.name for r in roles if r.ingest and not r.done()]
                raise Stalled(
                    f"not finished after {deadline_s:.0f} s: {disruptor.done_count}/{disruptor.total} "
                    f"{disruptor.kind}s, still working: {', '.join(waiting) or 'nobody'}"
                )
            time.sleep(TICK_S)
    finally:
        ctx.finishing = True
        for role in roles:
            with contextlib.suppress(Exception):
                role.stop()


# ---------------------------------------------------------------------------------------------- ledgers


def backend_of(url: str) -> str:
    return "postgresql" if url.startswith(("postgresql:", "postgres:")) else "sqlite"


@contextlib.contextmanager
def scratch_ledger(base: str | None, name: str, work: Path, keep: bool = False) -> Iterator[str]:
    """A fresh, empty ledger for one scenario: a SQLite file in ``work``, or a new schema under ``base``."""
    if base is None or backend_of(base) == "sqlite":
        yield f"sqlite:///{work}/{name}.db"
        return
    schema = new_schema_name(f"crash_{name}")
    try:
        yield pg_schema_url(base, schema)
    finally:
        if not keep:
            with contextlib.suppress(Exception):
                drop_schema(base, schema)


def describe(url: str) -> str:
    return redacted(url)
