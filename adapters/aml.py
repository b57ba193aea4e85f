"""AML interception and case decisions over the AML projection.

``intercept`` is the process manager: every high-severity alert without a case opens one,
freezes the seller's payouts and holds its available funds, in one batch, with ids derived
from the alert (a rerun is a duplicate). ``decide`` records a case action; clearing a case
also lifts its freeze and releases its holds in the same batch, confirming keeps them and
marks the report due.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Final

import orjson

from adapters.bootstrap import Ledger
from adapters.recorded import recorded_event, retry_result
from domain.ids import derived_event, derived_event_id
from domain.service import PostResult
from ledger.errors import QuipuError
from ledger.money import format_amount

NAMESPACE: Final = uuid.UUID("9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4")
OPENER: Final = "aml-interception"


class AmlError(QuipuError, ValueError):
    """An AML command that cannot be carried out as asked."""


def _event(kind: str, key: str, at: dt.datetime, source: str, payload: dict[str, Any]) -> dict[str, Any]:
    return derived_event(NAMESPACE, f"{kind}:{key}", kind, at, source, payload)


def _event_id(kind: str, key: str) -> uuid.UUID:
    """The id :func:`_event` gives the ``kind`` event of ``key``."""
    return derived_event_id(NAMESPACE, f"{kind}:{key}")


def _case_of(alert_id: str) -> str:
    return "CASE-" + alert_id.removeprefix("AML-")


def _freeze_of(case_id: str) -> str:
    return "FRZ-" + case_id.removeprefix("CASE-")


@dataclass(frozen=True, slots=True)
class Interception:
    """A case the manager opened on a high-severity alert, and what it froze and held."""

    case_id: str
    seller_id: str
    typology: str
    held: str
    outcome: str
    reason: str


def intercept(ledger: Ledger) -> list[Interception]:
    """Open a case, freeze and hold for every high-severity alert that has no case yet."""
    ledger.runner.run()
    rows = ledger.views.query(
        "SELECT a.alert_id, a.seller_id, a.site, a.typology, a.raised_at_us FROM aml_alerts a "
        "LEFT JOIN aml_cases c ON c.alert_ids = a.alert_id WHERE a.severity = 'high' AND c.case_id IS NULL "
        "ORDER BY a.position"
    )
    done: list[Interception] = []
    for alert_id, seller, site, typology, raised_us in rows:
        case_id = _case_of(str(alert_id))
        at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(raised_us) + 1_000_000)
        events = [
            _event("aml.case_opened", case_id, at, OPENER, {
                "case_id": case_id, "seller_id": seller, "site": site or None, "alert_ids": [alert_id],
                "typologies": [typology], "opened_by": OPENER,
            }),
            _event("seller.frozen", case_id, at, OPENER, {
                "freeze_id": _freeze_of(case_id), "seller_id": seller, "case_id": case_id,
                "reason": f"high-severity AML alert {alert_id} ({typology})",
            }),
        ]  # fmt: skip
        held = []
        for account, debits, credits in ledger.views.query(
            "SELECT account, debits_minor, credits_minor FROM account_balances WHERE account LIKE ?",
            [f"seller:{seller}:available:%"],
        ):
            ccy, minor = str(account).rsplit(":", 1)[1], int(credits) - int(debits)
            if minor > 0:
                amount = format_amount(minor, ccy)
                events.append(_event("funds.held", f"{case_id}:{ccy}", at, OPENER, {
                    "hold_id": f"AMLH-{ccy}-{case_id.removeprefix('CASE-')}"[:64], "seller_id": seller,
                    "amount": {"amount": amount, "currency": ccy}, "reason": "aml", "reference": case_id,
                }))  # fmt: skip
                held.append(f"{amount} {ccy}")
        results = ledger.service.post(events)
        worst = next((r for r in results if r.outcome.value in ("rejected", "conflict")), results[0])
        done.append(Interception(case_id, str(seller), str(typology), ", ".join(held) or "nothing available",
                                 worst.outcome.value, worst.reason or ""))  # fmt: skip
    ledger.runner.run()
    return done


def decide(
    ledger: Ledger, case_id: str, action: str, by: str, text: str, at: dt.datetime,
    assignee: str | None = None, report: str | None = None, action_id: str | None = None,
) -> list[PostResult]:  # fmt: skip
    """Record a case action; a clear also lifts the case's freeze and releases its holds.

    With ``action_id`` (the caller's own id for this step) a retry is answered from the log: a
    duplicate when it asks the same, a conflict naming what differs; without one, every call is a
    new step of the case.
    """
    asked = {"action": action, "by": by, "text": text, "assignee": assignee, "report": report}
    key = f"{case_id}:id:{action_id}" if action_id is not None else None
    if key is not None:
        event_id = _event_id("aml.case_action", key)
        if (found := recorded_event(ledger, event_id)) is not None:
            position, event = found
            return [retry_result(event_id, position, "action_id", action_id or "", asked, event["payload"])]
    ledger.runner.run()
    rows = ledger.views.query("SELECT seller_id, status FROM aml_cases WHERE case_id = ?", [case_id])
    if not rows:
        raise AmlError(f"CASE_ID: no case {case_id!r}")
    seller = str(rows[0][0])
    if key is None:
        key = f"{case_id}:{len(ledger.views.query('SELECT 1 FROM aml_case_log WHERE case_id = ?', [case_id]))}:{action}"
    payload: dict[str, Any] = {"case_id": case_id, "seller_id": seller, **asked}
    events = [_event("aml.case_action", key, at, f"aml:{by}", payload)]
    if action == "clear":
        events.append(_event("seller.unfrozen", case_id, at, f"aml:{by}", {
            "freeze_id": _freeze_of(case_id), "seller_id": seller, "case_id": case_id, "decided_by": by,
        }))  # fmt: skip
        suffix = case_id.removeprefix("CASE-")
        for hold_id, ccy, minor in ledger.views.query(
            "SELECT hold_id, currency, amount_minor FROM settlement_holds WHERE seller_id = ? AND reason = 'aml' "
            "AND released_on = '' ORDER BY hold_id",
            [seller],
        ):
            if str(hold_id).endswith(suffix):
                events.append(_event("hold.released", str(hold_id), at, f"aml:{by}", {
                    "hold_id": hold_id, "seller_id": seller, "decided_by": f"case {case_id} cleared by {by}",
                    "amount": {"amount": format_amount(int(minor), str(ccy)), "currency": ccy},
                }))  # fmt: skip
    results = ledger.service.post(events)
    ledger.runner.run()
    return results


def alerts(ledger: Ledger, seller: str | None = None, severity: str | None = None) -> list[dict[str, Any]]:
    """Alerts with their evidence, newest last."""
    ledger.runner.run()
    where, params = [], []
    if seller:
        where.append("a.seller_id = ?")
        params.append(seller)
    if severity:
        where.append("a.severity = ?")
        params.append(severity)
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    rows = ledger.views.query(
        "SELECT a.alert_id, a.seller_id, a.site, a.typology, a.severity, a.raised_at_us, a.summary, a.evidence, "
        f"c.case_id, c.status FROM aml_alerts a LEFT JOIN aml_cases c ON c.alert_ids = a.alert_id {clause} "
        "ORDER BY a.position",
        params,
    )
    out = []
    for aid, s, site, typ, sev, us, summary, evidence, case, status in rows:
        items = orjson.loads(str(evidence))
        at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(us))
        out.append({"alert": aid, "seller": s, "site": site, "typology": typ, "severity": sev,
                    "raised_at": at.isoformat(), "summary": summary, "evidence": len(items),
                    "events": " ".join(i["event_id"][:8] for i in items[:6]), "case": case or "",
                    "status": status or ""})  # fmt: skip
    return out


def case_rows(ledger: Ledger, case_id: str) -> list[dict[str, Any]]:
    """A case's timeline."""
    ledger.runner.run()
    rows = ledger.views.query(
        "SELECT at, action, by_whom, text FROM aml_case_log WHERE case_id = ? ORDER BY position", [case_id]
    )
    if not rows:
        raise AmlError(f"CASE_ID: no case {case_id!r}")
    return [{"at": a, "action": act, "by": b, "text": t} for a, act, b, t in rows]


def report_rows(ledger: Ledger, site: str, month: str) -> list[dict[str, Any]]:
    """The threshold report of a site for a month (YYYY-MM): single operations at or above the
    reporting threshold, and cases confirmed with a report due."""
    try:
        first = dt.date.fromisoformat(month + "-01")
    except ValueError:
        raise AmlError(f"--month: {month!r} is not a month such as 2026-10") from None
    nxt = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    lo = int(dt.datetime.combine(first, dt.time(), dt.UTC).timestamp()) * 1_000_000
    hi = int(dt.datetime.combine(nxt, dt.time(), dt.UTC).timestamp()) * 1_000_000
    ledger.runner.run()
    rows = ledger.views.query(
        "SELECT raised_at_us, seller_id, typology, evidence, summary FROM aml_alerts WHERE site = ? "
        "AND raised_at_us >= ? AND raised_at_us < ? AND typology IN ('reporting_threshold', 'structuring') "
        "ORDER BY raised_at_us",
        [site, lo, hi],
    )
    out = []
    for us, seller, typ, evidence, summary in rows:
        items = orjson.loads(str(evidence))
        at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(us))
        total = sum(int(i["amount"]["amount"].replace(".", "")) for i in items)
        ccy = items[0]["amount"]["currency"]
        out.append({"date": at.date().isoformat(), "seller": seller, "kind": typ, "operations": len(items),
                    "amount": format_amount(total, ccy), "currency": ccy, "detail": summary,
                    "events": " ".join(i["event_id"] for i in items)})  # fmt: skip
    return out
