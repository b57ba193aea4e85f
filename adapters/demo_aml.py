"""The AML part of ``quipu demo``: each typology planted among the month's normal traffic, by
new sellers whose ids say what they do, and what the AML projection and interception made of it."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import Any, Final

from rich.console import Console

from adapters import aml
from adapters.bootstrap import Ledger
from adapters.reports import Format, render

PLANT_DAY: Final = dt.date(2026, 10, 12)
PASS_THROUGH: Final = "BR-AML-PASS"
CLEARED: Final = "BR-AML-STRUCT"


def _ev(kind: str, when: dt.datetime, payload: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    return {"event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "type": kind, "schema_version": 1,
            "occurred_at": when.isoformat(), "source": "demo-aml", "payload": payload}  # fmt: skip


def _sale(n: int, seller: str, value: str, when: dt.datetime, rng: random.Random, buyer: str = "B-AML",
          site: str = "BR", country: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    ccy = {"BR": "BRL", "MX": "MXN"}[site]
    oid, pid = f"{seller}-O{n}", f"{seller}-P{n}"
    order: dict[str, Any] = {"order_id": oid, "site": site, "buyer_id": buyer, "seller_id": seller,
                             "total": {"amount": value, "currency": ccy}}  # fmt: skip
    if country:
        order["seller_country"] = country
    pay = {"payment_id": pid, "seller_id": seller, "psp": "cielo", "amount": {"amount": value, "currency": ccy}}
    method = {"kind": "pix", "end_to_end_id": f"E{rng.getrandbits(40)}"} if site == "BR" else {"kind": "account_money"}
    return [
        _ev("order.placed", when, order, rng),
        _ev("payment.authorized", when + dt.timedelta(seconds=5), {**pay, "order_id": oid, "method": method}, rng),
        _ev("payment.captured", when + dt.timedelta(seconds=20), pay, rng),
    ]


def planted(seed: int) -> list[dict[str, Any]]:
    """The planted typologies' events (around 12 October 2026)."""
    rng = random.Random(f"aml-{seed}")
    t = dt.datetime.combine(PLANT_DAY, dt.time(13), dt.UTC)
    out: list[dict[str, Any]] = []
    for i, value in enumerate(("49500.00", "48200.00", "46990.00")):  # structuring: just below R$50,000
        out += _sale(i, CLEARED, value, t + dt.timedelta(hours=5 * i), rng)
    for i in range(22):  # velocity: 22 orders within an hour
        out += _sale(i, "MX-AML-VELO", "850.00", t + dt.timedelta(minutes=2 * i), rng, site="MX")
    for i in range(5):  # round amounts
        out += _sale(i, "BR-AML-ROUND", f"{(i + 3) * 1000}.00", t + dt.timedelta(hours=12 * i), rng)
    for i in range(13):  # mule fan-in: 13 distinct buyers to a seller first seen today
        out += _sale(i, "BR-AML-MULE", "390.00", t + dt.timedelta(minutes=45 * i), rng, buyer=f"B-MULE-{i}")
    out += _sale(0, "BR-AML-RISK", "780.00", t, rng, country="IR")  # high-risk jurisdiction
    out += _sale(0, "BR-AML-BIG", "61000.00", t, rng)  # reporting threshold
    out += _sale(0, PASS_THROUGH, "7000.00", t, rng)  # released tomorrow, paid out within the hour
    refunds = _sale(0, "BR-AML-REFUND", "2000.00", t, rng)
    for i in range(5):  # refund abuse: five refunds within a week
        refunds.append(_ev("refund.issued", t + dt.timedelta(days=i, hours=1), {
            "refund_id": f"BR-AML-REFUND-R{i}", "payment_id": "BR-AML-REFUND-P0", "seller_id": "BR-AML-REFUND",
            "psp": "cielo", "amount": {"amount": "150.00", "currency": "BRL"}}, rng))  # fmt: skip
    # Travel rule: a cross-border SWIFT payout above USD 1,000 sent without originator/beneficiary data.
    out += _sale(0, "BR-AML-TRAVEL", "9000.00", t, rng)
    out.append({**_ev("payout.requested", t + dt.timedelta(days=2), {
        "payout_id": "BR-AML-TRAVEL-W1", "seller_id": "BR-AML-TRAVEL",
        "amount": {"amount": "6000.00", "currency": "BRL"}, "rail": "swift", "destination": "acct-offshore",
        "fee": None, "route": None, "travel_rule": None,
    }, rng), "schema_version": 2})  # fmt: skip
    return out + refunds


def show(ledger: Ledger, cleared: str | None, out: Console) -> None:
    """The alerts, the interceptions and the cleared case."""
    rows = [{k: r[k] for k in ("seller", "typology", "severity", "evidence", "summary", "case", "status")}
            for r in aml.alerts(ledger)]  # fmt: skip
    render(rows, Format.table, "AML alerts on the month (each typology planted once among normal traffic)", out)
    if cleared:
        render(aml.case_rows(ledger, cleared), Format.table, f"case {cleared}: intercepted, then cleared", out)
