"""Rule files as events: validated before they are recorded, each version once, and the
version in force on any day answered from the log — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from adapters import config_files, config_history
from adapters.bootstrap import open_ledger
from adapters.config_files import ConfigError


def _regions_copy(tmp_path: Path, version: str, **changes: object) -> Path:
    doc = json.loads((config_files.CONFIG_ROOT / "regions.json").read_text())
    doc["version"] = version
    doc["region_config"]["MX"].update(changes)
    path = tmp_path / f"regions-{version}.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def test_versions_are_recorded_once_and_the_one_in_force_is_found_by_date(ledger_url: str, tmp_path: Path) -> None:
    with open_ledger(ledger_url) as ledger:
        _, first = config_history.publish(ledger, "regions", dt.date(2026, 1, 1), "ana")
        _, again = config_history.publish(ledger, "regions", dt.date(2026, 1, 1), "ana")
        assert (first.outcome.value, again.outcome.value) == ("appended", "duplicate")
        later = _regions_copy(tmp_path, "2027-01-01", tax_rule="IVA_8%")
        _, second = config_history.publish(ledger, "regions", dt.date(2027, 1, 1), "ana", later)
        assert second.outcome.value == "appended"
        assert config_history.in_force(ledger, dt.date(2026, 6, 1))["regions"].version != "2027-01-01"
        assert config_history.in_force(ledger, dt.date(2027, 2, 1))["regions"].version == "2027-01-01"
        assert "regions" not in config_history.in_force(ledger, dt.date(2025, 12, 31))
        status = {r["file"]: r for r in config_history.status(ledger, dt.date(2026, 6, 1))}
        assert status["regions.json"]["on disk"].startswith("published as")
        assert status["logistics.toml"]["on disk"] == "NOT PUBLISHED"
        # The same version number with other content is refused: versions are immutable.
        edited = _regions_copy(tmp_path, "2027-01-01", tax_rule="IVA_9%")
        with pytest.raises(config_history.ConfigHistoryError, match="already published with other content"):
            config_history.publish(ledger, "regions", dt.date(2027, 1, 1), "ana", edited)


def test_an_invalid_file_is_refused_naming_the_site_and_field_and_nothing_is_written(
    ledger_url: str, tmp_path: Path
) -> None:
    with open_ledger(ledger_url) as ledger:
        bad = _regions_copy(tmp_path, "bad", currency="XXX")
        head = ledger.store.head()
        with pytest.raises(ConfigError, match=r"region_config\.MX\.currency"):
            config_history.publish(ledger, "regions", dt.date(2027, 1, 1), "ana", bad)
        with pytest.raises(config_history.ConfigHistoryError, match="unknown rule file 'nope'"):
            config_history.publish(ledger, "nope", dt.date(2027, 1, 1), "ana")
        assert ledger.store.head() == head
