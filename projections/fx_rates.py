"""Published FX rates by pair and time: what quotes and conversions look up."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from projections.views import Event, Insert, Table, ViewReader, Write

RATES: Final = Table("fx_rates", ("base", "quote", "source", "as_of_us", "rate", "position"),
                     ("base", "quote", "source", "as_of_us"))  # fmt: skip


class FxRatesProjection:
    """One row per published rate."""

    name = "fx_rates"
    #: Its fold reads nothing but the page (ADR 0037).
    page_local = True
    tables: tuple[Table, ...] = (RATES,)

    def fold(self, batch: Sequence[Event], views: ViewReader) -> list[Write]:
        rows = []
        for ev in batch:
            if ev.record.topic != "fx.rate_published":
                continue
            p = ev.doc["payload"]
            at = datetime.fromisoformat(p["as_of"])
            as_of_us = int(at.timestamp()) * 1_000_000 + at.microsecond
            rows.append((p["base"], p["quote"], p["source"], as_of_us, p["rate"], ev.record.position))
        return [Insert(RATES, rows)]
