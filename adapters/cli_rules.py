"""``quipu regions``, ``quipu tax quote`` and ``quipu fx quote``: rule tables, no store needed."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Optional

import typer

from adapters import config_files
from adapters.cli import FormatOpt, app, err, out
from adapters.reports import Format, render
from domain.fx import FxError, parse_rate, quote
from domain.taxes.quotes import TaxQuote, consumption_quote, consumption_rule, import_quote, import_regime
from ledger.errors import QuipuError
from ledger.money import exponent, parse_amount

tax_app = typer.Typer(help="Taxes and import duties from the dated rule tables.", no_args_is_help=True)
fx_app = typer.Typer(help="FX quotes.", no_args_is_help=True)
app.add_typer(tax_app, name="tax")
app.add_typer(fx_app, name="fx")


def _fail(exc: Exception) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
    return typer.Exit(2)


def _plain(d: Decimal) -> str:
    """A decimal without exponent notation and without trailing zeros after the point."""
    text = format(d, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _date(value: str | None, option: str) -> dt.date:
    if value is None:
        return dt.datetime.now(dt.UTC).date()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise _fail(QuipuError(f"{option}: {value!r} is not a date such as 2026-11-25")) from None


def _decimal(value: str, option: str, places: int) -> Decimal:
    try:
        d = Decimal(value)
    except InvalidOperation:
        raise _fail(QuipuError(f"{option}: {value!r} is not a decimal number")) from None
    if not d.is_finite() or d < 0:
        raise _fail(QuipuError(f"{option}: {value} must be zero or more"))
    if -d.as_tuple().exponent > places:  # type: ignore[operator]
        raise _fail(QuipuError(f"{option}: {value} has more than {places} decimals (cents)"))
    return d


@app.command("regions")
def regions_cmd(fmt: FormatOpt = Format.table) -> None:
    """The 18 country sites: currency, locale, time zone, tax rule, payment methods, settlement."""
    try:
        config = config_files.regions()
    except QuipuError as exc:
        raise _fail(exc) from None
    rows = [
        {
            "site": site,
            "currency": r.currency,
            "exponent": exponent(r.currency),
            "locale": r.locale,
            "time_zone": r.time_zone,
            "tax_rule": r.tax_rule,
            "payment_methods": ",".join(r.payment_methods),
            "settlement_days": r.settlement.days,
            "cutoff": r.settlement.cutoff,
        }
        for site, r in sorted(config.region_config.items())
    ]
    render(rows, fmt, f"regions (version {config.version}, effective {config.effective_from})", out)


def _tax_rows(q: TaxQuote) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {
            "component": line.name,
            "base": str(line.base),
            "rate_pct": _plain(line.rate_pct),
            "amount": str(line.amount),
            "currency": line.currency,
            "rule": line.rule,
            "valid_from": line.valid_from.isoformat(),
            "valid_to": line.valid_to.isoformat() if line.valid_to else "",
        }
        for line in q.lines
    ]
    rule = q.lines[0]
    for name, amount in (("total tax", q.tax), ("total", q.total)):
        rows.append(
            {
                "component": name,
                "base": str(q.net),
                "rate_pct": "",
                "amount": str(amount),
                "currency": q.currency,
                "rule": rule.rule,
                "valid_from": rule.valid_from.isoformat(),
                "valid_to": rule.valid_to.isoformat() if rule.valid_to else "",
            }
        )
    return rows


@tax_app.command("quote")
def tax_quote(
    site: Annotated[str, typer.Option("--site", help="country site, e.g. MX")],
    net: Annotated[Optional[str], typer.Option("--net", help="net price in the site's currency")] = None,
    state: Annotated[
        Optional[str], typer.Option("--state", help="where the rate depends on it: BR RJ, MX BORDER")
    ] = None,
    on: Annotated[
        Optional[str], typer.Option("--date", help="the day the rules are taken from (default today)")
    ] = None,
    imported: Annotated[bool, typer.Option("--import", help="import duties on a cross-border parcel")] = False,
    value_usd: Annotated[Optional[str], typer.Option("--value-usd", help="customs value in USD")] = None,
    origin: Annotated[Optional[str], typer.Option("--origin", help="origin country, e.g. CN")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Print a tax or duty breakdown without booking anything."""
    day = _date(on, "--date")
    site = site.upper()
    try:
        if imported:
            if value_usd is None or origin is None:
                raise QuipuError("--import needs --value-usd and --origin")
            if not (len(origin) == 2 and origin.isalpha()):
                raise QuipuError(f"--origin: {origin!r} is not an ISO 3166 country code")
            regime = import_regime(config_files.import_duties(), site, origin.upper(), day)
            result = import_quote(regime, _decimal(value_usd, "--value-usd", 2))
            title = f"import duties: {site} from {origin.upper()} on {day} ({regime.name}; {regime.source})"
        else:
            if net is None:
                raise QuipuError("--net: required (or --import with --value-usd)")
            region = {str(k): v for k, v in config_files.regions().region_config.items()}.get(site)
            if region is None:
                raise QuipuError(f"--site: unknown site {site!r}")
            currency = region.currency
            rule = consumption_rule(config_files.consumption_taxes(), site, state.upper() if state else None, day)
            net_amount = parse_amount(net, currency, "--net")
            if net_amount < 0:
                raise QuipuError(f"--net: {net} must be zero or more")
            result = consumption_quote(rule, net_amount, currency)
            title = f"consumption tax: {site}{'/' + state.upper() if state else ''} on {day}"
    except QuipuError as exc:
        raise _fail(exc) from None
    render(_tax_rows(result), fmt, title, out)


