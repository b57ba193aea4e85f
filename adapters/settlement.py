"""Settlement operations over a ledger: positions as of a date, the daily run, schedules,
batches, holds and payout requests with their cheapest route.

Reads come from the settlement projection (brought to the head of the log first); every
change is an event posted through the ledger service, so the write side's rules (a payout
or a hold never exceeds available funds) decide, under the wallet's concurrency control.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import orjson

from adapters import aml, config_files, logistics, taxes
from adapters.bootstrap import Ledger, settlement_policy
from adapters.rates import RecordedRate, stored_rate
from adapters.recorded import recorded_event, retry_result
from domain.catalog import canonical_bytes, parse_event
from domain.fx_rules import conversion_events
from domain.ids import derived_event, derived_event_id, derived_id
from domain.service import Outcome, PostResult
from domain.settlement.positions import Position, position
from domain.settlement.routes import RouteError, RoutePrice, RouteTable, cheapest, price_routes
from domain.settlement.run import DueReserve, plan
from ledger.errors import QuipuError
from ledger.money import format_amount, parse_amount

Row = dict[str, Any]
OPS_NAMESPACE: Final = uuid.UUID("0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0")


class SettlementError(QuipuError, ValueError):
    """A settlement request that cannot be served as asked; names the option and why."""


def _day_end_us(day: dt.date) -> int:
    """Microseconds since the epoch at the end of ``day`` (UTC): captures up to it count."""
    start = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
    return int(start.timestamp()) * 1_000_000


def positions(ledger: Ledger, as_of: dt.date, seller: str | None = None) -> list[Position]:
    """Every seller's (or one seller's) position per currency as of the end of ``as_of``."""
    where, params = ("AND seller_id = ?", [seller]) if seller else ("", [])
    day = as_of.isoformat()
    flows: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for s, ccy, kind, total in ledger.views.query(
        f"SELECT seller_id, currency, kind, SUM(amount_minor) FROM seller_flows WHERE day <= ? {where} "
        "GROUP BY seller_id, currency, kind",
        [day, *params],
    ):
        flows[(str(s), str(ccy))][str(kind)] = int(total)
    settled = {
        (str(s), str(ccy)): int(total)
        for s, ccy, total in ledger.views.query(
            "SELECT seller_id, currency, SUM(amount_minor) FROM settlement_schedule s "
            "WHERE settles_on <> '' AND settles_on <= ? AND captured_at_us < ? AND (gated = 0 OR EXISTS "
            "(SELECT 1 FROM settlement_deliveries d WHERE d.order_id = s.order_id AND d.release_from <= ?)) "
            f"{where} GROUP BY seller_id, currency",
            [day, _day_end_us(as_of), day, *params],
        )
    }
    return [position(s, ccy, f, settled.get((s, ccy), 0)) for (s, ccy), f in sorted(flows.items())]


def funds_currency(ledger: Ledger, seller: str | None, on: dt.date) -> str:
    """The one currency a seller holds available funds in (for commands that leave --from out)."""
    if seller is None:
        raise SettlementError("--from: give the currency of the funds, or --seller to take it from their balance")
    ledger.runner.run()
    found = positions(ledger, on, seller)
    funded = [p.currency for p in found if p.available > 0] or [p.currency for p in found]
    if len(funded) != 1:
        where = f"funds in {', '.join(funded)}" if funded else "no funds"
        raise SettlementError(f"--from: seller {seller} has {where}; say which currency with --from")
    return funded[0]


def due_reserves(ledger: Ledger, as_of: dt.date) -> list[DueReserve]:
    """Rolling-reserve holds still held whose release date has come."""
    rows = ledger.views.query(
        "SELECT hold_id, seller_id, currency, amount_minor FROM settlement_holds "
        "WHERE reason = 'reserve' AND released_on = '' AND release_on <> '' AND release_on <= ? "
        "ORDER BY hold_id, seller_id",
        [as_of.isoformat()],
    )
    return [DueReserve(str(h), str(s), str(c), int(a)) for h, s, c, a in rows]


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """One event of a settlement run and what the ledger did with it."""

    kind: str
    party: str
    """The seller, or the buyer of a compensation."""
    amount: str
    currency: str
    outcome: str
    reason: str


def run(ledger: Ledger, run_date: dt.date) -> list[RunOutcome]:
    """Release what is due, place and release reserves, recover deficits, for ``run_date``."""
    ledger.runner.run()
    events = plan(run_date, positions(ledger, run_date), due_reserves(ledger, run_date),
                  config_files.settlement_methods())  # fmt: skip
    results = ledger.service.post(events) if events else []
    ledger.runner.run()
    outcomes = [
        RunOutcome(
            e["type"], e["payload"]["seller_id"], e["payload"]["amount"]["amount"], e["payload"]["amount"]["currency"],
            r.outcome.value, r.reason or "",
        )
        for e, r in zip(events, results, strict=True)
    ]  # fmt: skip
    # The daily run is also when the compensation process manager catches up.
    return outcomes


def convert(ledger: Ledger, run_date: dt.date) -> list[RunOutcome]:
    """Apply the sellers' automatic conversion rules to their available funds, through locked quotes
    at the latest recorded rate (a stale or missing rate leaves the funds and says so)."""
    rules, fx = config_files.conversion_rules(), config_files.fx_settings()
    at = dt.datetime.combine(run_date, dt.time(0, 2), dt.UTC)
    policy = settlement_policy()
    sites = {ccy: site for site, ccy in ((s, r.currency) for s, r in sorted(policy.regions.region_config.items()))}
    events: list[dict[str, Any]] = []
    outcomes: list[RunOutcome] = []
    ledger.runner.run()
    for p in positions(ledger, run_date):
        rule = rules.for_seller(p.seller_id, sites.get(p.currency), p.currency, run_date)
        if rule is None or rule.target == p.currency or p.available <= 0:
            continue
        amount = Decimal(format_amount(p.available, p.currency))
        if amount < Decimal(rule.min_amount):
            continue
        try:
            rate = stored_rate(ledger.views, p.currency, rule.target, at)
        except QuipuError as exc:
            outcomes.append(RunOutcome("fx.converted", p.seller_id, str(amount), p.currency, "waiting", str(exc)))
            continue
        key = f"{p.seller_id}:{p.currency}:{rule.target}:{run_date}:{p.converted_out}"
        events += conversion_events(p.seller_id, p.currency, rule.target, amount, rate.rate,
                                    Decimal(fx.default_markup), rate.source, rate.as_of, at,
                                    dt.timedelta(seconds=fx.lock_seconds), key)  # fmt: skip
    results = ledger.service.post(events) if events else []
    ledger.runner.run()
    for e, r in zip(events, results, strict=True):
        if e["type"] == "fx.converted":
            src = e["payload"]["source"]
            outcomes.append(RunOutcome("fx.converted", e["payload"]["seller_id"], src["amount"], src["currency"],
                                       r.outcome.value, r.reason or ""))  # fmt: skip
    return outcomes


def close_day(ledger: Ledger, run_date: dt.date) -> list[RunOutcome]:
    """The daily run: taxes of new orders first (what is withheld is a deduction the releases
    must net), then :func:`run`, then the sellers' automatic conversions of what was released,
    then the delivery-delay compensations that are due."""
    outcomes = [RunOutcome(t.action, t.order_id, t.total, t.currency, t.outcome, t.reason)
                for t in taxes.assess(ledger) if t.outcome != "waiting"]  # fmt: skip
    # Interception before releases and payouts: a seller caught today is frozen before it is paid.
    outcomes += [RunOutcome("aml.intercepted", i.seller_id, "0", "", i.outcome, f"{i.case_id}: {i.typology}")
                 for i in aml.intercept(ledger)]  # fmt: skip
    outcomes += run(ledger, run_date)
    outcomes += convert(ledger, run_date)
    outcomes += [RunOutcome("compensation.granted", c.buyer_id, c.amount, c.currency, c.outcome, c.reason)
                 for c in logistics.compensate(ledger)]  # fmt: skip
    return outcomes


def _op_event(kind: str, version: int, key: str, at: dt.datetime, source: str, payload: Any) -> dict[str, Any]:
    """An event an operator's command posts; its id derives from ``key``, so a retry is a duplicate."""
    return derived_event(OPS_NAMESPACE, key, kind, at, source, payload, version)


