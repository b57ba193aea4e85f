"""Publishing rule files as events, their history, and whether the files on disk are published.

``publish`` validates a file with the same model the engine loads it with, then records its
exact text, hash and effective date as ``config.published``. ``in_force`` answers which version
of each file applied at a moment; ``status`` compares the files on disk with what was published.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tomllib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from adapters import config_files
from adapters.bootstrap import Ledger
from domain.service import Outcome, PostResult
from ledger.errors import QuipuError

#: name → (file under config/, the loader that validates it).
FILES: Final[dict[str, tuple[str, Callable[[Path], Any]]]] = {
    "regions": ("regions.json", config_files.regions),
    "consumption_taxes": ("consumption_taxes.toml", config_files.consumption_taxes),
    "import_duties": ("import_duties.toml", config_files.import_duties),
    "withholding": ("withholding.toml", config_files.withholding),
    "fx": ("fx.toml", config_files.fx_settings),
    "calendars": ("calendars.toml", config_files.calendars),
    "settlement": ("settlement.toml", config_files.settlement_methods),
    "payout_routes": ("payout_routes.toml", config_files.route_table),
    "logistics": ("logistics.toml", config_files.logistics),
    "conversion_rules": ("conversion_rules.toml", config_files.conversion_rules),
    "aml": ("aml.toml", config_files.aml_rules),
}
NAMESPACE: Final = uuid.UUID("c0f1e2d3-a4b5-4c6d-8e7f-9a0b1c2d3e4f")


class ConfigHistoryError(QuipuError, ValueError):
    """A rule file that cannot be published as asked."""


def _version(name: str, path: Path, text: str) -> str:
    """The file's own ``version`` when it has one, else a content hash."""
    try:
        data: Any = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except ValueError:
        data = {}
    version = data.get("version") if isinstance(data, dict) else None
    return str(version) if version else "sha-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def publish(
    ledger: Ledger, name: str, effective_from: dt.date, by: str, path: Path | None = None,
    at: dt.datetime | None = None,
) -> tuple[dict[str, Any], PostResult]:  # fmt: skip
    """Validate a rule file and record it as the version of ``name`` in force from ``effective_from``."""
    if name not in FILES:
        raise ConfigHistoryError(f"NAME: unknown rule file {name!r}; one of {', '.join(FILES)}")
    filename, load = FILES[name]
    file = path or config_files.CONFIG_ROOT / filename
    load(file)  # the same validation the engine applies; errors name the entry and field
    text = file.read_text(encoding="utf-8")
    version = _version(name, file, text)
    digest = hashlib.sha256(text.encode()).hexdigest()
    ledger.runner.run()
    known = ledger.views.query(
        "SELECT sha256, effective_from, position FROM config_versions WHERE name = ? AND version = ?", [name, version]
    )
    if known and known[0][0] != digest:
        raise ConfigHistoryError(
            f"{file.name}: version {version} was already published with other content; give the file a new version"
        )
    when = at or dt.datetime.now(dt.UTC).replace(microsecond=0)
    event = {
        "event_id": str(uuid.uuid5(NAMESPACE, f"{name}:{version}:{digest}")),
        "type": "config.published", "schema_version": 1, "occurred_at": when.isoformat(), "source": f"config:{by}",
        "payload": {"name": name, "version": version, "effective_from": effective_from.isoformat(),
                    "sha256": digest, "content": text, "published_by": by},
    }  # fmt: skip
    if known:  # the same text again: recorded once, whatever the moment it is published again
        return event, PostResult(0, Outcome.DUPLICATE, str(event["event_id"]), int(known[0][2]))
    [result] = ledger.service.post([event])
    ledger.runner.run()
    return event, result


@dataclass(frozen=True, slots=True)
class Published:
    """One published version."""

    name: str
    version: str
    effective_from: str
    sha256: str
    published_by: str
    published_at: str


def history(ledger: Ledger, name: str | None = None) -> list[Published]:
    """Every published version (of one file, or all), by name and effective date."""
    ledger.runner.run()
    where, params = ("WHERE name = ?", [name]) if name else ("", [])
    rows = ledger.views.query(
        "SELECT name, version, effective_from, sha256, published_by, published_at FROM config_versions "
        f"{where} ORDER BY name, effective_from, position",
        params,
    )
    return [Published(*(str(v) for v in row)) for row in rows]


def in_force(ledger: Ledger, on: dt.date) -> dict[str, Published]:
    """Per file, the version in force on a day: the latest effective date on or before it
    (published later wins a tie)."""
    chosen: dict[str, Published] = {}
    for p in history(ledger):
        if p.effective_from <= on.isoformat():
            chosen[p.name] = p  # history is ordered by effective date, then publication
    return chosen


def status(ledger: Ledger, on: dt.date) -> list[dict[str, str]]:
    """Each rule file on disk: its hash, the published version it matches, and the version in force."""
    published = history(ledger)
    current = in_force(ledger, on)
    rows = []
    for name, (filename, _) in FILES.items():
        digest = hashlib.sha256((config_files.CONFIG_ROOT / filename).read_bytes()).hexdigest()
        match = next((p for p in published if p.name == name and p.sha256 == digest), None)
        force = current.get(name)
        rows.append({
            "file": filename, "sha256": digest[:16],
            "on disk": f"published as {match.version}" if match else "NOT PUBLISHED",
            "in force": f"{force.version} (from {force.effective_from})" if force else "none published",
            "matches": "yes" if force and force.sha256 == digest else "no",
        })  # fmt: skip
    return rows
