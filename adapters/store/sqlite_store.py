"""The embedded event store: one SQLite file (WAL, synchronous=FULL)."""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import (
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteDatastore,
)

from adapters.store.append import NO_LIMIT, append_via
from adapters.store.append_lock import AppendLock
from adapters.store.mapper import PydanticMapper
from domain.envelope import Envelope
from domain.ports import NewRecord, Recorded
from ledger.chain import GENESIS, extend

log = logging.getLogger("quipu.store")

#: How long a writer waits for its turn, SQLite's lock timeout included, before the append fails as "locked".
LOCK_TIMEOUT = 60

EVENTS = "quipu_events"
CHAIN = "quipu_event_chain"
_CHUNK = 500


#: Page cache per connection (negative = KiB): indexes on random keys (stream and event ids)
#: thrash SQLite's 2 MiB default once the log outgrows it.
CACHE_KIB = 131_072
#: WAL pages (4 KiB) before a commit copies them back into the file: 64 MiB instead of SQLite's 4 MiB. An index
#: page that many batches touch (random stream and event ids) is then copied back once, not once per batch or
#: two (ADR 0038).
WAL_AUTOCHECKPOINT_PAGES = 16_384


def tune(conn: sqlite3.Connection) -> None:
    """Durability, cache and checkpoint interval of one connection to a ledger file (event store and views)."""
    # FULL: a committed (acknowledged) event survives a power cut (ADR 0008).
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    # Per connection: any connection's commit checkpoints once the WAL passes its own setting.
    conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")


class TunedSQLitePool(SQLiteConnectionPool):
    """The library's pool, with each connection's durability, cache and checkpoints set explicitly."""

    def _create_connection(self) -> SQLiteConnection:
        conn = super()._create_connection()
        tune(conn._sqlite_conn)
        return conn


