"""Corrections are events: adjustments name what they correct and appear in the trail."""

from __future__ import annotations

from adapters.audit_trail import account_trail, entry_trail
from adapters.bootstrap import Ledger
from tests.factories import adjustment, authorized, captured


def test_a_correction_appears_in_the_trail_of_the_entry_and_of_the_account(ledger: Ledger) -> None:
    wrong = captured("p1", "60.00")
    fix = adjustment(
        "A-1",
        [("seller:S1:pending:BRL", "debit", "10.00", "BRL"), ("psp:cielo:receivable:BRL", "credit", "10.00", "BRL")],
        reason="capture booked 10.00 too high",
        author="ana@finance",
    )
    fix["payload"]["corrects"] = wrong["event_id"]
    ledger.service.post([authorized("p1", "100.00"), wrong, fix])
    ledger.runner.run()
    trail = account_trail(ledger, "seller:S1:pending:BRL")
    assert [(r["position"], r["credit"], r["debit"], r["balance"]) for r in trail] == [
        (2, "60.00", "0.00", "60.00"),
        (3, "0.00", "10.00", "50.00"),
    ]
    assert trail[0]["corrected_by"] == "3"
    by_id = entry_trail(ledger, str(wrong["event_id"]))
    assert entry_trail(ledger, "2") == by_id
    assert [(r["position"], r["account"]) for r in by_id] == [
        (2, "psp:cielo:receivable:BRL"),
        (2, "seller:S1:pending:BRL"),
        (3, "seller:S1:pending:BRL"),
        (3, "psp:cielo:receivable:BRL"),
    ]
    assert (
        by_id[2]["memo"]
        == f"corrects {wrong['event_id']}: adjustment A-1 by ana@finance: capture booked 10.00 too high"
    )
