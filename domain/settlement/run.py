"""The daily settlement run: what to release, reserve, recover and un-reserve on a date.

A pure decision over the sellers' positions as of the run date; the adapter posts what it
returns through the same service as every other event, so the run's effects are events
that replay. Ids are derived from the date and the seller's cumulative figures: running
the same date twice proposes the same events (recorded once), and a run after new captures
proposes new ones.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final

from domain.settlement.dates import MethodRules
from domain.settlement.positions import Position
from ledger.money import format_amount

#: Namespace of the event ids the run derives.
RUN_NAMESPACE: Final = uuid.UUID("8c4f3f0e-1b7e-4f5e-9d55-2a9c6c1e7a01")
SOURCE: Final = "settlement-run"


@dataclass(frozen=True, slots=True)
class DueReserve:
    """A rolling-reserve hold whose release date has come."""

    hold_id: str
    seller_id: str
    currency: str
    amount_minor: int


def _event(kind: str, key: str, when: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid5(RUN_NAMESPACE, f"{kind}:{payload['seller_id']}:{key}")),
        "type": kind,
        "schema_version": 1,
        "occurred_at": when,
        "source": SOURCE,
        "payload": payload,
    }


def plan(
    run_date: dt.date, positions: Iterable[Position], due_reserves: Iterable[DueReserve], rules: MethodRules
) -> list[dict[str, Any]]:
    """The events of the run for ``run_date``, in the order they must be posted."""
    when = f"{run_date.isoformat()}T00:00:00+00:00"
    day = run_date.strftime("%Y%m%d")
    events: list[dict[str, Any]] = []
    unreserved: dict[tuple[str, str], int] = {}
    for r in sorted(due_reserves, key=lambda r: (r.hold_id, r.seller_id)):
        amount = {"amount": format_amount(r.amount_minor, r.currency), "currency": r.currency}
        events.append(_event("hold.released", r.hold_id, when, {
            "hold_id": r.hold_id, "seller_id": r.seller_id, "amount": amount,
            "decided_by": f"settlement run {run_date.isoformat()}: reserve period over",
        }))  # fmt: skip
        key = (r.seller_id, r.currency)
        unreserved[key] = unreserved.get(key, 0) + r.amount_minor
    for p in sorted(positions, key=lambda p: (p.seller_id, p.currency)):
        ccy, seller = p.currency, p.seller_id
        if p.due > 0:
            rid = f"R{day}-{ccy}-{p.released}"
            events.append(_event("funds.released", rid, when, {
                "release_id": rid, "seller_id": seller,
                "amount": {"amount": format_amount(p.due, ccy), "currency": ccy},
            }))  # fmt: skip
            rule = rules.reserve_for(seller, ccy, run_date)
            if rule is not None:
                share = Decimal(p.due) * Decimal(rule.percent) / 100
                minor = int(share.to_integral_value(rounding=ROUND_HALF_EVEN))
                if minor > 0:
                    hid = f"RSV{day}-{ccy}-{p.released}"
                    events.append(_event("funds.held", hid, when, {
                        "hold_id": hid, "seller_id": seller,
                        "amount": {"amount": format_amount(minor, ccy), "currency": ccy},
                        "reason": "reserve", "reference": f"run-{run_date.isoformat()}",
                        "release_on": (run_date + dt.timedelta(days=rule.days)).isoformat(),
                    }))  # fmt: skip
        elif p.deficit > 0:
            covered = min(p.deficit, p.available + unreserved.get((seller, ccy), 0))
            if covered > 0:
                rid = f"REC{day}-{ccy}-{p.recovered}"
                events.append(_event("deficit.recovered", rid, when, {
                    "recovery_id": rid, "seller_id": seller,
                    "amount": {"amount": format_amount(covered, ccy), "currency": ccy},
                }))  # fmt: skip
    return events
