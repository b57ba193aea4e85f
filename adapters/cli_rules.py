"""``quipu regions``, ``quipu tax quote`` and ``quipu fx quote``: rule tables, no store needed."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from adapters import config_files, fx_accounting, taxes
from adapters.cli import DatabaseOpt, FormatOpt, LogFormatOpt, app, err, fail, ledger_for, out
from adapters.params import parse_day, parse_moment
from adapters.rates import stored_rate
from adapters.reports import Format, render
from domain.fx import FxError, parse_rate, quote
from domain.taxes.quotes import TaxQuote, consumption_quote, consumption_rule, import_quote, import_regime
from ledger.errors import QuipuError
from ledger.money import exponent, parse_amount

tax_app = typer.Typer(help="Taxes and import duties from the dated rule tables.", no_args_is_help=True)
fx_app = typer.Typer(help="FX quotes.", no_args_is_help=True)
app.add_typer(tax_app, name="tax")
app.add_typer(fx_app, name="fx")


def _plain(d: Decimal) -> str:
    """A decimal without exponent notation and without trailing zeros after the point."""
    text = format(d, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _date(value: str | None, option: str) -> dt.date:
    try:
        return parse_day(value, option)
    except QuipuError as exc:
        raise fail(exc) from None


def _decimal(value: str, option: str, places: int) -> Decimal:
    try:
        d = Decimal(value)
    except InvalidOperation:
        raise fail(QuipuError(f"{option}: {value!r} is not a decimal number")) from None
    if not d.is_finite() or d < 0:
        raise fail(QuipuError(f"{option}: {value} must be zero or more"))
    if -d.as_tuple().exponent > places:  # type: ignore[operator]
        raise fail(QuipuError(f"{option}: {value} has more than {places} decimals (cents)"))
    return d


@app.command("regions")
def regions_cmd(fmt: FormatOpt = Format.table) -> None:
    """The 18 country sites: currency, locale, time zone, tax rule, payment methods, settlement."""
    try:
        config = config_files.regions()
    except QuipuError as exc:
        raise fail(exc) from None
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
        raise fail(exc) from None
    render(_tax_rows(result), fmt, title, out)


@fx_app.command("exposure")
def fx_exposure(database: DatabaseOpt = None, fmt: FormatOpt = Format.table) -> None:
    """Open FX positions per currency (the FX liquidity accounts), valued in USD at the latest recorded rate."""
    from adapters.reports import fx_exposure_rows

    with ledger_for(database, must_exist=True) as ledger:
        ledger.runner.run()
        render(fx_exposure_rows(ledger), fmt, "FX exposure (liquidity positions)", out)


@fx_app.command("import")
def fx_import(
    file: Annotated[Path, typer.Argument(help="the rates file")],
    kind: Annotated[str, typer.Option("--kind", help="csv, json, ecb-xml or ticks (a recorded feed)")] = "csv",
    source: Annotated[Optional[str], typer.Option("--source", help="publisher, when the file does not say")] = None,
    database: DatabaseOpt = None,
) -> None:
    """Record published rates as fx.rate_published events (a file with any problem records nothing)."""
    from adapters.fx_feeds import RateRecord, read_csv, read_ecb_xml, read_json, read_ticks

    readers: dict[str, Callable[[], tuple[list[RateRecord], list[str]]]] = {
        "csv": lambda: read_csv(file, source),
        "json": lambda: read_json(file, source),
        "ecb-xml": lambda: read_ecb_xml(file),
        "ticks": lambda: read_ticks(file),
    }
    if kind not in readers:
        raise fail(QuipuError(f"--kind: {kind!r} is not one of {', '.join(readers)}"))
    if not file.is_file():
        raise fail(QuipuError(f"{file}: no such file"))
    records, problems = readers[kind]()
    if problems:
        for problem in problems:
            err.print(problem, markup=False, highlight=False)
        err.print(f"[red]error:[/red] {len(problems)} problems; nothing was recorded")
        raise typer.Exit(1)
    with ledger_for(database) as ledger:
        results = []
        events = [r.event() for r in records]
        for start in range(0, len(events), 1000):
            results += ledger.service.post(events[start : start + 1000])
    counts = {o: sum(1 for r in results if r.outcome.value == o) for o in ("appended", "duplicate", "rejected")}
    out.print(f"rates: appended {counts['appended']}, duplicates {counts['duplicate']}, rejected {counts['rejected']}")
    for r in results:
        if r.reason:
            err.print(f"{records[r.index].origin}: {r.reason}", markup=False, highlight=False)
    if counts["rejected"]:
        raise typer.Exit(1)


def _stored_rate(database: str | None, base: str, quote: str, at: dt.datetime) -> tuple[Decimal, str]:
    """The latest recorded rate for a pair at or before ``at``, refused when missing or stale."""
    with ledger_for(database, must_exist=True) as ledger:
        ledger.runner.run()
        found = stored_rate(ledger.views, base, quote, at)
    return found.rate, found.source


@fx_app.command("quote")
def fx_quote(
    source: Annotated[str, typer.Option("--from", help="currency sold, e.g. BRL")],
    target: Annotated[str, typer.Option("--to", help="currency bought, e.g. USD")],
    amount: Annotated[str, typer.Option("--amount", help="amount of --from, e.g. 1000.00")],
    rate: Annotated[
        Optional[str], typer.Option("--rate", help="reference rate: units of --to per unit of --from")
    ] = None,
    markup: Annotated[
        Optional[str], typer.Option("--markup", help="fraction kept as FX revenue, 0.02 = 2% (default: config/fx.toml)")
    ] = None,
    rate_source: Annotated[str, typer.Option("--source", help="where the reference rate comes from")] = "manual",
    at: Annotated[Optional[str], typer.Option("--at", help="quote time, ISO 8601 with offset (default now)")] = None,
    lock_seconds: Annotated[
        Optional[int], typer.Option("--lock-seconds", min=1, max=86_400, help="how long the rate holds (config)")
    ] = None,
    database: DatabaseOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Print an FX quote (reference, markup, final rate, target amount, revenue, expiry) without booking it.

    Without --rate, the latest recorded rate for the pair at or before --at is used, and
    refused when missing or older than the pair's staleness limit (config/fx.toml).
    """
    try:
        when = dt.datetime.fromisoformat(at.replace("Z", "+00:00")) if at else dt.datetime.now(dt.UTC)
        if when.tzinfo is None:
            raise FxError("--at: the quote time needs a UTC offset")
        if rate is None:
            reference, rate_source = _stored_rate(database, source.upper(), target.upper(), when)
        else:
            reference = parse_rate(rate, "--rate")
        markup_text = markup if markup is not None else config_files.fx_settings().default_markup
        mark = Decimal(0) if re.fullmatch(r"0(\.0+)?", markup_text) else parse_rate(markup_text, "--markup")
        lock = lock_seconds if lock_seconds is not None else config_files.fx_settings().lock_seconds
        q = quote(source.upper(), target.upper(), amount, reference, rate_source, mark, when,
                  dt.timedelta(seconds=lock))  # fmt: skip
    except ValueError as exc:
        raise fail(exc) from None
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
        "markup_revenue": str(q.markup_revenue),
        "rounding": str(q.rounding),
        "currency": q.target_currency,
        "quoted_at": q.quoted_at.isoformat(),
        "expires_at": q.expires_at.isoformat(),
    }
    render([row], fmt, "FX quote (not booked)", out)


