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
    #: Its fold reads nothing but the page (ADR 0037).
    page_local = True
    tables: tuple[Table, ...] = (ENTRIES, POSTINGS)

    def fold(self, batch: Sequence[Event], views: ViewReader) -> list[Write]:
        entries: list[tuple[int, str, str, int, int, str]] = []
        postings: list[tuple[int, int, str, str, int, int, int]] = []
        add_entry, add_posting = entries.append, postings.append
        debit = Side.DEBIT
        for ev in batch:
            entry = ev.entry
            if entry is None:
                continue
            rec = ev.record
            position = rec.position
            when = ev.occurred_at_us
            add_entry((position, ev.doc["event_id"], rec.topic, when, rec.recorded_at_us, entry.memo))
            for line, (account, currency, side, amount) in enumerate(entry.postings, 1):
                if side is debit:
                    add_posting((position, line, account, currency, amount, 0, when))
                else:
                    add_posting((position, line, account, currency, 0, amount, when))
        return [Insert(ENTRIES, entries), Insert(POSTINGS, postings)]
