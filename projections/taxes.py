"""Orders as the tax process manager sees them, the assessments recorded, and a per-site
summary of every tax line (assessed minus reversed), for `quipu tax summary`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Final

import orjson

from domain.posting_rules import minor_units
from projections.views import Event, Increment, Put, Table, ViewReader, Write

ORDERS: Final = Table(
    "tax_orders",
    ("order_id", "site", "seller_id", "currency", "total_minor", "seller_country", "placed_at"),
    ("order_id",),
)
CANCELLED: Final = Table("tax_cancelled", ("order_id", "cancelled_at"), ("order_id",))
ASSESSMENTS: Final = Table(
    "tax_assessments",
    ("order_id", "kind", "assessment_id", "site", "seller_id", "currency", "total_minor", "lines"),
    ("order_id", "kind"),
)
REVERSALS: Final = Table("tax_reversals", ("order_id", "kind", "reversed_at"), ("order_id", "kind"))
SUMMARY: Final = Table(
    "tax_summary",
    ("site", "kind", "tax", "currency", "amount_minor", "lines"),
    ("site", "kind", "tax", "currency"),
)
TOPICS: Final = frozenset({"order.placed", "order.cancelled", "tax.assessed", "tax.reversed"})


class TaxProjection:
    """Orders, cancellations, assessments, reversals and the per-site tax summary."""

    name = "taxes"
    #: Its fold reads nothing but the page (ADR 0037).
    page_local = True
    tables: tuple[Table, ...] = (ORDERS, CANCELLED, ASSESSMENTS, REVERSALS, SUMMARY)

    def fold(self, batch: Sequence[Event], views: ViewReader) -> list[Write]:
        orders: dict[str, tuple[Any, ...]] = {}
        cancelled: dict[str, tuple[Any, ...]] = {}
        assessed: dict[tuple[str, str], tuple[Any, ...]] = {}
        reversed_: dict[tuple[str, str], tuple[Any, ...]] = {}
        summary: dict[tuple[str, str, str, str], list[int]] = defaultdict(lambda: [0, 0])
        for ev in batch:
            if ev.record.topic not in TOPICS:
                continue
            doc = ev.doc
            p = doc["payload"]
            kind = doc["type"]
            if kind == "order.placed":
                total = p["total"]
                country = p.get("seller_country") or ""
                orders[p["order_id"]] = (p["order_id"], p["site"], p["seller_id"], total["currency"],
                                         minor_units(total), country, doc["occurred_at"])  # fmt: skip
            elif kind == "order.cancelled":
                cancelled[p["order_id"]] = (p["order_id"], doc["occurred_at"])
            else:
                sign = 1 if kind == "tax.assessed" else -1
                total = 0
                for line in p["lines"]:
                    row = summary[(p["site"], p["kind"], line["name"], line["amount"]["currency"])]
                    row[0] += sign * minor_units(line["amount"])
                    row[1] += sign
                    total += minor_units(line["amount"])
                key = (p["order_id"], p["kind"])
                if sign > 0:
                    assessed[key] = (*key, p["assessment_id"], p["site"], p["seller_id"],
                                     p["lines"][0]["amount"]["currency"], total,
                                     orjson.dumps(p["lines"]).decode())  # fmt: skip
                else:
                    reversed_[key] = (*key, doc["occurred_at"])
        return [
            Put(ORDERS, list(orders.values())),
            Put(CANCELLED, list(cancelled.values())),
            Put(ASSESSMENTS, list(assessed.values())),
            Put(REVERSALS, list(reversed_.values())),
            Increment(SUMMARY, (), ("amount_minor", "lines"), [(*k, *v) for k, v in sorted(summary.items())]),
        ]
