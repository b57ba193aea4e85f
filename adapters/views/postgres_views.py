"""Projection tables in the ledger's PostgreSQL schema."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg.sql import SQL, Identifier

from adapters.store.pg_url import PgTarget
from adapters.store.postgres_store import schema_lock
from adapters.views.migrate import pending
from projections.views import Insert, Projection, ProjectionMoved, Put, Table, Write


class PostgresViewStore:
    """:class:`projections.views.ViewStore` on PostgreSQL; COPY for appends."""

    def __init__(self, target: PgTarget) -> None:
        self.target = target
        with schema_lock(target) as conn:
            conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(target.schema)))
        self.conn = psycopg.connect(target.conninfo, options=f"-c search_path={target.schema}")
        self._column_types: dict[str, list[str]] = {}

    def close(self) -> None:
        self.conn.close()

    def upgrade(self) -> list[str]:
        """Apply pending migrations (all in one transaction); returns their names."""
        with schema_lock(self.target), self.conn.transaction():
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS quipu_schema_migrations (version integer PRIMARY KEY, "
                "name text NOT NULL, sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            # One upgrader at a time per schema.
            self.conn.execute("LOCK TABLE quipu_schema_migrations IN EXCLUSIVE MODE")
            applied: dict[int, str] = dict(
                self.conn.execute("SELECT version, sha256 FROM quipu_schema_migrations").fetchall()
            )
            done = []
            for m in pending(applied, "postgresql"):
                self.conn.execute(m.sql.encode())
                self.conn.execute(
                    "INSERT INTO quipu_schema_migrations (version, name, sha256) VALUES (%s,%s,%s)",
                    (m.version, m.name, m.sha256),
                )
                done.append(f"{m.version:04d}_{m.name}")
        return done

    def _types(self, cur: psycopg.Cursor[Any], table: Table) -> list[str]:
        """Each column's type name (``int8``, ``text`` …), read once per table."""
        known = self._column_types.get(table.name)
        if known is None:
            cur.execute(
                "SELECT column_name, udt_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = %s",
                (table.name,),
            )
            found = dict(cur.fetchall())
            known = self._column_types[table.name] = [found[c] for c in table.columns]
        return known

    def positions(self, names: Sequence[str]) -> dict[str, int]:
        rows: dict[str, int] = dict(self.conn.execute("SELECT name, position FROM projection_positions").fetchall())
        self.conn.commit()
        return {n: int(rows.get(n, 0)) for n in names}

    def commit(self, writes: Sequence[Write], moves: dict[str, tuple[int, int]]) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur:
            # Compare-and-set the positions first: the row lock serialises concurrent runners,
            # and the loser sees the winner's position and applies nothing.
            for name, (expected, new) in moves.items():
                cur.execute("INSERT INTO projection_positions VALUES (%s, 0) ON CONFLICT (name) DO NOTHING", (name,))
                cur.execute(
                    "UPDATE projection_positions SET position = %s WHERE name = %s AND position = %s",
                    (new, name, expected),
                )
                if cur.rowcount != 1:
                    raise ProjectionMoved(f"projection {name} is no longer at position {expected}")
            for w in writes:
                if not w.rows:
                    continue
                if isinstance(w, Put):
                    # Whole rows over column arrays, like increments: each key appears once per write.
                    others = [c for c in w.table.columns if c not in w.table.key]
                    columns = [list(column) for column in zip(*w.rows, strict=True)]
                    # The table's own column types: a batch's values may all be null in a column.
                    put_types = [SQL("{}[]").format(Identifier(t)) for t in self._types(cur, w.table)]
                    put_sql = SQL(
                        "INSERT INTO {} ({}) SELECT * FROM unnest({}) ON CONFLICT ({}) DO UPDATE SET {}"
                    ).format(
                        Identifier(w.table.name),
                        SQL(",").join(map(Identifier, w.table.columns)),
                        SQL(",").join(SQL("%s::{}").format(t) for t in put_types),
                        SQL(",").join(map(Identifier, w.table.key)),
                        SQL(",").join(SQL("{0} = excluded.{0}").format(Identifier(c)) for c in others),
                    )
                    cur.execute(put_sql, columns)
                elif isinstance(w, Insert):
                    copy_sql = SQL("COPY {} ({}) FROM STDIN").format(
                        Identifier(w.table.name), SQL(",").join(map(Identifier, w.table.columns))
                    )
                    with cur.copy(copy_sql) as copy:
                        for row in w.rows:
                            copy.write_row(row)
                else:
                    # One statement over column arrays, not one upsert per row: the rows of an
                    # increment are already aggregated per key, so each key appears once.
                    cols = (*w.table.key, *w.fixed, *w.sums)
                    types = [SQL("bigint[]") if isinstance(v, int) else SQL("text[]") for v in w.rows[0]]
                    sets = SQL(",").join(
                        SQL("{0} = {1}.{0} + excluded.{0}").format(Identifier(s), Identifier(w.table.name))
                        for s in w.sums
                    )
                    sql = SQL("INSERT INTO {} ({}) SELECT * FROM unnest({}) ON CONFLICT ({}) DO UPDATE SET {}").format(
                        Identifier(w.table.name),
                        SQL(",").join(map(Identifier, cols)),
                        SQL(",").join(SQL("%s::{}").format(t) for t in types),
                        SQL(",").join(map(Identifier, w.table.key)),
                        sets,
                    )
                    cur.execute(sql, [list(column) for column in zip(*w.rows, strict=True)])

    def reset(self, projections: Sequence[Projection]) -> None:
        with self.conn.transaction():
            for p in projections:
                for t in p.tables:
                    self.conn.execute(SQL("TRUNCATE {}").format(Identifier(t.name)))
                self.conn.execute("DELETE FROM projection_positions WHERE name = %s", (p.name,))

    def scan(self, table: Table) -> Iterator[tuple[Any, ...]]:
        sql = SQL("SELECT {} FROM {} ORDER BY {}").format(
            SQL(",").join(map(Identifier, table.columns)),
            Identifier(table.name),
            SQL(",").join(map(Identifier, table.key)),
        )
        with self.conn.transaction(), self.conn.cursor(name="quipu_scan") as cur:
            cur.itersize = 5000
            cur.execute(sql)
            yield from cur

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        # Its own connection and server-side cursor: several streams are read side by side (a
        # merge join), which one connection's nested transactions could not close out of order.
        with (
            psycopg.connect(self.target.conninfo, options=f"-c search_path={self.target.schema}") as conn,
            conn.transaction(),
            conn.cursor(name="quipu_stream") as cur,
        ):
            cur.itersize = 5000
            cur.execute(sql.replace("?", "%s").encode(), tuple(params))
            yield from cur

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.conn.transaction():
            return list(self.conn.execute(sql.replace("?", "%s").encode(), tuple(params)).fetchall())

    def lookup(self, table: Table, keys: Sequence[tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        found: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        unique = list(dict.fromkeys(keys))
        if not unique:
            return found
        key_at = [table.columns.index(k) for k in table.key]
        cols = SQL(",").join(map(Identifier, table.columns))
        with self.conn.transaction():
            if len(table.key) == 1:
                # One array parameter: one plan however many keys (a VALUES list is planned per size).
                kind = SQL("bigint[]") if isinstance(unique[0][0], int) else SQL("text[]")
                sql = SQL("SELECT {} FROM {} WHERE {} = ANY(%s::{})").format(
                    cols, Identifier(table.name), Identifier(table.key[0]), kind
                )
                rows = self.conn.execute(sql, [[k[0] for k in unique]]).fetchall()
            else:
                row_marks = SQL("({})").format(SQL(",").join(SQL("%s") for _ in table.key))
                sql = SQL("SELECT {} FROM {} WHERE ({}) IN ({})").format(
                    cols, Identifier(table.name), SQL(",").join(map(Identifier, table.key)),
                    SQL(",").join(row_marks for _ in unique),
                )  # fmt: skip
                rows = self.conn.execute(sql, [v for k in unique for v in k]).fetchall()
        for row in rows:
            found[tuple(row[j] for j in key_at)] = tuple(row)
        return found

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """One write statement in its own transaction (administrative tables, not projections)."""
        with self.conn.transaction():
            self.conn.execute(sql.replace("?", "%s").encode(), tuple(params))
