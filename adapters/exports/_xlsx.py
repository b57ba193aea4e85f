"""The XLSX writer: one worksheet per section, figures as numeric cells made from Decimals.

openpyxl's write-only mode streams rows to the file (a 100k-row sheet in seconds and flat
memory); it still freezes panes, sizes columns and sets an auto-filter, as long as that is
done before the first row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import IO, Any, Final

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.cell.cell import Cell as XlCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from adapters.exports._model import Cell, Column, ExportError, Money, Table, decimals_of, defuse

_MAX_ROWS: Final = 1_048_576  # Excel's limit per worksheet, header included
_MAX_TEXT: Final = 32_767  # Excel's limit per cell
_EXCEL_DIGITS: Final = 15
_SHEET_NAME_MAX: Final = 31
_SHEET_FORBIDDEN: Final = re.compile(r"[\[\]:*?/\\]")
_WIDTH_SAMPLE: Final = 500  # rows looked at to size columns: the widths must be known before row one
_DATETIME_FORMAT: Final = "yyyy-mm-dd hh:mm:ss"


def write_xlsx(f: IO[Any], title: str, subtitle: str, generated_for: str, tables: Sequence[Table]) -> None:
    """Write a workbook of ``tables`` to the binary file ``f``."""
    for table in tables:
        _check_numbers(table)
    wb = Workbook(write_only=True)
    wb.properties.title = title
    wb.properties.creator = "Quipu"
    wb.properties.subject = subtitle or None
    wb.properties.description = f"Generated for {generated_for}" if generated_for else None
    names = sheet_names([t.title for t in tables])
    for table, name in zip(tables, names, strict=True):
        if len(table.cells) + 1 > _MAX_ROWS:
            raise ExportError(
                f"section {table.title!r}: {len(table.cells)} rows exceed a worksheet's {_MAX_ROWS - 1}; export as CSV"
            )
        _write_sheet(wb.create_sheet(name), table)
    if not tables:
        wb.create_sheet("Report")
    wb.save(f)  # openpyxl's ZipFile takes an open file as well as a name


def sheet_names(titles: Sequence[str]) -> list[str]:
    """Worksheet names for ``titles``: at most 31 characters, none of ``[]:*?/\\``, unique ignoring case."""
    seen: set[str] = {"history"}  # Excel reserves it
    out = []
    for index, title in enumerate(titles, start=1):
        base = _SHEET_FORBIDDEN.sub("_", ILLEGAL_CHARACTERS_RE.sub("", title)).strip().strip("'").strip()
        base = base[:_SHEET_NAME_MAX].rstrip("'") or f"Sheet {index}"
        name, n = base, 2
        while name.lower() in seen:
            tail = f" ({n})"
            name, n = base[: _SHEET_NAME_MAX - len(tail)].rstrip("'") + tail, n + 1
        seen.add(name.lower())
        out.append(name)
    return out


def _write_sheet(ws: WriteOnlyWorksheet, table: Table) -> None:
    columns = table.columns
    if not columns:
        ws.append(["(no rows)"])
        return
    ws.freeze_panes = "A2"
    for index, width in enumerate(_widths(table), start=1):
        # The stubs miss the attributes write-only sheets copy from ordinary ones.
        ws.column_dimensions[get_column_letter(index)].width = width  # type: ignore[attr-defined]
    last = get_column_letter(len(columns))
    ws.auto_filter.ref = f"A1:{last}{len(table.cells) + 1}"  # type: ignore[attr-defined]

    bold = Font(bold=True)
    header = []
    for column in columns:
        cell = WriteOnlyCell(ws, value=_text(column.name))
        cell.data_type = "s"
        cell.font = bold
        header.append(cell)
    ws.append(header)
    for row in table.cells:
        ws.append([_cell(ws, value, column) for value, column in zip(row, columns, strict=True)])


def _cell(ws: WriteOnlyWorksheet, value: Cell, column: Column) -> object:
    if value is None:
        return None
    if isinstance(value, str):
        safe = _text(value)
        if safe is value:
            # Plain text (defused text is never `value` itself): openpyxl stores it as a string already,
            # without the cost of a styled cell.
            return safe
        cell = WriteOnlyCell(ws, value=safe)
        cell.data_type = "s"  # never a formula, whatever it starts with
        return cell
    if isinstance(value, Money):
        return _number(ws, value.amount, _money_format(value.currency, decimals_of(value.amount)))
    if isinstance(value, Decimal):
        fmt = _percent_format(decimals_of(value)) if column.kind == "percent" else _decimal_format(decimals_of(value))
        return _number(ws, value, fmt)
    if isinstance(value, datetime):
        return _dated(ws, value.replace(tzinfo=None), _DATETIME_FORMAT)
    if isinstance(value, date):
        return value  # openpyxl gives a plain date its own "yyyy-mm-dd", without a styled cell
    return value  # an int within 15 digits: openpyxl writes it exactly


def _number(ws: WriteOnlyWorksheet, value: Decimal, number_format: str) -> XlCell:
    # openpyxl would write a Decimal through "%.16g", i.e. through a float; the cell gets the
    # decimal text itself, typed as a number.
    cell = WriteOnlyCell(ws, value=format(value, "f"))
    cell.data_type = "n"
    cell.number_format = number_format
    return cell


def _check_numbers(table: Table) -> None:
    """Refuse a number Excel cannot hold: as a double, past 15 significant digits, it is rounded unseen.

    Checked before the first row is written: a write-only sheet cannot be abandoned half-way cleanly.
    """
    numeric = [i for i, c in enumerate(table.columns) if c.kind in ("money", "int", "decimal", "percent")]
    for index, row in enumerate(table.cells, start=1):
        for i in numeric:
            cell = row[i]
            value = cell.amount if isinstance(cell, Money) else cell
            if isinstance(value, (int, Decimal)) and len(Decimal(value).normalize().as_tuple().digits) > _EXCEL_DIGITS:
                raise ExportError(
                    f"section {table.title!r}, row {index}, column {table.columns[i].name!r}: {value} has more than "
                    f"{_EXCEL_DIGITS} significant digits, which Excel would round; export as CSV or JSON instead"
                )


def _dated(ws: WriteOnlyWorksheet, value: datetime, number_format: str) -> XlCell:
    cell = WriteOnlyCell(ws, value=value)
    cell.number_format = number_format
    return cell


def _text(value: str) -> str:
    """A text cell Excel will open: defused, without XML-illegal control characters, within the cell limit."""
    # Stripped before it is defused: "\x01=cmd" stripped after would start with "=" again, unguarded.
    safe = defuse(ILLEGAL_CHARACTERS_RE.sub("", value) if ILLEGAL_CHARACTERS_RE.search(value) else value)
    return safe if len(safe) <= _MAX_TEXT else safe[: _MAX_TEXT - 1] + "…"


@cache
def _money_format(currency: str | None, decimals: int) -> str:
    number = _decimal_format(decimals)
    if currency is None:
        return number
    # The code as a literal suffix: correct in every Excel locale, unlike a symbol such as "$".
    return f'{number} "{currency}";[Red]-{number} "{currency}"'


@cache
def _decimal_format(decimals: int) -> str:
    return "#,##0" + ("." + "0" * decimals if decimals else "")


@cache
def _percent_format(decimals: int) -> str:
    # A fraction 0.125 shows as 12.5 %: two of its decimals become the percent's integer part.
    shown = max(0, decimals - 2)
    return "0" + ("." + "0" * shown if shown else "") + "%"


def _widths(table: Table) -> list[float]:
    widths = []
    sample = table.cells[:_WIDTH_SAMPLE]
    for index, column in enumerate(table.columns):
        longest = len(column.name) + 3  # room for the filter button
        for row in sample:
            longest = max(longest, _shown_length(row[index]))
        widths.append(float(min(max(longest + 1, 8), 60)))
    return widths


def _shown_length(value: Cell) -> int:
    if value is None:
        return 0
    if isinstance(value, Money):
        return len(f"{value.amount:,f}") + (len(value.currency) + 1 if value.currency else 0)
    if isinstance(value, Decimal):
        return len(f"{value:,f}")
    if isinstance(value, datetime):
        return 19
    if isinstance(value, date):
        return 10
    return len(str(value))
