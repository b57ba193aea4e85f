"""The ``quipu`` command line: thin commands over the application service and projections."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import orjson
import psycopg
import typer
from eventsourcing.persistence import InterfaceError, OperationalError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from adapters.bootstrap import (
    DatabaseUnavailable,
    Ledger,
    database_url,
    first_line,
    open_ledger,
    redacted,
    require_ledger,
)
from adapters.jsonl import post_lines
from adapters.reports import Format, balance_rows, parse_as_of, projection_lag, render, trial_balance_rows
from domain.catalog import json_schemas
from domain.integrity import verify_chain
from ledger.errors import QuipuError
from projections.runner import RunReport

app = typer.Typer(help="Quipu: an event-sourced ledger and settlement engine.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")

# Tables keep their columns when piped (Rich would otherwise assume 80 columns).
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)

DatabaseOpt = Annotated[
    Optional[str],
    typer.Option(
        "--database", help="sqlite:///file.db or postgresql://… (default: QUIPU_DATABASE_URL or ./quipu-data/quipu.db)"
    ),
]
FormatOpt = Annotated[Format, typer.Option("--format", help="table, json or csv")]
LogFormatOpt = Annotated[
    Optional[str],
    typer.Option(
        "--log-format",
        help="auto, json or text (default: QUIPU_LOG_FORMAT, else auto: JSON lines unless stderr is a terminal)",
    ),
]


def progress_bar() -> Progress:
    """A Rich progress bar on stderr, so stdout stays clean for JSON and CSV."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


def fail(exc: Exception) -> typer.Exit:
    """Print a Quipu error as one line on stderr; the caller raises the returned exit (status 2).

    The message often quotes what was given (an id, a file name): it is printed as text, never as Rich markup
    (``[/x]`` in a case id was a MarkupError and a traceback), and without card numbers, tokens or secrets."""
    from adapters.observability.logs import redact  # here: most commands never fail, and it imports tracing

    err.print("[red]error:[/red]", escape(redact(str(exc))), highlight=False)
    return typer.Exit(2)


@contextmanager
def ledger_for(database: str | None, must_exist: bool = False) -> Iterator[Ledger]:
    """Open the ledger, turning Quipu's own errors into one clear line and exit status 2.

    ``must_exist``: for commands that only read, refuse a ledger that is not there instead of creating it.
    """
    try:
        if must_exist:
            require_ledger(database)
        with open_ledger(database) as ledger:
            yield ledger
    except QuipuError as exc:
        raise fail(exc) from None
    except (psycopg.OperationalError, psycopg.InterfaceError, OperationalError, InterfaceError) as exc:
        # The database went away mid-command (a restart, a cut connection): one line for the operator or the
        # supervisor, not a traceback. What was committed stays; running the command again does the rest.
        lost = DatabaseUnavailable(
            f"--database: lost the connection to {redacted(database_url(database))}: {first_line(exc)}"
        )
        raise fail(lost) from None


@app.command()
def post(
    file: Annotated[str, typer.Argument(help="JSONL file of events, or - for stdin")],
    database: DatabaseOpt = None,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="events per transaction")] = 1000,
) -> None:
    """Validate and append events; exit 0 only when nothing was rejected."""
    with ledger_for(database) as ledger:
        if file == "-":
            source = sys.stdin.buffer
            total = None
        else:
            path = Path(file)
            if not path.is_file():
                raise fail(QuipuError(f"{file}: no such file"))
            total = sum(1 for line in path.open("rb") if line.strip())
            source = path.open("rb")
        with progress_bar() as bar:
            task = bar.add_task("posting", total=total)
            summary = post_lines(ledger.service, source, batch_size, lambda n: bar.advance(task, n))
        for number, outcome, reason in summary.problems:
            err.print(f"line {number}: {outcome}: {reason}", markup=False)
        out.print(
            f"appended {summary.appended}, duplicates {summary.duplicates}, "
            f"rejected {summary.rejected}, conflicts {summary.conflicts}"
        )
        if not summary.ok:
            raise typer.Exit(1)


