"""Fixtures: every store test runs on a real SQLite file and on a real PostgreSQL schema.

PostgreSQL comes from ``QUIPU_TEST_DATABASE_URL`` (the test command starts the server and
sets it). Without it the PostgreSQL cases are skipped locally, and fail under ``CI=true``:
CI must never pass by silently testing less.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.sql import SQL, Identifier

from adapters.bootstrap import Ledger, open_ledger
from adapters.store.pg_url import parse_pg_url

PG_URL = os.environ.get("QUIPU_TEST_DATABASE_URL", "")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _pg_available() -> str | None:
    if not PG_URL:
        return "QUIPU_TEST_DATABASE_URL is not set"
    try:
        with psycopg.connect(parse_pg_url(PG_URL).conninfo, connect_timeout=5):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL unreachable at {PG_URL}: {exc}"


_PG_PROBLEM = _pg_available()


def pg_url_for_new_schema() -> tuple[str, str]:
    """A URL pointing at a fresh, unique schema (the caller drops it)."""
    if _PG_PROBLEM is not None:
        if IN_CI:
            pytest.fail(f"CI=true and PostgreSQL is required: {_PG_PROBLEM}")
        pytest.skip(_PG_PROBLEM)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}schema={schema}", schema


def drop_schema(schema: str) -> None:
    with psycopg.connect(parse_pg_url(PG_URL).conninfo, autocommit=True) as conn:
        conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(schema)))


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL for an empty ledger, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.db"
        return
    url, schema = pg_url_for_new_schema()
    try:
        yield url
    finally:
        drop_schema(schema)


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    """An open, empty ledger, once per backend."""
    with open_ledger(ledger_url) as opened:
        yield opened
