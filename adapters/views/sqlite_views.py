"""Projection tables in the same SQLite file as the event log."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from adapters.store.sqlite_store import tune
from adapters.views.migrate import pending
from projections.views import Increment, Projection, ProjectionMoved, Put, Table, Write


class SQLiteViewStore:
    """:class:`projections.views.ViewStore` on SQLite (WAL)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = sqlite3.connect(str(path), isolation_level=None, timeout=60, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        tune(self.conn)

    def close(self) -> None:
        self.conn.close()

    def upgrade(self) -> list[str]:
        """Apply pending migrations; returns their names."""
        c = self.conn
        c.execute(
            "CREATE TABLE IF NOT EXISTS quipu_schema_migrations ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, sha256 TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        done: list[str] = []
        while True:
            # Read what is applied under the write lock, so two upgraders cannot both apply.
            c.execute("BEGIN IMMEDIATE")
            try:
                applied = dict(c.execute("SELECT version, sha256 FROM quipu_schema_migrations").fetchall())
                todo = pending(applied, "sqlite")
                if todo:
                    m = todo[0]
                    for statement in _statements(m.sql):
                        c.execute(statement)
                    c.execute(
                        "INSERT INTO quipu_schema_migrations VALUES (?,?,?,?)",
                        (m.version, m.name, m.sha256, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())),
                    )
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")
            if not todo:
                return done
            done.append(f"{todo[0].version:04d}_{todo[0].name}")

    def positions(self, names: Sequence[str]) -> dict[str, int]:
        rows = dict(self.conn.execute("SELECT name, position FROM projection_positions").fetchall())
        return {n: int(rows.get(n, 0)) for n in names}

    def commit(self, writes: Sequence[Write], moves: dict[str, tuple[int, int]]) -> None:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            # Compare-and-set the positions first: two runners never both apply a batch.
            for name, (expected, new) in moves.items():
                c.execute("INSERT INTO projection_positions VALUES (?, 0) ON CONFLICT (name) DO NOTHING", (name,))
                moved = c.execute(
                    "UPDATE projection_positions SET position = ? WHERE name = ? AND position = ?",
                    (new, name, expected),
                )
                if moved.rowcount != 1:
                    raise ProjectionMoved(f"projection {name} is no longer at position {expected}")
            for w in writes:
                if not w.rows:
                    continue
                cols = w.table.columns if not isinstance(w, Increment) else (*w.table.key, *w.fixed, *w.sums)
                marks = ",".join("?" * len(cols))
                sql = f"INSERT INTO {w.table.name} ({','.join(cols)}) VALUES ({marks})"
                if isinstance(w, Increment):
                    sets = ",".join(f"{s} = {s} + excluded.{s}" for s in w.sums)
                    sql += f" ON CONFLICT ({','.join(w.table.key)}) DO UPDATE SET {sets}"
                elif isinstance(w, Put):
                    sets = ",".join(f"{s} = excluded.{s}" for s in w.table.columns if s not in w.table.key)
                    sql += f" ON CONFLICT ({','.join(w.table.key)}) DO UPDATE SET {sets}"
                c.executemany(sql, w.rows)
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    def reset(self, projections: Sequence[Projection]) -> None:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            for p in projections:
                for t in p.tables:
                    c.execute(f"DELETE FROM {t.name}")
                c.execute("DELETE FROM projection_positions WHERE name = ?", (p.name,))
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    def scan(self, table: Table) -> Iterator[tuple[Any, ...]]:
        cur = self.conn.execute(f"SELECT {','.join(table.columns)} FROM {table.name} ORDER BY {','.join(table.key)}")
        while rows := cur.fetchmany(5000):
            yield from rows

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        cur = self.conn.execute(sql, tuple(params))
        while rows := cur.fetchmany(5000):
            yield from rows

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.conn.execute(sql, tuple(params)).fetchall())

    def lookup(self, table: Table, keys: Sequence[tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        found: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        width = len(table.key)
        unique = list(dict.fromkeys(keys))
        key_at = [table.columns.index(k) for k in table.key]
        for i in range(0, len(unique), 400):
            chunk = unique[i : i + 400]
            values = ",".join(["(" + ",".join("?" * width) + ")"] * len(chunk))
            sql = (
                f"SELECT {','.join(table.columns)} FROM {table.name} WHERE ({','.join(table.key)}) IN (VALUES {values})"
            )
            for row in self.conn.execute(sql, [v for k in chunk for v in k]):
                found[tuple(row[j] for j in key_at)] = tuple(row)
        return found

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """One write statement in its own transaction (administrative tables, not projections)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute(sql, tuple(params))
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")


def _statements(sql: str) -> list[str]:
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
