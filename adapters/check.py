"""``quipu project --check``: rebuild every projection from 0 into scratch and compare."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.sql import SQL, Identifier
from rich.progress import Progress

from adapters.bootstrap import Ledger
from adapters.rebuild import MIN_PARALLEL_EVENTS, rebuild
from adapters.views.postgres_views import PostgresViewStore
from adapters.views.sqlite_views import SQLiteViewStore
from projections.runner import ProjectionRunner


def check_rebuild(
    ledger: Ledger,
    progress_bar: Callable[[], Progress],
    workers: int | None = None,
    min_events: int = MIN_PARALLEL_EVENTS,
) -> list[dict[str, Any]]:
    """Per projection: its position, the live checksum, the rebuilt one and whether they match.

    The rebuild goes into a scratch store (a temporary SQLite file, or a scratch PostgreSQL
    schema) up to the live views' position, so the live views are never touched.
    """
    live = ledger.runner.checksums()
    positions = ledger.runner.positions()
    target = max(positions.values(), default=0)
    scratch: SQLiteViewStore | PostgresViewStore
    cleanup: Callable[[], None]
    if isinstance(ledger.views, PostgresViewStore):
        live_target = ledger.views.target
        schema = f"{live_target.schema}_check_{os.getpid()}"
        scratch = PostgresViewStore(live_target.with_schema(schema))

        def cleanup() -> None:
            scratch.close()
            with psycopg.connect(live_target.conninfo, autocommit=True) as conn:
                conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(schema)))

    else:
        tmpdir = tempfile.mkdtemp(prefix="quipu-check-")
        scratch = SQLiteViewStore(Path(tmpdir) / "views.db")

        def cleanup() -> None:
            scratch.close()
            for f in Path(tmpdir).iterdir():
                f.unlink()
            os.rmdir(tmpdir)

    try:
        scratch.upgrade()
        with progress_bar() as bar:
            task = bar.add_task("rebuilding from 0", total=target)

            def moved(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            # As `project --rebuild` does: worker processes for the page-local projections on a long log.
            rebuild(ledger, to_position=target, progress=moved, workers=workers, min_events=min_events, views=scratch)
        rebuilt = ProjectionRunner(ledger.store, scratch, ledger.runner.projections).checksums()
    finally:
        cleanup()
    return [
        {
            "projection": name,
            "position": positions[name],
            "live": live[name][:16],
            "rebuilt": rebuilt[name][:16],
            "equal": live[name] == rebuilt[name],
        }
        for name in live
    ]
