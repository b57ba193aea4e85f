"""The journal: each event's entry and its postings, as the posting rules book them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ledger.accounts import Side
from projections.views import Event, Insert, Table, ViewReader, Write

ENTRIES: Final = Table(
    "journal_entries",
    ("position", "event_id", "event_type", "occurred_at_us", "recorded_at_us", "memo"),
    ("position",),
)
POSTINGS: Final = Table(
    "journal_postings",
    ("position", "line", "account", "currency", "debit_minor", "credit_minor", "occurred_at_us"),
    ("position", "line"),
)


class JournalProjection:
    """Entries and postings per event."""

    name = "journal"
    tables: tuple[Table, ...] = (ENTRIES, POSTINGS)

    def fold(self, batch: Sequence[Event], views: ViewReader) -> list[Write]:
        entries, postings = [], []
        for ev in batch:
            rec = ev.record
            entry = ev.entry
            if entry is None:
                continue
            when = ev.occurred_at_us
            eid = ev.doc["event_id"]
            entries.append((rec.position, eid, rec.topic, when, rec.recorded_at_us, entry.memo))
            for line, p in enumerate(entry.postings, start=1):
                dr, cr = (p.amount_minor, 0) if p.side is Side.DEBIT else (0, p.amount_minor)
                postings.append((rec.position, line, p.account, p.currency, dr, cr, when))
        return [Insert(ENTRIES, entries), Insert(POSTINGS, postings)]
