"""What a report is made of, and its cells made exact once for every writer.

Each section's rows are checked and typed in one pass (:func:`prepare`), so the CSV, JSON,
XLSX and HTML writers agree on every figure and none of them parses a string again.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal, NamedTuple, get_args

from ledger.errors import MoneyError, QuipuError
from ledger.money import exponent, quantize

#: A report row, as in :mod:`adapters.reports`: a flat dict whose amounts are decimal strings.
Row = dict[str, Any]

Kind = Literal["text", "money", "int", "date", "datetime", "percent", "decimal"]
ChartKind = Literal["bar", "hbar", "pie", "stacked_bar"]
KINDS: Final = frozenset(get_args(Kind))
CHART_KINDS: Final = frozenset(get_args(ChartKind))

# A number as reports write it. Decimal() alone would also take "NaN", "1e5" and "1_000".
_NUMBER: Final = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_INTEGER: Final = re.compile(r"-?[0-9]+")
# What an untyped string column must look like to be read as a number: no leading zeros, so
# identifiers such as "00123" stay text.
_PLAIN_DECIMAL: Final = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")
# Excel keeps 15 significant digits: a longer numeric-looking string is an identifier, and
# turning it into a number would corrupt it.
_EXCEL_DIGITS: Final = 15
#: What makes a spreadsheet read a cell as a formula (OWASP "CSV injection").
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


class ExportError(QuipuError, ValueError):
    """A report that cannot be written as asked: unknown format, a bad cell, a bad chart."""


@dataclass(frozen=True)
class Column:
    """How one column is typed. ``currency_column`` names the row field holding a money cell's currency.

    Kinds: ``text``; ``money`` (a decimal string, Decimal or int, at most its currency's ISO 4217
    decimals); ``int``; ``date`` and ``datetime`` (objects or ISO 8601 strings; an aware datetime is
    shown in UTC); ``percent`` (a fraction: ``"0.125"`` is 12.5 %); ``decimal`` (any exact number).
    """

    name: str
    kind: Kind = "text"
    currency_column: str | None = "currency"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ExportError(f"column {self.name!r}: unknown kind {self.kind!r}; use one of {sorted(KINDS)}")


@dataclass(frozen=True)
class Chart:
    """A chart of one section, drawn in the HTML export only. Values are exact; floats only for drawing."""

    title: str
    kind: ChartKind
    labels: Sequence[str]
    series: Mapping[str, Sequence[Decimal | int]]
    unit: str = ""

    def __post_init__(self) -> None:
        if self.kind not in CHART_KINDS:
            raise ExportError(f"chart {self.title!r}: unknown kind {self.kind!r}; use one of {sorted(CHART_KINDS)}")
        if not self.series:
            raise ExportError(f"chart {self.title!r}: no series")
        for name, values in self.series.items():
            if len(values) != len(self.labels):
                raise ExportError(
                    f"chart {self.title!r}: series {name!r} has {len(values)} values for {len(self.labels)} labels"
                )
            for value in values:
                if isinstance(value, bool) or not isinstance(value, (int, Decimal)) or not Decimal(value).is_finite():
                    raise ExportError(f"chart {self.title!r}: series {name!r} holds {value!r}, not a Decimal or int")
        if self.kind == "pie":
            if len(self.series) != 1:
                raise ExportError(f"chart {self.title!r}: a pie takes exactly one series")
            values = next(iter(self.series.values()))
            if any(v < 0 for v in values) or not any(v > 0 for v in values):
                raise ExportError(f"chart {self.title!r}: a pie needs non-negative values, not all zero")


@dataclass(frozen=True)
class Section:
    """One table of a report with its charts. Without ``columns``, every key of the rows, typed by inference."""

    title: str
    rows: Sequence[Row]
    columns: Sequence[Column] | None = None
    charts: Sequence[Chart] = ()


class Money(NamedTuple):
    """A money cell: the amount at its currency's exponent (``currency`` None when the row has none)."""

    amount: Decimal
    currency: str | None


Cell = str | int | Decimal | date | datetime | Money | None


@dataclass(frozen=True)
class Table:
    """A section made exact: its columns resolved and every cell typed."""

    title: str
    columns: tuple[Column, ...]
    cells: list[list[Cell]]
    charts: tuple[Chart, ...]


def infer_columns(rows: Iterable[Row], **kinds: Kind) -> list[Column]:
    """The columns of ``rows`` (every key, first seen first), typed by their values, ``kinds`` overriding.

    An int is ``int``, a Decimal or a plain decimal string (no leading zeros, at most 15 digits)
    is ``decimal``, dates and datetimes are themselves, anything else is ``text``. Money is never
    guessed: ``infer_columns(rows, debits="money", credits="money")`` says which columns are.
    """
    rows = list(rows)
    names = list(dict.fromkeys(key for row in rows for key in row))
    unknown = set(kinds) - set(names)
    if unknown:
        raise ExportError(f"no such column in the rows: {', '.join(sorted(unknown))}")
    return [Column(name, kinds.get(name) or _infer_kind(name, (row.get(name) for row in rows))) for name in names]


