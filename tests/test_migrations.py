"""Migrations: applied once, in order, never edited; `quipu db upgrade` on both databases."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from adapters import config_files, settlement
from adapters.bootstrap import open_ledger
from adapters.store.sqlite_store import WAL_AUTOCHECKPOINT_PAGES, SQLiteEventStore
from adapters.views import migrate
from adapters.views.migrate import Dialect, Migration, MigrationError, migrations, pending
from domain.settlement.run import plan
from tests.factories import authorized, captured, placed


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
        assert isinstance(ledger.store, SQLiteEventStore)
        with ledger.store.datastore.transaction(commit=False) as c:
            c.execute("PRAGMA synchronous")
            assert c.fetchone()[0] == 2  # FULL: an acknowledged event survives a power cut
            c.execute("PRAGMA journal_mode")
            assert c.fetchone()[0] == "wal"
            c.execute("PRAGMA wal_autocheckpoint")
            assert c.fetchone()[0] == WAL_AUTOCHECKPOINT_PAGES
        # The view store's connection commits into the same file: it must not checkpoint at SQLite's default.
        assert ledger.views.query("PRAGMA synchronous") == [(2,)]
        assert ledger.views.query("PRAGMA wal_autocheckpoint") == [(WAL_AUTOCHECKPOINT_PAGES,)]


def test_a_new_sqlite_chain_has_no_second_stream_version_index(tmp_path: Path) -> None:
    """ADR 0038: the events table's key is the one (stream, version) index; the chain is keyed by position and id."""
    with open_ledger(f"sqlite:///{tmp_path}/l.db") as ledger:
        indexed = ledger.views.query(
            "SELECT group_concat(ii.name) FROM pragma_index_list('quipu_event_chain') il, "
            "pragma_index_info(il.name) ii GROUP BY il.name ORDER BY 1"
        )
    assert indexed == [("event_id",)]


def test_upgrading_past_0014_rebuilds_holds_two_sellers_shared_an_id(
    ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store made before 0014 kept one row for two sellers' reserves held the same day;
    upgrading re-keys the table and sets the settlement projection back so both come back."""
    dialect: Dialect = "sqlite" if ledger_url.startswith("sqlite") else "postgresql"
    old = tmp_path / "old" / dialect
    old.mkdir(parents=True)
    for m in migrations(dialect):
        if m.version < 14:
            (old / f"{m.version:04d}_{m.name}.sql").write_text(m.sql)
    day = dt.date(2026, 10, 1)
    with monkeypatch.context() as patch:
        patch.setattr(migrate, "ROOT", old.parent)
        with open_ledger(ledger_url) as ledger:
            for s in ("MX-S7-003", "S-MX-RISK"):
                sale = [placed(f"o-p-{s}", "MX", "100.00", "MXN", s), authorized(f"p-{s}", "100.00", "MXN", s),
                        captured(f"p-{s}", "100.00", "MXN", s)]  # fmt: skip
                ledger.service.post(sale)
            ledger.runner.run()
            events = plan(day, settlement.positions(ledger, day), [], config_files.settlement_methods())
            holds = [e["payload"] for e in events if e["type"] == "funds.held"]
            assert [h["seller_id"] for h in holds] == ["MX-S7-003", "S-MX-RISK"]
            assert holds[0]["hold_id"] == holds[1]["hold_id"]
            ledger.service.post(events)
            # What the projection kept before 0014: the second seller's row over the first's.
            h = holds[1]
            row = [h["hold_id"], h["seller_id"], "MXN", 1000, "reserve", h["release_on"], day.isoformat(), ""]
            ledger.views.execute("INSERT INTO settlement_holds VALUES (?,?,?,?,?,?,?,?)", row)
            ledger.views.execute("UPDATE projection_positions SET position = ? WHERE name = 'settlement'",
                                 [ledger.store.head()])  # fmt: skip
    with open_ledger(ledger_url, migrate=False) as ledger:
        assert ledger.views.upgrade() == ["0014_holds_per_seller"]
        assert ledger.views.positions(["settlement"]) == {"settlement": 0}
        ledger.runner.run()
        rows = ledger.views.query("SELECT seller_id, hold_id, amount_minor FROM settlement_holds ORDER BY seller_id")
        assert [(s, a) for s, _, a in rows] == [("MX-S7-003", 1000), ("S-MX-RISK", 1000)]
        assert rows[0][1] == rows[1][1]
        released = [o.party for o in settlement.run(ledger, day + dt.timedelta(days=30)) if o.kind == "hold.released"]
        assert released == ["MX-S7-003", "S-MX-RISK"]


def test_releasing_a_hold_id_two_sellers_share_needs_the_seller(tmp_path: Path) -> None:
    day = dt.date(2026, 10, 1)
    at = dt.datetime(2026, 10, 2, 12, tzinfo=dt.UTC)
    with open_ledger(f"sqlite:///{tmp_path}/l.db") as ledger:
        for s in ("MX-S7-003", "S-MX-RISK"):
            ledger.service.post([placed(f"o-p-{s}", "MX", "100.00", "MXN", s), authorized(f"p-{s}", "100.00", "MXN", s),
                                 captured(f"p-{s}", "100.00", "MXN", s)])  # fmt: skip
        settlement.run(ledger, day)
        [(hid,)] = ledger.views.query("SELECT DISTINCT hold_id FROM settlement_holds")
        with pytest.raises(settlement.SettlementError, match=r"several sellers \(MX-S7-003, S-MX-RISK\).*--seller"):
            settlement.release_hold(ledger, hid, "ana", at)
        with pytest.raises(settlement.SettlementError, match=r"no hold .* on seller S9"):
            settlement.release_hold(ledger, hid, "ana", at, seller="S9")
        assert settlement.release_hold(ledger, hid, "ana", at, seller="S-MX-RISK").outcome.value == "appended"
        open_ = ledger.views.query("SELECT seller_id FROM settlement_holds WHERE released_on = ''")
        assert open_ == [("MX-S7-003",)]
