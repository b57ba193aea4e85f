"""A committer process: posts are decided and appended outside the process that receives them (ADRs 0041, 0045).

Each HTTP worker of ``quipu serve`` has one for its grouped posts (ADR 0041), and ``quipu worker`` has one for its
consumed batches (ADR 0045). What follows was measured on the HTTP side first.

A worker's event loop and its committing thread shared one interpreter lock. Each time the committing thread
waited on the database it gave the lock away, and got it back only when the loop next let go of it, up to the
interpreter's 5 ms switch interval later. Measured at 1,000 requests/s: a group of ~17 events took 16 ms of wall
time for 4 ms of CPU, and a request waited for about two groups. In its own process the same work has its own
interpreter: the worker's loop only frames the group, and its own reads and writes never wait on the commit.

The worker starts its committer when it starts (a ``spawn``ed process that opens the same ledger) and talks to it
over a socket pair through its event loop: no thread on the worker's side, so no lock to hand over. Up to
:data:`DEPTH` groups are in flight (:class:`~adapters.http.group_commit.GroupCommit` keeps to it): the next
group is then already with the committer when it answers the last (ADR 0042), and answers come in sending order.

Frames are a 4-byte length and a pickle. Pickle is safe here: both ends are this program, over a socket pair no
other process holds. Worker → committer: the events (raw, or prepared in compact form), the trace context of the
group's first request (W3C headers; empty when tracing is off) and the span contexts of the other requests.
Committer → worker: ``("ok", results)`` (as tuples), ``("lost", reason)`` when the database went away,
``("error", reason)`` for anything else.

If the committer dies or its database goes away (or write conflicts outlast the service's retries), the group's
requests get :class:`CommitterLost` (503 with ``Retry-After``: retrying with the same event ids is safe, an event
already recorded answers duplicate) and the next post starts a new committer. A committer started with
``stop_after_failure`` (the Kafka worker's) exits after such an answer, so the groups queued behind the failed one
are not appended before it: they fail too, and the worker sends them again, in order, to a new committer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import pickle
import socket
import struct
from collections import deque
from collections.abc import Sequence
from typing import Any, Final

from domain.service import Outcome, PostResult, Prepared, prepare
from ledger.errors import QuipuError

#: ``(trace id, span id, trace flags)`` of a request whose events a group commits (a link of its append span).
Link = tuple[int, int, int]

_LENGTH: Final = struct.Struct("!I")
#: Groups a worker may have in flight to its committer: the next waits in the socket while one is decided, so the
#: committer never idles for a round trip through the worker between two (ADR 0042). More would only make groups
#: smaller.
DEPTH: Final = 2
#: A group of at least this many events is big: the worker prepares it (the committer only decides and appends it),
#: and sends it while another is in flight. A smaller one waits for the one in flight to land, growing meanwhile,
#: and the committer prepares it (ADR 0042).
BIG_GROUP_EVENTS: Final = 100
#: How long a new committer may take to import, open the ledger and say it is ready.
START_TIMEOUT: Final = 120.0
#: How long a committer asked to stop may take to close its ledger before it is killed.
STOP_TIMEOUT: Final = 10.0
log = logging.getLogger("quipu.committer")


#: Where posts are decided and appended: a committer process, or a thread of the receiving process
#: (``quipu serve`` and ``quipu worker``: ``--committer``, else ``QUIPU_COMMITTER``).
COMMITTERS: Final = ("process", "thread")


def committer_choice(value: str | None = None) -> str:
    """``value`` (else ``QUIPU_COMMITTER``, else ``process``) when it is one of :data:`COMMITTERS`."""
    choice = (value or os.environ.get("QUIPU_COMMITTER") or "process").strip().lower()
    if choice not in COMMITTERS:
        raise QuipuError(f"committer (QUIPU_COMMITTER): {choice!r} is not one of {', '.join(COMMITTERS)}")
    return choice


class CommitterLost(QuipuError):
    """The committer process, or its database, went away: the group was not answered (retry, same event ids)."""


class CommitterProcess:
    """The worker's end: starts the committer, sends it groups, restarts it after it was lost.

    Up to :data:`DEPTH` groups may be in flight (the caller keeps to it): the committer answers them in the order
    they were sent, so each answer resolves the oldest group still waiting.
    """

    def __init__(self, database_url: str, stop_after_failure: bool = False, service: str = "quipu-api") -> None:
        self.database_url = database_url
        self.stop_after_failure = stop_after_failure
        """Whether the committer exits after a group it could not post, failing the groups queued behind it."""
        self.service = service
        """The service name of the committer's traces: the process it commits for."""
        self.process: multiprocessing.process.BaseProcess | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._answers: asyncio.Task[None] | None = None
        self._pending: deque[asyncio.Future[list[PostResult]]] = deque()

    @property
    def running(self) -> bool:
        """Whether a committer is up and its socket open (else the next :meth:`ensure_started` starts one)."""
        return (
            self._writer is not None
            and self._answers is not None
            and not self._answers.done()
            and self.process is not None
            and self.process.is_alive()
        )

    async def start(self) -> None:
        """Start a committer and wait until it has opened the ledger; :class:`CommitterLost` if it could not."""
        await self.close()
        ours, theirs = socket.socketpair()
        process = multiprocessing.get_context("spawn").Process(
            target=serve,
            args=(theirs, self.database_url, self.stop_after_failure, self.service, os.getpid()),
            name="quipu-committer",
            daemon=True,
        )
        try:
            process.start()
        finally:
            theirs.close()
        self.process = process
        self._reader, self._writer = await asyncio.open_unix_connection(sock=ours)
        try:
            answer = await asyncio.wait_for(_receive(self._reader), START_TIMEOUT)
        except (OSError, EOFError, asyncio.IncompleteReadError, TimeoutError) as exc:
            await self.close()
            raise CommitterLost(f"the committer process did not start: {exc!r}") from None
        if answer[0] != "ready":
            await self.close()
            raise CommitterLost(f"the committer process could not open the ledger: {answer[-1]}")
        self._answers = asyncio.get_running_loop().create_task(self._deliver(self._reader))

    async def ensure_started(self) -> None:
        """Start a committer if there is none, or the last one is gone (its socket closed, or it exited)."""
        if not self.running:
            await self.start()

    def send(
        self, batch: Prepared | Sequence[bytes], trace: dict[str, str], links: Sequence[Link]
    ) -> asyncio.Future[list[PostResult]]:
        """Send a group to the running committer (:meth:`ensure_started` first); its results, when answered.

        A group the worker has prepared goes in :meth:`~domain.service.Prepared.compact` form: the committer then
        only decides and appends it (ADR 0042); raw events it prepares itself. The future fails with
        :class:`CommitterLost` if the committer goes away before answering. Cancelling it does not take the group
        back: the committer still decides it, and its answer is read and dropped.
        """
        assert self._writer is not None, "ensure_started() first"
        answer: asyncio.Future[list[PostResult]] = asyncio.get_running_loop().create_future()
        events = ("prepared", batch.compact()) if isinstance(batch, Prepared) else ("raw", list(batch))
        self._writer.write(_frame((events, trace, list(links))))
        self._pending.append(answer)
        return answer

    async def post(self, raws: Sequence[bytes], trace: dict[str, str], links: Sequence[Link]) -> list[PostResult]:
        """The results of ``raws``, decided and appended by the committer (started first if there is none)."""
        await self.ensure_started()
        return await self.send(raws, trace, links)

    async def _deliver(self, reader: asyncio.StreamReader) -> None:
        """Read answers for as long as the committer runs, each for the oldest group waiting."""
        try:
            while True:
                answer = await _receive(reader)
                waiting = self._pending.popleft()
                if waiting.done():  # cancelled by its caller: the answer is dropped
                    continue
                if answer[0] == "ok":
                    waiting.set_result(_results(answer[1]))
                elif answer[0] == "lost":
                    waiting.set_exception(CommitterLost(answer[1]))
                else:
                    waiting.set_exception(RuntimeError(f"the committer process failed: {answer[1]}"))
        except (OSError, EOFError, asyncio.IncompleteReadError) as exc:
            self._fail_pending(CommitterLost(f"the committer process went away: {exc!r}"))

    def _fail_pending(self, exc: Exception) -> None:
        while self._pending:
            waiting = self._pending.popleft()
            if not waiting.done():
                waiting.set_exception(exc)

    async def close(self) -> None:
        """Stop the committer: it sees the socket close, closes its ledger and exits (killed if it does not).

        Groups still waiting for an answer fail with :class:`CommitterLost`."""
        writer, process, answers = self._writer, self.process, self._answers
        self._reader = self._writer = None
        self.process = None
        self._answers = None
        if answers is not None:
            answers.cancel()
        self._fail_pending(CommitterLost("the committer process was stopped"))
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if process is not None:
            await asyncio.to_thread(process.join, STOP_TIMEOUT)
            if process.is_alive():
                process.kill()
                await asyncio.to_thread(process.join)


