"""The settlement half of ``quipu demo``: day by day, the business events of the day (with
some late deliveries), the settlement run (which also grants delay compensations), Monday
payouts over the cheapest route (USD for cross-border sellers, EUR for two Brazilian
sellers, local currency for the rest), bank confirmations days later, a planted AML hold
that a case clears, and what it all shows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

from rich.console import Console

from adapters import aml, config_history, demo_aml, fx_accounting, settlement, taxes
from adapters.bootstrap import Ledger
from adapters.demo import iter_jsonl
from adapters.jsonl import post_lines
from adapters.reports import Format, render
from domain.service import PostResult
from domain.settlement.routes import RouteError
from ledger.errors import QuipuError
from ledger.money import format_amount

LAST_DAY: Final = dt.date(2026, 11, 30)
EUR_SELLERS: Final = ("BR-S7-001", "BR-S7-002")
HOLD_ON, CLEAR_ON = dt.date(2026, 10, 15), dt.date(2026, 10, 25)


def _utc_day(event: dict[str, Any]) -> dt.date:
    return dt.datetime.fromisoformat(event["occurred_at"]).astimezone(dt.UTC).date()


def _ev(kind: str, when: dt.datetime, payload: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    return {"event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "type": kind, "schema_version": 1,
            "occurred_at": when.isoformat(), "source": "demo-bank", "payload": payload}  # fmt: skip


def simulate(ledger: Ledger, events: list[dict[str, Any]], seed: int, tick: Callable[[int], None]) -> dict[str, Any]:
    """Post ``events`` day by day with the settlement machinery in between; a summary of what happened."""
    rng = random.Random(f"settlement-{seed}")  # not the generator's stream: its ids would repeat
    by_day: dict[dt.date, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_day[_utc_day(e)].append(e)
    for e in _deliveries(events, rng):
        by_day[_utc_day(e)].append(e)
    for e in demo_aml.planted(seed):
        by_day[_utc_day(e)].append(e)
    story: dict[str, Any] = {"runs": Counter(), "amounts": defaultdict(Decimal), "payouts": [], "problems": [],
                             "held": None, "posted": 0, "revaluation": [],
                             "cleared_case": None}  # fmt: skip
    in_flight: list[tuple[dt.date, dict[str, Any]]] = []
    # The rules the month runs under, published first: `quipu config status` shows them in force.
    for name in config_history.FILES:
        config_history.publish(ledger, name, dt.date(2026, 1, 1), "finance (demo)",
                               at=dt.datetime(2026, 9, 30, tzinfo=dt.UTC))  # fmt: skip
    day = min(by_day)
    while day <= LAST_DAY:
        _confirm_arrivals(ledger, day, in_flight, rng, story)
        for o in settlement.close_day(ledger, day):
            if o.outcome == "appended":
                story["runs"][o.kind] += 1
                if o.currency:
                    story["amounts"][(o.kind, o.currency)] += Decimal(o.amount)
            if o.outcome == "rejected":
                story["problems"].append(f"{day}: {o.kind} {o.party}: {o.reason}")
        todays = by_day.get(day, [])
        if todays:
            summary = post_lines(ledger.service, iter_jsonl(todays), 1000, tick)
            story["posted"] += summary.appended
            story["problems"] += [f"event {n}: {outcome}: {reason}" for n, outcome, reason in summary.problems]
        if day == HOLD_ON:
            story["held"] = _plant_hold(ledger, day)
        if day == CLEAR_ON and story["held"]:
            at = dt.datetime.combine(day, dt.time(15), dt.UTC)
            settlement.release_hold(ledger, story["held"][0], "case AML-1 cleared by compliance (ana)", at)
        if day == demo_aml.PLANT_DAY + dt.timedelta(days=1):
            _pass_through(ledger, day, story)
        if day == demo_aml.PLANT_DAY + dt.timedelta(days=6):
            story["cleared_case"] = _clear_one_case(ledger, day)
        if day.weekday() == 0:
            _pay_out(ledger, day, in_flight, rng, story)
        if day == dt.date(2026, 11, 1):  # October closed: IAS 21 revaluation at the month-end fixes
            story["revaluation"] = fx_accounting.revalue(ledger, dt.date(2026, 10, 31))
        day += dt.timedelta(days=1)
    ledger.runner.run()
    return story


def _deliveries(events: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """Every order that is not cancelled is delivered 2 to 7 days after it was placed; one in 60
    is late against its 7-day promise (1 to 12 days), reported by the carrier, then delivered."""
    cancelled = {e["payload"]["order_id"] for e in events if e["type"] == "order.cancelled"}
    out = []
    for e in events:
        if e["type"] != "order.placed" or e["payload"]["order_id"] in cancelled:
            continue
        placed = dt.datetime.fromisoformat(e["occurred_at"])
        oid = e["payload"]["order_id"]
        ship = {"order_id": oid, "shipment_id": f"SH-{oid}",
                "carrier": rng.choice(("correios", "estafeta", "andreani", "chilexpress", "servientrega"))}  # fmt: skip
        if rng.random() < 1 / 60:
            days = rng.randint(1, 12)
            late = placed + dt.timedelta(days=7 + days)
            out.append(_ev("delivery.delayed", late, {
                **ship, "promised_on": (placed + dt.timedelta(days=7)).date().isoformat(), "days_late": days,
            }, rng))  # fmt: skip
            delivered = late + dt.timedelta(hours=rng.randint(1, 30))
        else:
            delivered = placed + dt.timedelta(days=rng.randint(2, 7), hours=rng.randint(0, 12))
        out.append(_ev("delivery.confirmed", delivered, {**ship, "delivered_at": delivered.isoformat()}, rng))
    return out


def _pass_through(ledger: Ledger, day: dt.date, story: dict[str, Any]) -> None:
    """The planted pass-through seller takes out what was released at midnight within the hour."""
    ledger.runner.run()
    found = [p for p in settlement.positions(ledger, day, demo_aml.PASS_THROUGH) if p.currency == "BRL"]
    if found and found[0].available > 0:
        at = dt.datetime.combine(day, dt.time(0, 40), dt.UTC)
        amount = format_amount(found[0].available, "BRL")
        _, result = settlement.request_payout(ledger, demo_aml.PASS_THROUGH, amount, "BRL", "BRL", "acct-pt", None, at)
        _check([result], story)


def _clear_one_case(ledger: Ledger, day: dt.date) -> str | None:
    """Compliance reviews the structuring case and clears it: its freeze and hold are lifted."""
    ledger.runner.run()
    cases = ledger.views.query("SELECT case_id FROM aml_cases WHERE seller_id = ?", [demo_aml.CLEARED])
    if not cases:
        return None
    case_id = str(cases[0][0])
    at = dt.datetime.combine(day, dt.time(15), dt.UTC)
    aml.decide(ledger, case_id, "assign", "compliance lead", "L1 triage", at, assignee="ana")
    aml.decide(ledger, case_id, "note", "ana", "three invoices from one industrial buyer, contracts on file",
               at + dt.timedelta(hours=1))  # fmt: skip
    aml.decide(ledger, case_id, "clear", "ana", "legitimate B2B sales; documents verified", at + dt.timedelta(hours=2))
    return case_id


def _plant_hold(ledger: Ledger, day: dt.date) -> tuple[str, str, str] | None:
    """An AML alert holds half of the richest BRL seller's available funds."""
    ledger.runner.run()
    rich = max((p for p in settlement.positions(ledger, day) if p.currency == "BRL"), key=lambda p: p.available)
    if rich.available < 2:
        return None
    amount = f"{rich.available // 2 // 100}.{rich.available // 2 % 100:02d}"
    at = dt.datetime.combine(day, dt.time(14), dt.UTC)
    r = settlement.place_hold(ledger, rich.seller_id, amount, "BRL", "aml", "ALERT-AML-1", at, "H-AML-1")
    return ("H-AML-1", rich.seller_id, amount) if r.outcome.value == "appended" else None


