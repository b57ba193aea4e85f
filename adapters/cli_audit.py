"""``quipu checkpoint`` and ``quipu export``: what an auditor takes away."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import orjson
import typer

from adapters.audit import export, key_path, load_or_create_key, positions_between, take_checkpoint
from adapters.cli import DatabaseOpt, app, err, ledger_for, out
from adapters.reports import ReportError, parse_as_of
from ledger.errors import QuipuError

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
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
    line = orjson.dumps(signed.model_dump()).decode()
    if out_file is not None:
        out_file.write_text(line + "\n")
        err.print(f"checkpoint of position {signed.position} written to {out_file}")
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
    with ledger_for(database) as ledger:
        try:
            first, last = positions_between(ledger.store, _time_or_none(start, "--from"), _time_or_none(end, "--to"))
            report = export(ledger.store, load_or_create_key(key_path(key)), first, last, out_dir)
        except QuipuError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
    out.print(
        f"exported positions {report.first}..{report.last} ({report.events} events) to {out_dir}; "
        f"verify offline with: python scripts/verify_export.py {out_dir}"
    )
