"""The composition root: a database URL in, concrete stores and services out.

``sqlite:///path/to/file.db`` (the default, ``./quipu-data/quipu.db``) keeps the log and the
views in one file; ``postgresql://user:pass@host:port/db?schema=name`` keeps them in one
schema. ``--database`` beats ``QUIPU_DATABASE_URL`` beats the default.
"""

from __future__ import annotations

import functools
import os
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError, PersistenceError

from adapters.store.pg_url import DatabaseUrlError, parse_pg_url
from adapters.store.postgres_store import EVENTS as PG_EVENTS
from adapters.store.postgres_store import PostgresEventStore
from adapters.store.sqlite_store import SQLiteEventStore
from adapters.views.postgres_views import PostgresViewStore
from adapters.views.sqlite_views import SQLiteViewStore
from domain.service import LedgerService
from domain.settlement.policy import SettlementPolicy
from ledger.errors import QuipuError
from projections.core import core_projections
from projections.runner import ProjectionRunner

DEFAULT_URL: Final = "sqlite:///quipu-data/quipu.db"


@functools.cache
def settlement_policy() -> SettlementPolicy:
    """The settlement policy built from the rule files under ``config/``, once per process: it
    caches the bank calendars it builds, which every ledger and command of the process shares."""
    from adapters import config_files

    return SettlementPolicy(config_files.regions(), config_files.calendars(), config_files.settlement_methods())


def database_url(explicit: str | None = None) -> str:
    """The URL in force: the explicit one, else ``QUIPU_DATABASE_URL``, else the default."""
    return explicit or os.environ.get("QUIPU_DATABASE_URL") or DEFAULT_URL


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///`` URL (three slashes: relative; four: absolute)."""
    rest = url[len("sqlite:///") :]
    if not rest or rest.startswith(":memory:"):
        raise DatabaseUrlError("an in-memory SQLite ledger would lose every event; give a file path")
    return Path(rest)


@dataclass
class Ledger:
    """Everything one ledger needs, wired together."""

    url: str
    store: SQLiteEventStore | PostgresEventStore
    views: SQLiteViewStore | PostgresViewStore
    service: LedgerService = field(init=False)
    runner: ProjectionRunner = field(init=False)

    def __post_init__(self) -> None:
        self.service = LedgerService(self.store)
        from adapters import config_files

        projections = core_projections(settlement_policy(), config_files.aml_rules())
        # Reading the next page while one is folded pays where the log is in a server (ADR 0032).
        self.runner = ProjectionRunner(self.store, self.views, projections, read_ahead=self.dialect == "postgresql")

    @property
    def dialect(self) -> str:
        return "postgresql" if isinstance(self.views, PostgresViewStore) else "sqlite"

    def close(self) -> None:
        self.views.close()
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


#: What a database restart or a cut connection raises, through eventsourcing's recorders (which wrap SQLite's and
#: psycopg's) or psycopg directly (the views): a failure of the database, never of the input; worth a retry.
DATABASE_LOST: Final = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)


class DatabaseUnavailable(QuipuError):
    """The database cannot be reached or the file cannot be created."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (drivers add hints below it), or its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _cannot_open(url: str | None, exc: BaseException) -> DatabaseUnavailable:
    return DatabaseUnavailable(f"--database: cannot open {redacted(database_url(url))}: {first_line(exc)}")


class LedgerNotFound(QuipuError):
    """A command that only reads was pointed at a ledger that does not exist."""


def require_ledger(url: str | None = None) -> None:
    """Raise :class:`LedgerNotFound` unless a ledger exists at ``url``, without creating anything.

    Opening creates a missing ledger, which suits the commands that write. A report pointed at a mistyped
    path would otherwise create an empty ledger there and answer with its empty views.
    """
    resolved = database_url(url)
    if resolved.startswith("sqlite:///"):
        path = sqlite_path(resolved)
        if not path.is_file():
            raise LedgerNotFound(
                f"--database: no ledger at {resolved} (no such file); `quipu post` or `quipu demo` creates one"
            )
    elif resolved.startswith(("postgresql://", "postgres://")):
        target = parse_pg_url(resolved)
        try:
            with psycopg.connect(target.conninfo, autocommit=True, connect_timeout=10) as conn:
                row = conn.execute(
                    "SELECT to_regclass(quote_ident(%s) || '.' || quote_ident(%s))", (target.schema, PG_EVENTS)
                ).fetchone()
        except psycopg.OperationalError as exc:
            raise _cannot_open(resolved, exc) from None
        if row is None or row[0] is None:
            raise LedgerNotFound(
                f"--database: no ledger in schema {target.schema!r} of {redacted(resolved)}; "
                "`quipu post` or `quipu demo` creates one"
            )


def open_ledger(url: str | None = None, migrate: bool = True) -> Ledger:
    """Open (creating if needed) the ledger at ``url`` and bring its views' schema up to date."""
    try:
        return _open(url, migrate)
    except (OSError, psycopg.OperationalError, PersistenceError, sqlite3.OperationalError) as exc:
        raise _cannot_open(url, exc) from None


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _open(url: str | None, migrate: bool) -> Ledger:
    resolved = database_url(url)
    views: SQLiteViewStore | PostgresViewStore
    store: SQLiteEventStore | PostgresEventStore
    if resolved.startswith("sqlite:///"):
        path = sqlite_path(resolved)
        store = SQLiteEventStore(path)
        views = SQLiteViewStore(path)
    elif resolved.startswith(("postgresql://", "postgres://")):
        target = parse_pg_url(resolved)
        store = PostgresEventStore(target)
        views = PostgresViewStore(target)
    else:
        raise DatabaseUrlError(f"database URL {resolved!r} must start with sqlite:/// or postgresql://")
    if migrate:
        views.upgrade()
    return Ledger(resolved, store, views)
