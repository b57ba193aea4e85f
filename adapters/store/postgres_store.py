"""The production event store: PostgreSQL through eventsourcing's recorder and psycopg 3."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier

from adapters.store.append import NO_LIMIT, append_via
from adapters.store.mapper import PydanticMapper
from adapters.store.pg_url import PgTarget
from domain.envelope import Envelope
from domain.ports import NewRecord, Recorded
from ledger.chain import GENESIS

EVENTS = "quipu_events"
CHAIN = "quipu_event_chain"
#: The server-side append (ADR 0035).
APPEND_FUNCTION = "quipu_append_events"


class ChainedPostgresRecorder(PostgresApplicationRecorder):
    """eventsourcing's PostgreSQL application recorder plus a hash-chain row per event.

    A batch is appended by one call of a PL/pgSQL function that takes the library's EXCLUSIVE
    lock on the events table (which serialises writers), inserts the events, and computes and
    inserts their chain links under that lock, so each batch extends exactly the head the
    previous commit left (ADRs 0003 and 0035).
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
        # One function call appends a batch: lock, insert, chain and (autocommit) commit in a single round
        # trip (ADR 0035). Columns go as parallel arrays sent in binary: the library's array of composite
        # values is dumped as escaped text, which cost ~100 µs per event with 300-byte bodies.
        self.sql_create_statements.append(
            SQL(
                "CREATE OR REPLACE FUNCTION {schema}.{append}("
                "ids uuid[], versions bigint[], topics text[], states bytea[], "
                "event_ids uuid[], body_hashes bytea[], now_us bigint) "
                "RETURNS TABLE (head_position bigint, recorded_at_us bigint) LANGUAGE plpgsql AS $body$ "
                "DECLARE "
                "  head bigint; previous bytea; recorded bigint; links bytea[] := '{{}}'; chained bigint; "
                "BEGIN "
                "  SET LOCAL lock_timeout = '{lock_timeout}s'; "
                # The library's lock: writers are serialised, so the chain head read next is the head this
                # batch extends and positions follow commit order.
                "  LOCK TABLE {schema}.{events} IN EXCLUSIVE MODE; "
                "  NOTIFY {channel}; "
                "  SELECT c.position, c.chain_sha256, c.recorded_at_us INTO head, previous, recorded "
                "    FROM {schema}.{chain} c ORDER BY c.position DESC LIMIT 1; "
                "  IF NOT FOUND THEN head := 0; previous := {genesis}; recorded := 0; END IF; "
                # ledger.chain.extend, in SQL: record times never go backwards along the chain.
                "  recorded := greatest(now_us, recorded); "
                "  FOR i IN 1 .. coalesce(cardinality(event_ids), 0) LOOP "
                "    previous := sha256(previous || int8send(head + i) || uuid_send(event_ids[i]) "
                "                       || int8send(recorded) || body_hashes[i]); "
                "    links[i] := previous; "
                "  END LOOP; "
                # The chain rows take their notification ids from the rows just inserted (RETURNING), never
                # from a join with the events table: planned for unnest's default 1,000 rows, that join was a
                # hash join over a scan of the whole table, so every append grew with the log.
                "  WITH inserted AS ("
                "    INSERT INTO {schema}.{events} (originator_id, originator_version, topic, state) "
                "      SELECT * FROM unnest(ids, versions, topics, states) "
                "      RETURNING originator_id, originator_version, notification_id) "
                "  INSERT INTO {schema}.{chain} "
                "    (position, notification_id, event_id, recorded_at_us, body_sha256, chain_sha256) "
                "    SELECT head + x.n, i.notification_id, x.event_id, recorded, x.body_sha256, x.chain_sha256 "
                "    FROM unnest(ids, versions, event_ids, body_hashes, links) WITH ORDINALITY "
                "      AS x(originator_id, originator_version, event_id, body_sha256, chain_sha256, n) "
                "    JOIN inserted i ON i.originator_id = x.originator_id "
                "      AND i.originator_version = x.originator_version; "
                "  GET DIAGNOSTICS chained = ROW_COUNT; "
                "  IF chained <> coalesce(cardinality(event_ids), 0) THEN "
                "    RAISE EXCEPTION 'chained % of % events', chained, cardinality(event_ids); "
                "  END IF; "
                "  RETURN QUERY SELECT head, recorded; "
                "END $body$"
            ).format(
                schema=schema,
                append=Identifier(APPEND_FUNCTION),
                events=Identifier(EVENTS),
                chain=chain,
                channel=Identifier(self.channel_name),
                lock_timeout=SQL(str(int(datastore.lock_timeout))),
                genesis=SQL(f"decode('{GENESIS.hex()}', 'hex')"),
            )
        )
        self.append_statement = SQL("SELECT head_position, recorded_at_us FROM {schema}.{append}("
                                    "%b, %b, %b, %b, %b, %b, %b)").format(
            schema=schema, append=Identifier(APPEND_FUNCTION)
        )  # fmt: skip

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        raise NotImplementedError("Quipu appends with append_records: each event's chain link needs its NewRecord")

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def append_records(self, records: Sequence[NewRecord]) -> list[int]:
        """Append ``records`` and their chain links in one transaction of one statement; their positions.

        A taken stream version or event id raises the library's ``IntegrityError``; nothing of the batch is
        written then. The columns come from the records themselves, with no library ``StoredEvent`` in between.
        """
        params = (
            [r.stream_id for r in records],
            [r.version for r in records],
            [r.topic for r in records],
            [r.body for r in records],
            [r.event_id for r in records],
            [r.body_sha256 for r in records],
            time.time_ns() // 1000,
        )
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.append_statement, params, prepare=True)
            row = curs.fetchone()
        if row is None:  # pragma: no cover - the function always returns its row
            raise RuntimeError("the append function returned no row")
        head = int(row["head_position"])
        return list(range(head + 1, head + 1 + len(records)))


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
        # Each stream's newer events by the (stream, version) key: a LATERAL subquery that OFFSET 0 keeps from being
        # flattened into a join. The plain join was planned, until the table's statistics caught up with its growth,
        # as a hash join over a scan of the whole events table: a catch-up read grew with the log (9 ms at 32,000
        # events for 10 streams).
        self._streams_after = SQL(
            "SELECT e.originator_id, e.originator_version, e.state FROM unnest(%s::uuid[], %s::bigint[]) AS t(id, v) "
            "CROSS JOIN LATERAL (SELECT x.originator_id, x.originator_version, x.state FROM {s}.{e} x "
            "  WHERE x.originator_id = t.id AND x.originator_version > t.v OFFSET 0) e "
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
            curs.execute(self._known, (list(event_ids),), prepare=True, binary=True)
            return {r["event_id"]: (r["position"], bytes(r["body_sha256"])) for r in curs.fetchall()}

    def stream_events(
        self, stream_ids: Sequence[UUID], after: Sequence[int] | None = None
    ) -> dict[UUID, list[tuple[int, Envelope]]]:
        out: dict[UUID, list[tuple[int, Envelope]]] = {}
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            if after is None or not any(after):  # whole streams: the plain lookup plans better than the join
                curs.execute(self._streams, (list(stream_ids),), prepare=True, binary=True)
            else:
                curs.execute(self._streams_after, (list(stream_ids), list(after)), prepare=True, binary=True)
            for r in curs.fetchall():
                stored = StoredEvent(r["originator_id"], r["originator_version"], "", bytes(r["state"]))
                out.setdefault(r["originator_id"], []).append(
                    (r["originator_version"], self.mapper.to_domain_event(stored))
                )
        return out

    def append(self, records: Sequence[NewRecord]) -> list[int]:
        return append_via(self.recorder, records)

    def read(self, after: int, limit: int, to_position: int | None = None) -> list[Recorded]:
        upper = to_position if to_position is not None else NO_LIMIT
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=psycopg.rows.tuple_row) as curs:
            # Binary results: bytea arrives as its bytes, not as hex text that both ends encode and decode (the
            # read's CPU on this side fell from ~4.7 to ~2.7 µs a row).
            curs.execute(self._read, (after, upper, limit), prepare=True, binary=True)
            return [Recorded(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]) for r in curs.fetchall()]

    def head(self) -> int:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._head)
            row = curs.fetchone()
            return int(row["head"]) if row else 0
