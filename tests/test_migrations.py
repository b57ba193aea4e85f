"""Migrations: applied once, in order, never edited; `quipu db upgrade` on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.bootstrap import open_ledger
from adapters.views import migrate
from adapters.views.migrate import Migration, MigrationError, migrations, pending


def test_both_dialects_have_the_same_numbered_migrations() -> None:
    sqlite = [(m.version, m.name) for m in migrations("sqlite")]
    postgres = [(m.version, m.name) for m in migrations("postgresql")]
    assert sqlite == postgres
    assert [v for v, _ in sqlite] == list(range(1, len(sqlite) + 1))


def test_an_edited_migration_stops_the_upgrade() -> None:
    first = migrations("sqlite")[0]
    with pytest.raises(MigrationError, match="was edited after it was applied"):
        pending({first.version: "0" * 64}, "sqlite")
    assert pending({first.version: first.sha256}, "sqlite") == migrations("sqlite")[1:]


def test_a_gap_in_the_numbering_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sqlite").mkdir()
    (tmp_path / "sqlite" / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "sqlite" / "0003_c.sql").write_text("SELECT 1;")
    monkeypatch.setattr(migrate, "ROOT", tmp_path)
    with pytest.raises(MigrationError, match="without gaps"):
        migrations("sqlite")


def test_upgrade_applies_once_and_then_has_nothing_to_do(ledger_url: str) -> None:
    with open_ledger(ledger_url, migrate=False) as ledger:
        applied = ledger.views.upgrade()
        assert applied == [f"{m.version:04d}_{m.name}" for m in migrations("sqlite")]
        assert ledger.views.upgrade() == []
        assert ledger.views.query("SELECT COUNT(*) FROM quipu_schema_migrations") == [(len(applied),)]


def test_a_failing_migration_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sqlite").mkdir()
    (tmp_path / "sqlite" / "0001_ok.sql").write_text("CREATE TABLE a (x INTEGER);")
    (tmp_path / "sqlite" / "0002_bad.sql").write_text("CREATE TABLE b (x INTEGER); SELECT * FROM nowhere;")
    monkeypatch.setattr(migrate, "ROOT", tmp_path)
    with open_ledger(f"sqlite:///{tmp_path}/l.db", migrate=False) as ledger:
        with pytest.raises(Exception, match="nowhere"):
            ledger.views.upgrade()
        tables = {r[0] for r in ledger.views.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "a" in tables and "b" not in tables
        assert ledger.views.query("SELECT version FROM quipu_schema_migrations") == [(1,)]


def test_migration_sha_is_over_its_text() -> None:
    assert Migration(1, "x", "A").sha256 != Migration(1, "x", "B").sha256


def test_the_embedded_store_commits_with_full_durability(tmp_path: Path) -> None:
    with open_ledger(f"sqlite:///{tmp_path}/l.db") as ledger:
        assert ledger.dialect == "sqlite"
        with ledger.store.datastore.transaction(commit=False) as c:  # type: ignore[union-attr]
            c.execute("PRAGMA synchronous")
            assert c.fetchone()[0] == 2  # FULL: an acknowledged event survives a power cut
            c.execute("PRAGMA journal_mode")
            assert c.fetchone()[0] == "wal"
