"""``quipu calendar`` and ``quipu settlement date``: for support staff, no store needed."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Optional

import typer

from adapters import config_files, logistics, settlement
from adapters.cli import DatabaseOpt, FormatOpt, app, fail, ledger_for, out
from adapters.params import parse_day, parse_moment
from adapters.reports import Format, render
from domain.service import PostResult
from domain.settlement.calendar import build_calendar
from domain.settlement.dates import settlement_dates
from ledger.errors import QuipuError
from ledger.money import format_amount, parse_amount

settlement_app = typer.Typer(help="Settlement dates and schedules.", no_args_is_help=True)
app.add_typer(settlement_app, name="settlement")


def _region(site: str) -> tuple[str, str, dt.time, int]:
    regions = {str(k): v for k, v in config_files.regions().region_config.items()}
    if site not in regions:
        raise QuipuError(f"--site: unknown site {site!r}")
    r = regions[site]
    return r.currency, r.time_zone, dt.time.fromisoformat(r.settlement.cutoff), r.settlement.days


@app.command("calendar")
def calendar_cmd(
    site: Annotated[str, typer.Argument(help="country site, e.g. BR")],
    year: Annotated[int, typer.Option("--year", min=1990, max=2100)] = dt.date.today().year,
    fmt: FormatOpt = Format.table,
) -> None:
    """The days the site's banks are closed (besides weekends), with their source."""
    try:
        _region(site.upper())
        calendar = build_calendar(config_files.calendars(), site.upper(), [year])
    except QuipuError as exc:
        raise fail(exc) from None
    rows = [
        {"date": day.isoformat(), "weekday": day.strftime("%a"), "name": name, "source": source}
        for day, (name, source) in sorted(calendar.closed.items())
        if day.year == year
    ]
    render(rows, fmt, f"{site.upper()} bank holidays {year}", out)


