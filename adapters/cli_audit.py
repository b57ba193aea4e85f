"""``quipu checkpoint`` and ``quipu export``: what an auditor takes away."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import orjson
import typer
from rich.markup import escape

from adapters.audit import export, key_path, load_or_create_key, positions_between, take_checkpoint
from adapters.bootstrap import Ledger
from adapters.cli import DatabaseOpt, app, err, fail, ledger_for, out
from adapters.reports import Format, ReportError, parse_as_of, render
from ledger.errors import QuipuError
from projections.views import Projection

KeyOpt = Annotated[
    Optional[Path],
    typer.Option("--key", help="Ed25519 key (PEM); default QUIPU_SIGNING_KEY or quipu-data/signing-key.pem"),
]


@app.command()
def checkpoint(
    database: DatabaseOpt = None,
    key: KeyOpt = None,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="write the checkpoint here too")] = None,
) -> None:
    """Sign the head of the hash chain; keep the printed line (or --out file) outside the system."""
    with ledger_for(database) as ledger:
        try:
            signed = take_checkpoint(ledger.store, load_or_create_key(key_path(key)))
        except QuipuError as exc:
            raise fail(exc) from None
    line = orjson.dumps(signed.model_dump()).decode()
    if out_file is not None:
        out_file.write_text(line + "\n")
        err.print(f"checkpoint of position {signed.position} written to {out_file}", markup=False)
    out.file.write(line + "\n")


def _time_or_none(value: str | None, option: str) -> int | None:
    if value is None:
        return None
    kind, at = parse_as_of(value)
    if kind != "time":
        raise ReportError(f"{option}: give an ISO 8601 time with offset, e.g. 2026-10-31T23:59:59-03:00")
    return at


@app.command("export")
def export_cmd(
    out_dir: Annotated[Path, typer.Option("--out", help="folder for events.jsonl, events.parquet, manifest.json")],
    database: DatabaseOpt = None,
    key: KeyOpt = None,
    start: Annotated[Optional[str], typer.Option("--from", help="first record time, ISO 8601 with offset")] = None,
    end: Annotated[Optional[str], typer.Option("--to", help="last record time, ISO 8601 with offset")] = None,
) -> None:
    """Export events recorded between two times, with their hashes and a signed checkpoint."""
    with ledger_for(database, must_exist=True) as ledger:
        try:
            first, last = positions_between(ledger.store, _time_or_none(start, "--from"), _time_or_none(end, "--to"))
            report = export(ledger.store, load_or_create_key(key_path(key)), first, last, out_dir)
        except QuipuError as exc:
            raise fail(exc) from None
    out.print(
        f"exported positions {report.first}..{report.last} ({report.events} events) to {out_dir}; "
        f"verify offline with: python scripts/verify_export.py {out_dir}"
    )


replay_app = typer.Typer(
    help="Rebuild a projection (journal, balances, trial-balance or all) as of a moment into a named snapshot, "
    "or diff two snapshots.",
    no_args_is_help=True,
)
app.add_typer(replay_app, name="replay")


def _replay(
    projection: str,
    name: Optional[str],
    to_position: Optional[int],
    as_of_recorded: Optional[str],
    as_of_effective: Optional[str],
    database: Optional[str],
) -> None:
    from adapters.cli import progress_bar
    from adapters.replay import replay

    given = [("pos", to_position), ("rec", as_of_recorded), ("eff", as_of_effective)]
    chosen_rule = [(k, v) for k, v in given if v is not None]
    default = f"{projection}_{chosen_rule[0][0]}_{''.join(c for c in str(chosen_rule[0][1]) if c.isalnum())}"
    snapshot = (name or (default if chosen_rule else projection)).lower()[:40]
    with ledger_for(database, must_exist=True) as ledger:
        try:
            chosen = _projections(ledger, projection)
            with progress_bar() as bar:
                task = bar.add_task(f"replaying into {snapshot}", total=ledger.store.head())
                report = replay(
                    ledger,
                    snapshot,
                    chosen,
                    to_position=to_position,
                    as_of_recorded_us=_time_or_none(as_of_recorded, "--as-of-recorded"),
                    as_of_effective_us=_time_or_none(as_of_effective, "--as-of-effective"),
                    progress=lambda pos, head: bar.update(task, completed=pos, total=head),
                )
        except QuipuError as exc:
            raise fail(exc) from None
    out.print(
        f"snapshot {report.name}: {', '.join(p.name for p in chosen)} folded to position {report.to_position}",
        markup=False,
    )


def _register_replay(command: str, projection: str) -> None:
    def run(
        name: Annotated[Optional[str], typer.Option("--name", help="snapshot name (default from the rule)")] = None,
        to_position: Annotated[
            Optional[int], typer.Option("--to-position", min=0, help="the log's first N events")
        ] = None,
        as_of_recorded: Annotated[
            Optional[str], typer.Option("--as-of-recorded", help="what the ledger knew then (ISO time)")
        ] = None,
        as_of_effective: Annotated[
            Optional[str], typer.Option("--as-of-effective", help="what had happened by then (ISO time)")
        ] = None,
        database: DatabaseOpt = None,
    ) -> None:
        _replay(projection, name, to_position, as_of_recorded, as_of_effective, database)

    run.__doc__ = f"Rebuild {'every projection' if projection == 'all' else projection} into a snapshot."
    replay_app.command(command)(run)


for _command, _projection in (
    ("journal", "journal"),
    ("balances", "balances"),
    ("trial-balance", "trial_balance"),
    ("all", "all"),
):
    _register_replay(_command, _projection)


@replay_app.command("diff")
def replay_diff(
    a: Annotated[str, typer.Argument(help="first snapshot")],
    b: Annotated[str, typer.Argument(help="second snapshot")],
    projection: Annotated[str, typer.Option("--projection")] = "all",
    database: DatabaseOpt = None,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Rows that differ between two snapshots (exit 1 when any differ)."""
    from adapters.replay import diff

    with ledger_for(database, must_exist=True) as ledger:
        try:
            rows = diff(ledger, a, b, _projections(ledger, projection))
        except QuipuError as exc:
            raise fail(exc) from None
    render(rows, fmt, f"{a} vs {b}", out)
    if rows:
        raise typer.Exit(1)


