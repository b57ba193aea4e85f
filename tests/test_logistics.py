"""Delivery-delay compensation: the process manager grants what config/logistics.toml says,
once per order, and the write side refuses compensations that do not fit the order."""

from __future__ import annotations

from typing import Any

from adapters import logistics
from adapters.bootstrap import Ledger, open_ledger
from tests.factories import amt, ev


def order(oid: str, site: str, total: str, ccy: str, when: str = "2026-10-01T10:00:00-03:00") -> Any:
    return ev("order.placed", {"order_id": oid, "site": site, "buyer_id": f"B-{oid}", "seller_id": "S1",
                               "total": amt(total, ccy)}, when=when)  # fmt: skip


def delayed(oid: str, days: int, when: str = "2026-10-12T09:00:00-03:00") -> Any:
    return ev("delivery.delayed", {"order_id": oid, "shipment_id": f"SH-{oid}", "carrier": "correios",
                                   "promised_on": "2026-10-05", "days_late": days}, when=when)  # fmt: skip


def outcomes(ledger: Ledger, events: list[Any]) -> list[str]:
    return [r.outcome.value for r in ledger.service.post(events)]


def balances(ledger: Ledger) -> dict[str, int]:
    ledger.runner.run()
    rows = ledger.views.query("SELECT account, debits_minor, credits_minor FROM account_balances")
    return {str(a): int(d) - int(c) for a, d, c in rows}


def test_a_delay_beyond_the_threshold_is_compensated_once_by_the_rule_in_force(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        assert outcomes(ledger, [order("O1", "BR", "300.00", "BRL"), delayed("O1", 5)]) == ["appended"] * 2
        # BR: more than 5 days late. Five days is not more than five: nothing.
        assert logistics.compensate(ledger) == []
        assert outcomes(ledger, [delayed("O1", 6, "2026-10-13T09:00:00-03:00")]) == ["appended"]
        [granted] = logistics.compensate(ledger)
        # 10% of 300.00 = 30.00 (under the 50.00 cap), claimed back from the carrier.
        assert (granted.amount, granted.currency, granted.funded_by, granted.outcome) == ("30.00", "BRL", "carrier",
                                                                                           "appended")  # fmt: skip
        assert logistics.compensate(ledger) == []  # once per order
        b = balances(ledger)
        assert b["buyer:B-O1:store_credit:BRL"] == -3000 and b["platform:main:carrier_claims:BRL"] == 3000


def test_caps_half_even_rounding_and_zero_exponent_currencies(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        events = [
            order("BIG", "BR", "1000.00", "BRL"), delayed("BIG", 9),  # 10% = 100.00, capped at 50.00
            order("TIE", "MX", "10.50", "MXN"), delayed("TIE", 4),  # 5% of 1050 centavos = 52.5 → 52 (half-even)
            order("CLP", "CL", "12345", "CLP"), delayed("CLP", 6),  # 10% of 12345 = 1234.5 → 1234 (half-even)
            order("ODD", "CL", "12355", "CLP"), delayed("ODD", 6),  # 10% of 12355 = 1235.5 → 1236 (half-even)
        ]  # fmt: skip
        assert outcomes(ledger, events) == ["appended"] * len(events)
        granted = {c.order_id: (c.amount, c.funded_by) for c in logistics.compensate(ledger)}
        assert granted == {"BIG": ("50.00", "carrier"), "TIE": ("0.52", "platform"), "CLP": ("1234", "carrier"),
                           "ODD": ("1236", "carrier")}  # fmt: skip
        b = balances(ledger)
        assert b["platform:main:logistics_compensation:MXN"] == 52
        trial = ledger.views.query("SELECT debits_minor, credits_minor FROM trial_balance")
        assert all(d == c for d, c in trial)


def test_a_delay_reported_before_a_rule_took_effect_gets_nothing(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        when = "2025-12-30T10:00:00-03:00"  # the BR rule is effective from 2026-01-01
        assert (
            outcomes(ledger, [order("OLD", "BR", "300.00", "BRL", when), delayed("OLD", 30, when)]) == ["appended"] * 2
        )
        assert logistics.compensate(ledger) == []


def test_bad_compensations_and_delays_are_refused_naming_the_field(ledger_url: str) -> None:
    def grant(oid: str, value: str, ccy: str = "BRL", **extra: Any) -> Any:
        payload = {"compensation_id": f"LC-{oid}", "order_id": oid, "buyer_id": "B1", "amount": amt(value, ccy),
                   "funded_by": "platform", "rule": "manual", **extra}  # fmt: skip
        return ev("compensation.granted", payload)

    with open_ledger(ledger_url) as ledger:
        [unknown] = ledger.service.post([delayed("NOPE", 9)])
        assert unknown.reason == "payload.order_id: order NOPE was never placed"
        assert outcomes(ledger, [order("O2", "BR", "100.00", "BRL")]) == ["appended"]
        [early] = ledger.service.post([grant("O2", "10.00")])
        assert early.reason == "payload.order_id: order O2 has no delivery delay reported"
        assert outcomes(ledger, [delayed("O2", 9)]) == ["appended"]
        [too_much] = ledger.service.post([grant("O2", "100.01")])
        assert too_much.reason == "payload.amount: 100.01 BRL exceeds the order total 100.00 BRL"
        [wrong_ccy] = ledger.service.post([grant("O2", "1.00", "MXN")])
        assert wrong_ccy.reason == "payload.amount.currency: MXN is not the order's currency BRL"
        [no_carrier] = ledger.service.post([grant("O2", "1.00", funded_by="carrier")])
        assert no_carrier.reason == "payload.carrier: required when the carrier funds the compensation"
        head = ledger.store.head()
        assert outcomes(ledger, [grant("O2", "5.00")]) == ["appended"]
        [twice] = ledger.service.post([grant("O2", "5.00")])
        assert twice.reason == "payload.order_id: order O2 was already compensated"
        assert ledger.store.head() == head + 1
        # The process manager sees the manual compensation and proposes nothing more.
        assert logistics.compensate(ledger) == []


def test_the_logistics_projection_rebuilds_to_the_same_checksum(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        events = [e for i in range(8) for e in (order(f"O{i}", "MX", "100.00", "MXN"), delayed(f"O{i}", 1 + i))]
        events += [delayed(f"O{i}", 2, "2026-10-20T09:00:00-03:00") for i in range(8)]  # later, smaller reports
        assert set(outcomes(ledger, events)) == {"appended"}
        logistics.compensate(ledger)
        live = ledger.runner.checksums()["logistics"]
        for size in (1, 3, 1000):
            ledger.runner.batch_size = size
            ledger.runner.rebuild()
            assert ledger.runner.checksums()["logistics"] == live
        worst = dict(ledger.views.query("SELECT order_id, days_late FROM logistics_delays"))
        assert worst == {f"O{i}": max(1 + i, 2) for i in range(8)}
