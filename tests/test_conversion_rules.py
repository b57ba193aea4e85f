"""Automatic conversion rules and locked FX quotes: the daily run converts what a seller's rule
asks for, through a quote event the conversion must match — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

from adapters import settlement
from adapters.bootstrap import Ledger, open_ledger
from tests.factories import amt, ev

PIX = {"kind": "pix", "end_to_end_id": "E1"}


def sale(pid: str, seller: str, value: str, when: str = "2026-10-05T12:00:00-03:00") -> list[Any]:
    return [
        ev("order.placed", {"order_id": f"o-{pid}", "site": "BR", "buyer_id": "B", "seller_id": seller,
                            "total": amt(value)}, when=when),
        ev("payment.authorized", {"payment_id": pid, "order_id": f"o-{pid}", "seller_id": seller, "psp": "cielo",
                                  "amount": amt(value), "method": PIX}, when=when),
        ev("payment.captured", {"payment_id": pid, "seller_id": seller, "psp": "cielo", "amount": amt(value)},
           when=when),
    ]  # fmt: skip


def rate(value: str, as_of: str) -> Any:
    return ev("fx.rate_published", {"base": "BRL", "quote": "USD", "rate": value, "source": "BCB PTAX",
                                    "as_of": as_of}, when=as_of)  # fmt: skip


def post(ledger: Ledger, events: list[Any]) -> list[str]:
    out = [r.reason or r.outcome.value for r in ledger.service.post(events)]
    ledger.runner.run()
    return out


def test_a_sellers_rule_converts_released_funds_through_a_locked_quote(ledger_url: str) -> None:
    # config/conversion_rules.toml: CN-S7-002 converts BRL to USD from 100.00 BRL (and keeps USD).
    with open_ledger(ledger_url) as ledger:
        post(ledger, [rate("0.1834", "2026-10-05T13:00:00-03:00"), *sale("P1", "CN-S7-002", "500.00")])
        assert settlement.run(ledger, dt.date(2026, 10, 6))  # Pix settled on 5 Oct: released on the 6th
        [converted] = settlement.convert(ledger, dt.date(2026, 10, 6))
        assert (converted.kind, converted.amount, converted.currency, converted.outcome) == (
            "fx.converted", "500.00", "BRL", "appended")  # fmt: skip
        # 500.00 × 0.1834 = 91.70 at reference; final rate 0.1834 × (1 − 0.02) = 0.179732 → 89.866 → 89.87 USD.
        usd = ledger.views.query(
            "SELECT credits_minor - debits_minor FROM account_balances WHERE account = ?",
            ["seller:CN-S7-002:available:USD"],
        )
        assert usd == [(8987,)]
        assert settlement.convert(ledger, dt.date(2026, 10, 6)) == []  # nothing left to convert
        kinds = [r.topic for r in ledger.store.read(0, 100)]
        assert kinds.index("fx.quote_locked") == kinds.index("fx.converted") - 1


def test_below_the_threshold_or_without_a_rule_funds_stay_and_a_stale_rate_waits(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        post(ledger, [rate("0.1834", "2026-10-01T13:00:00-03:00"), *sale("P1", "CN-S7-002", "50.00"),
                      *sale("P2", "BR-LOCAL", "500.00")])  # fmt: skip
        settlement.run(ledger, dt.date(2026, 10, 6))
        assert settlement.convert(ledger, dt.date(2026, 10, 6)) == []  # 50.00 < 100.00; BR-LOCAL keeps BRL
        post(ledger, sale("P3", "CN-S7-002", "100.00", "2026-10-06T12:00:00-03:00"))
        settlement.run(ledger, dt.date(2026, 10, 7))
        head = ledger.store.head()
        [waiting] = settlement.convert(ledger, dt.date(2026, 10, 7))
        # The last fix is from 1 Oct 13:00 (-03:00): older than the 1,440-minute limit on 7 Oct.
        assert waiting.outcome == "waiting" and "minutes old, beyond the 1440-minute limit" in waiting.reason
        assert ledger.store.head() == head


def test_a_conversion_must_use_the_figures_of_the_quote_it_names(ledger_url: str) -> None:
    when = "2026-10-06T10:00:00-03:00"
    quote = {"quote_id": "Q1", "seller_id": "S1", "source": amt("100.00"), "target": amt("17.97", "USD"),
             "reference_rate": "0.1834", "markup": "0.02", "final_rate": "0.179732", "rate_source": "BCB PTAX",
             "rate_as_of": "2026-10-05T13:00:00-03:00", "expires_at": "2026-10-06T10:05:00-03:00"}  # fmt: skip
    conversion = {"conversion_id": "C1", "seller_id": "S1", "source": amt("100.00"), "target": amt("17.97", "USD"),
                  "reference_rate": "0.1834", "markup": "0.02", "final_rate": "0.179732", "rate_source": "BCB PTAX",
                  "rate_as_of": "2026-10-05T13:00:00-03:00", "quote_id": "Q1",
                  "quote_expires_at": "2026-10-06T10:05:00-03:00"}  # fmt: skip
    released = ev("funds.released", {"release_id": "L1", "seller_id": "S1", "amount": amt("200.00")}, when=when)
    with open_ledger(ledger_url) as ledger:
        assert post(ledger, [released, ev("fx.quote_locked", quote, when=when)]) == ["appended", "appended"]
        assert post(ledger, [ev("fx.quote_locked", quote, when=when)]) == [
            "payload.quote_id: quote Q1 was already locked"]  # fmt: skip
        bad = {**quote, "quote_id": "Q2", "target": amt("18.00", "USD")}
        assert post(ledger, [ev("fx.quote_locked", bad, when=when)]) == [
            "payload.target.amount: 18.00 is not source × final rate = 17.97"]  # fmt: skip
        other = {**conversion, "source": amt("50.00"), "target": amt("8.99", "USD")}
        assert post(ledger, [ev("fx.converted", other, when=when)]) == [
            "payload.quote_id: the conversion does not use the figures of quote Q1"]  # fmt: skip
        late = ev("fx.converted", conversion, when="2026-10-06T10:06:00-03:00")
        assert post(ledger, [late])[0].startswith("payload.quote_expires_at: quote Q1 expired")
        assert post(ledger, [ev("fx.converted", conversion, when=when)]) == ["appended"]