async def _receive(reader: asyncio.StreamReader) -> Any:
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    return pickle.loads(await reader.readexactly(length))


#: A result as it crosses the socket: ``(index, outcome, event_id, position, reason, problems)``.
_Row = tuple[int, str, str | None, int | None, str | None, tuple[str, ...]]
_OUTCOMES: Final = {o.value: o for o in Outcome}


def _rows(results: list[PostResult]) -> list[_Row]:
    """Results as plain tuples: pickling the dataclasses cost the committer 3.6 µs a result, tuples 0.45 (ADR 0042)."""
    return [(r.index, r.outcome.value, r.event_id, r.position, r.reason, r.problems) for r in results]


def _results(rows: list[_Row]) -> list[PostResult]:
    return [PostResult(i, _OUTCOMES[o], e, p, r, pr) for i, o, e, p, r, pr in rows]


def _frame(value: object) -> bytes:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def serve(
    sock: socket.socket,
    database_url: str,
    stop_after_failure: bool = False,
    service: str = "quipu-api",
    parent: int | None = None,
) -> None:
    """The committer process: open the ledger, then decide and append each group it is sent until the socket closes
    (or, with ``stop_after_failure``, until a group fails).

    Groups are read as they come: the worker may send the next one while this one is being decided (up to
    :data:`DEPTH`), so it is already here when this one is answered (ADR 0042). It sets up logging and tracing from
    the environment as the worker did, so its append spans join the requests' traces and its log lines look like
    the worker's. It dies with its ``parent`` process: a group in hand then rolls back, and nothing is appended
    for a worker that can no longer answer or commit offsets.
    """
    from opentelemetry import context, propagate
    from opentelemetry.trace import SpanContext, TraceFlags

    from adapters.bootstrap import DATABASE_LOST, open_ledger
    from adapters.observability.logs import configure_logging
    from adapters.observability.tracing import configure_tracing, grouped_with, instrument, shutdown_tracing
    from adapters.runtime import die_with_parent, tune_gc
    from domain.ports import WriteConflict

    if parent is not None:
        die_with_parent(parent)
    configure_logging()
    configure_tracing(service)
    stream = sock.makefile("rwb")
    try:
        ledger = instrument(open_ledger(database_url))
    except Exception as exc:
        stream.write(_frame(("failed", f"{type(exc).__name__}: {exc}")))
        stream.flush()
        return
    # The worker's processes post to the same streams, each through its committer: catch cached states up
    # before deciding (ADR 0034).
    ledger.service.shared = True
    tune_gc()
    try:
        stream.write(_frame(("ready",)))
        stream.flush()
        while head := stream.read(_LENGTH.size):
            (length,) = _LENGTH.unpack(head)
            (form, events), trace, links = pickle.loads(stream.read(length))
            token = context.attach(propagate.extract(trace)) if trace else None
            answer: tuple[Any, ...]
            try:
                others = [SpanContext(t, s, is_remote=True, trace_flags=TraceFlags(f)) for t, s, f in links]
                batch = Prepared.expand(events) if form == "prepared" else prepare(events)
                with grouped_with(others):
                    answer = ("ok", _rows(ledger.service.post_prepared(batch)))
            except DATABASE_LOST as exc:
                answer = ("lost", f"the ledger's database did not answer: {exc}")
            except WriteConflict as exc:
                answer = ("lost", f"other writers kept taking the same streams: {exc}")
            except Exception as exc:
                size = events[0] if form == "prepared" else len(events)
                log.exception("the committer could not post a group of %d events", size)
                answer = ("error", f"{type(exc).__name__}: {exc}")
            finally:
                if token is not None:
                    context.detach(token)
            stream.write(_frame(answer))
            stream.flush()
            if stop_after_failure and answer[0] != "ok":
                break
    except (OSError, EOFError):
        pass  # the worker went away: nothing left to answer
    finally:
        ledger.close()
        shutdown_tracing()
