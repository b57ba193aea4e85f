"""``read_statement``: one entry point for every format, which reads and checks the whole file
before anything is returned (a file is accepted whole or refused whole)."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Final

from adapters.recon_import.camt053 import read_camt053
from adapters.recon_import.csv_formats import read_bank_csv, read_mercadopago, read_stripe
from adapters.recon_import.model import Context, ImportedFile, ImportRefused, Problems, StopReading, check_currency
from adapters.recon_import.settings import load_formats
from domain.recon.events import StatementLinePayload
from ledger.pan import contains_pan

#: The formats ``read_statement`` knows.
FORMATS: Final[tuple[str, ...]] = ("mercadopago-release", "stripe-balance", "camt053", "bank-csv")
_READERS: Final[dict[str, Callable[[IO[bytes], Any, Context], list[StatementLinePayload]]]] = {
    "mercadopago-release": read_mercadopago,
    "stripe-balance": read_stripe,
    "camt053": read_camt053,
    "bank-csv": read_bank_csv,
}
_IDENT: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}")
_HASH_CHUNK: Final = 1024 * 1024


def read_statement(
    path: Path,
    fmt: str,
    source: str | None = None,
    currency: str | None = None,
    formats_file: Path | None = None,
) -> ImportedFile:
    """Read and validate a whole report or statement file.

    ``fmt`` is one of :data:`FORMATS`; ``source`` overrides the format's default producer (a
    bank file names its bank: ``bank-itau``); ``currency`` is the account's currency for files
    without a currency column (and must match the file's when it has one). Raises
    :class:`ImportRefused` listing every problem found (file, line, column); nothing partial is
    ever returned. A bad ``formats_file`` raises :class:`adapters.config_files.ConfigError`.
    """
    name = path.name
    if fmt not in FORMATS:
        raise ImportRefused([f"{name}: unknown format {fmt!r}; one of {', '.join(FORMATS)}"])
    formats = load_formats(formats_file)
    layout = formats.section(fmt)
    problems = Problems(name, formats.max_problems)
    try:
        chosen_source = layout.source if source is None else source
        if not _IDENT.fullmatch(chosen_source):
            problems.fatal(f"source {chosen_source!r} is not a name such as bank-itau (letters, digits, . _ -)")
        chosen_currency = currency if currency is not None else getattr(layout, "currency", None)
        if chosen_currency is not None:
            try:
                check_currency(chosen_currency)
            except ValueError as exc:
                problems.fatal(f"currency: {exc}")
        if not 1 <= len(name) <= 500 or contains_pan(name):
            problems.fatal("the file name must be 1 to 500 characters and hold no card number")
        try:
            # Checked before opening: opening a named pipe for reading would wait for a writer.
            if not stat.S_ISREG(path.stat().st_mode):
                problems.fatal("not a regular file")
            with path.open("rb") as stream:
                info = os.fstat(stream.fileno())
                if info.st_size == 0:
                    problems.fatal("the file is empty (0 bytes)")
                if info.st_size > formats.max_file_bytes:
                    problems.fatal(f"{info.st_size} bytes is larger than the limit of {formats.max_file_bytes}")
                sha256 = _digest(stream, formats.max_file_bytes, problems)
                stream.seek(0)
                ctx = Context(
                    name, sha256, chosen_source, layout.source_kind, chosen_currency, formats.max_lines, problems
                )
                lines = _READERS[fmt](stream, layout, ctx)
        except OSError as exc:
            problems.fatal(f"cannot read ({exc.strerror or exc})")
    except StopReading:
        pass
    if problems.items:
        raise ImportRefused(problems.items, problems.stopped_early)
    return ImportedFile(sha256, name, chosen_source, layout.source_kind, fmt, tuple(lines))


def _digest(stream: IO[bytes], limit: int, problems: Problems) -> str:
    """The SHA-256 of the whole stream, read in chunks (it may have grown since it was measured)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(_HASH_CHUNK):
        size += len(chunk)
        if size > limit:
            problems.fatal(f"larger than the limit of {limit} bytes")
        digest.update(chunk)
    return digest.hexdigest()