def _pay_out(
    ledger: Ledger, day: dt.date, in_flight: list[tuple[dt.date, dict[str, Any]]], rng: random.Random,
    story: dict[str, Any],
) -> None:  # fmt: skip
    """Every Monday at 13:30 São Paulo time each seller is paid all its available funds."""
    at = dt.datetime.combine(day, dt.time(16, 30), dt.UTC)
    ledger.runner.run()
    for p in settlement.positions(ledger, day):
        if p.available <= 0:
            continue
        if p.currency in ("USD", "EUR"):  # converted by the seller's rules: paid out as it is
            target = p.currency
        else:
            target = "USD" if p.seller_id.startswith("CN-") else "EUR" if p.seller_id in EUR_SELLERS else p.currency
        amount = format_amount(p.available, p.currency)
        try:
            event, result = settlement.request_payout(
                ledger,
                p.seller_id,
                amount,
                p.currency,
                target,
                f"acct-{p.seller_id}-{target.lower()}",
                None,
                at,
                f"{p.seller_id}-{p.currency}-{day:%Y%m%d}",
            )
        except RouteError as exc:
            # Below every route's minimum (SWIFT has one): the funds wait for next week.
            story["runs"]["payout waiting (below route minimum)"] += 1
            if "--amount" not in str(exc):
                story["problems"].append(f"{day}: payout of {p.seller_id}: {exc}")
            continue
        except QuipuError as exc:
            story["problems"].append(f"{day}: payout of {p.seller_id}: {exc}")
            continue
        if result.outcome.value != "appended":
            if "is frozen by AML case" in (result.reason or ""):
                story["runs"]["payout refused (AML freeze)"] += 1
            else:
                story["problems"].append(f"{day}: payout of {p.seller_id}: {result.reason}")
            continue
        body = event["payload"]
        route = body["route"]
        chosen = next(o for o in route["compared"] if o["name"] == route["chosen"])
        fee = Decimal(body["fee"]["amount"]) if body["fee"] else Decimal(0)
        story["payouts"].append((target, route["chosen"], Decimal(chosen["delivered"]), fee, p.currency))
        base = {"payout_id": body["payout_id"], "seller_id": p.seller_id, "amount": body["amount"]}
        sent = _ev("payout.sent", at + dt.timedelta(minutes=5), {**base, "bank_reference": f"REF{rng.getrandbits(40)}"},
                   rng)  # fmt: skip
        _check(ledger.service.post([sent]), story)
        in_flight.append((max(day + dt.timedelta(days=1), dt.date.fromisoformat(chosen["arrives_on"])), base))


