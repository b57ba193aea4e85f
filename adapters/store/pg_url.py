"""PostgreSQL URLs: ``postgresql://user:password@host:port/dbname?schema=quipu``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from ledger.errors import QuipuError

DEFAULT_SCHEMA = "quipu"


class DatabaseUrlError(QuipuError, ValueError):
    """A database URL Quipu cannot use; says which part and why."""


@dataclass(frozen=True, slots=True)
class PgTarget:
    """Where a PostgreSQL ledger lives: server, database and schema."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    schema: str

    @property
    def conninfo(self) -> str:
        """A libpq connection string (no schema: that is Quipu's, not libpq's)."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(host=self.host, port=self.port, user=self.user, password=self.password, dbname=self.dbname)

    def with_schema(self, schema: str) -> PgTarget:
        """The same server and database, another schema (a scratch rebuild, a test)."""
        return PgTarget(self.host, self.port, self.user, self.password, self.dbname, schema)


def parse_pg_url(url: str) -> PgTarget:
    """Parse a ``postgresql://`` URL; the password may also come from ``PGPASSWORD``."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise DatabaseUrlError(f"database URL scheme {parts.scheme!r} is not postgresql://")
    password = unquote(parts.password or "") or os.environ.get("PGPASSWORD", "")
    if not password:
        raise DatabaseUrlError("database URL has no password (and PGPASSWORD is not set)")
    schema = parse_qs(parts.query).get("schema", [DEFAULT_SCHEMA])[0]
    if not schema.replace("_", "").isalnum():
        raise DatabaseUrlError(f"schema {schema!r} must be letters, digits and underscores")
    return PgTarget(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=unquote(parts.username or "postgres"),
        password=password,
        dbname=(parts.path or "/postgres").lstrip("/") or "postgres",
        schema=schema,
    )
