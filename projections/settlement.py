"""The settlement projection: each capture's settlement dates, daily batches, and every
seller's money flows per currency and day, from which balances as of any date are summed.

It is *stateful*: a capture's schedule needs its order's site and its authorisation's
method, seen in earlier events. Those are kept in two small tables and looked up through
the view store (overlaid with the batch's own earlier rows), so a rebuild in any batch
size gives the same rows byte for byte. Time comes from the events only: days are the UTC
dates of ``occurred_at``; settlement dates are the site's local bank dates.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Final

from domain.posting_rules import minor_units
from domain.settlement.policy import SettlementPolicy
from projections.views import Event, Increment, Insert, Put, Table, ViewReader, Write

ORDERS: Final = Table("settlement_orders", ("order_id", "site"), ("order_id",))
PAYMENTS: Final = Table(
    "settlement_payments", ("payment_id", "site", "method", "installments", "order_id"), ("payment_id",)
)
SCHEDULE: Final = Table(
    "settlement_schedule",
    ("event_id", "installment", "of_installments", "payment_id", "seller_id", "site", "currency", "method",
     "captured_at_us", "settles_on", "amount_minor", "rule", "order_id", "gated"),
    ("event_id", "installment"),
)  # fmt: skip
BATCHES: Final = Table(
    "settlement_batches",
    ("site", "currency", "settles_on", "amount_minor", "items"),
    ("site", "currency", "settles_on"),
)
FLOWS: Final = Table(
    "seller_flows",
    ("seller_id", "currency", "day", "kind", "amount_minor", "events"),
    ("seller_id", "currency", "day", "kind"),
)
DELIVERIES: Final = Table("settlement_deliveries", ("order_id", "delivered_on", "release_from"), ("order_id",))
HOLDS: Final = Table(
    "settlement_holds",
    ("hold_id", "seller_id", "currency", "amount_minor", "reason", "release_on", "held_on", "released_on"),
    ("seller_id", "hold_id"),  # a hold id is unique per seller only (migration 0014)
)

#: Flow kinds by event type, for the events that move one amount of one seller.
_SIMPLE_FLOWS: Final = {
    "payment.captured": "captured",
    "refund.issued": "refunded",
    "chargeback.opened": "charged_back",
    "fee.charged": "fee",
    "funds.released": "released",
    "deficit.recovered": "recovered",
    "payout.sent": "payout_sent",
    "payout.settled": "payout_settled",
    "payout.failed": "payout_failed",
}
TOPICS: Final = frozenset(
    {*_SIMPLE_FLOWS, "order.placed", "payment.authorized", "chargeback.resolved", "payout.requested",
     "fx.converted", "funds.held", "hold.released", "delivery.confirmed", "tax.assessed", "tax.reversed"}
)  # fmt: skip
UNSCHEDULED: Final = ""


def utc_day(occurred_at: str) -> str:
    """The UTC date of an ISO 8601 moment, as ``YYYY-MM-DD``."""
    return dt.datetime.fromisoformat(occurred_at).astimezone(dt.UTC).date().isoformat()


class SettlementProjection:
    """Schedules, batches, holds and seller flows."""

    name = "settlement"
    #: µs an event, rebuilt alone over a million demo events (14,716 events/s alone): a hint for grouping (ADR 0037).
    rebuild_cost = 68
    tables: tuple[Table, ...] = (ORDERS, PAYMENTS, SCHEDULE, BATCHES, FLOWS, HOLDS, DELIVERIES)

    def __init__(self, policy: SettlementPolicy) -> None:
        self.policy = policy

    def fold(self, batch: Sequence[Event], views: ViewReader) -> list[Write]:
        events = [e for e in batch if e.record.topic in TOPICS]
        orders, payments, holds = self._known(events, views)
        new_orders: dict[str, tuple[Any, ...]] = {}
        new_payments: dict[str, tuple[Any, ...]] = {}
        new_holds: dict[tuple[str, str], tuple[Any, ...]] = {}
        deliveries: dict[str, tuple[Any, ...]] = {}
        schedule: list[tuple[Any, ...]] = []
        batches: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
        flows: dict[tuple[str, str, str, str], list[int]] = defaultdict(lambda: [0, 0])

        def flow(p: Any, kind: str, day: str, amount: Any) -> None:
            row = flows[(p["seller_id"], amount["currency"], day, kind)]
            row[0] += minor_units(amount)
            row[1] += 1

        for ev in events:
            doc = ev.doc
            kind, p = doc["type"], doc["payload"]
            if kind == "order.placed":
                new_orders[p["order_id"]] = orders[p["order_id"]] = (p["order_id"], p["site"])
                continue
            if kind == "payment.authorized":
                order = orders.get(p["order_id"])
                method = p["method"]
                site = order[1] if order else UNSCHEDULED
                new_payments[p["payment_id"]] = payments[p["payment_id"]] = (
                    p["payment_id"],
                    site,
                    method["kind"],
                    method.get("installments", 1),
                    p["order_id"],
                )
                continue
            if kind == "delivery.confirmed":
                placed = orders.get(p["order_id"])
                delivered = dt.datetime.fromisoformat(p["delivered_at"])
                local = delivered.astimezone(self.policy.zone(placed[1])) if placed else delivered
                delay = self.policy.methods.release_delay_for(placed[1], local.date()) if placed else None
                release_from = local.date() + dt.timedelta(days=delay or 0)
                deliveries[p["order_id"]] = (p["order_id"], local.date().isoformat(), release_from.isoformat())
                continue
            day = utc_day(doc["occurred_at"])
            if kind in _SIMPLE_FLOWS:
                flow(p, _SIMPLE_FLOWS[kind], day, p["amount"])
                if kind == "payment.captured":
                    schedule.extend(self._schedule(ev, p, payments.get(p["payment_id"]), batches))
            elif kind == "chargeback.resolved":
                if p["outcome"] == "won":
                    flow(p, "chargeback_won", day, p["amount"])
            elif kind == "payout.requested":
                flow(p, "payout_requested", day, p["amount"])
                if p.get("fee"):
                    flow(p, "payout_fee", day, p["fee"])
            elif kind in ("tax.assessed", "tax.reversed"):
                for line in p["lines"]:
                    flow(p, "tax" if kind == "tax.assessed" else "tax_reversed", day, line["amount"])
            elif kind == "fx.converted":
                flow(p, "converted_out", day, p["source"])
                flow(p, "converted_in", day, p["target"])
            elif kind == "funds.held":
                flow(p, f"held:{p['reason']}", day, p["amount"])
                hold = (p["hold_id"], p["seller_id"], p["amount"]["currency"], minor_units(p["amount"]), p["reason"],
                       p.get("release_on") or "", day, "")  # fmt: skip
                new_holds[(p["seller_id"], p["hold_id"])] = holds[(p["seller_id"], p["hold_id"])] = hold
            elif kind == "hold.released":
                # The write side refuses releasing an unknown hold; an as-of replay may cut between.
                key = (p["seller_id"], p["hold_id"])
                held = holds.get(key) or (p["hold_id"], p["seller_id"], p["amount"]["currency"],
                                          minor_units(p["amount"]), "unknown", "", day, "")  # fmt: skip
                flow(p, f"hold_released:{held[4]}", day, p["amount"])
                new_holds[key] = holds[key] = (*held[:7], day)
        return [
            Put(ORDERS, list(new_orders.values())),
            Put(PAYMENTS, list(new_payments.values())),
            Put(HOLDS, list(new_holds.values())),
            Put(DELIVERIES, list(deliveries.values())),
            Insert(SCHEDULE, schedule),
            Increment(BATCHES, (), ("amount_minor", "items"), [(*k, *v) for k, v in sorted(batches.items())]),
            Increment(FLOWS, (), ("amount_minor", "events"), [(*k, *v) for k, v in sorted(flows.items())]),
        ]

    @staticmethod
    def _known(
        events: Sequence[Event], views: ViewReader
    ) -> tuple[dict[str, tuple[Any, ...]], dict[str, tuple[Any, ...]], dict[tuple[str, str], tuple[Any, ...]]]:
        """The committed orders, payments and (seller, hold id) holds this batch's events refer to."""
        orders: set[str] = set()
        payments: set[str] = set()
        holds: set[tuple[str, str]] = set()
        for ev in events:
            topic, p = ev.record.topic, ev.doc["payload"]
            if topic in ("payment.authorized", "delivery.confirmed"):
                orders.add(p["order_id"])
            elif topic == "payment.captured":
                payments.add(p["payment_id"])
            elif topic == "hold.released":
                holds.add((p["seller_id"], p["hold_id"]))
        known_orders = views.lookup(ORDERS, [(i,) for i in sorted(orders)]) if orders else {}
        known_payments = views.lookup(PAYMENTS, [(i,) for i in sorted(payments)]) if payments else {}
        known_holds = views.lookup(HOLDS, sorted(holds)) if holds else {}
        return (
            {k[0]: v for k, v in known_orders.items()},
            {k[0]: v for k, v in known_payments.items()},
            {(str(k[0]), str(k[1])): v for k, v in known_holds.items()},
        )

    def _schedule(
        self, ev: Event, p: Any, payment: tuple[Any, ...] | None, batches: dict[tuple[str, str, str], list[int]]
    ) -> list[tuple[Any, ...]]:
        ccy, minor = p["amount"]["currency"], minor_units(p["amount"])
        event_id = str(ev.record.event_id)
        site = payment[1] if payment else UNSCHEDULED
        method = payment[2] if payment else ""
        order_id = payment[4] if payment else ""
        if site == UNSCHEDULED:
            why = "unscheduled: the payment's order (and so its site) is not in the log"
            return [(event_id, 1, 1, p["payment_id"], p["seller_id"], "", ccy, method, ev.occurred_at_us, "", minor,
                     why, order_id, 0)]  # fmt: skip
        captured_at = dt.datetime.fromisoformat(ev.doc["occurred_at"])
        local_day = captured_at.astimezone(self.policy.zone(site)).date()
        delay = self.policy.methods.release_delay_for(site, local_day)
        gated = 0 if delay is None else 1
        after = "" if delay is None else f"; released only {delay} days after delivery"
        rows = []
        for inst in self.policy.schedule(site, method, payment[3] if payment else 1, captured_at, minor, ccy):
            day = inst.settles_on.isoformat()
            rows.append((event_id, inst.number, inst.of, p["payment_id"], p["seller_id"], site, ccy, method,
                         ev.occurred_at_us, day, inst.amount_minor, inst.rule + after, order_id, gated))  # fmt: skip
            b = batches[(site, ccy, day)]
            b[0] += inst.amount_minor
            b[1] += 1
        return rows
