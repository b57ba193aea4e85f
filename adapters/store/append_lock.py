"""A file lock that queues the processes appending to one SQLite ledger, so the next one starts the moment the last
commits (ADR 0047).

SQLite lets one writer in at a time. The others wait in SQLite's busy handler, which sleeps 1, 2, 5, 10, 15, 20,
25 … ms between tries and so wakes up late: with eight writers on two cores, a fifth to a third of the CPU sat
idle. Here a writer waits for the lock in the kernel (``flock``), which hands it over as soon as the holder lets
go, and a holder that dies lets go with it. SQLite still locks the database itself: this lock only orders the
writers, it guards nothing.

A wait is bounded, as SQLite's own is: after ``timeout`` seconds the append fails with the same
``OperationalError`` a locked database gives, which every caller already treats as "try again later".

POSIX only (``flock``); on Windows the store appends without it, waiting in SQLite's busy handler as before.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from types import TracebackType

from eventsourcing.persistence import OperationalError

if sys.platform != "win32":
    import fcntl


class AppendLock:
    """An exclusive lock on ``path`` (created if missing) across processes and across this process's threads."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.pid = os.getpid()
        """The process that opened the file: a forked child shares the open file, and so its lock."""
        # flock belongs to the open file, which this process's threads share: they queue on this first.
        self._threads = threading.Lock()
        self._handover = threading.Lock()
        """Orders a waiting helper thread's "got it" against its caller's "gave up"."""
        self._stray: threading.Thread | None = None
        """A helper whose caller gave up, still waiting for the lock on this process's open file: until it has
        taken and dropped it, another try here would share its lock and be dropped with it."""

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> AppendLock:
        if not self._threads.acquire(timeout=self.timeout):
            raise OperationalError(f"database is locked: no turn to append within {self.timeout:g} s (this process)")
        try:
            self._acquire_file()
        except BaseException:
            self._threads.release()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def _acquire_file(self) -> None:
        if self._stray is not None:
            self._stray.join(self.timeout)
            if self._stray.is_alive():
                raise OperationalError(
                    f"database is locked: another process held the append lock for {self.timeout:g} s"
                )
            self._stray = None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        # Taken: wait in the kernel, on a helper thread so that the wait can be given up. A helper that gets the
        # lock after its caller gave up lets it go at once.
        got = threading.Event()
        gave_up = False

        def wait() -> None:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            with self._handover:
                if gave_up:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                else:
                    got.set()

        helper = threading.Thread(target=wait, name="quipu-append-lock", daemon=True)
        helper.start()
        if got.wait(self.timeout):
            return
        with self._handover:
            if got.is_set():  # got it between the timeout and now
                return
            gave_up = True
        self._stray = helper
        raise OperationalError(f"database is locked: another process held the append lock for {self.timeout:g} s")
