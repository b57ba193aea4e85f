"""``quipu reconcile``: import processor reports and bank statements, run the three levels,
list and resolve exceptions; every report as a table, JSON, CSV, XLSX or one HTML page."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from adapters import reconcile
from adapters.cli import DatabaseOpt, app, err, fail, ledger_for, out
from adapters.params import parse_day
from adapters.reports import Format, render
from ledger.errors import QuipuError

recon_app = typer.Typer(help="Reconciliation: ledger ↔ processor ↔ bank, exceptions and their resolution.",
                        no_args_is_help=True)  # fmt: skip
app.add_typer(recon_app, name="reconcile")


class ReportFormat(str, Enum):
    """Console formats, and the file formats (which need --out)."""

    table = "table"
    json = "json"
    csv = "csv"
    xlsx = "xlsx"
    html = "html"


ReportFormatOpt = Annotated[ReportFormat, typer.Option("--format", help="table, json, csv, xlsx or html")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", help="write the report to this file (xlsx and html need it)")]


def _emit(title: str, sections: list[tuple[str, list[dict[str, Any]]]], fmt: ReportFormat, path: Path | None,
          charts: dict[str, Any] | None = None) -> None:  # fmt: skip
    if fmt in (ReportFormat.table, ReportFormat.json, ReportFormat.csv) and path is None:
        for name, rows in sections:
            render(rows, Format(fmt.value), name, out)
        return
    if path is None:
        raise QuipuError(f"--out: required for --format {fmt.value}")
    from adapters.exports import Section, export_report

    chart_map = charts or {}
    built = [Section(name, rows, charts=tuple(chart_map.get(name, ()))) for name, rows in sections]
    written = export_report(title, built, fmt.value, path)
    out.print(f"wrote {written}", markup=False)


def _summary_charts(report: reconcile.RunReport) -> dict[str, Any]:
    from adapters.exports import Chart

    levels = [f"level {s.level}" for s in report.summaries.values()]
    rates = [s.matched * 100 // max(1, s.matched + s.exceptions) for s in report.summaries.values()]
    cats = reconcile.category_rows(report.findings)
    by_category = [Chart("exceptions by category", "hbar",
                         [f"L{c['level']} {c['category']} {c['currency'] or ''}".strip() for c in cats],
                         {"exceptions": [c["exceptions"] for c in cats]})] if cats else []  # fmt: skip
    # Amounts by category, one chart per currency (amounts in different currencies do not add).
    for ccy in sorted({c["currency"] for c in cats if c["currency"]}):
        mine = [c for c in cats if c["currency"] == ccy]
        labels = [f"L{c['level']} {c['category']}" for c in mine]
        amounts = {ccy: [Decimal(c["amount"]) for c in mine]}
        by_category.append(Chart(f"amounts by category ({ccy})", "hbar", labels, amounts, ccy))
    return {
        "match rate per level": [Chart("match rate per level (%)", "bar", levels, {"matched %": rates}, "%")],
        "exceptions by category": by_category,
    }


@recon_app.command("import")
def import_(
    files: Annotated[list[Path], typer.Argument(help="processor reports or bank statements", exists=False)],
    fmt: Annotated[str, typer.Option("--format", help="mercadopago-release, stripe-balance, camt053 or bank-csv")],
    source: Annotated[Optional[str], typer.Option("--source", help="who produced it, e.g. stripe or bank-itau")] = None,
    currency: Annotated[Optional[str], typer.Option("--currency", help="for reports without a currency column")] = None,
    database: DatabaseOpt = None,
) -> None:
    """Record every line of each file as an event (a bad file is refused whole, naming line and
    column); importing the same file again records nothing."""
    try:
        with ledger_for(database) as ledger:
            for path in files:
                r = reconcile.import_file(
                    ledger, path, fmt, source, currency, lambda m: err.print(m, style="dim", markup=False)
                )
                if r.already_imported_as:
                    out.print(
                        f"{r.file_name}: already imported as {r.already_imported_as} (same content); nothing new",
                        markup=False,
                    )
                else:
                    out.print(
                        f"{r.file_name}: {r.lines} lines, {r.appended} new events, {r.duplicates} already recorded"
                    )
    except QuipuError as exc:
        raise fail(exc) from None


@recon_app.command("run")
def run(
    date: Annotated[
        Optional[str], typer.Option("--date", help="reconcile as of the end of this day (YYYY-MM-DD)")
    ] = None,
    level: Annotated[
        Optional[list[int]], typer.Option("--level", help="1, 2 or 3; repeat for several (all by default)")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show each decision and why; record nothing")] = False,
    skip_rebuild: Annotated[
        bool, typer.Option("--skip-rebuild-check", help="level 1 without rebuilding projections")
    ] = False,
    database: DatabaseOpt = None,
    fmt: ReportFormatOpt = ReportFormat.table,
    path: OutOpt = None,
) -> None:
    """Match ledger ↔ processor ↔ bank and record new exceptions (and clear those a later run no
    longer finds)."""
    try:
        day = parse_day(date, "--date")
        with ledger_for(database) as ledger:
            report = reconcile.run(ledger, day, tuple(level or reconcile.LEVELS), dry_run=dry_run,
                                   keep_decisions=dry_run, progress=lambda m: err.print(m, style="dim", markup=False),
                                   check_projections=not skip_rebuild)  # fmt: skip
    except QuipuError as exc:
        raise fail(exc) from None
    sections = [
        ("match rate per level", reconcile.summary_rows(report)),
        ("exceptions by category", reconcile.category_rows(report.findings)),
    ]
    if dry_run:
        sections.append(("decisions (dry run: nothing recorded)", reconcile.decision_rows(report)))
    _emit(f"Reconciliation as of {day}", sections, fmt, path, _summary_charts(report))
    if not dry_run and fmt is ReportFormat.table:
        out.print(f"{report.raised} exceptions raised, {report.cleared} cleared, {report.already_known} already known")


@recon_app.command("exceptions")
def exceptions(
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="age counted to this day (default today)")] = None,
    status: Annotated[
        str, typer.Option("--status", help="open, cleared, adjusted, accepted_timing, written_off or all")
    ] = "open",
    aging: Annotated[bool, typer.Option("--aging", help="counts per aging bucket and category")] = False,
    database: DatabaseOpt = None,
    fmt: ReportFormatOpt = ReportFormat.table,
    path: OutOpt = None,
) -> None:
    """Exceptions with their evidence and age in days."""
    try:
        day = parse_day(as_of, "--as-of")
        with ledger_for(database, must_exist=True) as ledger:
            ledger.runner.run()
            rows = reconcile.exception_rows(ledger, day, None if status == "all" else status)
    except QuipuError as exc:
        raise fail(exc) from None
    if aging:
        buckets = reconcile.aging(rows)
        from adapters.exports import Chart

        labels = sorted({b["bucket"] for b in buckets}, key=[lb for _, _, lb in reconcile.AGING_BUCKETS].index)
        per_bucket = [sum(b["exceptions"] for b in buckets if b["bucket"] == lb) for lb in labels]
        chart = Chart("open exceptions by age", "bar", labels, {"exceptions": per_bucket})
        _emit(f"Reconciliation exceptions by age, as of {day}", [("aging", buckets)], fmt, path, {"aging": [chart]})
    else:
        _emit(f"Reconciliation exceptions ({status}), as of {day}", [(f"{len(rows)} exceptions", rows)], fmt, path)


@recon_app.command("resolve")
def resolve(
    exception_id: Annotated[str, typer.Argument(help="the exception id (RX...)")],
    resolution: Annotated[str, typer.Option("--resolution", help="adjusted, accepted_timing or written_off")],
    by: Annotated[str, typer.Option("--by", help="who decides")],
    note: Annotated[str, typer.Option("--note", help="why, in words")],
    adjustment: Annotated[Optional[str], typer.Option("--adjustment", help="the adjustment id that books it")] = None,
    approved_by: Annotated[Optional[str], typer.Option("--approved-by", help="a write-off's approver")] = None,
    database: DatabaseOpt = None,
) -> None:
    """Record a decision on an open exception (an event, like everything else)."""
    if resolution not in reconcile.RESOLUTIONS:
        raise fail(QuipuError(f"--resolution: {resolution!r} is not one of {', '.join(reconcile.RESOLUTIONS)}"))
    try:
        with ledger_for(database) as ledger:
            event_id, _ = reconcile.resolve(ledger, exception_id, resolution, by, note, adjustment, approved_by,
                                            dt.datetime.now(dt.UTC).replace(microsecond=0))  # fmt: skip
    except QuipuError as exc:
        raise fail(exc) from None
    out.print(f"{exception_id}: {resolution} by {by} (event {event_id})", markup=False)
