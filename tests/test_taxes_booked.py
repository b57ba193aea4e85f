"""Taxes booked from orders: consumption tax inside the total, Mexican withholdings with and
without a registered tax id, import duties of cross-border orders at the recorded rate,
reversals on cancellation, and replays that book exactly what was booked after a table
changed — on SQLite and PostgreSQL. Every figure is worked by hand in the comments."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from adapters import config_files, taxes
from adapters.bootstrap import Ledger, open_ledger
from domain.taxes.rules import ConsumptionTable
from tests.factories import amt, ev


def order(oid: str, site: str, total: str, ccy: str, seller: str = "S1", country: str | None = None,
          when: str = "2026-10-01T10:00:00-03:00") -> Any:  # fmt: skip
    payload = {"order_id": oid, "site": site, "buyer_id": "B1", "seller_id": seller, "total": amt(total, ccy)}
    if country:
        payload["seller_country"] = country
    return ev("order.placed", payload, when=when)


def post(ledger: Ledger, events: list[Any]) -> None:
    assert {r.outcome.value for r in ledger.service.post(events)} == {"appended"}


def tax_balances(ledger: Ledger) -> dict[str, int]:
    ledger.runner.run()
    rows = ledger.views.query(
        "SELECT account, debits_minor, credits_minor FROM account_balances WHERE account LIKE ? OR account LIKE ?",
        ["%tax_payable%", "seller:%:pending:%"],
    )
    return {str(a): int(c) - int(d) for a, d, c in rows if int(c) != int(d)}


def test_consumption_tax_inside_the_total_and_mexican_withholdings(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        post(ledger, [
            # MX, 2026 rules. 116.00 MXN: IVA = 116.00 × 16 / 116 = 16.00, net 100.00.
            # MX-S7-001 has a registered RFC: ISR 2.5% of 100.00 = 2.50, IVA withheld 8% = 8.00.
            order("M1", "MX", "116.00", "MXN", "MX-S7-001", when="2026-10-01T10:00:00-06:00"),
            # Seller without a registered RFC: ISR 2.50, IVA withheld 16% = 16.00.
            order("M2", "MX", "116.00", "MXN", "MX-NORFC", when="2026-10-01T10:00:00-06:00"),
            # 2025 rules (valid to 2026-01-01) without RFC: ISR 20% = 20.00, IVA 16% = 16.00.
            order("M3", "MX", "116.00", "MXN", "MX-OLD", when="2025-10-01T10:00:00-06:00"),
            # BR default ICMS 18%: 10.00 × 18 / 118 = 1.5254… → 1.53; net 8.47.
            order("B1", "BR", "10.00", "BRL", "BR-1"),
            # CL IVA 19%, no decimals: 1000 × 19 / 119 = 159.66… → 160; net 840.
            order("C1", "CL", "1000", "CLP", "CL-1", when="2026-10-01T10:00:00-03:00"),
        ])  # fmt: skip
        done = taxes.assess(ledger)
        assert {(t.order_id, t.kind, t.total) for t in done} == {
            ("M1", "consumption", "16.00"), ("M1", "withholding", "10.50"),
            ("M2", "consumption", "16.00"), ("M2", "withholding", "18.50"),
            ("M3", "consumption", "16.00"), ("M3", "withholding", "36.00"),
            ("B1", "consumption", "1.53"), ("C1", "consumption", "160"),
        }  # fmt: skip
        assert {t.outcome for t in done} == {"appended"}
        b = tax_balances(ledger)
        assert b["platform:main:tax_payable.iva:MXN"] == 4800
        assert b["platform:main:tax_payable.isr_withheld:MXN"] == 250 + 250 + 2000
        assert b["platform:main:tax_payable.iva_withheld:MXN"] == 800 + 1600 + 1600
        assert b["seller:MX-S7-001:pending:MXN"] == -2650
        assert b["platform:main:tax_payable.icms:BRL"] == 153 and b["platform:main:tax_payable.iva:CLP"] == 160
        assert taxes.assess(ledger) == []  # once per order and kind


def test_import_duties_at_the_recorded_rate_replace_the_consumption_tax(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        fix = "2026-09-30T13:00:00-03:00"
        rate = ev("fx.rate_published", {"base": "BRL", "quote": "USD", "rate": "0.18", "source": "BCB PTAX",
                                        "as_of": fix}, when=fix)  # fmt: skip
        post(ledger, [rate, order("X1", "BR", "300.00", "BRL", "CN-1", "CN")])
        [duty] = taxes.assess(ledger)
        # The buyer paid 300.00 BRL × 0.18 = 54.00 USD, duties included. The customs value is the largest v
        # with v + duties(v) ≤ 54.00: v = 37.35 (band up to USD 50 of Remessa Conforme from 2024-08-01):
        # II 20% = 7.47; ICMS 17% by gross-up = (37.35 + 7.47) × 17 / 83 = 9.18; 37.35 + 7.47 + 9.18 = 54.00.
        # In BRL at the same rate: 7.47 / 0.18 = 41.50; 9.18 / 0.18 = 51.00.
        assert (duty.kind, duty.total, duty.outcome) == ("import", "92.50", "appended")
        b = tax_balances(ledger)
        assert b["platform:main:tax_payable.ii:BRL"] == 4150 and b["platform:main:tax_payable.icms:BRL"] == 5100
        line = ledger.views.query("SELECT lines FROM tax_assessments WHERE order_id = 'X1'")[0][0]
        assert '"base":{"amount":"37.35","currency":"USD"}' in str(line)


def test_the_customs_value_takes_the_duties_out_of_what_the_buyer_paid() -> None:
    import datetime as dt
    from decimal import Decimal

    from domain.taxes.assess import customs_value
    from domain.taxes.quotes import import_quote, import_regime

    regime = import_regime(config_files.import_duties(), "BR", "CN", dt.date(2026, 10, 1))
    # DOMAIN.md's example: USD 50 of goods → +10.00 II, +12.29 ICMS = 72.29 paid.
    assert customs_value(regime, Decimal("72.29")) == Decimal("50.00")
    # One cent less cannot carry USD 50 of goods: 49.99 → II 10.00 (9.998), ICMS 12.28.
    assert customs_value(regime, Decimal("72.28")) == Decimal("49.99")
    # Above the band edge the 60% rate minus USD 20 applies: 80.00 paid = 54.00 + 12.40 + 13.60.
    assert customs_value(regime, Decimal("80.00")) == Decimal("54.00")
    for paid in ("0.50", "10.00", "72.30", "999.99", "5000.00"):
        value = customs_value(regime, Decimal(paid))
        assert import_quote(regime, value).total <= Decimal(paid)


def test_a_cross_border_order_without_a_recorded_rate_waits_and_writes_nothing(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        post(ledger, [order("X2", "BR", "300.00", "BRL", "CN-1", "CN")])
        head = ledger.store.head()
        [waiting] = taxes.assess(ledger)
        assert waiting.outcome == "waiting" and "no BRL/USD rate recorded" in waiting.reason
        assert ledger.store.head() == head


def test_a_cancelled_order_has_its_taxes_reversed(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        post(ledger, [order("M9", "MX", "232.00", "MXN", "MX-S7-001", when="2026-10-01T10:00:00-06:00")])
        assert len(taxes.assess(ledger)) == 2
        post(ledger, [ev("order.cancelled", {"order_id": "M9", "reason": "buyer changed mind"},
                         when="2026-10-02T10:00:00-06:00")])  # fmt: skip
        reversed_ = taxes.assess(ledger)
        assert sorted((t.kind, t.action, t.total) for t in reversed_) == [
            ("consumption", "tax.reversed", "32.00"), ("withholding", "tax.reversed", "21.00")
        ]  # fmt: skip
        assert tax_balances(ledger) == {}
        assert taxes.assess(ledger) == []


def test_bad_assessments_are_refused_naming_the_field(ledger_url: str) -> None:
    def assessed(kind: str, value: str, ccy: str = "MXN", seller: str = "MX-S7-001") -> Any:
        line = {"name": "IVA", "base": amt("100.00", ccy), "rate_pct": "16", "amount": amt(value, ccy)}
        return ev("tax.assessed", {"assessment_id": f"T-{kind}", "order_id": "M5", "seller_id": seller, "site": "MX",
                                   "kind": kind, "lines": [line], "rule": "manual"})  # fmt: skip

    with open_ledger(ledger_url) as ledger:
        post(ledger, [order("M5", "MX", "116.00", "MXN", "MX-S7-001")])
        reasons = [r.reason for r in ledger.service.post([assessed("consumption", "116.01")])]
        assert reasons == ["payload.lines: taxes of 116.01 MXN exceed the order total 116.00 MXN"]
        [r] = ledger.service.post([assessed("consumption", "16.00", "BRL")])
        assert r.reason == "payload.lines.0.amount.currency: BRL is not the order's currency MXN"
        [r] = ledger.service.post([assessed("consumption", "16.00", seller="OTHER")])
        assert r.reason == "payload.seller_id: OTHER is not the order's seller MX-S7-001"
        post(ledger, [assessed("consumption", "16.00")])
        [r] = ledger.service.post([assessed("consumption", "16.00")])
        assert r.reason == "payload.kind: consumption tax of order M5 was already assessed"


@pytest.fixture
def doubled_mx_vat(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    table = config_files.consumption_taxes()
    doubled = {"name": "IVA", "rate_pct": "32"}
    changed = ConsumptionTable.model_validate({
        "version": "changed",
        "rule": [r.model_dump() if r.site != "MX" else {**r.model_dump(), "components": [doubled]}
                 for r in table.rule],
    })  # fmt: skip
    monkeypatch.setattr(config_files, "consumption_taxes", lambda path=None: changed)
    yield


def test_a_replay_after_the_tax_table_changed_books_exactly_what_was_booked(ledger_url: str, request: Any) -> None:
    with open_ledger(ledger_url) as ledger:
        post(ledger, [order("M7", "MX", "116.00", "MXN", "MX-S7-001", when="2026-10-01T10:00:00-06:00")])
        taxes.assess(ledger)
        before = ledger.runner.checksums()
        request.getfixturevalue("doubled_mx_vat")  # the table changes after the booking
        assert config_files.consumption_taxes().version == "changed"
        ledger.runner.rebuild()
        assert ledger.runner.checksums() == before
        assert taxes.assess(ledger) == []  # the order keeps the tax it was assessed
        post(ledger, [order("M8", "MX", "132.00", "MXN", "MX-S7-001", when="2026-10-01T10:00:00-06:00")])
        [new] = [t for t in taxes.assess(ledger) if t.kind == "consumption"]
        assert new.total == "32.00"  # 132.00 × 32 / 132: a new order gets the new table