@app.command()
def project(
    database: DatabaseOpt = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="empty the views and fold the log from 0")] = False,
    check: Annotated[bool, typer.Option("--check", help="prove a rebuild from 0 equals the kept views")] = False,
    to_position: Annotated[Optional[int], typer.Option("--to-position", min=0, help="stop at this position")] = None,
    workers: Annotated[
        Optional[int],
        typer.Option(
            "--workers",
            min=1,
            help="processes folding a --rebuild or --check side by side (default: one per core; 1: serial)",
        ),
    ] = None,
) -> None:
    """Bring the projections up to date (journal, balances, trial balance)."""
    from adapters.check import check_rebuild
    from adapters.rebuild import RebuildFailed
    from adapters.rebuild import rebuild as rebuild_views

    if workers is not None and not (rebuild or check):
        raise fail(QuipuError("--workers: only a --rebuild or a --check folds the log with worker processes"))
    with ledger_for(database, must_exist=True) as ledger:
        with progress_bar() as bar:
            task = bar.add_task("projecting", total=ledger.store.head())

            def moved(pos: int, head: int) -> None:
                bar.update(task, completed=pos, total=head)

            report: RunReport
            try:
                if rebuild:
                    report = rebuild_views(ledger, to_position=to_position, progress=moved, workers=workers)
                else:
                    report = ledger.runner.run(to_position, moved)
            except RebuildFailed as exc:
                raise fail(exc) from None
        out.print(f"projected {report.events} events: positions {report.start} → {report.end}")
        if check:
            try:
                rows = check_rebuild(ledger, progress_bar, workers=workers)
            except RebuildFailed as exc:
                raise fail(exc) from None
            render(rows, Format.table, "rebuild check", out)
            if not all(r["equal"] for r in rows):
                raise typer.Exit(1)


@app.command()
def balances(
    database: DatabaseOpt = None,
    account: Annotated[Optional[str], typer.Option("--account", help="glob, e.g. 'seller:*:available:BRL'")] = None,
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="log position, or ISO time with offset")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Account balances on each account's normal side."""
    with ledger_for(database, must_exist=True) as ledger:
        try:
            rows = balance_rows(ledger, account, as_of)
        except QuipuError as exc:
            raise fail(exc) from None
        render(rows, fmt, "balances", out)
        # Live balances come from their own view, balances as of a time from the journal; as of a position the
        # answer is whole or was refused above.
        source = "balances" if as_of is None else "journal" if parse_as_of(as_of)[0] == "time" else None
        if source is not None and (note := projection_lag(ledger, source)):
            err.print(note)


@app.command("trial-balance")
def trial_balance(database: DatabaseOpt = None, fmt: FormatOpt = Format.table) -> None:
    """Debits, credits and net per currency (net is zero in a sound ledger)."""
    with ledger_for(database, must_exist=True) as ledger:
        render(trial_balance_rows(ledger), fmt, "trial balance", out)
        if note := projection_lag(ledger, "trial_balance"):
            err.print(note)


@app.command()
def verify(
    database: DatabaseOpt = None,
    from_checkpoint: Annotated[
        Optional[Path], typer.Option("--from-checkpoint", help="a checkpoint file kept outside the ledger")
    ] = None,
    public_key: Annotated[
        Optional[str], typer.Option("--public-key", help="the ledger's published key, hex (pins the signer)")
    ] = None,
) -> None:
    """Walk the hash chain; name the first broken link (exit 1) or confirm it holds."""
    from adapters.audit import read_checkpoint
    from domain.checkpoints import check_signature

    checkpoint = None
    if from_checkpoint is not None:
        try:
            checkpoint = read_checkpoint(from_checkpoint)
            check_signature(checkpoint, public_key)
        except QuipuError as exc:
            err.print("[red]error:[/red]", escape(str(exc)))
            raise typer.Exit(1) from None
    with ledger_for(database, must_exist=True) as ledger:
        with progress_bar() as bar:
            task = bar.add_task("verifying", total=checkpoint.position if checkpoint else ledger.store.head())
            report = verify_chain(
                ledger.store, progress=lambda pos, head: bar.update(task, completed=pos), checkpoint=checkpoint
            )
        if report.broken is None:
            upto = f" up to the signed checkpoint at position {checkpoint.position}" if checkpoint else ""
            out.print(f"chain verified{upto}: {report.events} events, head {report.head_hash}")
            return
        b = report.broken
        out.print(
            f"chain BROKEN at position {b.position}"
            + (f" (event {b.event_id})" if b.event_id else "")
            + f": {b.reason}; positions 1..{report.events} verify"
        )
        raise typer.Exit(1)


