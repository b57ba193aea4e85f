"""The production event store: PostgreSQL through eventsourcing's recorder and psycopg 3."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from adapters.store.append import NO_LIMIT, append_via
from adapters.store.mapper import PydanticMapper
from adapters.store.pg_url import PgTarget
from domain.envelope import Envelope
from domain.ports import NewRecord, Recorded
from ledger.chain import GENESIS, extend

EVENTS = "quipu_events"
CHAIN = "quipu_event_chain"


class ChainedPostgresRecorder(PostgresApplicationRecorder):
    """eventsourcing's PostgreSQL application recorder plus a hash-chain row per event.

    The library locks the events table (EXCLUSIVE) before inserting, which serialises
    writers; the chain rows are computed under that lock, so each batch extends exactly
    the head the previous commit left (ADR 0003).
    """

    def __init__(self, datastore: PostgresDatastore) -> None:
        super().__init__(datastore, events_table_name=EVENTS)
        schema = Identifier(datastore.schema)
        chain = Identifier(CHAIN)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{chain} ("
                "position bigint PRIMARY KEY, "
                "notification_id bigint NOT NULL UNIQUE, "
                "event_id uuid NOT NULL UNIQUE, "
                "recorded_at_us bigint NOT NULL, "
                "body_sha256 bytea NOT NULL, "
                "chain_sha256 bytea NOT NULL)"
            ).format(schema=schema, chain=chain)
        )
        # Columns as parallel arrays sent in binary: the library's array of composite values
        # is dumped as escaped text, which cost ~100 µs per event with 300-byte bodies.
        self.insert_arrays_statement = SQL(
            "INSERT INTO {schema}.{events} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]) RETURNING notification_id"
        ).format(schema=schema, events=Identifier(EVENTS))
        self.head_statement = SQL(
            "SELECT position, chain_sha256, recorded_at_us FROM {schema}.{chain} ORDER BY position DESC LIMIT 1"
        ).format(schema=schema, chain=chain)
        self.insert_chain_statement = SQL(
            "INSERT INTO {schema}.{chain} "
            "(position, notification_id, event_id, recorded_at_us, body_sha256, chain_sha256) "
            "SELECT x.position, e.notification_id, x.event_id, x.recorded_at_us, x.body_sha256, x.chain_sha256 "
            "FROM unnest(%b::bigint[], %b::uuid[], %b::bigint[], %b::uuid[], %b::bigint[], %b::bytea[], "
            "%b::bytea[]) AS x(position, originator_id, originator_version, event_id, recorded_at_us, "
            "body_sha256, chain_sha256) "
            "JOIN {schema}.{events} e ON e.originator_id = x.originator_id "
            "AND e.originator_version = x.originator_version"
        ).format(schema=schema, chain=chain, events=Identifier(EVENTS))

    def _insert_stored_events(
        self, curs: psycopg.Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(
            self.insert_arrays_statement,
            (
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
            ),
            prepare=True,
        )

    def _fetch_ids_after_insert_events(
        self, curs: psycopg.Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        records: Sequence[NewRecord] = kwargs["records"]
        curs.execute(self.head_statement, prepare=True)
        row = curs.fetchone()
        head: tuple[int, bytes, int] = (
            (int(row["position"]), bytes(row["chain_sha256"]), int(row["recorded_at_us"])) if row else (0, GENESIS, 0)
        )
        new = [(r.event_id, r.body_sha256) for r in records]
        links = extend(head[0], head[1], head[2], new, time.time_ns() // 1000)
        curs.execute(
            self.insert_chain_statement,
            (
                [ln.position for ln in links],
                [r.stream_id for r in records],
                [r.version for r in records],
                [ln.event_id for ln in links],
                [ln.recorded_at_us for ln in links],
                [ln.body_sha256 for ln in links],
                [ln.chain_sha256 for ln in links],
            ),
            prepare=True,
        )
        with curs.connection.pipeline() as pipeline:
            pipeline.sync()  # surface a unique violation here, inside the library's handler
        if curs.rowcount != len(records):  # pragma: no cover - a broken invariant, not input
            raise RuntimeError(f"chained {curs.rowcount} of {len(records)} events")
        kwargs["positions"].extend(ln.position for ln in links)
        return ids


@contextmanager
def schema_lock(target: PgTarget) -> Iterator[psycopg.Connection[Any]]:
    """A session-level advisory lock per schema, held while a ledger's DDL runs."""
    key = int.from_bytes(hashlib.sha256(f"quipu-ddl:{target.schema}".encode()).digest()[:8], "big", signed=True)
    with psycopg.connect(target.conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        try:
            yield conn
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


class PostgresEventStore:
    """:class:`domain.ports.EventStore` on PostgreSQL (one schema per ledger)."""

    def __init__(self, target: PgTarget, pool_size: int = 2) -> None:
        self.target = target
        # Several processes may open the same new ledger at once; DDL such as CREATE OR
        # REPLACE FUNCTION then fails with "tuple concurrently updated". One at a time.
        with schema_lock(target) as conn:
            conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(target.schema)))
            self._open(target, pool_size)

    def _open(self, target: PgTarget, pool_size: int) -> None:
        self.datastore = PostgresDatastore(
            dbname=target.dbname,
            host=target.host,
            port=target.port,
            user=target.user,
            password=target.password,
            schema=target.schema,
            pool_size=pool_size,
            max_overflow=4,
            lock_timeout=60,
        )
        self.recorder = ChainedPostgresRecorder(self.datastore)
        self.mapper = PydanticMapper()
        self.recorder.create_table()
        s, c, e = Identifier(target.schema), Identifier(CHAIN), Identifier(EVENTS)
        self._known = SQL("SELECT event_id, position, body_sha256 FROM {s}.{c} WHERE event_id = ANY(%s)").format(
            s=s, c=c
        )
        self._streams = SQL(
            "SELECT originator_id, originator_version, state FROM {s}.{e} WHERE originator_id = ANY(%s) "
            "ORDER BY originator_id, originator_version"
        ).format(s=s, e=e)
        self._streams_after = SQL(
            "SELECT e.originator_id, e.originator_version, e.state FROM unnest(%s::uuid[], %s::bigint[]) AS t(id, v) "
            "JOIN {s}.{e} e ON e.originator_id = t.id AND e.originator_version > t.v "
            "ORDER BY e.originator_id, e.originator_version"
        ).format(s=s, e=e)
        self._read = SQL(
            "SELECT c.position, uuid_send(c.event_id), uuid_send(e.originator_id), e.originator_version, "
            "e.topic, e.state, c.recorded_at_us, c.body_sha256, c.chain_sha256 "
            "FROM {s}.{c} c JOIN {s}.{e} e ON e.notification_id = c.notification_id "
            "WHERE c.position > %s AND c.position <= %s ORDER BY c.position LIMIT %s"
        ).format(s=s, c=c, e=e)
        self._head = SQL("SELECT COALESCE(MAX(position), 0) AS head FROM {s}.{c}").format(s=s, c=c)

    def close(self) -> None:
        self.datastore.close()

    def known_events(self, event_ids: Sequence[UUID]) -> dict[UUID, tuple[int, bytes]]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._known, (list(event_ids),), prepare=True)
            return {r["event_id"]: (r["position"], bytes(r["body_sha256"])) for r in curs.fetchall()}

    def stream_events(
        self, stream_ids: Sequence[UUID], after: Sequence[int] | None = None
    ) -> dict[UUID, list[tuple[int, Envelope]]]:
        out: dict[UUID, list[tuple[int, Envelope]]] = {}
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            if after is None or not any(after):  # whole streams: the plain lookup plans better than the join
                curs.execute(self._streams, (list(stream_ids),), prepare=True)
            else:
                curs.execute(self._streams_after, (list(stream_ids), list(after)), prepare=True)
            for r in curs.fetchall():
                stored = StoredEvent(r["originator_id"], r["originator_version"], "", bytes(r["state"]))
                out.setdefault(r["originator_id"], []).append(
                    (r["originator_version"], self.mapper.to_domain_event(stored))
                )
        return out

    def append(self, records: Sequence[NewRecord]) -> list[int]:
        return append_via(self.recorder, self.mapper, records)

    def read(self, after: int, limit: int, to_position: int | None = None) -> list[Recorded]:
        upper = to_position if to_position is not None else NO_LIMIT
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=psycopg.rows.tuple_row) as curs:
            curs.execute(self._read, (after, upper, limit), prepare=True)
            return [Recorded(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]) for r in curs.fetchall()]

    def head(self) -> int:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._head)
            row = curs.fetchone()
            return int(row["head"]) if row else 0
