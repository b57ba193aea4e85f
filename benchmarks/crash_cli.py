"""The command-line roles of the crash harness: ``quipu post`` batch writers and the ``quipu project`` loop."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

from benchmarks.crash_common import Context, Event, Role, cli_args, write_lines

_SUMMARY: Final = re.compile(r"appended (\d+), duplicates (\d+)")


class PostRole(Role):
    """Batch files for ``quipu post``, one after another, as a scheduler would run them.

    Each run posts what was released and not yet acknowledged; a run acknowledges its file by exiting 0.
    A run that dies (killed, or its database gone) is run again on the same events and more, as a
    supervisor re-running the job would; what the dead run had already committed comes back as
    duplicates.
    """

    name = "post"

    def __init__(self, ctx: Context, events: Sequence[Event]) -> None:
        super().__init__(ctx, events)
        self.acked_upto = 0
        self._posting_upto = 0
        self.runs_ok = 0
        self.reruns = 0
        self._rerun = False
        self._min_batch = 0
        self.found_recorded = 0

    def tick(self, now: float) -> None:
        child = self.child
        if self._reap(now) == 0 and child is not None:
            self.acked_upto = self._posting_upto
            self.runs_ok += 1
            if not self._rerun and (found := _SUMMARY.findall(child.output())):
                # Events of this batch a killed run before it had already committed.
                self.found_recorded += int(found[-1][1])
        if self.child is not None or not self._may_start(now):
            return
        released = self.ctx.release.count(len(self.events))
        start = self.acked_upto
        # Batch files are posted when enough has come in (a run is mostly start-up otherwise), unless nothing
        # more comes in until a disruption happens: waiting then stalled the whole run when the next kill was
        # this path's.
        small = 0 < released - start < self._min_batch and released < len(self.events)
        if small and not self._died and not self.ctx.release.held():
            return
        if released <= start:
            if released == 0 or self.done() or not self.ctx.wants_kills(self.name):
                return
            # The killer still wants this path and nothing new is out yet: run the last batch again (all
            # duplicates), as a scheduler re-running a job would, rather than leave no process to kill.
            start = max(0, start - self.ctx.rng.randint(1, 200))
            self.reruns += 1
        self._rerun = start < self.acked_upto
        batch = write_lines(self.ctx.work / "post.jsonl", self.events[start:released])
        size = self.ctx.rng.choice((50, 200, 1000))
        self._spawn(cli_args("post", str(batch), "--database", self.ctx.database, "--batch-size", str(size)))
        self._posting_upto = released
        # From the moment the process starts: a short CLI run here is 1-2 s of start-up (imports, opening the
        # ledger) and then the append, so the moment is drawn over both.
        self.kill_at = now + self.ctx.rng.uniform(0.5, 3.5)
        self._min_batch = self.ctx.rng.randint(50, 300)

    def done(self) -> bool:
        return self.acked_upto >= len(self.events)

    def up(self) -> bool:
        """Running, or with nothing to run: a batch job is not a server."""
        return super().up() or self.ctx.release.count(len(self.events)) <= self.acked_upto

    def acknowledged(self) -> set[str]:
        return {e.event_id for e in self.events[: self.acked_upto]}

    def details(self) -> dict[str, Any]:
        return {
            "runs_exited_0": self.runs_ok,
            "reruns_of_acknowledged_batches": self.reruns,
            "committed_by_a_killed_run": self.found_recorded,
        }


class ProjectRole(Role):
    """``quipu project`` again and again while the writers write, as a cron or a sidecar would."""

    name = "project"
    ingest = False

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx, [])
        self._next_run = 0.0
        self.runs_ok = 0

    def tick(self, now: float) -> None:
        if self._reap(now) is not None:
            self._next_run = now + self.ctx.rng.uniform(0.2, 1.0)
        if self.child is None and not self.ctx.finishing and now >= self._next_run and self._may_start(now):
            self._spawn(cli_args("project", "--database", self.ctx.database))
            self.kill_at = now + self.ctx.rng.uniform(0.2, 2.5)
        self._min_batch = self.ctx.rng.randint(100, 600)

    def _reap(self, now: float) -> int | None:
        rc = super()._reap(now)
        if rc == 0:
            self.runs_ok += 1
        return rc

    def has_work(self) -> bool:
        return self.child is not None and self.child.alive()

    def done(self) -> bool:
        return True

    def details(self) -> dict[str, Any]:
        return {"runs_exited_0": self.runs_ok}
