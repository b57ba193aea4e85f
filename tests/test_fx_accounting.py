"""IAS 21: revaluation of open FX positions at the closing rate (reversed the next day) and
realised gains when a position is settled — worked by hand, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from adapters import fx_accounting
from adapters.bootstrap import Ledger, open_ledger
from domain.fx_rules import conversion_events
from ledger.errors import QuipuError
from tests.factories import amt, ev

AT = dt.datetime(2026, 10, 6, 12, tzinfo=dt.UTC)


def rate(value: str, as_of: str) -> Any:
    return ev("fx.rate_published", {"base": "BRL", "quote": "USD", "rate": value, "source": "BCB PTAX",
                                    "as_of": as_of}, when=as_of)  # fmt: skip


def balance(ledger: Ledger, account: str) -> int:
    rows = ledger.views.query("SELECT debits_minor - credits_minor FROM account_balances WHERE account = ?", [account])
    return int(rows[0][0]) if rows else 0


def converted(ledger: Ledger) -> None:
    # 500.00 BRL at 0.1834 with a 2% markup: the platform is long 500.00 BRL carried at 91.70 USD.
    released = ev("funds.released", {"release_id": "L1", "seller_id": "S1", "amount": amt("500.00")})
    events = conversion_events("S1", "BRL", "USD", Decimal("500.00"), Decimal("0.1834"), Decimal("0.02"), "BCB PTAX",
                               AT - dt.timedelta(hours=1), AT, dt.timedelta(minutes=5), "k1")  # fmt: skip
    assert {r.outcome.value for r in ledger.service.post([released, *events])} == {"appended"}
    ledger.runner.run()
    assert fx_accounting.positions(ledger) == [("BRL", 50000, 9170, 0)]


def test_a_period_end_gain_is_booked_and_reversed_the_next_day(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        converted(ledger)
        ledger.service.post([rate("0.19", "2026-10-31T17:00:00-03:00")])
        [r] = fx_accounting.revalue(ledger, dt.date(2026, 10, 31))
        # 500.00 × 0.19 = 95.00 USD against 91.70 carried: an unrealised gain of 3.30.
        assert (r.carrying, r.revalued, r.difference, r.outcome) == ("91.70", "95.00", "3.30", "appended")
        entries = ledger.views.query(
            "SELECT memo FROM journal_entries WHERE memo LIKE ? ORDER BY position", ["IAS 21%"]
        )
        assert [m for (m,) in entries] == [
            "IAS 21 revaluation RV-BRL-20261031 of BRL at 0.19",
            "IAS 21 reversal of revaluation RV-BRL-20261031-R of BRL at 0.19",
        ]
        # The reversal on 1 Nov leaves nothing: each period starts from the historical carrying value.
        assert balance(ledger, "platform:main:fx_unrealised:USD") == 0
        assert fx_accounting.revalue(ledger, dt.date(2026, 10, 31))[0].outcome == "duplicate"


def test_a_loss_and_a_missing_closing_rate(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        converted(ledger)
        [waiting] = fx_accounting.revalue(ledger, dt.date(2026, 10, 31))
        assert waiting.outcome == "waiting" and "no BRL/USD rate recorded" in waiting.reason
        ledger.service.post([rate("0.18", "2026-10-31T17:00:00-03:00")])
        [r] = fx_accounting.revalue(ledger, dt.date(2026, 10, 31))
        assert (r.revalued, r.difference) == ("90.00", "-1.70")  # 500.00 × 0.18 = 90.00: a loss of 1.70
        trial = ledger.views.query("SELECT debits_minor, credits_minor FROM trial_balance")
        assert all(d == c for d, c in trial)


def test_settling_half_the_position_realises_the_gap_to_its_carrying_value(ledger_url: str) -> None:
    with open_ledger(ledger_url) as ledger:
        converted(ledger)
        event, result = fx_accounting.settle_position(ledger, "BRL", "250.00", "47.00", "LP-1", AT)
        # Half of 91.70 carried = 45.85; 47.00 received: a realised gain of 1.15.
        assert result.outcome.value == "appended"
        assert (event["payload"]["carrying"], event["payload"]["realised"]) == ("45.85", "1.15")
        assert balance(ledger, "platform:main:fx_realised:USD") == -115
        assert fx_accounting.positions(ledger) == [("BRL", 25000, 4585, 0)]
        with pytest.raises(QuipuError, match=r"exceeds the open position of 250\.00"):
            fx_accounting.settle_position(ledger, "BRL", "250.01", "47.00", "LP-1", AT)
        with pytest.raises(QuipuError, match="no long MXN position"):
            fx_accounting.settle_position(ledger, "MXN", "1.00", "0.05", "LP-1", AT)
        bad = {**event["payload"], "settlement_id": "X", "received": amt("47.00", "BRL")}
        [refused] = ledger.service.post([ev("fx.position_settled", bad)])
        assert refused.reason == "payload: received: BRL is not the functional currency USD"
