"""The compensation process manager: late deliveries beyond the site's threshold become
``compensation.granted`` events, once per order (the event id derives from the order id)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from adapters import config_files
from adapters.bootstrap import Ledger
from domain.logistics import LateOrder, decide


@dataclass(frozen=True, slots=True)
class Compensation:
    """One compensation the manager proposed and what the ledger did with it."""

    order_id: str
    buyer_id: str
    amount: str
    currency: str
    funded_by: str
    outcome: str
    reason: str


def late_orders(ledger: Ledger) -> list[LateOrder]:
    """Orders with a reported delay and no compensation yet."""
    rows = ledger.views.query(
        "SELECT d.order_id, o.site, o.buyer_id, o.currency, o.total_minor, d.days_late, d.carrier, d.reported_at "
        "FROM logistics_delays d JOIN logistics_orders o ON o.order_id = d.order_id "
        "LEFT JOIN logistics_compensations c ON c.order_id = d.order_id WHERE c.order_id IS NULL ORDER BY d.order_id"
    )
    return [
        LateOrder(str(o), str(s), str(b), str(c), int(t), int(d), str(car), dt.datetime.fromisoformat(str(at)))
        for o, s, b, c, t, d, car, at in rows
    ]


def compensate(ledger: Ledger) -> list[Compensation]:
    """Grant every compensation the rules call for and is not granted yet."""
    ledger.runner.run()
    rules = config_files.logistics()
    events = [e for e in (decide(o, rules) for o in late_orders(ledger)) if e is not None]
    if not events:
        return []
    results = ledger.service.post(events)
    ledger.runner.run()
    return [
        Compensation(e["payload"]["order_id"], e["payload"]["buyer_id"], e["payload"]["amount"]["amount"],
                     e["payload"]["amount"]["currency"], e["payload"]["funded_by"], r.outcome.value, r.reason or "")
        for e, r in zip(events, results, strict=True)
    ]  # fmt: skip