@fx_app.command("quote")
def fx_quote(
    source: Annotated[str, typer.Option("--from", help="currency sold, e.g. BRL")],
    target: Annotated[str, typer.Option("--to", help="currency bought, e.g. USD")],
    amount: Annotated[str, typer.Option("--amount", help="amount of --from, e.g. 1000.00")],
    rate: Annotated[
        Optional[str], typer.Option("--rate", help="reference rate: units of --to per unit of --from")
    ] = None,
    markup: Annotated[str, typer.Option("--markup", help="fraction kept as FX revenue, 0.02 = 2%")] = "0",
    rate_source: Annotated[str, typer.Option("--source", help="where the reference rate comes from")] = "manual",
    at: Annotated[Optional[str], typer.Option("--at", help="quote time, ISO 8601 with offset (default now)")] = None,
    lock_seconds: Annotated[
        int, typer.Option("--lock-seconds", min=1, max=86_400, help="how long the rate holds")
    ] = 300,
    fmt: FormatOpt = Format.table,
) -> None:
    """Print an FX quote (reference, markup, final rate, target amount, revenue, expiry) without booking it."""
    try:
        if rate is None:
            raise FxError("--rate: give the reference rate (recorded rate feeds are not available yet)")
        reference = parse_rate(rate, "--rate")
        mark = parse_rate(markup, "--markup") if markup not in ("0", "0.0") else Decimal(0)
        when = dt.datetime.fromisoformat(at.replace("Z", "+00:00")) if at else dt.datetime.now(dt.UTC)
        q = quote(source.upper(), target.upper(), amount, reference, rate_source, mark, when,
                  dt.timedelta(seconds=lock_seconds))  # fmt: skip
    except ValueError as exc:
        raise _fail(exc) from None
    row = {
        "from": q.source_currency,
        "to": q.target_currency,
        "amount": str(q.source_amount),
        "reference_rate": _plain(q.reference_rate),
        "rate_source": q.rate_source,
        "markup": _plain(q.markup),
        "final_rate": _plain(q.final_rate),
        "target_amount": str(q.target_amount),
        "revenue": str(q.revenue),
        "currency": q.target_currency,
        "quoted_at": q.quoted_at.isoformat(),
        "expires_at": q.expires_at.isoformat(),
    }
    render([row], fmt, "FX quote (not booked)", out)
