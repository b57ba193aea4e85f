"""``quipu aml``: alerts, interception, cases and the threshold report."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated, Optional

import typer

from adapters import aml
from adapters.cli import DatabaseOpt, FormatOpt, app, fail, ledger_for, out
from adapters.reports import Format, render
from ledger.errors import QuipuError

aml_app = typer.Typer(help="AML: alerts with evidence, interception, cases, reports.", no_args_is_help=True)
app.add_typer(aml_app, name="aml")


@aml_app.command("alerts")
def alerts(
    seller: Annotated[Optional[str], typer.Option("--seller")] = None,
    severity: Annotated[Optional[str], typer.Option("--severity", help="high, medium or info")] = None,
    database: DatabaseOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Alerts raised by the AML projection, with their evidence and case."""
    try:
        with ledger_for(database, must_exist=True) as ledger:
            rows = aml.alerts(ledger, seller, severity)
    except QuipuError as exc:
        raise fail(exc) from None
    render(rows, fmt, f"{len(rows)} AML alerts", out)


@aml_app.command("intercept")
def intercept(database: DatabaseOpt = None, fmt: FormatOpt = Format.table) -> None:
    """Open a case, freeze payouts and hold funds for every high-severity alert without a case
    (also part of `settlement run`). Idempotent."""
    try:
        with ledger_for(database) as ledger:
            done = aml.intercept(ledger)
    except QuipuError as exc:
        raise fail(exc) from None
    render([dataclasses.asdict(d) for d in done], fmt, f"{len(done)} interceptions", out)


@aml_app.command("case")
def case(
    case_id: Annotated[str, typer.Argument(help="the case id")],
    action: Annotated[Optional[str], typer.Option("--action", help="assign, note, escalate, clear or confirm")] = None,
    by: Annotated[Optional[str], typer.Option("--by", help="who acts")] = None,
    text: Annotated[Optional[str], typer.Option("--text", help="why, in words")] = None,
    assignee: Annotated[Optional[str], typer.Option("--assignee")] = None,
    report: Annotated[Optional[str], typer.Option("--report", help="for confirm: COAF, UIF or STR")] = None,
    action_id: Annotated[
        Optional[str], typer.Option("--action-id", help="your id for this step: running it again records it once")
    ] = None,
    database: DatabaseOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """A case's timeline; with --action, record a step (clear lifts the freeze and releases the holds)."""
    try:
        with ledger_for(database) as ledger:
            if action is not None:
                if not by or not text:
                    raise QuipuError("--by and --text: required with --action")
                at = dt.datetime.now(dt.UTC).replace(microsecond=0)
                results = aml.decide(ledger, case_id, action, by, text, at, assignee, report, action_id)
                refused = [r for r in results if r.outcome.value in ("rejected", "conflict")]
                if refused:
                    raise QuipuError(refused[0].reason or refused[0].outcome.value)
            rows = aml.case_rows(ledger, case_id)
    except QuipuError as exc:
        raise fail(exc) from None
    render(rows, fmt, f"case {case_id}", out)


@aml_app.command("report")
def report(
    site: Annotated[str, typer.Option("--site", help="e.g. BR (COAF) or MX (UIF)")],
    month: Annotated[str, typer.Option("--month", help="YYYY-MM")],
    database: DatabaseOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """The threshold-report data a compliance officer files for a site and month."""
    try:
        with ledger_for(database, must_exist=True) as ledger:
            rows = aml.report_rows(ledger, site.upper(), month)
    except QuipuError as exc:
        raise fail(exc) from None
    render(rows, fmt, f"{site.upper()} threshold report {month}", out)