def _payout_key(seller: str, payout_id: str) -> str:
    """What a payout request's event id derives from: the same seller and payout id are the same request."""
    return f"payout:{seller}:{payout_id}"


def _money(minor: int, ccy: str) -> str:
    return format_amount(minor, ccy)


def seller_rows(ledger: Ledger, seller: str, as_of: dt.date) -> list[Row]:
    """A seller's balances per currency as of a date; an unknown seller is an error."""
    ledger.runner.run()
    found = positions(ledger, as_of, seller)
    if not found:
        raise SettlementError(f"seller: no events of seller {seller!r} up to {as_of.isoformat()}")
    return [
        {
            "currency": p.currency,
            "pending": _money(p.not_yet_due, p.currency),
            "due": _money(max(0, p.due), p.currency),
            "deficit": _money(p.deficit, p.currency),
            "available": _money(p.available, p.currency),
            "held": _money(p.held - p.reserved, p.currency),
            "reserved": _money(p.reserved, p.currency),
            "in_payout": _money(p.in_payout, p.currency),
            "paid_out": _money(p.paid_out, p.currency),
            "captured": _money(p.captured, p.currency),
            "deductions": _money(p.deductions, p.currency),
        }
        for p in found
    ]


def schedule_rows(ledger: Ledger, on: dt.date, site: str | None = None) -> list[Row]:
    """Every installment settling on a date (optionally on one site)."""
    ledger.runner.run()
    where, params = ("AND site = ?", [site]) if site else ("", [])
    rows = ledger.views.query(
        "SELECT site, currency, seller_id, payment_id, installment, of_installments, method, amount_minor, rule "
        f"FROM settlement_schedule WHERE settles_on = ? {where} ORDER BY site, currency, seller_id, payment_id, "
        "installment",
        [on.isoformat(), *params],
    )
    return [
        {"site": s, "currency": c, "seller": sel, "payment": pay, "installment": f"{k}/{n}", "method": m,
         "amount": _money(int(a), str(c)), "rule": rule}
        for s, c, sel, pay, k, n, m, a, rule in rows
    ]  # fmt: skip