@app.command("serve")
def serve(
    database: DatabaseOpt = None,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, max=32, help="worker processes behind one port")] = 1,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="accept requests without tokens (local use only)")] = False,
    log_format: LogFormatOpt = None,
    jwks_url: Annotated[
        Optional[str], typer.Option("--jwks-url", help="also accept an external issuer's tokens (QUIPU_JWKS_URL)")
    ] = None,
    jwt_issuer: Annotated[Optional[str], typer.Option("--jwt-issuer", help="its iss (QUIPU_JWT_ISSUER)")] = None,
    jwt_audience: Annotated[
        Optional[str], typer.Option("--jwt-audience", help="the aud its tokens must name (QUIPU_JWT_AUDIENCE)")
    ] = None,
) -> None:
    """Serve the HTTP API (/v1/events, /v1/events/batch, /v1/balances, /v1/trial-balance; docs at /docs).

    Logs one JSON line per request on stderr (docs/observability.md); traces when QUIPU_OTEL_EXPORTER is set.
    """
    import os

    import uvicorn

    from adapters.bootstrap import database_url
    from adapters.committer import committer_choice
    from adapters.http.auth import ExternalIssuerSettings
    from adapters.observability.logs import resolve_format, uvicorn_log_config
    from adapters.observability.tracing import exporter_choice

    os.environ["QUIPU_DATABASE_URL"] = database_url(database)
    os.environ["QUIPU_API_AUTH"] = "0" if no_auth else "1"
    for name, value in (("QUIPU_JWKS_URL", jwks_url), ("QUIPU_JWT_ISSUER", jwt_issuer),
                        ("QUIPU_JWT_AUDIENCE", jwt_audience)):  # fmt: skip
        if value is not None:
            os.environ[name] = value
    try:
        # Settings are checked here, once, so a mistake is one clear line rather than a worker crash.
        fmt = resolve_format(log_format)
        os.environ["QUIPU_LOG_FORMAT"] = fmt
        exporter_choice()
        ExternalIssuerSettings.from_env()
        committer_choice()
    except QuipuError as exc:
        raise fail(exc) from None
    with ledger_for(database):
        pass  # create the store and migrate once, before workers race to do it
    uvicorn.run("adapters.http.app:create_app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level="warning", log_config=uvicorn_log_config(fmt))  # fmt: skip


clients_app = typer.Typer(help="OAuth 2.0 clients of the HTTP API.", no_args_is_help=True)
app.add_typer(clients_app, name="clients")


@clients_app.command("add")
def clients_add(
    client_id: Annotated[str, typer.Argument(help="a name for the calling service")],
    scope: Annotated[list[str], typer.Option("--scope", help="events:write, ledger:read or admin (repeat)")],
    database: DatabaseOpt = None,
) -> None:
    """Register a client and print its secret once (only a slow hash is stored)."""
    from adapters.http.auth import add_client

    with ledger_for(database) as ledger:
        try:
            secret = add_client(ledger, client_id, scope)
        except QuipuError as exc:
            raise fail(exc) from None
    out.print(f"client_id={client_id}", markup=False)
    out.print(f"client_secret={secret}", markup=False)


@clients_app.command("list")
def clients_list(database: DatabaseOpt = None, fmt: FormatOpt = Format.table) -> None:
    """Registered clients, their scopes and whether they are revoked."""
    from adapters.http.auth import list_clients

    with ledger_for(database, must_exist=True) as ledger:
        render(list_clients(ledger), fmt, "API clients", out)


@clients_app.command("revoke")
def clients_revoke(client_id: Annotated[str, typer.Argument()], database: DatabaseOpt = None) -> None:
    """Revoke a client's secret."""
    from adapters.http.auth import revoke_client

    with ledger_for(database) as ledger:
        try:
            revoke_client(ledger, client_id)
        except QuipuError as exc:
            raise fail(exc) from None
    out.print(f"revoked {client_id}", markup=False)


@tax_app.command("assess")
def tax_assess(database: DatabaseOpt = None, fmt: FormatOpt = Format.table) -> None:
    """Assess the taxes of every order not assessed yet, reverse those of cancelled orders (also part of
    `settlement run`). Idempotent; orders waiting for a recorded FX rate are listed, never guessed."""
    try:
        with ledger_for(database) as ledger:
            done = taxes.assess(ledger)
    except QuipuError as exc:
        raise fail(exc) from None
    rows = [{"order": t.order_id, "kind": t.kind, "event": t.action, "total": t.total, "currency": t.currency,
             "outcome": t.outcome, "reason": t.reason} for t in done]  # fmt: skip
    render(rows, fmt, f"{sum(t.outcome == 'appended' for t in done)} tax events recorded", out)
    if any(t.outcome == "rejected" for t in done):
        raise typer.Exit(1)


@tax_app.command("summary")
def tax_summary(
    site: Annotated[Optional[str], typer.Option("--site", help="only this site")] = None,
    database: DatabaseOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Taxes assessed (less reversed) per site, kind and tax: what the platform owes each authority."""
    try:
        with ledger_for(database, must_exist=True) as ledger:
            rows = taxes.summary_rows(ledger, site.upper() if site else None)
    except QuipuError as exc:
        raise fail(exc) from None
    render(rows, fmt, "taxes assessed per site (reversals deducted)", out)


@fx_app.command("revalue")
def fx_revalue(
    as_of: Annotated[str, typer.Option("--as-of", help="period end YYYY-MM-DD")],
    database: DatabaseOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """IAS 21: book unrealised gains/losses on open FX positions at the closing rate, reversed the next day."""
    try:
        day = _date(as_of, "--as-of")
        with ledger_for(database) as ledger:
            done = fx_accounting.revalue(ledger, day)
    except QuipuError as exc:
        raise fail(exc) from None
    render([dataclasses.asdict(r) for r in done], fmt, f"revaluation as of {day} (USD)", out)
    if any(r.outcome == "rejected" for r in done):
        raise typer.Exit(1)


@fx_app.command("settle-position")
def fx_settle_position(
    currency: Annotated[str, typer.Option("--currency", help="the foreign currency sold, e.g. BRL")],
    amount: Annotated[str, typer.Option("--amount", help="how much of the position was sold")],
    received: Annotated[str, typer.Option("--received", help="USD received for it")],
    counterparty: Annotated[str, typer.Option("--counterparty", help="the liquidity provider")],
    at: Annotated[Optional[str], typer.Option("--at", help="ISO 8601 moment (default: now)")] = None,
    database: DatabaseOpt = None,
) -> None:
    """IAS 21: close part of an FX position; the gap to its carrying value is the realised gain or loss."""
    try:
        when = parse_moment(at, "--at")
        with ledger_for(database) as ledger:
            event, result = fx_accounting.settle_position(ledger, currency.upper(), amount, received, counterparty,
                                                          when)  # fmt: skip
    except QuipuError as exc:
        raise fail(exc) from None
    p = event["payload"]
    if result.outcome.value == "rejected":
        raise fail(QuipuError(result.reason or "rejected"))
    out.print(f"settled {p['sold']['amount']} {p['sold']['currency']} for {p['received']['amount']} USD: carrying "
              f"{p['carrying']}, realised {p['realised']} USD ({result.outcome.value})")  # fmt: skip
