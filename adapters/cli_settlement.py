"""``quipu calendar`` and ``quipu settlement date``: for support staff, no store needed."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Optional

import typer

from adapters import config_files
from adapters.cli import FormatOpt, app, fail, out
from adapters.reports import Format, render
from domain.settlement.calendar import build_calendar
from domain.settlement.dates import settlement_dates
from ledger.errors import QuipuError
from ledger.money import parse_amount

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
