"""The tax process manager: every placed order gets its taxes assessed (consumption tax or
import duties, and withholdings where a site has them) by the rules in force on its date;
a cancelled order's assessments are reversed. Event ids derive from the order and the tax
kind, so a rerun proposes duplicates, never a second assessment."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from adapters import config_files
from adapters.bootstrap import Ledger
from adapters.rates import stored_rate
from domain.taxes.assess import NAMESPACE, Order, UsdRate, consumption, has_import_regime, import_duties, withholding
from ledger.errors import QuipuError
from ledger.money import format_amount


@dataclass(frozen=True, slots=True)
class TaxOutcome:
    """One assessment or reversal the manager proposed (or could not make yet), and its fate."""

    order_id: str
    kind: str
    action: str
    total: str
    currency: str
    outcome: str
    reason: str


def _orders(ledger: Ledger) -> list[Order]:
    regions = {str(k): v for k, v in config_files.regions().region_config.items()}
    rows = ledger.views.query(
        "SELECT o.order_id, o.site, o.seller_id, o.currency, o.total_minor, o.seller_country, o.placed_at "
        "FROM tax_orders o LEFT JOIN tax_assessments a ON a.order_id = o.order_id "
        "LEFT JOIN tax_cancelled c ON c.order_id = o.order_id "
        "WHERE a.order_id IS NULL AND c.order_id IS NULL ORDER BY o.placed_at, o.order_id"
    )
    out = []
    for oid, site, seller, ccy, total, country, placed in rows:
        at = dt.datetime.fromisoformat(str(placed))
        local = at.astimezone(ZoneInfo(regions[str(site)].time_zone)).date()
        out.append(Order(str(oid), str(site), str(seller), str(ccy), int(total), str(country), at, local))
    return out


def _reversals(ledger: Ledger) -> list[dict[str, Any]]:
    rows = ledger.views.query(
        "SELECT a.order_id, a.kind, a.assessment_id, a.site, a.seller_id, a.lines, c.cancelled_at "
        "FROM tax_assessments a JOIN tax_cancelled c ON c.order_id = a.order_id "
        "LEFT JOIN tax_reversals r ON r.order_id = a.order_id AND r.kind = a.kind "
        "WHERE r.order_id IS NULL ORDER BY a.order_id, a.kind"
    )
    return [
        {"event_id": str(uuid.uuid5(NAMESPACE, f"reversal:{kind}:{oid}")), "type": "tax.reversed",
         "schema_version": 1, "occurred_at": str(cancelled), "source": "tax-assessment",
         "payload": {"assessment_id": aid, "order_id": oid, "seller_id": seller, "site": site, "kind": kind,
                     "lines": orjson.loads(str(lines)), "reason": "the order was cancelled"}}
        for oid, kind, aid, site, seller, lines, cancelled in rows
    ]  # fmt: skip


def assess(ledger: Ledger) -> list[TaxOutcome]:
    """Assess every order not assessed yet, and reverse the assessments of cancelled orders."""
    ledger.runner.run()
    consumption_table, duties = config_files.consumption_taxes(), config_files.import_duties()
    withholding_table, fx = config_files.withholding(), config_files.fx_settings()
    events: list[dict[str, Any]] = []
    waiting: list[TaxOutcome] = []
    for order in _orders(ledger):
        try:
            if has_import_regime(duties, order):
                found = stored_rate(ledger.views, order.currency, "USD", order.placed_at, fx.official_fix_minutes)
                first = import_duties(order, duties, UsdRate(found.rate, found.source, found.as_of))
            else:
                first = consumption(order, consumption_table)
            proposed = [first, withholding(order, withholding_table, consumption_table)]
        except QuipuError as exc:
            waiting.append(TaxOutcome(order.order_id, "", "waiting", "", order.currency, "waiting", str(exc)))
            continue
        events += [e for e in proposed if e is not None]
    events += _reversals(ledger)
    results = ledger.service.post(events) if events else []
    ledger.runner.run()
    done = []
    for e, r in zip(events, results, strict=True):
        p = e["payload"]
        total = sum(int(line["amount"]["amount"].replace(".", "")) for line in p["lines"])
        ccy = p["lines"][0]["amount"]["currency"]
        done.append(TaxOutcome(p["order_id"], p["kind"], e["type"], format_amount(total, ccy), ccy, r.outcome.value,
                               r.reason or ""))  # fmt: skip
    return done + waiting


def summary_rows(ledger: Ledger, site: str | None = None) -> list[dict[str, Any]]:
    """Taxes assessed less reversed, per site, kind and tax: what the platform owes each authority."""
    ledger.runner.run()
    where, params = ("WHERE site = ?", [site]) if site else ("", [])
    rows = ledger.views.query(
        f"SELECT site, kind, tax, currency, amount_minor, lines FROM tax_summary {where} "
        "ORDER BY site, kind, tax, currency",
        params,
    )
    return [
        {"site": s, "kind": k, "tax": t, "currency": c, "amount": format_amount(int(a), str(c)), "lines": int(n)}
        for s, k, t, c, a, n in rows
    ]
