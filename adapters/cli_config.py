"""``quipu config publish|history|status``: the rule files' versions as events."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer

from adapters import config_history
from adapters.cli import DatabaseOpt, FormatOpt, app, fail, ledger_for, out
from adapters.params import parse_day
from adapters.reports import Format, render
from ledger.errors import QuipuError

config_app = typer.Typer(help="The rule files under config/: publish versions, see what was in force.",
                         no_args_is_help=True)  # fmt: skip
app.add_typer(config_app, name="config")


@config_app.command("publish")
def publish(
    name: Annotated[str, typer.Argument(help=f"one of {', '.join(config_history.FILES)}")],
    effective_from: Annotated[str, typer.Option("--effective-from", help="YYYY-MM-DD the version takes effect")],
    by: Annotated[str, typer.Option("--by", help="who publishes it")],
    file: Annotated[Optional[Path], typer.Option("--file", help="default: the file under config/")] = None,
    database: DatabaseOpt = None,
) -> None:
    """Validate a rule file and record this version of it as an event (once per version)."""
    try:
        day = parse_day(effective_from, "--effective-from")
        with ledger_for(database) as ledger:
            event, result = config_history.publish(ledger, name, day, by, file)
    except QuipuError as exc:
        raise fail(exc) from None
    p = event["payload"]
    if result.outcome.value in ("rejected", "conflict"):
        raise fail(QuipuError(result.reason or result.outcome.value))
    out.print(f"{p['name']} version {p['version']} (sha256 {p['sha256'][:16]}…) effective {p['effective_from']}: "
              f"{result.outcome.value}", markup=False)  # fmt: skip


@config_app.command("history")
def history(
    name: Annotated[Optional[str], typer.Argument(help="one rule file, or all")] = None,
    database: DatabaseOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Every published version, by file and effective date."""
    try:
        with ledger_for(database, must_exist=True) as ledger:
            rows = [dataclasses.asdict(p) for p in config_history.history(ledger, name)]
    except QuipuError as exc:
        raise fail(exc) from None
    render(rows, fmt, "published rule files", out)


@config_app.command("status")
def status(
    on: Annotated[Optional[str], typer.Option("--on", help="the day to check (default: today)")] = None,
    database: DatabaseOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Whether each file on disk is a published version, and which version is in force on a day."""
    try:
        day = parse_day(on, "--on")
        with ledger_for(database, must_exist=True) as ledger:
            rows = config_history.status(ledger, day)
    except QuipuError as exc:
        raise fail(exc) from None
    render(rows, fmt, f"rule files on {day.isoformat()}", out)
    if any(r["on disk"] == "NOT PUBLISHED" for r in rows):
        raise typer.Exit(1)
