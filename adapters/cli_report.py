"""``quipu report``: every report as a CSV, XLSX, JSON or HTML file; ``quipu erp export``: the general
ledger of a period mapped to an external chart of accounts.

The reports come from :mod:`adapters.report_catalog` (the web console reads the same catalogue) and
are written by :mod:`adapters.exports`; the ERP export by :mod:`adapters.erp_export`. Stages are said
on stderr, so a long report shows it is moving while stdout keeps only the outcome.
"""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from adapters.cli import DatabaseOpt, app, err, fail, ledger_for, out
from adapters.params import parse_day
from adapters.reports import Format, render
from ledger.errors import QuipuError

erp_app = typer.Typer(help="The general ledger for an external ERP.", no_args_is_help=True)
app.add_typer(erp_app, name="erp")


class FileFormat(str, Enum):
    """What ``quipu report`` writes."""

    csv = "csv"
    xlsx = "xlsx"
    html = "html"
    json = "json"


class ErpFormat(str, Enum):
    """What ``quipu erp export`` writes."""

    csv = "csv"
    xlsx = "xlsx"


def _say(message: str) -> None:
    err.print(message, style="dim", markup=False)


def _format_of(fmt: FileFormat | None, path: Path | None) -> FileFormat:
    """The format asked for, else the one the file's suffix names."""
    if fmt is not None:
        return fmt
    suffix = path.suffix.lower().lstrip(".") if path else ""
    try:
        return FileFormat(suffix)
    except ValueError:
        raise QuipuError("--format: give csv, xlsx, html or json (the --out suffix does not say)") from None


@app.command("report")
def report(
    name: Annotated[str, typer.Argument(help="a report name, or `list` to see them all")],
    fmt: Annotated[Optional[FileFormat], typer.Option("--format", help="csv, xlsx, html or json")] = None,
    path: Annotated[Optional[Path], typer.Option("--out", help="the file to write")] = None,
    database: DatabaseOpt = None,
    as_of: Annotated[
        Optional[str], typer.Option("--as-of", help="balances: position or ISO time; exceptions: day")
    ] = None,
    date: Annotated[
        Optional[str], typer.Option("--date", help="settlement-schedule, reconciliation: YYYY-MM-DD")
    ] = None,
    site: Annotated[Optional[str], typer.Option("--site", help="country site, e.g. BR")] = None,
    month: Annotated[Optional[str], typer.Option("--month", help="aml-threshold: YYYY-MM")] = None,
    start: Annotated[Optional[str], typer.Option("--from", help="settlement-batches: first day")] = None,
    end: Annotated[Optional[str], typer.Option("--to", help="settlement-batches: last day")] = None,
    account: Annotated[Optional[str], typer.Option("--account", help="balances: glob on the account name")] = None,
    status: Annotated[Optional[str], typer.Option("--status", help="reconciliation-exceptions: open … or all")] = None,
    valuation: Annotated[Optional[str], typer.Option("--valuation", help="fx-exposure: currency (USD)")] = None,
    locale: Annotated[str, typer.Option("--locale", help="HTML number formats, e.g. pt_BR")] = "en",
) -> None:
    """Write a report as a file: `quipu report NAME --format csv|xlsx|html|json --out FILE [options]`;
    `quipu report list` names every report and what it needs."""
    from adapters import report_catalog
    from adapters.exports import csv_paths, export_report

    if name == "list":
        listing = Format.json if fmt is FileFormat.json else Format.table
        render(report_catalog.catalogue_rows(), listing, "reports (quipu report NAME --format … --out FILE)", out)
        return
    params = {
        "as-of": as_of,
        "date": date,
        "site": site,
        "month": month,
        "from": start,
        "to": end,
        "account": account,
        "status": status,
        "valuation": valuation,
    }
    try:
        kind = _format_of(fmt, path)
        if path is None:
            raise QuipuError("--out: the file to write is required")
        with ledger_for(database, must_exist=True) as ledger:
            began = time.monotonic()
            _say(f"building {name}")
            built = report_catalog.build_report(ledger, name, params, _say)
            _say(f"writing {kind.value}")
            written = export_report(built.title, built.sections, kind.value, path, locale=locale)
    except QuipuError as exc:
        raise fail(exc) from None
    files = csv_paths(path, built.sections) if kind is FileFormat.csv else [written]
    rows = sum(len(s.rows) for s in built.sections)
    for f in files:
        out.print(f"wrote {f}", markup=False)
    out.print(f"{name}: {len(built.sections)} sections, {rows} rows in {time.monotonic() - began:.1f} s", markup=False)


@erp_app.command("export")
def erp_export(
    start: Annotated[str, typer.Option("--from", help="first day, YYYY-MM-DD (UTC)")],
    end: Annotated[str, typer.Option("--to", help="last day, YYYY-MM-DD (UTC), inclusive")],
    mapping: Annotated[Path, typer.Option("--mapping", help="the chart-of-accounts mapping (TOML)")],
    path: Annotated[Path, typer.Option("--out", help="the file to write")],
    fmt: Annotated[ErpFormat, typer.Option("--format", help="csv or xlsx")] = ErpFormat.csv,
    database: DatabaseOpt = None,
) -> None:
    """The general ledger of a period (one row per posting) mapped to an external chart; written only
    when every entry balances and the totals per currency equal the trial balance's movement."""
    from adapters.erp_export import export_gl, load_mapping

    try:
        first, last = parse_day(start, "--from"), parse_day(end, "--to")
        rules = load_mapping(mapping)
        with ledger_for(database, must_exist=True) as ledger:
            began = time.monotonic()
            result = export_gl(ledger, first, last, rules, fmt.value, path, _say)
    except QuipuError as exc:
        raise fail(exc) from None
    render([t.row() for t in result.totals], Format.table, "totals per currency against the trial balance", out)
    out.print(
        f"wrote {result.path}: {result.entries} entries, {result.postings} postings "
        f"({first.isoformat()} to {last.isoformat()}, UTC) in {time.monotonic() - began:.1f} s"
    )
