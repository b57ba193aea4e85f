"""The stores' append itself, below the service: chain links, record times and all-or-nothing batches.

On PostgreSQL the links are computed by the database's append function (ADR 0035); these tests hold both
stores to the Python definition in :mod:`ledger.chain`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from adapters.bootstrap import Ledger, open_ledger
from adapters.store.pg_url import parse_pg_url
from adapters.store.postgres_store import EVENTS
from benchmarks.common import demo_lines
from domain.catalog import canonical_bytes, parse_event
from domain.ports import NewRecord, WriteConflict
from domain.service import LedgerService
from ledger.chain import GENESIS, body_hash, extend
from tests.conftest import PG_URL, drop_schema, pg_url_for_new_schema
from tests.factories import authorized


def _record(event: dict[str, Any], stream: uuid.UUID | None = None, version: int = 1) -> NewRecord:
    posted = parse_event(event)
    body = canonical_bytes(posted)
    return NewRecord(stream or uuid.uuid4(), version, posted.type, body, posted.event_id, body_hash(body), posted)


def test_stored_links_are_the_chain_extended_batch_by_batch(ledger: Ledger) -> None:
    batches = [[_record(authorized(f"p{b}-{i}", "10.00")) for i in range(n)] for b, n in enumerate([1, 3, 2])]
    for batch in batches:
        before = ledger.store.head()
        assert ledger.store.append(batch) == list(range(before + 1, before + 1 + len(batch)))
    stored = ledger.store.read(0, 100)
    assert [r.event_id for r in stored] == [r.event_id for batch in batches for r in batch]
    assert [r.body for r in stored] == [r.body for batch in batches for r in batch]
    head, previous, recorded = 0, GENESIS, 0
    for batch in batches:
        mine, stored = stored[: len(batch)], stored[len(batch) :]
        assert len({r.recorded_at_us for r in mine}) == 1  # one record time per batch
        links = extend(head, previous, recorded, [(r.event_id, r.body_sha256) for r in batch], mine[0].recorded_at_us)
        assert [(r.position, r.recorded_at_us, r.body_sha256, r.chain_sha256) for r in mine] == [
            (ln.position, ln.recorded_at_us, ln.body_sha256, ln.chain_sha256) for ln in links
        ]
        head, previous, recorded = links[-1].position, links[-1].chain_sha256, links[-1].recorded_at_us


def test_record_times_never_go_backwards_when_the_clock_does(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger.store.append([_record(authorized("p1", "10.00"))])
    first = ledger.store.read(0, 1)[0].recorded_at_us
    monkeypatch.setattr(time, "time_ns", lambda: (first - 3_600_000_000) * 1000)  # an hour earlier
    ledger.store.append([_record(authorized("p2", "10.00"))])
    assert [r.recorded_at_us for r in ledger.store.read(0, 2)] == [first, first]


def test_a_taken_event_id_fails_the_whole_batch(ledger: Ledger) -> None:
    taken = _record(authorized("p1", "10.00"))
    ledger.store.append([taken])
    again = NewRecord(uuid.uuid4(), 1, taken.topic, taken.body, taken.event_id, taken.body_sha256, taken.event)
    with pytest.raises(WriteConflict):
        ledger.store.append([_record(authorized("p2", "10.00")), again])
    assert ledger.store.head() == 1
    assert [r.event_id for r in ledger.store.read(0, 10)] == [taken.event_id]


def test_a_taken_stream_version_fails_the_whole_batch(ledger: Ledger) -> None:
    stream = uuid.uuid4()
    ledger.store.append([_record(authorized("p1", "10.00"), stream)])
    with pytest.raises(WriteConflict):
        ledger.store.append([_record(authorized("p2", "10.00")), _record(authorized("p3", "10.00"), stream)])
    assert ledger.store.head() == 1
    # The next version of the stream is free, and the chain goes on from the same head.
    assert ledger.store.append([_record(authorized("p4", "10.00"), stream, version=2)]) == [2]


def test_sqlite_reads_the_same_records_when_rowids_no_longer_match_positions(tmp_path: Path) -> None:
    """SQLite reads a page by rowid range when rowids equal positions; a renumbered table (a VACUUM may do
    that) or an edited row must still read every record by its stream and version."""
    from adapters.bootstrap import open_ledger

    with open_ledger(f"sqlite:///{tmp_path}/ledger.db") as ledger:
        ledger.store.append([_record(authorized(f"p{i}", "10.00")) for i in range(5)])
        aligned = ledger.store.read(0, 10)
        with contextlib.closing(sqlite3.connect(tmp_path / "ledger.db")) as conn:
            # Move the third event's rowid far away: the range scan now misses it.
            conn.execute("UPDATE quipu_events SET rowid = rowid + 1000 WHERE rowid = 3")
            conn.commit()
        shifted = ledger.store.read(0, 10)
        middle = ledger.store.read(1, 3)
    assert [r.position for r in aligned] == [1, 2, 3, 4, 5]
    assert [(r.position, r.event_id, r.stream_id, r.body, r.chain_sha256) for r in shifted] == [
        (r.position, r.event_id, r.stream_id, r.body, r.chain_sha256) for r in aligned
    ]
    assert [r.position for r in middle] == [2, 3, 4]


def test_postgresql_appends_and_stream_reads_never_scan_the_whole_events_table() -> None:
    """Each append and each catch-up read touches its streams by key, whatever the table's statistics say.

    (A whole-stream read, ``= ANY(ids)``, may still scan while the statistics are missing: its per-stream form
    cost 8 writers a third of their throughput, and autovacuum's first analyses fix its plan.)

    A fresh ledger's events table has no statistics until autovacuum first analyses it. The append's chain
    insert and the catch-up read used to be planned, then, as hash joins over a scan of the whole table, so
    each grew with the log (an append of 10 events: 2.8 ms at 5,000 events, 14 ms at 40,000). The table's
    own sequential-scan counter tells whether any did.
    """
    url, schema = pg_url_for_new_schema()
    try:
        with open_ledger(url) as ledger:
            ledger.service.post(demo_lines(7, 3000))  # enough rows for a plan to prefer a scan without statistics
        before = _seq_scans(schema)
        with open_ledger(url) as ledger:
            # Two shared services taking turns, as two server workers do: each finds the other's appends between
            # its own, so it catches its cached streams up before every group: the read under test. (One alone
            # would trust its cache after its second append, ADR 0043, and read nothing.)
            workers = [LedgerService(ledger.store, shared=True) for _ in range(2)]
            lines = demo_lines(8, 300)
            for n, i in enumerate(range(0, len(lines), 10)):  # a server's groups: a few events each
                workers[n % 2].post(lines[i : i + 10])
            assert ledger.store.head() > 3000
        assert _seq_scans(schema) == before  # counted when the connections closed
    finally:
        drop_schema(schema)


def _seq_scans(schema: str) -> int:
    with psycopg.connect(parse_pg_url(PG_URL).conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT seq_scan FROM pg_stat_user_tables WHERE schemaname = %s AND relname = %s", (schema, EVENTS)
        ).fetchone()
        assert row is not None
        return int(row[0])


def test_bytes_that_differ_from_their_hash_are_refused_before_anything_is_written(ledger: Ledger) -> None:
    from adapters.store.mapper import StateMismatch

    good = _record(authorized("p1", "10.00"))
    bent = _record(authorized("p2", "10.00"))._replace(body=_record(authorized("p2", "11.00")).body)
    with pytest.raises(StateMismatch, match=str(bent.event_id)):
        ledger.store.append([good, bent])
    assert ledger.store.head() == 0


def test_the_librarys_own_insert_cannot_bypass_the_chain(ledger: Ledger) -> None:
    # eventsourcing's insert_events would write events without their chain links; only append_records may write.
    with pytest.raises(NotImplementedError, match="append_records"):
        ledger.store.recorder.insert_events([])
    assert ledger.store.head() == 0
