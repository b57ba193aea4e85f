"""The platform's open FX positions and their carrying value in the functional currency (USD).

A conversion into USD adds its source amount to the source currency's position, carried at
its value at the reference rate; a conversion out of USD makes a short position carried at
the USD it took. Conversions between two foreign currencies move positions without a USD
carrying value (counted in ``untracked``). Settling a position removes the carrying value its
event records. IAS 21 revaluations are reversed the next day, so they never change these.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Final

from domain.fx import figures
from domain.posting_rules import minor_units
from ledger.money import exponent
from projections.views import Event, Increment, Table, ViewReader, Write

POSITIONS: Final = Table("fx_positions", ("currency", "position_minor", "carrying_cents", "untracked"), ("currency",))
TOPICS: Final = frozenset({"fx.converted", "fx.position_settled"})


def _cents(value: str) -> int:
    return int(Decimal(value).scaleb(2))


class FxPositionsProjection:
    """Per foreign currency: position (minor units) and carrying value (USD cents)."""

    name = "fx_positions"
    #: Its fold reads nothing but the page (ADR 0037).
    page_local = True
    tables: tuple[Table, ...] = (POSITIONS,)

    def fold(self, batch: Sequence[Event], views: ViewReader) -> list[Write]:
        acc: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for ev in batch:
            if ev.record.topic not in TOPICS:
                continue
            p = ev.doc["payload"]
            if ev.record.topic == "fx.position_settled":
                row = acc[p["sold"]["currency"]]
                row[0] -= minor_units(p["sold"])
                row[1] -= _cents(p["carrying"])
                continue
            src, tgt = p["source"], p["target"]
            f = figures(Decimal(src["amount"]), tgt["currency"], Decimal(p["reference_rate"]), Decimal(p["markup"]))
            at_reference = int(f.at_reference.scaleb(exponent(tgt["currency"])))
            if src["currency"] != "USD":
                row = acc[src["currency"]]
                row[0] += minor_units(src)
                if tgt["currency"] == "USD":
                    row[1] += at_reference
                else:
                    row[2] += 1
            if tgt["currency"] != "USD":
                row = acc[tgt["currency"]]
                row[0] -= at_reference
                if src["currency"] == "USD":
                    row[1] -= _cents(src["amount"])
                else:
                    row[2] += 1
        rows = [(ccy, *v) for ccy, v in sorted(acc.items())]
        return [Increment(POSITIONS, (), ("position_minor", "carrying_cents", "untracked"), rows)]
