"""Group commit: the posts that arrive while the ledger is busy are decided and appended together.

One event per transaction is bound by the commit (an fsync each, ``../shared/DESIGN.md``), and the
ledger is one writer per process anyway. So a request does not take the ledger itself: it joins a
queue, and whenever the ledger is free, everything queued goes to ``LedgerService.post`` as one batch,
in arrival order. Idle, a request is committed alone at once (no timer, no added wait); under load,
the requests that came in during one commit share the next, so throughput grows with the offered load
instead of latency.

The semantics are those of posting the same events one by one in arrival order (ADR 0009: each event
is decided against the state left by the ones before it, with its own result), except that the
accepted events of a group become durable in one transaction. A failure of that transaction fails
every request of the group, and none of them was recorded; each may retry with the same event ids.

Traces: the group's ``quipu.append`` span is a child of the request that started the group and links
to every other request whose events it committed (ADR 0023).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
from collections import deque
from collections.abc import Callable, Sequence
from typing import Final

from opentelemetry import propagate
from opentelemetry.trace import SpanContext

from adapters.committer import BIG_GROUP_EVENTS, DEPTH, CommitterProcess
from adapters.observability.tracing import current_span_context, grouped_with, tracing_active
from domain.service import MAX_BATCH, PostResult, prepare

Post = Callable[[Sequence[bytes]], list[PostResult]]
#: A request's events, where its results go, and its context (for the trace the commit belongs to).
_Waiting = tuple[Sequence[bytes], "asyncio.Future[list[PostResult]]", contextvars.Context]


class GroupCommit:
    """Coalesces the concurrent posts of one event loop into batches of at most ``max_events``."""

    MAX_EVENTS: Final = MAX_BATCH

    def __init__(self, post: Post, max_events: int = MAX_EVENTS) -> None:
        self._post = post
        self._max = max_events
        self.process: CommitterProcess | None = None
        """Where groups go when set (ADR 0041); else to ``post``, in a thread of this process."""
        self._waiting: deque[_Waiting] = deque()
        self._drainer: asyncio.Task[None] | None = None
        self._queued = 0
        """Events waiting (not yet in a group)."""
        self._in_flight = 0
        """Groups sent to the committer process and not yet answered."""
        self._wake: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        self.groups = 0
        """How many transactions the posts so far took (a figure for tests and metrics)."""

    async def post(self, raws: Sequence[bytes]) -> list[PostResult]:
        """The results of ``raws``, indexed within ``raws``, once they are decided and durable."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[PostResult]] = loop.create_future()
        self._waiting.append((raws, done, contextvars.copy_context()))
        self._queued += len(raws)
        self._wake_of(loop).set()
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        # A caller that goes away (client disconnect) must not cancel the group's commit.
        return await asyncio.shield(done)

    async def _drain(self) -> None:
        wake = self._wake_of(asyncio.get_running_loop())
        while self._waiting:
            if self.process is not None:
                # A group is sent while another is in flight only when it is big (ADR 0042): it then waits in the
                # committer's socket, and the committer goes on to it without a round trip through this loop. Small
                # groups wait here, as they always did, and grow meanwhile: sent at once, the single posts of a
                # busy second made twice the groups, each with its own round trips (p99 at 1,000/s: 9 -> 50 ms).
                while self._in_flight >= DEPTH or (self._in_flight and self._queued < BIG_GROUP_EVENTS):
                    wake.clear()
                    await wake.wait()
            group = self._take()
            flat = [raw for raws, _, _ in group for raw in raws]
            tracing = tracing_active()  # else no request has a span to link to, and none need be looked for
            others = [c for _, _, ctx in group[1:] if tracing and (c := ctx.run(current_span_context)) is not None]
            if self.process is not None:
                trace: dict[str, str] = {}
                if tracing:  # the first request's trace is the commit's parent
                    group[0][2].run(propagate.inject, trace)
                links = [(c.trace_id, c.span_id, int(c.trace_flags)) for c in others]
                try:
                    # A big group is prepared here, in the worker, which has CPU to spare: its committer, the
                    # serial part, then only decides and appends it (ADR 0042). A small one is prepared there: at
                    # 1,000 single posts a second, preparing here put it on the loop every request waits on
                    # (p99 12-14 -> 17-21 ms), and the committer had time enough.
                    batch = prepare(flat) if len(flat) >= BIG_GROUP_EVENTS else flat
                    await self.process.ensure_started()
                    answer = self.process.send(batch, trace, links)
                except Exception as exc:
                    self._fail(group, exc)
                    continue
                self._in_flight += 1
                answer.add_done_callback(lambda _: self._landed(wake))
                asyncio.get_running_loop().create_task(self._deliver(group, answer))
                continue
            try:
                # In a thread, so the loop keeps taking requests (the next group) during the commit; in the
                # context of the group's first request, so its trace is the commit's parent.
                run = functools.partial(group[0][2].run, self._post_linked, flat, others)
                results = await asyncio.get_running_loop().run_in_executor(None, run)
            except Exception as exc:  # every request of the group learns the same failure
                self._fail(group, exc)
                continue
            self._answer(group, results)

    def _wake_of(self, loop: asyncio.AbstractEventLoop) -> asyncio.Event:
        """Set when a request arrives or a group lands: the drain may have a group to send. One per loop (tests run
        an app on several)."""
        if self._wake is None or self._wake[0] is not loop:
            self._wake = (loop, asyncio.Event())
        return self._wake[1]

    def _landed(self, wake: asyncio.Event) -> None:
        self._in_flight -= 1
        wake.set()

    def _take(self) -> list[_Waiting]:
        """The oldest waiting requests, as many as fit in one group."""
        group = [self._waiting.popleft()]
        size = len(group[0][0])
        while self._waiting and size + len(self._waiting[0][0]) <= self._max:
            group.append(self._waiting.popleft())
            size += len(group[-1][0])
        self._queued -= size
        return group

    async def _deliver(self, group: list[_Waiting], answer: asyncio.Future[list[PostResult]]) -> None:
        try:
            results = await answer
        except Exception as exc:
            self._fail(group, exc)
            return
        self._answer(group, results)

    @staticmethod
    def _fail(group: list[_Waiting], exc: Exception) -> None:
        """Every request of the group learns the same failure."""
        for _, done, _ in group:
            if not done.done():
                done.set_exception(exc)

    def _answer(self, group: list[_Waiting], results: list[PostResult]) -> None:
        self.groups += 1
        start = 0
        for raws, done, _ in group:
            mine = results[start : start + len(raws)]
            if start:  # indexed within the group: re-index within this request (the first needs none)
                mine = [dataclasses.replace(r, index=r.index - start) for r in mine]
            start += len(raws)
            if not done.done():
                done.set_result(mine)

    def _post_linked(self, raws: Sequence[bytes], others: Sequence[SpanContext]) -> list[PostResult]:
        with grouped_with(others):
            return self._post(raws)
