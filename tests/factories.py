"""Readable event builders for scenario tests: ``captured("p1", "60.00")``."""

from __future__ import annotations

import uuid
from typing import Any

CCY = "BRL"
WHEN = "2026-10-01T10:00:00-03:00"


def ev(kind: str, payload: dict[str, Any], event_id: str | None = None, when: str = WHEN) -> dict[str, Any]:
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "type": kind,
        "schema_version": 1,
        "occurred_at": when,
        "source": "tests",
        "payload": payload,
    }


def amt(value: str, ccy: str = CCY) -> dict[str, str]:
    return {"amount": value, "currency": ccy}


def authorized(pid: str, value: str, ccy: str = CCY, seller: str = "S1", psp: str = "cielo") -> dict[str, Any]:
    return ev("payment.authorized", {
        "payment_id": pid, "order_id": f"o-{pid}", "seller_id": seller, "psp": psp,
        "amount": amt(value, ccy), "method": {"kind": "pix", "end_to_end_id": f"E{pid}"},
    })  # fmt: skip


def captured(pid: str, value: str, ccy: str = CCY, seller: str = "S1", psp: str = "cielo") -> dict[str, Any]:
    return ev("payment.captured", {"payment_id": pid, "seller_id": seller, "psp": psp, "amount": amt(value, ccy)})


def refunded(pid: str, rid: str, value: str, ccy: str = CCY, seller: str = "S1") -> dict[str, Any]:
    return ev("refund.issued", {
        "refund_id": rid, "payment_id": pid, "seller_id": seller, "psp": "cielo", "amount": amt(value, ccy),
    })  # fmt: skip


def chargeback(pid: str, cid: str, value: str, ccy: str = CCY, seller: str = "S1") -> dict[str, Any]:
    return ev("chargeback.opened", {
        "chargeback_id": cid, "payment_id": pid, "seller_id": seller, "psp": "cielo",
        "amount": amt(value, ccy), "reason_code": "10.4",
    })  # fmt: skip


def fee(fid: str, value: str, ccy: str = CCY, seller: str = "S1", kind: str = "commission") -> dict[str, Any]:
    return ev("fee.charged", {"fee_id": fid, "seller_id": seller, "kind": kind, "amount": amt(value, ccy)})


def released(rid: str, value: str, ccy: str = CCY, seller: str = "S1") -> dict[str, Any]:
    return ev("funds.released", {"release_id": rid, "seller_id": seller, "amount": amt(value, ccy)})


def payout(pid: str, value: str, ccy: str = CCY, seller: str = "S1") -> dict[str, Any]:
    return ev("payout.requested", {
        "payout_id": pid, "seller_id": seller, "amount": amt(value, ccy), "rail": "pix", "destination": "acct-1",
    })  # fmt: skip


def adjustment(
    aid: str, lines: list[tuple[str, str, str, str]], reason: str = "fix", author: str = "ana"
) -> dict[str, Any]:
    return ev("adjustment.posted", {
        "adjustment_id": aid, "reason": reason, "author": author,
        "lines": [{"account": a, "side": s, "amount": amt(v, c)} for a, s, v, c in lines],
    })  # fmt: skip


def placed(oid: str, site: str, value: str, ccy: str = CCY, seller: str = "S1") -> dict[str, Any]:
    return ev("order.placed", {
        "order_id": oid, "site": site, "buyer_id": "B1", "seller_id": seller, "total": amt(value, ccy),
    })  # fmt: skip


def held(
    hid: str, value: str, ccy: str = CCY, seller: str = "S1", reason: str = "risk", release_on: str | None = None
) -> dict[str, Any]:
    return ev("funds.held", {
        "hold_id": hid, "seller_id": seller, "amount": amt(value, ccy), "reason": reason, "release_on": release_on,
    })  # fmt: skip


def hold_released(hid: str, value: str, ccy: str = CCY, seller: str = "S1", by: str = "tests") -> dict[str, Any]:
    return ev("hold.released", {"hold_id": hid, "seller_id": seller, "amount": amt(value, ccy), "decided_by": by})


def frozen(fid: str, seller: str = "S1", case: str = "CASE-1") -> dict[str, Any]:
    return ev("seller.frozen", {"freeze_id": fid, "seller_id": seller, "case_id": case, "reason": "tests"})


def unfrozen(fid: str, seller: str = "S1", case: str = "CASE-1", by: str = "tests") -> dict[str, Any]:
    return ev("seller.unfrozen", {"freeze_id": fid, "seller_id": seller, "case_id": case, "decided_by": by})


def payout_sent(pid: str, value: str, ccy: str = CCY, seller: str = "S1") -> dict[str, Any]:
    return ev("payout.sent", {
        "payout_id": pid, "seller_id": seller, "amount": amt(value, ccy), "bank_reference": f"B-{pid}",
    })  # fmt: skip


def payout_settled(pid: str, value: str, ccy: str = CCY, seller: str = "S1", on: str = "2026-10-02") -> dict[str, Any]:
    return ev("payout.settled", {"payout_id": pid, "seller_id": seller, "amount": amt(value, ccy), "settled_on": on})


def payout_failed(pid: str, value: str, ccy: str = CCY, seller: str = "S1") -> dict[str, Any]:
    return ev("payout.failed", {"payout_id": pid, "seller_id": seller, "amount": amt(value, ccy), "reason": "bounced"})