class ChainedSQLiteRecorder(SQLiteApplicationRecorder):
    """eventsourcing's SQLite application recorder plus a hash-chain row per event."""

    def construct_create_table_statements(self) -> list[str]:
        # No UNIQUE (stream_id, version) here: the events table's primary key already holds it, the link rows
        # are made from the same records in the same transaction, and that index's random keys made a third of
        # the pages every batch dirtied (ADR 0038). Ledgers created before keep it; it costs them only writes.
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {CHAIN} ("
            "position INTEGER PRIMARY KEY, "
            "stream_id TEXT NOT NULL, "
            "version INTEGER NOT NULL, "
            "event_id BLOB NOT NULL UNIQUE, "
            "recorded_at_us INTEGER NOT NULL, "
            "body_sha256 BLOB NOT NULL, "
            "chain_sha256 BLOB NOT NULL)",
        ]

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        raise NotImplementedError("Quipu appends with append_records: each event's chain link needs its NewRecord")

    def append_records(self, records: Sequence[NewRecord]) -> list[int]:
        """Insert ``records`` and their chain links in one transaction; their positions.

        Rows are built from the records themselves: the library's ``StoredEvent`` (a frozen dataclass, ~1 µs to
        make) would only carry the same four values one step further.
        """
        with self.datastore.transaction(commit=True) as c:
            # One executemany instead of the library's row-by-row inserts: the chain links each
            # event by its stream and version (the table's key), not by rowid, which VACUUM may
            # renumber, so no per-row lastrowid is needed.
            streams = [r.stream_id.hex for r in records]  # once for both tables (a UUID's hex is made each time)
            c.executemany(
                self.insert_events_statement,
                [(stream, r.version, r.topic, r.body) for stream, r in zip(streams, records, strict=True)],
            )
            # The inserts above took SQLite's write lock, so the head read here is the head
            # this batch extends: no other writer can commit in between.
            c.execute(f"SELECT position, chain_sha256, recorded_at_us FROM {CHAIN} ORDER BY position DESC LIMIT 1")
            row = c.fetchone()
            head: tuple[int, bytes, int] = (int(row[0]), bytes(row[1]), int(row[2])) if row else (0, GENESIS, 0)
            links = extend(head[0], head[1], head[2], [(r.event_id, r.body_sha256) for r in records],
                           time.time_ns() // 1000)  # fmt: skip
            c.executemany(
                f"INSERT INTO {CHAIN} VALUES (?,?,?,?,?,?,?)",
                [
                    (ln.position, stream, r.version, ln.event_id.bytes, ln.recorded_at_us, ln.body_sha256,
                     ln.chain_sha256)
                    for ln, stream, r in zip(links, streams, records, strict=True)
                ],
            )  # fmt: skip
            return [ln.position for ln in links]


def append_lock_path(path: Path) -> Path:
    """The lock file the writers of the ledger at ``path`` take turns on (beside SQLite's ``-wal`` and ``-shm``)."""
    return path.with_name(path.name + "-append.lock")


class SQLiteEventStore:
    """:class:`domain.ports.EventStore` on one SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.datastore = SQLiteDatastore(str(path), lock_timeout=LOCK_TIMEOUT, pool_size=4)
        self.datastore.pool.close()
        self.datastore.pool = TunedSQLitePool(db_name=str(path), lock_timeout=LOCK_TIMEOUT, pool_size=4)
        self.recorder = ChainedSQLiteRecorder(self.datastore, events_table_name=EVENTS)
        self.mapper = PydanticMapper()
        self.recorder.create_table()
        self._append_lock: AppendLock | None = None
        """Made at the first append: a ledger only read needs no lock file."""
        self._lock_unavailable = False

    def close(self) -> None:
        if self._append_lock is not None:
            self._append_lock.close()
            self._append_lock = None
        self.datastore.close()

    def known_events(self, event_ids: Sequence[UUID]) -> dict[UUID, tuple[int, bytes]]:
        out: dict[UUID, tuple[int, bytes]] = {}
        with self.datastore.transaction(commit=False) as c:
            for i in range(0, len(event_ids), _CHUNK):
                chunk = [e.bytes for e in event_ids[i : i + _CHUNK]]
                marks = ",".join("?" * len(chunk))
                c.execute(f"SELECT event_id, position, body_sha256 FROM {CHAIN} WHERE event_id IN ({marks})", chunk)
                for row in c.fetchall():
                    out[UUID(bytes=bytes(row[0]))] = (row[1], bytes(row[2]))
        return out

    def stream_events(
        self, stream_ids: Sequence[UUID], after: Sequence[int] | None = None
    ) -> dict[UUID, list[tuple[int, Envelope]]]:
        queries: list[tuple[str, list[object]]] = []
        if after is None or not any(after):  # whole streams: the plain lookup is faster than the join
            for i in range(0, len(stream_ids), _CHUNK):
                ids: list[object] = [s.hex for s in stream_ids[i : i + _CHUNK]]
                queries.append((f"SELECT originator_id, originator_version, state FROM {EVENTS} "
                                f"WHERE originator_id IN ({','.join('?' * len(ids))}) "
                                "ORDER BY originator_id, originator_version", ids))  # fmt: skip
        else:
            pairs = list(zip(stream_ids, after, strict=True))
            for i in range(0, len(pairs), _CHUNK // 2):
                chunk = pairs[i : i + _CHUNK // 2]
                values = ",".join(["(?,?)"] * len(chunk))
                queries.append((f"WITH t(id, v) AS (VALUES {values}) SELECT e.originator_id, e.originator_version, "
                                f"e.state FROM t JOIN {EVENTS} e ON e.originator_id = t.id AND e.originator_version > "
                                "t.v ORDER BY e.originator_id, e.originator_version",
                                [x for sid, v in chunk for x in (sid.hex, v)]))  # fmt: skip
        out: dict[UUID, list[tuple[int, Envelope]]] = {}
        with self.datastore.transaction(commit=False) as c:
            for sql, params in queries:
                c.execute(sql, params)
                for row in c.fetchall():
                    sid = UUID(row[0])
                    event = self.mapper.to_domain_event(StoredEvent(sid, row[1], "", bytes(row[2])))
                    out.setdefault(sid, []).append((row[1], event))
        return out

    def append(self, records: Sequence[NewRecord]) -> list[int]:
        # Writers take turns on a file lock before SQLite's own (ADR 0047): a writer waiting in SQLite's busy
        # handler sleeps in steps of up to 100 ms and starts late; one waiting on the lock starts at once.
        lock = self._lock()
        if lock is None:
            return append_via(self.recorder, records)
        with lock:
            return append_via(self.recorder, records)

    def _lock(self) -> AppendLock | None:
        """This process's append lock, or None where there can be none: the lock only orders the writers, so
        without it they wait in SQLite's busy handler as before (Windows has no flock; a lock file that cannot be
        made is warned about once)."""
        if sys.platform == "win32" or self._lock_unavailable:
            return None
        if self._append_lock is None or self._append_lock.pid != os.getpid():
            # A forked child gets its own open file: sharing its parent's, both would hold the lock at once.
            path = append_lock_path(self.path)
            try:
                self._append_lock = AppendLock(path, LOCK_TIMEOUT)
            except OSError as exc:
                self._lock_unavailable = True
                log.warning("appending without the writers' lock file %s (%s): writers wait in SQLite instead", path,
                            exc)  # fmt: skip
                return None
        return self._append_lock

    def read(self, after: int, limit: int, to_position: int | None = None) -> list[Recorded]:
        upper = to_position if to_position is not None else NO_LIMIT
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT position, event_id, stream_id, version, recorded_at_us, body_sha256, chain_sha256 "
                f"FROM {CHAIN} WHERE position > ? AND position <= ? ORDER BY position LIMIT ?",
                (after, upper, limit),
            )
            links = c.fetchall()
            if not links:
                return []
            # The store inserts a batch's events and its chain rows in the same order in one transaction, so an
            # event's rowid is its position: the page is one range scan instead of an index search per event. A
            # VACUUM may renumber the rowids and a file may be edited, so every row's stream and version are
            # checked against its link, and any mismatch reads the page by the key instead.
            c.execute(
                f"SELECT rowid, originator_id, originator_version, topic, state FROM {EVENTS} "
                "WHERE rowid >= ? AND rowid <= ? ORDER BY rowid",
                (links[0][0], links[-1][0]),
            )
            rows = c.fetchall()
            if len(rows) != len(links) or any(
                ln[0] != r[0] or ln[2] != r[1] or ln[3] != r[2] for ln, r in zip(links, rows, strict=True)
            ):
                return self._read_by_key(c, after, upper, limit)
            return [
                Recorded(ln[0], ln[1], bytes.fromhex(ln[2]), ln[3], r[3], _blob(r[4]), ln[4], ln[5], ln[6])
                for ln, r in zip(links, rows, strict=True)
            ]

    def _read_by_key(self, c: SQLiteCursor, after: int, upper: int, limit: int) -> list[Recorded]:
        c.execute(
            f"SELECT c.position, c.event_id, e.originator_id, e.originator_version, e.topic, e.state, "
            f"c.recorded_at_us, c.body_sha256, c.chain_sha256 "
            f"FROM {CHAIN} c JOIN {EVENTS} e ON e.originator_id = c.stream_id AND e.originator_version = c.version "
            f"WHERE c.position > ? AND c.position <= ? ORDER BY c.position LIMIT ?",
            (after, upper, limit),
        )
        return [
            Recorded(r[0], r[1], bytes.fromhex(r[2]), r[3], r[4], _blob(r[5]), r[6], r[7], r[8]) for r in c.fetchall()
        ]

    def head(self) -> int:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT MAX(position) FROM {CHAIN}")
            row = c.fetchone()
            return int(row[0] or 0)


def _blob(value: object) -> bytes:
    # SQLite is dynamically typed: a tampered row may hold TEXT where a BLOB was written.
    # Read it as its UTF-8 bytes so the verifier reports it instead of crashing.
    return value if isinstance(value, bytes) else str(value).encode()