@settlement_app.command("date")
def settlement_date(
    site: Annotated[str, typer.Option("--site", help="country site, e.g. BR")],
    captured_at: Annotated[
        str, typer.Option("--captured-at", help="ISO 8601 with offset, e.g. 2027-02-05T18:30:00-03:00")
    ],
    method: Annotated[str, typer.Option("--method", help="card, pix, boleto or oxxo")] = "card",
    installments: Annotated[int, typer.Option("--installments", min=1, max=24)] = 1,
    amount: Annotated[Optional[str], typer.Option("--amount", help="split per installment when given")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """The settlement date (one row per installment) of a capture, without touching the store."""
    site = site.upper()
    try:
        currency, zone, cutoff, days = _region(site)
        try:
            when = dt.datetime.fromisoformat(captured_at.replace("Z", "+00:00"))
        except ValueError:
            raise QuipuError(f"--captured-at: {captured_at!r} is not an ISO 8601 time") from None
        if when.tzinfo is None:
            raise QuipuError(f"--captured-at: {captured_at!r} has no UTC offset")
        if amount is not None:
            amount = str(parse_amount(amount, currency, "--amount"))
        local_year = when.year
        calendar = build_calendar(config_files.calendars(), site, range(local_year - 1, local_year + 3))
        rules = config_files.settlement_methods()
        rows = settlement_dates(when, zone, cutoff, days, calendar, rules, method, installments, amount, currency)
    except QuipuError as exc:
        raise fail(exc) from None
    render(
        [
            {
                "installment": s.installment,
                "of": s.of,
                "settlement_date": s.date.isoformat(),
                "amount": str(s.amount) if s.amount is not None else "",
                "currency": s.currency or currency,
                "rule": s.rule,
            }
            for s in rows
        ],
        fmt,
        f"settlement of a {method} capture on {site} at {captured_at}",
        out,
    )


seller_app = typer.Typer(help="Sellers' balances.", no_args_is_help=True)
app.add_typer(seller_app, name="seller")
hold_app = typer.Typer(help="Holds on sellers' available funds.", no_args_is_help=True)
app.add_typer(hold_app, name="hold")
payout_app = typer.Typer(help="Payout routes and requests.", no_args_is_help=True)
app.add_typer(payout_app, name="payout")


@settlement_app.command("run")
def settlement_run(
    date: Annotated[Optional[str], typer.Option("--date", help="run date YYYY-MM-DD (default: today, UTC)")] = None,
    database: DatabaseOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """The daily run: assess new orders' taxes, release what is due, place and release rolling reserves,
    recover deficits, grant delivery-delay compensations. Idempotent per date."""
    try:
        day = parse_day(date, "--date")
        with ledger_for(database) as ledger:
            outcomes = settlement.close_day(ledger, day)
    except QuipuError as exc:
        raise fail(exc) from None
    rows = [{"event": o.kind, "party": o.party, "amount": o.amount, "currency": o.currency,
             "outcome": o.outcome, "reason": o.reason} for o in outcomes]  # fmt: skip
    render(rows, fmt, f"settlement run {day.isoformat()}: {len(rows)} events", out)
    if any(o.outcome == "rejected" for o in outcomes):
        raise typer.Exit(1)


@settlement_app.command("schedule")
def settlement_schedule(
    date: Annotated[Optional[str], typer.Option("--date", help="settlement date YYYY-MM-DD (default: today)")] = None,
    site: Annotated[Optional[str], typer.Option("--site", help="only this site")] = None,
    database: DatabaseOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Every installment that settles on a date, with the rule that placed it there."""
    try:
        day = parse_day(date, "--date")
        with ledger_for(database, must_exist=True) as ledger:
            rows = settlement.schedule_rows(ledger, day, site.upper() if site else None)
    except QuipuError as exc:
        raise fail(exc) from None
    render(rows, fmt, f"settling on {day.isoformat()}", out)


@settlement_app.command("batches")
def settlement_batches(
    start: Annotated[Optional[str], typer.Option("--from", help="first date (default: today)")] = None,
    end: Annotated[Optional[str], typer.Option("--to", help="last date (default: 30 days after --from)")] = None,
    site: Annotated[Optional[str], typer.Option("--site", help="only this site")] = None,
    database: DatabaseOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Daily settlement batches per site and currency."""
    try:
        first = parse_day(start, "--from")
        last = parse_day(end, "--to") if end else first + dt.timedelta(days=30)
        if last < first:
            raise QuipuError(f"--to: {last.isoformat()} is before --from {first.isoformat()}")
        with ledger_for(database, must_exist=True) as ledger:
            rows = settlement.batch_rows(ledger, first, last, site.upper() if site else None)
    except QuipuError as exc:
        raise fail(exc) from None
    render(rows, fmt, f"settlement batches {first.isoformat()} to {last.isoformat()}", out)


@seller_app.command("balance")
def seller_balance(
    seller: Annotated[str, typer.Argument(help="seller id")],
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="date YYYY-MM-DD (default: today)")] = None,
    database: DatabaseOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """A seller's pending, due, available, held, reserved and paid-out funds per currency."""
    try:
        day = parse_day(as_of, "--as-of")
        with ledger_for(database, must_exist=True) as ledger:
            rows = settlement.seller_rows(ledger, seller, day)
    except QuipuError as exc:
        raise fail(exc) from None
    render(rows, fmt, f"seller {seller} as of {day.isoformat()}", out)


def _posted(result: PostResult, what: str) -> None:
    if result.outcome.value == "rejected":
        raise fail(QuipuError(result.reason or "rejected"))
    out.print(f"{what}: {result.outcome.value}", markup=False)


@hold_app.command("place")
def hold_place(
    seller: Annotated[str, typer.Option("--seller")],
    amount: Annotated[str, typer.Option("--amount", help="decimal string, e.g. 100.00")],
    currency: Annotated[str, typer.Option("--currency")],
    reason: Annotated[str, typer.Option("--reason", help="dispute, chargeback, aml, reserve or risk")],
    reference: Annotated[Optional[str], typer.Option("--reference", help="what caused it")] = None,
    hold_id: Annotated[Optional[str], typer.Option("--hold-id")] = None,
    at: Annotated[Optional[str], typer.Option("--at", help="ISO 8601 moment (default: now)")] = None,
    database: DatabaseOpt = None,
) -> None:
    """Hold part of a seller's available funds (never paid out until released)."""
    try:
        when = parse_moment(at, "--at")
        with ledger_for(database) as ledger:
            result = settlement.place_hold(ledger, seller, amount, currency.upper(), reason, reference, when, hold_id)
    except QuipuError as exc:
        raise fail(exc) from None
    _posted(result, "hold")


@hold_app.command("release")
def hold_release(
    hold_id: Annotated[str, typer.Argument(help="the hold's id")],
    decided_by: Annotated[str, typer.Option("--by", help="who decided, e.g. 'case C-7 cleared by ana'")],
    seller: Annotated[
        Optional[str], typer.Option("--seller", help="the seller, when several hold under the same id")
    ] = None,
    at: Annotated[Optional[str], typer.Option("--at", help="ISO 8601 moment (default: now)")] = None,
    database: DatabaseOpt = None,
) -> None:
    """Release a hold whole: its funds return to available."""
    try:
        when = parse_moment(at, "--at")
        with ledger_for(database) as ledger:
            result = settlement.release_hold(ledger, hold_id, decided_by, when, seller)
    except QuipuError as exc:
        raise fail(exc) from None
    _posted(result, f"release of {hold_id}")


@payout_app.command("routes")
def payout_routes(
    amount: Annotated[str, typer.Option("--amount", help="decimal string in the funds' currency")],
    target: Annotated[str, typer.Option("--to", help="currency to deliver, e.g. USD")],
    seller: Annotated[
        Optional[str], typer.Option("--seller", help="whose funds (sets --from when unambiguous)")
    ] = None,
    source: Annotated[Optional[str], typer.Option("--from", help="currency the funds are in, e.g. BRL")] = None,
    within: Annotated[Optional[int], typer.Option("--within", help="business days to arrive, at most")] = None,
    at: Annotated[Optional[str], typer.Option("--at", help="moment for the FX rate (default: now)")] = None,
    database: DatabaseOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Price every payout route for an amount, cheapest first (what `payout request` would choose)."""
    try:
        when = parse_moment(at, "--at")
        with ledger_for(database, must_exist=True) as ledger:
            ccy = source.upper() if source else settlement.funds_currency(ledger, seller, when.date())
            priced = settlement.price(ledger, amount, ccy, target.upper(), within, when)
    except QuipuError as exc:
        raise fail(exc) from None
    title = f"payout routes for {amount} {ccy} → {target.upper()}"
    title += f" (seller {seller})" if seller else ""
    if priced.rate is not None:
        title += f" at {priced.rate.rate} ({priced.rate.source}, as of {priced.rate.as_of.isoformat()})"
    rows = [{**p.as_record(), "arrives_on": priced.arrives_on[p.name].isoformat()} for p in priced.routes]
    render(rows, fmt, title, out)


@payout_app.command("request")
def payout_request(
    seller: Annotated[str, typer.Option("--seller")],
    amount: Annotated[str, typer.Option("--amount", help="taken from available funds; the route fee comes out of it")],
    currency: Annotated[str, typer.Option("--currency", help="currency of the funds, e.g. BRL")],
    target: Annotated[Optional[str], typer.Option("--to", help="currency to deliver (default: --currency)")] = None,
    destination: Annotated[str, typer.Option("--destination", help="the seller's registered account ref")] = "primary",
    within: Annotated[Optional[int], typer.Option("--within", help="business days to arrive, at most")] = None,
    payout_id: Annotated[Optional[str], typer.Option("--payout-id")] = None,
    at: Annotated[Optional[str], typer.Option("--at", help="ISO 8601 moment (default: now)")] = None,
    database: DatabaseOpt = None,
) -> None:
    """Request a payout over the cheapest route that arrives in time; refused above available funds."""
    try:
        when = parse_moment(at, "--at")
        ccy = currency.upper()
        with ledger_for(database) as ledger:
            event, result = settlement.request_payout(
                ledger, seller, amount, ccy, (target or ccy).upper(), destination, within, when, payout_id
            )
    except QuipuError as exc:
        raise fail(exc) from None
    p = event["payload"]
    _posted(result, f"payout {p['payout_id']} of {p['amount']['amount']} {ccy} via {p['route']['chosen']}")


logistics_app = typer.Typer(help="Late deliveries and their compensations.", no_args_is_help=True)
app.add_typer(logistics_app, name="logistics")


@logistics_app.command("compensate")
def logistics_compensate(database: DatabaseOpt = None, fmt: FormatOpt = Format.table) -> None:
    """Grant the compensations late deliveries call for (also part of `settlement run`); idempotent."""
    try:
        with ledger_for(database) as ledger:
            done = logistics.compensate(ledger)
    except QuipuError as exc:
        raise fail(exc) from None
    rows = [{"order": c.order_id, "buyer": c.buyer_id, "amount": c.amount, "currency": c.currency,
             "funded_by": c.funded_by, "outcome": c.outcome, "reason": c.reason} for c in done]  # fmt: skip
    render(rows, fmt, f"{len(rows)} compensations", out)
    if any(c.outcome == "rejected" for c in done):
        raise typer.Exit(1)


@logistics_app.command("late")
def logistics_late(database: DatabaseOpt = None, fmt: FormatOpt = Format.table) -> None:
    """Late deliveries reported, and what was granted for each."""
    try:
        with ledger_for(database, must_exist=True) as ledger:
            ledger.runner.run()
            rows = ledger.views.query(
                "SELECT d.order_id, o.site, d.carrier, d.days_late, c.compensation_id, c.amount_minor, c.currency, "
                "c.funded_by FROM logistics_delays d JOIN logistics_orders o ON o.order_id = d.order_id "
                "LEFT JOIN logistics_compensations c ON c.order_id = d.order_id ORDER BY d.order_id"
            )
    except QuipuError as exc:
        raise fail(exc) from None
    render(
        [{"order": o, "site": s, "carrier": car, "days_late": d, "compensation": cid or "",
          "amount": format_amount(int(a), str(c)) if cid else "", "currency": c or "", "funded_by": f or ""}
         for o, s, car, d, cid, a, c, f in rows],
        fmt, "late deliveries", out,
    )  # fmt: skip