def batch_rows(ledger: Ledger, start: dt.date, end: dt.date, site: str | None = None) -> list[Row]:
    """Daily settlement batches per site and currency between two dates (inclusive)."""
    ledger.runner.run()
    where, params = ("AND site = ?", [site]) if site else ("", [])
    rows = ledger.views.query(
        "SELECT settles_on, site, currency, amount_minor, items FROM settlement_batches "
        f"WHERE settles_on >= ? AND settles_on <= ? {where} ORDER BY settles_on, site, currency",
        [start.isoformat(), end.isoformat(), *params],
    )
    return [
        {"date": d, "site": s, "currency": c, "amount": _money(int(a), str(c)), "installments": int(n)}
        for d, s, c, a, n in rows
    ]


def route_table() -> RouteTable:
    """The payout corridors in force (``config/payout_routes.toml``)."""
    return config_files.route_table()


@dataclass(frozen=True, slots=True)
class Priced:
    """Every route priced for one payout, ranked, with the rate used and each arrival date."""

    routes: list[RoutePrice]
    arrives_on: dict[str, dt.date]
    rate: RecordedRate | None
    table_version: str


def price(ledger: Ledger, amount: str, source: str, target: str, within: int | None, at: dt.datetime) -> Priced:
    """Every route for a payout of ``amount`` ``source`` paid as ``target``, ranked; arrival dates
    count only the days both the source and the target bank calendars are open."""
    value = parse_amount(amount, source, "--amount")
    table = route_table()
    if not any(r.source == source and r.target == target for r in table.route):
        raise RouteError(f"--to: no payout route from {source} to {target}")
    rate = None
    if source != target:
        ledger.runner.run()
        rate = stored_rate(ledger.views, source, target, at)
    routes = price_routes(table, value, source, target, rate.rate if rate else None, within)
    policy = settlement_policy()
    by_name = {r.name: r for r in table.route}
    arrives = {
        p.name: policy.payout_arrival(source, target, at, by_name[p.name].cutoff, p.days_to_arrive) for p in routes
    }
    return Priced(routes, arrives, rate, table.version)


