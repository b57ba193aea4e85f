"""A small migration runner: numbered SQL files, applied once, never edited (ADR 0007).

Each file runs in its own transaction together with the row that records it, so a failed
migration leaves nothing behind. An applied file whose SHA-256 changed stops the upgrade.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from ledger.errors import QuipuError

ROOT: Final = Path(__file__).resolve().parents[2] / "migrations"
Dialect = Literal["sqlite", "postgresql"]


class MigrationError(QuipuError):
    """A migration that cannot be applied, or an applied one that was edited."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations(dialect: Dialect) -> list[Migration]:
    """The dialect's migrations in version order."""
    found = []
    for path in sorted((ROOT / dialect).glob("*.sql")):
        number, _, name = path.stem.partition("_")
        if not number.isdigit():
            raise MigrationError(f"{path.name}: a migration file name starts with its number")
        found.append(Migration(int(number), name, path.read_text()))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"{dialect} migrations must be numbered 1..n without gaps, found {versions}")
    return found


def pending(applied: dict[int, str], dialect: Dialect) -> list[Migration]:
    """Migrations not yet applied; raises if an applied one was edited since."""
    todo = []
    for m in migrations(dialect):
        recorded = applied.get(m.version)
        if recorded is None:
            todo.append(m)
        elif recorded != m.sha256:
            raise MigrationError(
                f"migration {m.version:04d}_{m.name} was edited after it was applied; add a new migration instead"
            )
    return todo


ApplyOne = Callable[[Migration], None]