def _projections(ledger: Ledger, which: str) -> list[Projection]:
    known = {p.name: p for p in ledger.runner.projections}
    if which == "all":
        return list(known.values())
    if which not in known:
        raise QuipuError(f"--projection: {which!r} is not one of {', '.join(known)} or all")
    return [known[which]]


audit_app = typer.Typer(help="The audit trail of accounts and entries.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("trail")
def audit_trail(
    ref: Annotated[str, typer.Argument(help="an account (party:id:purpose:CCY), a log position or an event id")],
    database: DatabaseOpt = None,
    fmt: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Every posting on an account with its running balance, or one entry with the adjustments that correct it."""
    from adapters.audit_trail import account_trail, entry_trail

    with ledger_for(database, must_exist=True) as ledger:
        try:
            ledger.runner.run()
            rows = account_trail(ledger, ref) if ref.count(":") == 3 else entry_trail(ledger, ref)
        except QuipuError as exc:
            raise fail(exc) from None
    render(rows, fmt, f"audit trail of {ref}", out)


@app.command("backup")
def backup_cmd(
    out_file: Annotated[Path, typer.Argument(help="the backup file to create")],
    database: DatabaseOpt = None,
) -> None:
    """Copy the whole ledger (log and views) with the database's own tools, online."""
    from adapters.backup import backup

    try:
        out.print(backup(database, out_file))
    except QuipuError as exc:
        raise fail(exc) from None


@app.command("restore")
def restore_cmd(
    backup_file: Annotated[Path, typer.Argument(help="a file made by quipu backup")],
    database: DatabaseOpt = None,
    force: Annotated[bool, typer.Option("--force", help="replace a ledger that is not empty")] = False,
) -> None:
    """Restore a backup, then walk its hash chain and compare its views with a rebuild."""
    from adapters.backup import restore
    from adapters.check import check_rebuild
    from adapters.cli import progress_bar
    from domain.integrity import verify_chain

    try:
        out.print(restore(database, backup_file, force))
    except QuipuError as exc:
        raise fail(exc) from None
    with ledger_for(database) as ledger:
        report = verify_chain(ledger.store)
        if report.broken is not None:
            err.print(
                "[red]restored log does not verify:[/red]",
                escape(f"position {report.broken.position}: {report.broken.reason}"),
            )
            raise typer.Exit(1)
        rows = check_rebuild(ledger, progress_bar)
    same = all(r["equal"] for r in rows)
    out.print(f"chain verified: {report.events} events; views {'equal' if same else 'DIFFER from'} a rebuild")
    if not same:
        raise typer.Exit(1)