def request_payout(
    ledger: Ledger,
    seller: str,
    amount: str,
    currency: str,
    target: str,
    destination: str,
    within: int | None,
    at: dt.datetime,
    payout_id: str | None = None,
) -> tuple[dict[str, Any], PostResult]:
    """Price the routes, pick the cheapest that arrives in time, and request the payout.

    ``amount`` leaves the seller's available funds: the route's fee is taken from it and the
    rest is sent. The event records every route compared.
    """
    if payout_id is not None and (retried := _retried_payout(ledger, seller, payout_id, amount, currency, target,
                                                             destination)) is not None:  # fmt: skip
        return retried
    ledger.runner.run()
    if not ledger.views.query("SELECT 1 FROM seller_flows WHERE seller_id = ? LIMIT 1", [seller]):
        raise SettlementError(f"--seller: unknown seller {seller!r} (no events)")
    priced = price(ledger, amount, currency, target, within, at)
    prices = priced.routes
    chosen = cheapest(prices, within)
    fee = chosen.fee
    sent = chosen.amount - fee
    if sent <= 0:
        raise SettlementError(f"--amount: {amount} {currency} does not cover the {chosen.name} fee of {fee}")
    pid = payout_id or derived_id("PO-", f"{seller}:{at.isoformat()}:{amount}:{target}")
    payload: dict[str, Any] = {
        "payout_id": pid,
        "seller_id": seller,
        "amount": {"amount": str(sent), "currency": currency},
        "rail": chosen.rail,
        "destination": destination,
        "fee": {"amount": str(fee), "currency": currency} if fee > 0 else None,
        "route": {
            "chosen": chosen.name,
            "table_version": priced.table_version,
            "compared": [
                {"name": p.name, "rail": p.rail, "fee": str(p.fee), "total_cost": str(p.total_cost),
                 "delivered": str(p.delivered), "days_to_arrive": p.days_to_arrive,
                 "arrives_on": priced.arrives_on[p.name].isoformat(), "eligible": p.eligible,
                 "reason": p.reason or ""}
                for p in prices
            ],
            "reference_rate": format(priced.rate.rate, "f") if priced.rate else None,
            "rate_source": priced.rate.source if priced.rate else None,
            "rate_as_of": priced.rate.as_of.isoformat() if priced.rate else None,
        },
    }  # fmt: skip
    if priced.rate is not None or chosen.rail == "swift":
        # Cross-border: FATF R.16 data travels with the payout (the platform is the originator).
        payload["travel_rule"] = {
            "originator_name": "Quipu Marketplace Ltda", "originator_account": "platform payouts account",
            "originator_id": "LEI QUIPUMARKETPLACE", "beneficiary_name": f"seller {seller}",
            "beneficiary_account": destination,
        }  # fmt: skip
    event = _op_event("payout.requested", 2, _payout_key(seller, pid), at, "quipu payout request", payload)
    [result] = ledger.service.post([event])
    if result.outcome is Outcome.CONFLICT and payout_id is not None:
        # The same request, sent twice at once in different seconds: the other one was recorded first.
        retried = _retried_payout(ledger, seller, payout_id, amount, currency, target, destination)
        if retried is not None:
            return retried
    ledger.runner.run()
    if result.outcome in (Outcome.APPENDED, Outcome.DUPLICATE):
        event = orjson.loads(canonical_bytes(parse_event(event)))  # as recorded, so a retry answers the same
    return event, result


