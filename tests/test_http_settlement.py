"""The settlement, payout, tax and AML routes over HTTP: scopes, problems naming the field, and
the same outcomes as the CLI — against a real server on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from adapters import settlement
from adapters.bootstrap import open_ledger
from tests.factories import amt, ev
from tests.test_http import _quipu, _secret_of, _token, serve  # noqa: F401  (the fixture)

WHEN = "2026-10-05T12:00:00-03:00"


def _seed(url: str) -> None:
    import datetime as dt

    pix = {"kind": "pix", "end_to_end_id": "E1"}
    events: list[Any] = [
        ev("order.placed", {"order_id": "o1", "site": "BR", "buyer_id": "B", "seller_id": "S1", "total": amt("300.00"),
                            "seller_country": "IR"}, when=WHEN),
        ev("payment.authorized", {"payment_id": "p1", "order_id": "o1", "seller_id": "S1", "psp": "cielo",
                                  "amount": amt("300.00"), "method": pix}, when=WHEN),
        ev("payment.captured", {"payment_id": "p1", "seller_id": "S1", "psp": "cielo", "amount": amt("300.00")},
           when=WHEN),
        ev("order.placed", {"order_id": "o2", "site": "BR", "buyer_id": "B", "seller_id": "S2", "total": amt("200.00")},
           when=WHEN),
        ev("payment.authorized", {"payment_id": "p2", "order_id": "o2", "seller_id": "S2", "psp": "cielo",
                                  "amount": amt("200.00"), "method": pix}, when=WHEN),
        ev("payment.captured", {"payment_id": "p2", "seller_id": "S2", "psp": "cielo", "amount": amt("200.00")},
           when=WHEN),
    ]  # fmt: skip
    with open_ledger(url) as ledger:
        assert {r.outcome.value for r in ledger.service.post(events)} == {"appended"}
        settlement.close_day(ledger, dt.date(2026, 10, 6))  # releases; intercepts S1 (high-risk jurisdiction)


def test_payouts_balances_and_aml_cases_over_http(serve: Callable[..., httpx.Client], ledger_url: str) -> None:  # noqa: F811
    _seed(ledger_url)
    ops = _secret_of(_quipu("clients", "add", "ops", "--scope", "payouts:write", "--scope", "ledger:read",
                            "--database", ledger_url))  # fmt: skip
    compliance = _secret_of(_quipu("clients", "add", "compliance", "--scope", "aml:read", "--scope", "aml:write",
                                   "--database", ledger_url))  # fmt: skip
    api = serve()
    h_ops = {"Authorization": f"Bearer {_token(api, 'ops', ops)}"}
    h_aml = {"Authorization": f"Bearer {_token(api, 'compliance', compliance)}"}
    # Scopes: AML routes refuse the ops token, payouts refuse the compliance token.
    assert api.get("/v1/aml/alerts", headers=h_ops).status_code == 403
    assert api.post("/v1/payouts", headers=h_aml, json={"seller_id": "S2", "amount": "1.00",
                                                        "currency": "BRL"}).status_code == 403  # fmt: skip
    assert api.get("/v1/sellers/S2/balance").status_code == 401
    balance = api.get("/v1/sellers/S2/balance", headers=h_ops, params={"as_of": "2026-10-06"})
    assert balance.status_code == 200
    available = balance.json()[0]["available"]
    too_much = api.post("/v1/payouts", headers=h_ops, json={"seller_id": "S2", "amount": "999.00", "currency": "BRL"})
    assert too_much.status_code == 422 and too_much.headers["content-type"].startswith("application/problem+json")
    assert "payload.amount: payout of" in too_much.json()["detail"]
    ok = api.post("/v1/payouts", headers=h_ops, json={"seller_id": "S2", "amount": available, "currency": "BRL",
                                                      "payout_id": "W1"})  # fmt: skip
    assert ok.status_code == 201 and ok.json()["event"]["payload"]["route"]["chosen"] == "pix-brl"
    again = api.post("/v1/payouts", headers=h_ops, json={"seller_id": "S2", "amount": available, "currency": "BRL",
                                                         "payout_id": "W1"})  # fmt: skip
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert again.json()["event"] == ok.json()["event"]  # in the same second or not (the server stamps the time)
    changed = api.post("/v1/payouts", headers=h_ops, json={"seller_id": "S2", "amount": "0.01", "currency": "BRL",
                                                           "payout_id": "W1"})  # fmt: skip
    assert changed.status_code == 409 and "payout_id: W1 was already requested with amount" in changed.json()["detail"]
    assert api.get("/v1/sellers/NOPE/balance", headers=h_ops).status_code == 404
    # S1 was frozen by the high-risk-jurisdiction alert: its payout is refused, naming the case.
    [alert] = api.get("/v1/aml/alerts", headers=h_aml, params={"seller": "S1"}).json()
    frozen = api.post("/v1/payouts", headers=h_ops, json={"seller_id": "S1", "amount": "10.00", "currency": "BRL"})
    assert frozen.status_code == 422 and f"frozen by AML case {alert['case']}" in frozen.json()["detail"]
    clear = {"action": "clear", "by": "ana", "text": "KYC verified", "action_id": "C-1"}
    cleared = api.post(f"/v1/aml/cases/{alert['case']}/actions", headers=h_aml, json=clear)
    assert cleared.status_code == 200 and cleared.json()["outcomes"][:2] == ["appended", "appended"]
    retried = api.post(f"/v1/aml/cases/{alert['case']}/actions", headers=h_aml, json=clear)
    assert retried.status_code == 200 and retried.json()["outcomes"] == ["duplicate"]
    bad_id = api.post(f"/v1/aml/cases/{alert['case']}/actions", headers=h_aml, json={**clear, "action_id": "C 1;"})
    assert bad_id.status_code == 422 and "action_id" in bad_id.text
    clash = api.post(f"/v1/aml/cases/{alert['case']}/actions", headers=h_aml, json={**clear, "action": "escalate"})
    assert (
        clash.status_code == 409 and "action_id: C-1 was already requested with action clear" in clash.json()["detail"]
    )
    timeline = api.get(f"/v1/aml/cases/{alert['case']}", headers=h_aml).json()
    assert [step["action"] for step in timeline] == ["open", "clear"]
    assert api.get("/v1/aml/cases/CASE-NONE", headers=h_aml).status_code == 404
    unpaid = api.post("/v1/payouts", headers=h_ops, json={"seller_id": "S1", "amount": "10.00", "currency": "BRL"})
    assert unpaid.status_code == 201
    assert api.get("/v1/taxes/summary", headers=h_ops).status_code == 200
    assert api.get("/v1/settlement/batches", headers=h_ops, params={"from": "2026-10-01"}).status_code == 200


def test_reconciliation_exceptions_over_http(
    serve: Callable[..., httpx.Client],  # noqa: F811
    ledger_url: str,
    tmp_path: Any,
) -> None:
    from adapters.bootstrap import open_ledger
    from adapters.demo_recon import reconcile_month
    from tests.test_reconciliation import UNTIL, _post_month, _quiet

    with open_ledger(ledger_url) as ledger:
        _post_month(ledger, seed=41, events=1200)
        reconcile_month(ledger, _quiet(), tmp_path / "files", UNTIL)
    finance = _secret_of(_quipu("clients", "add", "finance", "--scope", "recon:read", "--scope", "recon:write",
                                "--database", ledger_url))  # fmt: skip
    reader = _secret_of(_quipu("clients", "add", "viewer", "--scope", "recon:read", "--database", ledger_url))
    api = serve()
    h_fin = {"Authorization": f"Bearer {_token(api, 'finance', finance)}"}
    h_read = {"Authorization": f"Bearer {_token(api, 'viewer', reader)}"}
    assert api.get("/v1/reconciliation/exceptions").status_code == 401
    rows = api.get("/v1/reconciliation/exceptions", headers=h_read, params={"as_of": UNTIL.isoformat()}).json()
    assert sorted(r["category"] for r in rows) == sorted(
        ["missing_at_processor", "fee_mismatch", "duplicate", "fx_rounding", "timing"]
    )
    timing = next(r for r in rows if r["category"] == "timing")
    body = {"resolution": "accepted_timing", "decided_by": "ana", "note": "late credit"}
    url = f"/v1/reconciliation/exceptions/{timing['exception_id']}/resolution"
    assert api.post(url, headers=h_read, json=body).status_code == 403
    done = api.post(url, headers=h_fin, json=body)
    assert done.status_code == 201, done.text
    again = api.post(url, headers=h_fin, json=body)  # a retry: the recorded decision, written once
    assert again.status_code == 200 and again.json() == done.json()
    other = api.post(url, headers=h_fin, json={**body, "note": "changed my mind"})
    assert other.status_code == 422 and other.headers["content-type"].startswith("application/problem+json")
    assert "already closed" in other.json()["detail"]
    assert api.post("/v1/reconciliation/exceptions/RXNOPE/resolution", headers=h_fin, json=body).status_code == 404
    bad = api.post(url, headers=h_fin, json={**body, "resolution": "ignored"})
    assert bad.status_code == 422
    left = api.get("/v1/reconciliation/exceptions", headers=h_read, params={"as_of": UNTIL.isoformat()}).json()
    assert len(left) == len(rows) - 1
