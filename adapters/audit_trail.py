"""``quipu audit trail``: every entry that touched an account, or an entry and what corrected it."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import orjson

from adapters.bootstrap import Ledger
from ledger.accounts import Side, normal_side_of, parse_account
from ledger.errors import AccountNameError, QuipuError
from ledger.money import format_amount


def _when(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1_000_000, dt.UTC).isoformat()


def corrections(ledger: Ledger) -> dict[str, list[dict[str, Any]]]:
    """Adjustments that name what they correct, by the corrected event id (or reference)."""
    out: dict[str, list[dict[str, Any]]] = {}
    rows = ledger.views.query("SELECT position FROM journal_entries WHERE event_type = 'adjustment.posted'")
    for (position,) in rows:
        record = ledger.store.read(int(position) - 1, 1)[0]
        payload = orjson.loads(record.body)["payload"]
        if payload.get("corrects"):
            out.setdefault(payload["corrects"], []).append(
                {
                    "position": record.position,
                    "event_id": str(record.event_id),
                    "reason": payload["reason"],
                    "author": payload["author"],
                }
            )
    return out


def account_trail(ledger: Ledger, account: str) -> list[dict[str, Any]]:
    """Each posting on ``account`` in log order, with its event, memo, running balance and corrections."""
    try:
        parsed = parse_account(account)
    except AccountNameError as exc:
        raise QuipuError(f"account: {exc}") from None
    normal = normal_side_of(account)
    fixes = corrections(ledger)
    rows = ledger.views.query(
        "SELECT p.position, e.event_id, e.event_type, e.memo, p.debit_minor, p.credit_minor, p.occurred_at_us, "
        "e.recorded_at_us FROM journal_postings p JOIN journal_entries e ON e.position = p.position "
        "WHERE p.account = ? ORDER BY p.position, p.line",
        (account,),
    )
    balance = 0
    out = []
    for position, event_id, kind, memo, dr, cr, occurred, recorded in rows:
        balance += (dr - cr) if normal is Side.DEBIT else (cr - dr)
        out.append(
            {
                "position": position,
                "event_id": event_id,
                "type": kind,
                "memo": memo,
                "debit": format_amount(dr, parsed.currency),
                "credit": format_amount(cr, parsed.currency),
                "balance": format_amount(balance, parsed.currency),
                "currency": parsed.currency,
                "occurred_at": _when(occurred),
                "recorded_at": _when(recorded),
                "corrected_by": ",".join(str(c["position"]) for c in fixes.get(event_id, [])),
            }
        )
    return out


def entry_trail(ledger: Ledger, ref: str) -> list[dict[str, Any]]:
    """The entry of one event (by position or event id), its postings, and the adjustments that correct it."""
    if ref.isdigit():
        where, param = "position = ?", int(ref)
    else:
        try:
            param = str(uuid.UUID(ref))  # type: ignore[assignment]
        except ValueError:
            raise QuipuError(f"{ref!r} is neither an account, a log position nor an event id") from None
        where = "event_id = ?"
    entries = ledger.views.query(
        "SELECT position, event_id, event_type, memo, occurred_at_us, recorded_at_us FROM journal_entries "
        f"WHERE {where}",
        (param,),
    )
    if not entries:
        raise QuipuError(f"no journal entry for {ref} (events that book nothing have none; run `quipu project`?)")
    position, event_id, kind, memo, occurred, recorded = entries[0]
    postings = ledger.views.query(
        "SELECT line, account, currency, debit_minor, credit_minor FROM journal_postings WHERE position = ? "
        "ORDER BY line",
        (position,),
    )
    out: list[dict[str, Any]] = [
        {
            "position": position,
            "event_id": event_id,
            "type": kind,
            "line": line,
            "account": account,
            "debit": format_amount(dr, ccy),
            "credit": format_amount(cr, ccy),
            "currency": ccy,
            "memo": memo,
            "occurred_at": _when(occurred),
            "recorded_at": _when(recorded),
        }
        for line, account, ccy, dr, cr in postings
    ]
    for fix in corrections(ledger).get(event_id, []):
        for row in entry_trail(ledger, str(fix["position"])):
            out.append({**row, "memo": f"corrects {event_id}: {row['memo']}"})
    return out
