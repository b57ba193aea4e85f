"""IAS 21 for the platform's FX positions: period-end revaluation at the closing rate (reversed
on the next period's first day) and realised gains or losses when a position is settled.

The functional currency is USD. Positions and carrying values come from the ``fx_positions``
projection; closing rates are the latest recorded official fix within ``official_fix_minutes``
(``config/fx.toml``), refused when missing or stale, never guessed.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final

from adapters import config_files
from adapters.bootstrap import Ledger
from adapters.rates import stored_rate
from domain.fx import FxError
from domain.ids import derived_event
from domain.service import PostResult
from ledger.errors import QuipuError
from ledger.money import exponent, format_amount, parse_amount, quantize

NAMESPACE: Final = uuid.UUID("f3e2d1c0-b9a8-4765-8432-10fedcba9876")
FUNCTIONAL: Final = "USD"


@dataclass(frozen=True, slots=True)
class Revaluation:
    """One currency's revaluation as of a period end, and what the ledger did with it."""

    currency: str
    position: str
    closing_rate: str
    carrying: str
    revalued: str
    difference: str
    outcome: str
    reason: str


def _usd(cents: int) -> str:
    return format_amount(cents, FUNCTIONAL) if cents >= 0 else "-" + format_amount(-cents, FUNCTIONAL)


def positions(ledger: Ledger) -> list[tuple[str, int, int, int]]:
    """(currency, position minor units, carrying USD cents, untracked conversions), open only."""
    ledger.runner.run()
    rows = ledger.views.query(
        "SELECT currency, position_minor, carrying_cents, untracked FROM fx_positions "
        "WHERE position_minor <> 0 ORDER BY currency"
    )
    return [(str(c), int(p), int(k), int(u)) for c, p, k, u in rows]


def _event(kind: str, key: str, when: dt.datetime, payload: dict[str, Any]) -> dict[str, Any]:
    return derived_event(NAMESPACE, f"{kind}:{key}", kind, when, "fx-accounting", payload)


def revalue(ledger: Ledger, as_of: dt.date) -> list[Revaluation]:
    """Revalue every open foreign position at the closing rate of ``as_of`` (end of day, UTC) and
    reverse it at the start of the next day. Idempotent per currency and date."""
    fx = config_files.fx_settings()
    end = dt.datetime.combine(as_of, dt.time(23, 59, 59), dt.UTC)
    events: list[dict[str, Any]] = []
    out: list[Revaluation] = []
    for ccy, minor, carrying, untracked in positions(ledger):
        position = format_amount(abs(minor), ccy)
        signed = position if minor >= 0 else "-" + position
        if untracked:
            out.append(Revaluation(ccy, signed, "", "", "", "", "skipped",
                                   f"{untracked} conversions with no USD leg: no USD carrying value"))  # fmt: skip
            continue
        try:
            rate = stored_rate(ledger.views, ccy, FUNCTIONAL, end, fx.official_fix_minutes)
        except FxError as exc:
            out.append(Revaluation(ccy, signed, "", _usd(carrying), "", "", "waiting", str(exc)))
            continue
        revalued = int(quantize(Decimal(signed) * rate.rate, FUNCTIONAL).scaleb(2))
        rid = f"RV-{ccy}-{as_of:%Y%m%d}"
        payload = {"revaluation_id": rid, "currency": ccy, "position": signed, "closing_rate": format(rate.rate, "f"),
                   "rate_source": rate.source, "rate_as_of": rate.as_of.isoformat(), "carrying": _usd(carrying),
                   "revalued": _usd(revalued), "difference": _usd(revalued - carrying)}  # fmt: skip
        events.append(_event("fx.revalued", rid, end, payload))
        nxt = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), dt.UTC)
        events.append(
            _event("fx.revalued", rid + "-R", nxt, {**payload, "revaluation_id": rid + "-R", "reverses": rid})
        )
        out.append(Revaluation(ccy, signed, payload["closing_rate"], _usd(carrying), _usd(revalued),
                               _usd(revalued - carrying), "", ""))  # fmt: skip
    results = ledger.service.post(events) if events else []
    ledger.runner.run()
    outcome = {
        e["payload"]["currency"]: r for e, r in zip(events, results, strict=True) if not e["payload"].get("reverses")
    }
    return [
        Revaluation(r.currency, r.position, r.closing_rate, r.carrying, r.revalued, r.difference,
                    outcome[r.currency].outcome.value, outcome[r.currency].reason or "")
        if r.currency in outcome else r
        for r in out
    ]  # fmt: skip


def settle_position(
    ledger: Ledger, currency: str, amount: str, received_usd: str, counterparty: str, at: dt.datetime,
    settlement_id: str | None = None,
) -> tuple[dict[str, Any], PostResult]:  # fmt: skip
    """Close part of a long foreign position: the carrying value of what is sold leaves, the USD
    received comes in, and the difference is the realised gain or loss."""
    sold = parse_amount(amount, currency, "--amount")
    received = parse_amount(received_usd, FUNCTIONAL, "--received")
    open_ = {c: (m, k) for c, m, k, _ in positions(ledger)}
    if currency not in open_ or open_[currency][0] <= 0:
        raise QuipuError(f"--currency: the platform holds no long {currency} position to settle")
    minor, carrying = open_[currency]
    sold_minor = int(sold.scaleb(exponent(currency)))
    if sold_minor > minor:
        raise QuipuError(f"--amount: {amount} {currency} exceeds the open position of {format_amount(minor, currency)}")
    share = int((Decimal(carrying) * sold_minor / minor).to_integral_value(rounding=ROUND_HALF_EVEN))
    realised = int(received.scaleb(2)) - share
    sid = settlement_id or f"FXS-{currency}-{at:%Y%m%d%H%M%S}"
    payload = {"settlement_id": sid, "sold": {"amount": str(sold), "currency": currency},
               "received": {"amount": str(received), "currency": FUNCTIONAL}, "carrying": _usd(share),
               "realised": _usd(realised), "counterparty": counterparty}  # fmt: skip
    event = _event("fx.position_settled", sid, at, payload)
    [result] = ledger.service.post([event])
    ledger.runner.run()
    return event, result
