"""``quipu db analyst-role``: a read-only role over the ``analyst_*`` views (ADR 0020)."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from adapters.analyst import DEFAULT_ROLE, AnalystRoleError, connection_hint, grant_analyst_role
from adapters.cli import DatabaseOpt, db_app, fail, ledger_for, out
from adapters.views.postgres_views import PostgresViewStore
from ledger.errors import QuipuError


@db_app.command("analyst-role")
def analyst_role(
    name: Annotated[str, typer.Option("--name", help="the role to create or update")] = DEFAULT_ROLE,
    password_env: Annotated[
        Optional[str],
        typer.Option("--password-env", help="environment variable holding a password: makes a LOGIN role"),
    ] = None,
    database: DatabaseOpt = None,
) -> None:
    """Create (idempotently) a role that may SELECT from the analyst_* views and nothing else."""
    password = None
    if password_env is not None:
        password = os.environ.get(password_env, "")
        if not password:
            raise fail(QuipuError(f"--password-env: environment variable {password_env} is not set or empty"))
    # Opening the ledger applies pending migrations, so the views exist before they are granted.
    with ledger_for(database) as ledger:
        views = ledger.views
        if not isinstance(views, PostgresViewStore):
            path = views.path
            out.print(
                "SQLite has no roles: anyone who can read the file reads all of it, so "
                "--name and --password-env do not apply.\n"
                f"The analyst_* views are in {path}; open it read-only:\n"
                f"  sqlite3 'file:{path}?mode=ro'      (or: sqlite3 -readonly {path})\n"
                "  then e.g. SELECT * FROM analyst_trial_balance;  the views are listed in docs/analyst-views.md",
                markup=False,
            )
            return
        try:
            report = grant_analyst_role(views.target, name, password)
        except AnalystRoleError as exc:
            raise fail(exc) from None
    state = "created" if report.created else "updated"
    login = "LOGIN, password set" if report.password_set else ("LOGIN" if report.login else "NOLOGIN")
    out.print(
        f"role {report.name} {state} ({login}): USAGE on schema {views.target.schema}, "
        f"SELECT on {len(report.views)} analyst views and nothing else there",
        markup=False,
    )
    out.print(connection_hint(views.target, report), markup=False)
