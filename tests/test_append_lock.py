"""The file lock SQLite's writers take turns on (ADR 0047): one holder at a time across processes and threads, a
bounded wait that fails like a locked database, a dead holder's lock freed, and a wait given up that never drops
a later holder's lock."""

from __future__ import annotations

import fcntl
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from eventsourcing.persistence import OperationalError

from adapters.bootstrap import open_ledger
from adapters.store import append_lock
from adapters.store.append_lock import AppendLock
from adapters.store.sqlite_store import SQLiteEventStore, append_lock_path
from tests.factories import authorized

ROOT = Path(__file__).resolve().parents[1]

#: A process that takes the lock, says so, and keeps it until its standard input closes (or it is killed).
HOLDER = """
import sys
from pathlib import Path
from adapters.store import append_lock
from adapters.store.append_lock import AppendLock
with AppendLock(Path(sys.argv[1]), 30):
    print("held", flush=True)
    sys.stdin.read()
print("released", flush=True)
"""

#: A process that tries the lock once, without waiting, and says whether it got it.
PROBE = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("free")
except BlockingIOError:
    print("taken")
"""


def _holder(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def _probe(path: Path) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_a_second_process_waits_for_the_holder_and_then_gets_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db-append.lock"
    holder = _holder(path)
    assert _probe(path) == "taken"
    lock = AppendLock(path, timeout=30)
    order: list[str] = []

    def take() -> None:
        with lock:
            order.append("waiter in")

    waiter = threading.Thread(target=take)
    waiter.start()
    time.sleep(0.2)
    assert order == []  # still waiting: the holder has it
    order.append("holder out")
    assert holder.stdin is not None
    holder.stdin.close()
    waiter.join(30)
    assert order == ["holder out", "waiter in"]
    assert holder.wait(30) == 0
    assert _probe(path) == "free"
    lock.close()


def test_a_wait_is_bounded_and_fails_like_a_locked_database(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db-append.lock"
    holder = _holder(path)
    lock = AppendLock(path, timeout=0.3)
    with pytest.raises(OperationalError, match="database is locked: another process held the append lock"), lock:
        pass
    assert holder.stdin is not None
    holder.stdin.close()
    assert holder.wait(30) == 0
    with lock:
        assert _probe(path) == "taken"
    assert _probe(path) == "free"
    lock.close()


def test_a_wait_given_up_never_drops_a_later_holders_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The helper thread that waits for the lock is held back until the test lets it go, so the order of events
    # is fixed: the caller gives up, the holder lets go, a new turn is tried, and only then does the helper wake.
    go = threading.Event()

    def flock(fd: int, operation: int) -> None:
        if operation == fcntl.LOCK_EX:  # only the helper waits without LOCK_NB
            go.wait(30)
        fcntl.flock(fd, operation)

    monkeypatch.setattr(append_lock, "fcntl", SimpleNamespace(
        flock=flock, LOCK_EX=fcntl.LOCK_EX, LOCK_NB=fcntl.LOCK_NB, LOCK_UN=fcntl.LOCK_UN))  # fmt: skip
    path = tmp_path / "ledger.db-append.lock"
    holder = _holder(path)
    lock = AppendLock(path, timeout=0.3)
    with pytest.raises(OperationalError), lock:
        pass
    assert holder.stdin is not None
    holder.stdin.close()
    assert holder.wait(30) == 0
    # The lock is free, but the helper given up on still waits on this process's lock file: had this turn taken
    # the lock, the helper would take it too (it is the same open file) and drop it. So the turn waits for the
    # helper, and here, with the helper held back, gives up.
    with pytest.raises(OperationalError), lock:
        pass
    go.set()
    with lock:
        assert _probe(path) == "taken"
        time.sleep(0.1)
        assert _probe(path) == "taken"
    assert _probe(path) == "free"
    lock.close()


def test_a_killed_holder_frees_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db-append.lock"
    holder = _holder(path)
    holder.send_signal(signal.SIGKILL)
    holder.wait(30)
    lock = AppendLock(path, timeout=5)
    with lock:
        assert _probe(path) == "taken"
    lock.close()


def test_threads_of_one_process_take_turns(tmp_path: Path) -> None:
    lock = AppendLock(tmp_path / "ledger.db-append.lock", timeout=30)
    inside: list[int] = []
    overlaps: list[int] = []

    def work(n: int) -> None:
        for _ in range(50):
            with lock:
                inside.append(n)
                if len(inside) > 1:
                    overlaps.append(n)
                time.sleep(0.0005)
                inside.remove(n)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert overlaps == []
    lock.close()


def test_the_store_takes_the_lock_only_to_append(tmp_path: Path) -> None:
    db = tmp_path / "quipu.db"
    url = f"sqlite:///{db}"
    with open_ledger(url) as ledger:
        ledger.store.read(0, 10)
        assert not append_lock_path(db).exists()  # reading needs no lock file
        assert ledger.service.post([authorized("p1", "10.00")])[0].outcome.value == "appended"
        assert append_lock_path(db).exists()
        assert _probe(append_lock_path(db)) == "free"  # held only while appending


def test_a_forked_child_opens_its_own_lock_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Quipu starts its processes with spawn, but a program that forks after an append must not share the open
    # file (and so the lock) with its parent. A new process id is what the store checks.
    import os

    with open_ledger(f"sqlite:///{tmp_path / 'quipu.db'}") as ledger:
        store = ledger.store
        assert isinstance(store, SQLiteEventStore)
        ledger.service.post([authorized("p1", "10.00")])
        first = store._append_lock
        assert first is not None and first.pid == os.getpid()
        monkeypatch.setattr(os, "getpid", lambda: first.pid + 1)
        ledger.service.post([authorized("p2", "10.00")])
        assert store._append_lock is not first
        assert store._append_lock is not None and store._append_lock.pid == first.pid + 1
        assert ledger.store.head() == 2


def test_a_lock_file_that_cannot_be_made_leaves_appending_to_sqlite(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The lock only orders the writers: when its file cannot be opened (here a directory stands in its place),
    # the append goes on without it, as before the lock existed, and says so once.
    db = tmp_path / "quipu.db"
    append_lock_path(db).mkdir()
    with open_ledger(f"sqlite:///{db}") as ledger, caplog.at_level("WARNING", logger="quipu.store"):
        results = ledger.service.post([authorized("p1", "10.00")]) + ledger.service.post([authorized("p2", "10.00")])
        assert [r.outcome.value for r in results] == ["appended", "appended"]
        assert ledger.store.head() == 2
    warnings = [r.getMessage() for r in caplog.records if r.name == "quipu.store"]
    assert len(warnings) == 1 and "without the writers' lock file" in warnings[0], warnings