def _confirm_arrivals(
    ledger: Ledger, day: dt.date, in_flight: list[tuple[dt.date, dict[str, Any]]], rng: random.Random,
    story: dict[str, Any],
) -> None:  # fmt: skip
    """The bank confirms payouts that arrive today; about one in 40 bounces and returns its funds."""
    due = [item for item in in_flight if item[0] <= day]
    in_flight[:] = [item for item in in_flight if item[0] > day]
    at = dt.datetime.combine(day, dt.time(12), dt.UTC)
    batch = []
    for _, base in due:
        if rng.random() < 0.025:
            batch.append(_ev("payout.failed", at, {**base, "reason": "beneficiary account closed"}, rng))
            story["runs"]["payout.failed"] += 1
        else:
            batch.append(_ev("payout.settled", at, {**base, "settled_on": day.isoformat()}, rng))
            story["runs"]["payout.settled"] += 1
    if batch:
        _check(ledger.service.post(batch), story)


def _check(results: list[PostResult], story: dict[str, Any]) -> None:
    story["problems"] += [f"{r.outcome.value}: {r.reason}" for r in results if r.outcome.value not in ("appended",)]


def _month_grid(ledger: Ledger, site: str, first: dt.date, out: Console) -> None:
    """A month as weeks × weekdays: each day's settlement batch, or why banks are closed."""
    from rich.table import Table

    from adapters import config_files
    from domain.settlement.calendar import build_calendar

    last = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    calendar = build_calendar(config_files.calendars(), site, [first.year])
    batches = {r["date"]: r for r in settlement.batch_rows(ledger, first, last, site)}
    grid = Table(title=f"{site} settlement calendar, {first:%B %Y}: batches settling each bank day", show_lines=True)
    for name in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"):
        grid.add_column(name, justify="right")
    week: list[str] = [""] * first.weekday()
    day = first
    while day <= last:
        closed = calendar.closed.get(day)
        b = batches.get(day.isoformat())
        note = (
            f"[red]closed[/red]\n{closed[0][:18]}"
            if closed
            else f"{b['amount']}\n{b['installments']} inst."
            if b
            else ""
        )
        week.append(f"[bold]{day.day}[/bold]\n{note}")
        if len(week) == 7:
            grid.add_row(*week)
            week = []
        day += dt.timedelta(days=1)
    if week:
        grid.add_row(*week, *[""] * (7 - len(week)))
    out.print(grid)