def _retried_payout(
    ledger: Ledger, seller: str, pid: str, amount: str, currency: str, target: str, destination: str
) -> tuple[dict[str, Any], PostResult] | None:
    """The recorded request when this payout id was already requested, as a duplicate or a conflict.

    What identifies the request is what the caller asked for (seller, amount, currency, target
    currency, destination), not the time, rates or calendars it was priced at.
    """
    event_id = derived_event_id(OPS_NAMESPACE, _payout_key(seller, pid))
    if (found := recorded_event(ledger, event_id)) is None:
        return None
    position, event = found
    recorded = event["payload"]
    gross = Decimal(recorded["amount"]["amount"]) + Decimal((recorded.get("fee") or {}).get("amount", "0"))
    route = recorded.get("route") or {}
    by_name = {r.name: r.target for r in route_table().route}
    asked = {"amount": parse_amount(amount, currency, "--amount"), "currency": currency, "to": target,
             "destination": destination}  # fmt: skip
    was = {"amount": gross, "currency": recorded["amount"]["currency"],
           "to": by_name.get(route.get("chosen", ""), target), "destination": recorded["destination"]}  # fmt: skip
    return event, retry_result(event_id, position, "payout_id", pid, asked, was)


def place_hold(
    ledger: Ledger, seller: str, amount: str, currency: str, reason: str, reference: str | None, at: dt.datetime,
    hold_id: str | None = None,
) -> PostResult:  # fmt: skip
    """Hold part of a seller's available funds."""
    value = parse_amount(amount, currency, "--amount")
    hid = hold_id or derived_id("H-", f"{seller}:{at.isoformat()}:{amount}:{reason}")
    payload: dict[str, Any] = {
        "hold_id": hid, "seller_id": seller, "amount": {"amount": str(value), "currency": currency},
        "reason": reason, "reference": reference,
    }  # fmt: skip
    event = _op_event("funds.held", 1, f"hold:{seller}:{hid}", at, "quipu hold place", payload)
    [result] = ledger.service.post([event])
    ledger.runner.run()
    return result


def release_hold(
    ledger: Ledger, hold_id: str, decided_by: str, at: dt.datetime, seller: str | None = None
) -> PostResult:
    """Release a hold whole (its amount and currency come from the projection).

    A hold id is unique per seller only (the settlement run names reserves by day and
    currency), so ``seller`` is needed when several sellers hold under the same id.
    """
    ledger.runner.run()
    sql = "SELECT seller_id, currency, amount_minor, released_on FROM settlement_holds WHERE hold_id = ?"
    rows = (
        ledger.views.query(f"{sql} AND seller_id = ?", [hold_id, seller])
        if seller
        else ledger.views.query(f"{sql} ORDER BY seller_id", [hold_id])
    )
    if not rows:
        whose = f" on seller {seller}" if seller else ""
        raise SettlementError(f"HOLD_ID: no hold {hold_id!r}{whose}")
    if len(rows) > 1:
        sellers = ", ".join(str(r[0]) for r in rows)
        raise SettlementError(f"HOLD_ID: hold {hold_id} exists on several sellers ({sellers}); say which with --seller")
    owner, ccy, minor, released_on = rows[0]
    if released_on:
        raise SettlementError(f"HOLD_ID: hold {hold_id} was already released on {released_on}")
    payload = {"hold_id": hold_id, "seller_id": owner, "decided_by": decided_by,
               "amount": {"amount": _money(int(minor), str(ccy)), "currency": ccy}}  # fmt: skip
    # The seller is part of the derived id since hold ids stopped being global; a second
    # release of the same hold is refused by the write side whatever its id.
    event = _op_event("hold.released", 1, f"unhold:{owner}:{hold_id}", at, "quipu hold release", payload)
    [result] = ledger.service.post([event])
    ledger.runner.run()
    return result
