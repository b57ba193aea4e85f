"""Any report written as a file: CSV, JSON, XLSX or one self-contained HTML page.

A report is a title and :class:`Section` s, each a list of flat rows (as in
:mod:`adapters.reports`: amounts are decimal strings next to a ``currency`` field), optionally
typed by :class:`Column` s and illustrated by :class:`Chart` s::

    export_report("Reconciliation", [Section("Exceptions", rows, columns=infer_columns(rows, amount="money"))],
                  "xlsx", Path("out/recon.xlsx"), locale="pt_BR")

Formats:

* ``csv``: UTF-8 without BOM, RFC 4180 (CRLF line ends), a header row. One section is written to ``out``; several are
  written one file each next to ``out``, named ``<out stem>-<section slug><out suffix>``
  (:func:`csv_paths` lists them) and ``export_report`` returns the first. Figures are canonical
  decimal strings (a BRL amount ``12.3`` is written ``12.30``); dates are ISO 8601.
* ``json``: ``{"title", "subtitle", "generated_for", "sections": [{"title", "rows": [...]}]}``;
  amounts stay decimal strings (never JSON numbers), ints stay ints, dates are ISO 8601.
* ``xlsx``: one worksheet per section; money, ints, decimals and percents are numeric cells
  (money from its Decimal, with its currency's ISO 4217 decimals in the number format), dates
  are dates (aware datetimes in UTC: spreadsheets have no zones); header bold and frozen,
  auto-filter. Charts are not drawn here.
* ``html``: one page with no external request (inline CSS, charts as inline SVG), amounts
  formatted for ``locale``; identical bytes for identical input.

In CSV and XLSX a text cell that a spreadsheet would run as a formula (it starts with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return) is written with a leading ``'`` (OWASP CSV
injection). Numbers are typed cells, so a negative amount is not text and keeps its sign.

Every file is written to a temporary file in its directory and moved into place, so a reader
never sees half a report; a new file is readable by its owner only (reports hold financial data),
a replaced one keeps its mode.
"""

from __future__ import annotations

import csv
import os
import stat
import tempfile
from collections.abc import Callable, Sequence
from contextlib import suppress
from enum import Enum
from pathlib import Path
from typing import IO, Any, Final

import orjson

from adapters.exports._model import (
    Cell,
    Chart,
    Column,
    ExportError,
    Kind,
    Row,
    Section,
    Table,
    defuse,
    infer_columns,
    plain,
    prepare,
    unique_slugs,
)

__all__ = [
    "FORMATS",
    "Chart",
    "Column",
    "ExportError",
    "Kind",
    "Row",
    "Section",
    "csv_paths",
    "defuse",
    "export_report",
    "infer_columns",
]

FORMATS: Final = ("csv", "html", "json", "xlsx")


def export_report(
    title: str,
    sections: Sequence[Section],
    fmt: str,
    out: Path,
    *,
    subtitle: str = "",
    generated_for: str = "",
    locale: str = "en",
) -> Path:
    """Write the report to ``out`` in ``fmt`` (csv, json, xlsx or html) and return the path written.

    For a CSV of several sections the files are those of :func:`csv_paths` and the first is
    returned. Raises :class:`ExportError` for an unknown format or a cell that is not what its
    column says (naming the section, row and column), before anything is written.
    """
    kind = _format_name(fmt)
    out = Path(out)
    tables = [prepare(s) for s in sections]
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        paths = csv_paths(out, sections)
        tables = tables or [Table("", (), [], ())]  # no section: an empty file, still written
        _write_all([(p, _csv_writer(t)) for p, t in zip(paths, tables, strict=True)], text=True)
        return paths[0]
    if kind == "json":
        body = _json_bytes(title, subtitle, generated_for, tables)
        _write_all([(out, lambda f: f.write(body))], text=False)
    elif kind == "xlsx":
        from adapters.exports._xlsx import write_xlsx

        _write_all([(out, lambda f: write_xlsx(f, title, subtitle, generated_for, tables))], text=False)
    else:
        from adapters.exports._html import render_html

        page = render_html(title, subtitle, generated_for, tables, locale).encode()
        _write_all([(out, lambda f: f.write(page))], text=False)
    return out


def _format_name(fmt: object) -> str:
    # Accept adapters.reports.Format and its kin: their value is the name.
    name = fmt.value if isinstance(fmt, Enum) else fmt
    if not isinstance(name, str) or name.lower() not in FORMATS:
        raise ExportError(f"cannot export as {name!r}: the file formats are {', '.join(FORMATS)}")
    return name.lower()


def csv_paths(out: Path, sections: Sequence[Section]) -> list[Path]:
    """Where a CSV export writes: ``out`` for one section, else ``<stem>-<slug><suffix>`` per section."""
    out = Path(out)
    if len(sections) <= 1:
        return [out]
    suffix = out.suffix or ".csv"
    return [out.with_name(f"{out.stem}-{slug}{suffix}") for slug in unique_slugs([s.title for s in sections])]


def _csv_writer(table: Table) -> Callable[[IO[Any]], None]:
    def write(f: IO[Any]) -> None:
        # RFC 4180's CRLF: Python 3.11 quotes a field holding a line-terminator character only,
        # so with "\n" a bare "\r" in user text would split the row for most readers.
        writer = csv.writer(f, lineterminator="\r\n")
        if not table.columns:
            return
        writer.writerow([defuse(c.name) for c in table.columns])
        text = [c.kind == "text" for c in table.columns]
        for row in table.cells:
            writer.writerow(
                [
                    defuse(cell) if is_text and isinstance(cell, str) else plain(cell)
                    for cell, is_text in zip(row, text, strict=True)
                ]
            )

    return write


def _json_cell(cell: Cell) -> object:
    if cell is None or isinstance(cell, (str, int)):
        return cell
    return plain(cell)


def _json_bytes(title: str, subtitle: str, generated_for: str, tables: Sequence[Table]) -> bytes:
    document = {
        "title": title,
        "subtitle": subtitle,
        "generated_for": generated_for,
        "sections": [
            {
                "title": t.title,
                "rows": [{c.name: _json_cell(cell) for c, cell in zip(t.columns, row, strict=True)} for row in t.cells],
            }
            for t in tables
        ],
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"


def _write_all(targets: Sequence[tuple[Path, Callable[[IO[Any]], object]]], *, text: bool) -> None:
    """Write every target to a temporary file beside it, then move them all into place.

    Nothing is replaced until every file is complete, so a failure leaves the old files.
    """
    staged: list[tuple[str, Path]] = []
    try:
        for path, write in targets:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            staged.append((tmp, path))
            with open(fd, "w", encoding="utf-8", newline="") if text else open(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            with suppress(FileNotFoundError):
                os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in staged:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    _sync_dirs({p.parent for _, p in staged})


def _sync_dirs(directories: set[Path]) -> None:
    # The rename is durable only once the directory entry is on disk.
    for directory in directories:
        try:
            fd = os.open(directory, os.O_RDONLY)
        except OSError:  # pragma: no cover - e.g. Windows, where directories cannot be opened
            continue
        try:
            with suppress(OSError):
                os.fsync(fd)
        finally:
            os.close(fd)
