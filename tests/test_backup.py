"""Backups and restores through the databases' own tools; a restored ledger verifies and rebuilds equal."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

from adapters.bootstrap import open_ledger
from tests.conftest import drop_schema, pg_url_for_new_schema
from tests.factories import authorized, captured, fee


def quipu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "adapters.cli", *args], capture_output=True, text=True,
                          timeout=300, check=False, cwd=tempfile.gettempdir(), env={**os.environ})  # fmt: skip


def _fill(url: str) -> dict[str, str]:
    with open_ledger(url) as ledger:
        ledger.service.post([e for i in range(30) for e in (authorized(f"p{i}", "9.00"), captured(f"p{i}", "9.00"),
                                                             fee(f"f{i}", "1.00"))])  # fmt: skip
        ledger.runner.run()
        return ledger.runner.checksums()


def _restore_and_compare(source: str, dest: str, tmp_path: Path) -> None:
    live = _fill(source)
    backup_file = tmp_path / "ledger.backup"
    made = quipu("backup", str(backup_file), "--database", source)
    assert made.returncode == 0, made.stderr
    assert quipu("backup", str(backup_file), "--database", source).returncode == 2  # never overwrites
    restored = quipu("restore", str(backup_file), "--database", dest)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "chain verified: 90 events; views equal a rebuild" in restored.stdout
    with open_ledger(dest) as ledger:
        assert ledger.runner.checksums() == live
    again = quipu("restore", str(backup_file), "--database", dest)
    assert again.returncode == 2 and "--force" in again.stderr


def test_sqlite_backup_and_restore(tmp_path: Path) -> None:
    _restore_and_compare(f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/restored/b.db", tmp_path)


def test_postgresql_backup_and_restore(tmp_path: Path) -> None:
    url, schema = pg_url_for_new_schema()
    try:
        # Restore into the same schema name on a fresh server state: drop it, then restore with --force.
        live = _fill(url)
        backup_file = tmp_path / "pg.backup"
        assert quipu("backup", str(backup_file), "--database", url).returncode == 0
        with open_ledger(url) as ledger:
            ledger.service.post([fee("after-backup", "1.00")])  # a change the restore must undo
        restored = quipu("restore", str(backup_file), "--database", url, "--force")
        assert restored.returncode == 0, restored.stdout + restored.stderr
        with open_ledger(url) as ledger:
            assert ledger.store.head() == 90
            assert ledger.runner.checksums() == live
    finally:
        drop_schema(schema)


def test_a_damaged_backup_is_refused_on_restore(tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path}/a.db"
    _fill(source)
    backup_file = tmp_path / "b.backup"
    assert quipu("backup", str(backup_file), "--database", source).returncode == 0
    import sqlite3

    conn = sqlite3.connect(backup_file)
    row = conn.execute("SELECT rowid, state FROM quipu_events LIMIT 1 OFFSET 10").fetchone()
    body = orjson.loads(row[1])
    body["source"] = "tampered"
    conn.execute("UPDATE quipu_events SET state = ? WHERE rowid = ?", (orjson.dumps(body), row[0]))
    conn.commit()
    conn.close()
    run = quipu("restore", str(backup_file), "--database", f"sqlite:///{tmp_path}/c.db")
    assert run.returncode == 1 and "restored log does not verify" in run.stderr