@app.command()
def schema(
    event_type: Annotated[Optional[str], typer.Option("--type", help="one event type, e.g. payment.captured")] = None,
) -> None:
    """Print the JSON Schema of every event type (or of one)."""
    schemas = json_schemas()
    if event_type is not None:
        if event_type not in schemas:
            raise fail(QuipuError(f"--type: unknown event type {event_type!r}"))
        schemas = {event_type: schemas[event_type]}
    out.file.write(orjson.dumps(schemas, option=orjson.OPT_INDENT_2).decode() + "\n")


@db_app.command("upgrade")
def db_upgrade(database: DatabaseOpt = None) -> None:
    """Apply pending migrations to the projection tables."""
    try:
        ledger = open_ledger(database, migrate=False)
    except QuipuError as exc:
        raise fail(exc) from None
    with ledger:
        done = ledger.views.upgrade()
    out.print("applied: " + ", ".join(done) if done else "schema is up to date")


@app.command()
def demo(
    database: DatabaseOpt = None,
    seed: Annotated[int, typer.Option(help="same seed, same month")] = 7,
    events: Annotated[int, typer.Option("--events", min=100, max=5_000_000, help="approximate volume")] = 30_000,
    export: Annotated[Optional[Path], typer.Option("--export", help="also write the events as JSONL")] = None,
    serve: Annotated[bool, typer.Option("--serve", help="then keep the web console running on it")] = False,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="the console's port (with --serve)")] = 8000,
) -> None:
    """Simulate a month of marketplace activity, post it, project it and report."""
    from adapters.demo_cli import run_demo, serve_console

    run_demo(database, seed, events, export, out, err, progress_bar)
    if serve:
        serve_console(database, port, out)


#: Modules that add their commands to ``app`` when imported, with the top-level commands each adds (or adds to).
#: A run imports only the module its command needs: all of them cost ~0.6 s, twice the core's import.
#: ``tests/test_cli.py`` checks these names against what each module registers.
COMMANDS_OF: dict[str, tuple[str, ...]] = {
    "adapters.cli_rules": ("clients", "fx", "regions", "serve", "tax"),
    "adapters.cli_audit": ("audit", "backup", "checkpoint", "export", "replay", "restore"),
    "adapters.cli_settlement": ("calendar", "hold", "logistics", "payout", "seller", "settlement"),
    "adapters.cli_config": ("config",),
    "adapters.cli_aml": ("aml",),
    "adapters.cli_recon": ("reconcile",),
    "adapters.cli_report": ("erp", "report"),
    "adapters.cli_analyst": ("db",),
    "adapters.cli_worker": ("outbox", "worker"),
}
COMMAND_MODULES = tuple(COMMANDS_OF)
#: The commands this module defines itself.
CORE_COMMANDS = ("balances", "db", "demo", "post", "project", "schema", "trial-balance", "verify")


def modules_for(argv: list[str]) -> tuple[str, ...]:
    """The command modules a run with these arguments needs: every one unless the first names a known command
    (``--help``, no command, or a mistyped one list or suggest them all)."""
    command = argv[0] if argv else ""
    needed = tuple(m for m, names in COMMANDS_OF.items() if command in names)
    return needed if needed or command in CORE_COMMANDS else COMMAND_MODULES


def main() -> None:
    """Console-script entry point."""
    import importlib

    from adapters.runtime import tune_gc

    for name in modules_for(sys.argv[1:]):
        importlib.import_module(name)
    tune_gc()
    app()


if __name__ == "__main__":
    # Under ``python -m adapters.cli`` this file is ``__main__``; the command modules register
    # on ``adapters.cli.app``, so run that module's ``main``, not a second copy of the app.
    from adapters.cli import main as registered_main

    registered_main()