def show(ledger: Ledger, story: dict[str, Any], out: Console) -> None:
    """The settlement calendars of a month with Carnival and one with Mexican bank holidays, the
    runs, payouts, late deliveries and a hold."""
    for site, first in (("BR", dt.date(2027, 2, 1)), ("MX", dt.date(2026, 11, 1))):
        _month_grid(ledger, site, first, out)
    runs = [{"event": kind, "count": n,
             "totals": ", ".join(f"{v} {c}" for (k, c), v in sorted(story["amounts"].items()) if k == kind)}
            for kind, n in sorted(story["runs"].items())]  # fmt: skip
    render(runs, Format.table, "settlement runs, Oct 1 to Nov 30: releases, reserves, deficit recoveries, payouts", out)
    by_target: dict[str, list[Any]] = defaultdict(list)
    for item in story["payouts"]:
        by_target[item[0]].append(item)
    paid = [{"paid in": t, "payouts": len(items), "delivered": str(sum((i[2] for i in items), Decimal(0))),
             "routes chosen": ", ".join(f"{r} ×{n}" for r, n in Counter(i[1] for i in items).most_common())}
            for t, items in sorted(by_target.items())]  # fmt: skip
    render(paid, Format.table, "payouts by the currency delivered", out)
    recovered = ledger.views.query(
        "SELECT seller_id, currency, SUM(amount_minor) FROM seller_flows WHERE kind = 'recovered' "
        "GROUP BY seller_id, currency ORDER BY SUM(amount_minor) DESC LIMIT 1"
    )
    if recovered:
        seller = str(recovered[0][0])
        title = f"a seller charged back after release: {seller}'s deficit was recovered before payouts"
        render(settlement.seller_rows(ledger, seller, LAST_DAY), Format.table, title, out)
    late = ledger.views.query(
        "SELECT o.site, o.currency, COUNT(*), COUNT(c.order_id), COALESCE(SUM(c.amount_minor), 0), "
        "MAX(c.funded_by) FROM logistics_delays d JOIN logistics_orders o ON o.order_id = d.order_id "
        "LEFT JOIN logistics_compensations c ON c.order_id = d.order_id GROUP BY o.site, o.currency ORDER BY o.site"
    )
    late_rows = [{"site": s, "late deliveries": n, "compensated": k, "funded by": f or "",
                  "store credit": f"{format_amount(int(a), str(c))} {c}"} for s, c, n, k, a, f in late]  # fmt: skip
    title = "late deliveries: compensated automatically beyond each site's threshold (config/logistics.toml)"
    render(late_rows, Format.table, title, out)
    if story["revaluation"]:
        title = "IAS 21 revaluation of the platform's FX positions at 31 Oct 2026 (USD; reversed on 1 Nov)"
        render([dataclasses.asdict(r) for r in story["revaluation"]], Format.table, title, out)
    demo_aml.show(ledger, story["cleared_case"], out)
    render(taxes.summary_rows(ledger), Format.table, "tax summary per site: assessed by each day's run, "
           "reversals deducted (what the platform owes each authority)", out)  # fmt: skip
    if story["held"]:
        hold_id, seller, amount = story["held"]
        out.print(f"AML hold {hold_id}: {amount} BRL of {seller} held on {HOLD_ON}, kept out of the "
                  f"{HOLD_ON + dt.timedelta(days=(7 - HOLD_ON.weekday()) % 7)} payout, released on {CLEAR_ON} "
                  "when case AML-1 was cleared")  # fmt: skip
