"""An HTTP worker's committer process: the grouped posts are decided and appended outside the worker (ADR 0041).

A worker's event loop and its committing thread shared one interpreter lock. Each time the committing thread
waited on the database it gave the lock away, and got it back only when the loop next let go of it, up to the
interpreter's 5 ms switch interval later. Measured at 1,000 requests/s: a group of ~17 events took 16 ms of wall
time for 4 ms of CPU, and a request waited for about two groups. In its own process the same work has its own
interpreter: the worker's loop only frames the group, and its own reads and writes never wait on the commit.

The worker starts its committer when it starts (a ``spawn``ed process that opens the same ledger) and talks to it
over a socket pair through its event loop: no thread on the worker's side, so no lock to hand over. One group is
in flight at a time (:class:`~adapters.http.group_commit.GroupCommit` sends the next when the last is answered),
so a frame's answer is always the answer to the last frame sent.

Frames are a 4-byte length and a pickle. Pickle is safe here: both ends are this program, over a socket pair no
other process holds. Worker → committer: the events, the trace context of the group's first request (W3C headers;
empty when tracing is off) and the span contexts of the other requests. Committer → worker: ``("ok", results)``,
``("lost", reason)`` when the database went away, ``("error", reason)`` for anything else.

If the committer dies or its database goes away, the group's requests get :class:`CommitterLost` (503 with
``Retry-After``: retrying with the same event ids is safe, an event already recorded answers duplicate) and the
next post starts a new committer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import pickle
import socket
import struct
from collections.abc import Sequence
from typing import Any, Final

from domain.service import PostResult
from ledger.errors import QuipuError

#: ``(trace id, span id, trace flags)`` of a request whose events a group commits (a link of its append span).
Link = tuple[int, int, int]

_LENGTH: Final = struct.Struct("!I")
#: How long a new committer may take to import, open the ledger and say it is ready.
START_TIMEOUT: Final = 120.0
#: How long a committer asked to stop may take to close its ledger before it is killed.
STOP_TIMEOUT: Final = 10.0
log = logging.getLogger("quipu.http")


class CommitterLost(QuipuError):
    """The committer process, or its database, went away: the group was not answered (retry, same event ids)."""


class CommitterProcess:
    """The worker's end: starts the committer, sends it groups, restarts it after it was lost."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.process: multiprocessing.process.BaseProcess | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def start(self) -> None:
        """Start a committer and wait until it has opened the ledger; :class:`CommitterLost` if it could not."""
        await self.close()
        ours, theirs = socket.socketpair()
        process = multiprocessing.get_context("spawn").Process(
            target=serve, args=(theirs, self.database_url), name="quipu-committer", daemon=True
        )
        try:
            process.start()
        finally:
            theirs.close()
        self.process = process
        self._reader, self._writer = await asyncio.open_unix_connection(sock=ours)
        try:
            answer = await asyncio.wait_for(self._receive(), START_TIMEOUT)
        except (OSError, EOFError, asyncio.IncompleteReadError, TimeoutError) as exc:
            await self.close()
            raise CommitterLost(f"the committer process did not start: {exc!r}") from None
        if answer[0] != "ready":
            await self.close()
            raise CommitterLost(f"the committer process could not open the ledger: {answer[-1]}")

    async def post(self, raws: Sequence[bytes], trace: dict[str, str], links: Sequence[Link]) -> list[PostResult]:
        """The results of ``raws``, decided and appended by the committer (started first if there is none)."""
        if self._reader is None or self._reader.at_eof() or self.process is None or not self.process.is_alive():
            await self.start()  # none yet, or the last one is gone (its end of the socket closed, or it exited)
        assert self._writer is not None
        try:  # between the check and this write it may die too: then the group fails as below
            self._writer.write(_frame((list(raws), trace, list(links))))
            answer = await self._receive()
        except BaseException as exc:
            # Lost, or cancelled half-way: the next frame would be read as this one's answer. Start afresh.
            await self.close()
            if isinstance(exc, OSError | EOFError | asyncio.IncompleteReadError):
                raise CommitterLost(f"the committer process went away: {exc!r}") from None
            raise
        if answer[0] == "ok":
            results: list[PostResult] = answer[1]
            return results
        if answer[0] == "lost":
            raise CommitterLost(answer[1])
        raise RuntimeError(f"the committer process failed: {answer[1]}")

    async def close(self) -> None:
        """Stop the committer: it sees the socket close, closes its ledger and exits (killed if it does not)."""
        writer, process = self._writer, self.process
        self._reader = self._writer = None
        self.process = None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if process is not None:
            await asyncio.to_thread(process.join, STOP_TIMEOUT)
            if process.is_alive():
                process.kill()
                await asyncio.to_thread(process.join)

    async def _receive(self) -> Any:
        assert self._reader is not None
        (length,) = _LENGTH.unpack(await self._reader.readexactly(_LENGTH.size))
        return pickle.loads(await self._reader.readexactly(length))


def _frame(value: object) -> bytes:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def serve(sock: socket.socket, database_url: str) -> None:
    """The committer process: open the ledger, then decide and append each group it is sent until the socket closes.

    It sets up logging and tracing from the environment as the worker did, so its append spans join the
    requests' traces and its log lines look like the worker's.
    """
    from opentelemetry import context, propagate
    from opentelemetry.trace import SpanContext, TraceFlags

    from adapters.bootstrap import open_ledger
    from adapters.http.contract import DATABASE_LOST
    from adapters.observability.logs import configure_logging
    from adapters.observability.tracing import configure_tracing, grouped_with, instrument, shutdown_tracing
    from adapters.runtime import tune_gc

    configure_logging()
    configure_tracing("quipu-api")
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
            raws, trace, links = pickle.loads(stream.read(length))
            token = context.attach(propagate.extract(trace)) if trace else None
            answer: tuple[Any, ...]
            try:
                others = [SpanContext(t, s, is_remote=True, trace_flags=TraceFlags(f)) for t, s, f in links]
                with grouped_with(others):
                    answer = ("ok", ledger.service.post(raws))
            except DATABASE_LOST as exc:
                answer = ("lost", f"the ledger's database did not answer: {exc}")
            except Exception as exc:
                log.exception("the committer could not post a group of %d events", len(raws))
                answer = ("error", f"{type(exc).__name__}: {exc}")
            finally:
                if token is not None:
                    context.detach(token)
            stream.write(_frame(answer))
            stream.flush()
    except (OSError, EOFError):
        pass  # the worker went away: nothing left to answer
    finally:
        ledger.close()
        shutdown_tracing()
