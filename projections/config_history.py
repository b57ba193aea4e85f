"""Every published version of every rule file, in the order it was published."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from projections.views import Event, Insert, Table, ViewReader, Write

VERSIONS: Final = Table(
    "config_versions",
    ("name", "version", "effective_from", "sha256", "published_by", "published_at", "position"),
    ("name", "version"),
)


class ConfigHistoryProjection:
    """``config.published`` events as rows."""

    name = "config_history"
    #: Its fold reads nothing but the page (ADR 0037).
    page_local = True
    tables: tuple[Table, ...] = (VERSIONS,)

    def fold(self, batch: Sequence[Event], views: ViewReader) -> list[Write]:
        rows = []
        for ev in batch:
            if ev.record.topic == "config.published":
                p = ev.doc["payload"]
                rows.append((p["name"], p["version"], p["effective_from"], p["sha256"], p["published_by"],
                             ev.doc["occurred_at"], ev.record.position))  # fmt: skip
        return [Insert(VERSIONS, rows)]
