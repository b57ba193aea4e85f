"""Backups through each database's own tools: SQLite's online backup API, PostgreSQL's pg_dump.

A backup holds the log and the views together; a restore is then checked by walking the
hash chain, so a damaged copy is caught before anyone trusts it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import psycopg
from psycopg.sql import SQL, Identifier

from adapters.bootstrap import database_url, sqlite_path
from adapters.store.pg_url import PgTarget, parse_pg_url
from ledger.errors import QuipuError


class BackupError(QuipuError):
    """A backup or restore that could not be made."""


def backup(url: str | None, out: Path) -> str:
    """Write a consistent copy of the ledger at ``url`` to ``out``; returns what was done."""
    resolved = database_url(url)
    if out.exists():
        raise BackupError(f"{out}: already exists; choose a new file")
    out.parent.mkdir(parents=True, exist_ok=True)
    if resolved.startswith("sqlite:///"):
        source = sqlite_path(resolved)
        if not source.exists():
            raise BackupError(f"--database: {source} does not exist")
        with sqlite3.connect(source) as src, sqlite3.connect(out) as dst:
            src.backup(dst)  # online: writers may go on; the copy is one consistent snapshot
        return f"SQLite online backup of {source} to {out}"
    target = parse_pg_url(resolved)
    _run(["pg_dump", "--format=custom", f"--schema={target.schema}", f"--file={out}", _dsn(target)], target)
    return f"pg_dump of schema {target.schema} to {out}"


def restore(url: str | None, backup_file: Path, force: bool = False) -> str:
    """Restore ``backup_file`` into the (empty, unless ``force``) ledger at ``url``."""
    resolved = database_url(url)
    if not backup_file.is_file():
        raise BackupError(f"{backup_file}: no such backup file")
    if resolved.startswith("sqlite:///"):
        dest = sqlite_path(resolved)
        if dest.exists() and not force:
            raise BackupError(f"--database: {dest} exists; restore into a new file or pass --force")
        dest.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{dest}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(backup_file, dest)
        return f"restored {backup_file} to {dest}"
    target = parse_pg_url(resolved)
    with psycopg.connect(target.conninfo, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", (target.schema,)
        ).fetchone()
        if exists and exists[0] and not force:
            raise BackupError(f"--database: schema {target.schema} is not empty; pass --force to replace it")
        conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(target.schema)))
    # Owners and grants belong to the cluster restored into (the analyst role may not exist
    # there): restore the data and the schema, and run `quipu db analyst-role` again if needed.
    _run(["pg_restore", "--no-owner", "--no-acl", f"--dbname={_dsn(target)}", str(backup_file)], target)
    return f"restored {backup_file} into schema {target.schema}"


def _dsn(target: PgTarget) -> str:
    return f"host={target.host} port={target.port} user={target.user} dbname={target.dbname}"


def _run(command: list[str], target: PgTarget) -> None:
    env = {**os.environ, "PGPASSWORD": target.password}  # never on the command line, where ps shows it
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600, check=False)
    except FileNotFoundError:
        raise BackupError(f"{command[0]} is not installed (PostgreSQL client tools)") from None
    if done.returncode != 0:
        raise BackupError(
            f"{command[0]} failed: {done.stderr.strip().splitlines()[-1] if done.stderr else done.returncode}"
        )