def _infer_kind(name: str, values: Iterable[object]) -> Kind:
    seen: set[str] = set()
    for value in values:
        if value is None or value == "":
            continue
        if isinstance(value, bool):
            return "text"
        if isinstance(value, float):
            raise ExportError(f"column {name!r}: {value!r} is a float; pass a Decimal or a decimal string")
        if isinstance(value, int):
            seen.add("int")
        elif isinstance(value, Decimal):
            seen.add("decimal")
        elif isinstance(value, datetime):
            seen.add("datetime")
        elif isinstance(value, date):
            seen.add("date")
        elif isinstance(value, str) and _PLAIN_DECIMAL.fullmatch(value) and _digits(value) <= _EXCEL_DIGITS:
            seen.add("decimal")
        else:
            return "text"
    if not seen:
        return "text"
    if seen == {"int"}:
        return "int"
    if seen <= {"int", "decimal"}:
        return "decimal"
    if seen == {"date"}:
        return "date"
    if seen <= {"date", "datetime"}:
        return "datetime"
    return "text"


def _digits(number: str) -> int:
    return len(number.lstrip("-").replace(".", "").lstrip("0"))


def prepare(section: Section) -> Table:
    """The section's cells checked and typed, or an ExportError naming the section, row and column."""
    columns = tuple(section.columns) if section.columns is not None else tuple(infer_columns(section.rows))
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise ExportError(f"section {section.title!r}: a column is listed twice")
    converters = [_CONVERTERS[c.kind] for c in columns]
    cells: list[list[Cell]] = []
    for index, row in enumerate(section.rows, start=1):
        out: list[Cell] = []
        for column, convert in zip(columns, converters, strict=True):
            value = row.get(column.name)
            try:
                out.append(convert(value, column, row))
            except (ExportError, MoneyError, InvalidOperation, ValueError, TypeError) as exc:
                raise ExportError(f"section {section.title!r}, row {index}, column {column.name!r}: {exc}") from None
        cells.append(out)
    return Table(section.title, columns, cells, tuple(section.charts))


def _text(value: object, column: Column, row: Row) -> Cell:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _number(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, (bool, float)):
        # A float may already have lost a digit; the caller must hand over the exact figure.
        raise ExportError(f"{value!r} is a {type(value).__name__}; pass a Decimal or a decimal string")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ExportError(f"{value} is not a finite number")
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return Decimal(value.strip())
    raise ExportError(f"{value!r} is not a decimal number")


def _money(value: object, column: Column, row: Row) -> Cell:
    amount = _number(value)
    if amount is None:
        return None
    code = row.get(column.currency_column) if column.currency_column else None
    if code is None or code == "":
        return Money(amount, None)
    if not isinstance(code, str):
        raise ExportError(f"currency {code!r} is not an ISO 4217 code")
    places = exponent(code)
    decimals = -int(amount.as_tuple().exponent)
    if decimals > places:
        # Showing it at the currency's decimals would round it where nobody sees.
        raise ExportError(f"{amount} has more decimals than {code} takes ({places})")
    return Money(quantize(amount, code), code)


def _decimal(value: object, column: Column, row: Row) -> Cell:
    return _number(value)


def _int(value: object, column: Column, row: Row) -> Cell:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value)
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    raise ExportError(f"{value!r} is not an integer")


def _date(value: object, column: Column, row: Row) -> Cell:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        raise ExportError(f"{value!r} is a datetime; declare the column as datetime")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return date.fromisoformat(value.strip())
    raise ExportError(f"{value!r} is not a date")


def _datetime(value: object, column: Column, row: Row) -> Cell:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip())
    if isinstance(value, datetime):
        # Spreadsheets have no time zones: one zone for every file, the ledger's.
        return value.astimezone(UTC) if value.tzinfo is not None else value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    raise ExportError(f"{value!r} is not a datetime")


_CONVERTERS: Final = {
    "text": _text,
    "money": _money,
    "int": _int,
    "date": _date,
    "datetime": _datetime,
    "percent": _decimal,
    "decimal": _decimal,
}


def defuse(text: str) -> str:
    """``text`` with a leading ``'`` when a spreadsheet would otherwise run it as a formula."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def plain(cell: Cell) -> str:
    """A cell as a canonical string: decimals without exponent, ISO 8601 dates, '' for empty."""
    if cell is None:
        return ""
    if isinstance(cell, str):
        return cell
    if isinstance(cell, Money):
        return format(cell.amount, "f")
    if isinstance(cell, Decimal):
        return format(cell, "f")
    if isinstance(cell, (date, datetime)):
        return cell.isoformat()
    return str(cell)


def decimals_of(number: Decimal) -> int:
    """How many decimals ``number`` is written with (0 for an integral exponent)."""
    return max(0, -int(number.as_tuple().exponent))


def unique_slugs(titles: Sequence[str]) -> list[str]:
    """ASCII, lower-case, dash-separated names for ``titles``, distinct from one another."""
    seen: set[str] = set()
    out = []
    for index, title in enumerate(titles, start=1):
        ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
        base = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")[:60] or f"section-{index}"
        slug, n = base, 2
        while slug in seen:
            slug, n = f"{base}-{n}", n + 1
        seen.add(slug)
        out.append(slug)
    return out
