"""What every importer shares: the refusal, the accepted file, the problem list, and the checks
of one field (amounts, dates, currencies, card numbers) that every format applies alike."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final, NoReturn

from pydantic import ValidationError

from domain.recon.events import StatementLinePayload
from ledger.errors import MoneyError, QuipuError
from ledger.money import exponent, from_minor_units
from ledger.pan import contains_pan, masked

#: How many problems ``str(ImportRefused)`` shows; ``problems`` keeps them all.
SHOWN_PROBLEMS: Final = 20
PAN_REASON: Final = "looks like a card number (PAN); the file is refused and the number is not repeated here"
#: Descriptions longer than the event allows are cut rather than refused: they are for people, not matching.
MAX_DESCRIPTION: Final = 500


class ImportRefused(QuipuError, ValueError):
    """A file refused whole: nothing of it is recorded.

    ``problems`` are ``"FILE line N, column COL: reason"`` (``line`` and ``column`` left out when
    the problem is the whole file or the whole line). ``stopped_early`` says reading stopped at
    the configured number of problems, so the file may hold more.
    """

    def __init__(self, problems: list[str], stopped_early: bool = False) -> None:
        text = "; ".join(problems[:SHOWN_PROBLEMS])
        more = len(problems) - SHOWN_PROBLEMS
        if more > 0:
            text += f" (and {more} more)"
        if stopped_early:
            text += f" (reading stopped after {len(problems)} problems)"
        super().__init__(text)
        self.problems = problems
        self.stopped_early = stopped_early


@dataclass(frozen=True)
class ImportedFile:
    """A report or statement read and validated whole."""

    sha256: str
    """Hex SHA-256 of the file's bytes: its identity (the same file imports to the same events)."""
    name: str
    """The file's base name."""
    source: str
    """Who produced it: ``mercadopago``, ``stripe``, ``bank-itau`` ..."""
    source_kind: str
    """``processor`` or ``bank``."""
    format: str
    """The importer that read it."""
    lines: tuple[StatementLinePayload, ...]
    """Every record line, in file order."""


class StopReading(Exception):
    """Going on reading is pointless (a fatal problem, or the problem limit); internal."""


class Problems:
    """The problems of one file, each naming the file, line and column."""

    def __init__(self, file_name: str, limit: int) -> None:
        self.file = masked(file_name)
        self.limit = limit
        self.items: list[str] = []
        self.stopped_early = False

    def add(self, reason: str, line: int | None = None, column: str | None = None) -> None:
        """Record one problem; stops the reading when the limit is reached."""
        where = self.file
        if line is not None:
            where += f" line {line}"
        if column is not None:
            where += f"{',' if line is not None else ''} column {masked(column)}"
        # Every message is masked: a reason may quote the cell it is about.
        self.items.append(f"{where}: {masked(reason)}")
        if len(self.items) >= self.limit:
            self.stopped_early = True
            raise StopReading

    def fatal(self, reason: str, line: int | None = None, column: str | None = None) -> NoReturn:
        """Record a problem after which nothing more can be read."""
        self.add(reason, line, column)
        raise StopReading


@dataclass(frozen=True)
class Context:
    """What a format reader needs besides the bytes."""

    file_name: str
    sha256: str
    source: str
    source_kind: str
    currency: str | None
    """The caller's currency (or the format's configured one), for files without a currency column."""
    max_lines: int
    problems: Problems

    def base(self) -> dict[str, Any]:
        """The payload fields every line of this file shares."""
        return {
            "file_sha256": self.sha256,
            "file_name": self.file_name,
            "source": self.source,
            "source_kind": self.source_kind,
        }


@lru_cache(maxsize=16)
def _number_pattern(decimal_sep: str, thousands_sep: str) -> re.Pattern[str]:
    d, t = re.escape(decimal_sep), re.escape(thousands_sep)
    grouped = rf"[0-9]{{1,3}}(?:{t}[0-9]{{3}})+|" if thousands_sep else ""
    return re.compile(rf"([+-]?)({grouped}[0-9]+)(?:{d}([0-9]+))?")


def quoted(text: str, most: int = 40) -> str:
    """A cell as a problem quotes it: its repr, cut short (a 5,000-digit amount is not repeated back whole)."""
    shown = repr(text)
    return shown if len(shown) <= most else f"{shown[:most]}… ({len(text)} characters)"


def parse_decimal(text: str, decimal_sep: str = ".", thousands_sep: str = "", signed: bool = True) -> Decimal:
    """The exact number written in ``text`` (never through a float), or ValueError with the reason.

    Accepts an optional sign, thousands groups and decimals as configured; refuses exponents
    (``1e5``), ``NaN``, spaces inside and more than 18 digits either side of the separator.
    """
    example = f"1234{decimal_sep}56"
    match = _number_pattern(decimal_sep, thousands_sep).fullmatch(text)
    if match is None:
        raise ValueError(f"{quoted(text)} is not an amount written like {example}")
    sign, whole, frac = match.group(1), match.group(2), match.group(3) or ""
    if thousands_sep:
        whole = whole.replace(thousands_sep, "")
    if len(whole) > 18 or len(frac) > 18:
        raise ValueError(f"{quoted(text)} has more than 18 digits")
    if sign == "-" and not signed:
        raise ValueError(f"{quoted(text)} is negative, which this column must not be")
    return Decimal(f"{sign}{whole}.{frac}" if frac else f"{sign}{whole}")


def check_currency(code: str) -> str:
    """An ISO 4217 code Quipu accepts as money, or ValueError."""
    try:
        exponent(code)
    except MoneyError as exc:
        raise ValueError(exc.reason) from None
    return code


def amount_text(value: Decimal, currency: str, allow_trailing_zeros: bool = False) -> str:
    """``|value|`` as the canonical wire string of ``currency``; ValueError if it has more
    decimals than the currency (unless they are zeros and ``allow_trailing_zeros``)."""
    exp = exponent(currency)
    places = -int(value.as_tuple().exponent)
    quantum = Decimal(1).scaleb(-exp)
    if places > exp and not (allow_trailing_zeros and value == value.quantize(quantum)):
        takes = "no decimals" if exp == 0 else f"at most {exp} decimals"
        raise ValueError(f"{value} has too many decimals for {currency}, which takes {takes}")
    return format(abs(value).quantize(quantum), "f")


def minor_units_text(text: str, currency: str) -> tuple[int, str]:
    """A signed integer of minor units (Stripe style) as (sign, canonical wire string of its magnitude)."""
    if not re.fullmatch(r"[+-]?[0-9]{1,18}", text):
        raise ValueError(f"{quoted(text)} is not a whole number of {currency} minor units")
    minor = int(text)
    sign = (minor > 0) - (minor < 0)
    return sign, format(from_minor_units(abs(minor), currency), "f")


def parse_date(text: str, formats: Sequence[str]) -> dt.date:
    """The date written in ``text`` in the first format that fits, or ValueError.

    ``iso8601`` keeps the date in the text's own offset (``2026-10-02T23:30:00-03:00`` is
    2 October, though already 3 October in UTC); ``unix`` is seconds since 1970 as a UTC date.
    """
    for fmt in formats:
        try:
            if fmt == "iso8601":
                day = dt.datetime.fromisoformat(text).date()
            elif fmt == "unix":
                if not re.fullmatch(r"[0-9]{1,11}", text):
                    continue
                day = dt.datetime.fromtimestamp(int(text), dt.UTC).date()
            else:
                day = dt.datetime.strptime(text, fmt).date()
        except (ValueError, OverflowError, OSError):
            continue
        # A year outside this range is a misread column, not a statement date.
        if not 1970 <= day.year <= 2999:
            raise ValueError(f"{quoted(text)} is outside the years 1970 to 2999")
        return day
    raise ValueError(f"{quoted(text)} is not a date in the format {' or '.join(formats)}")


def cut_description(text: str) -> str | None:
    """A description the event accepts: ``None`` when empty, cut at 500 characters."""
    text = text.strip()
    if not text:
        return None
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"


def build_line(
    fields: dict[str, Any], line_no: int, columns: Mapping[str, str], problems: Problems
) -> StatementLinePayload | None:
    """The validated payload, or ``None`` after recording each field at fault under its column.

    ``columns`` maps payload field names to the file's column (header or element path).
    """
    try:
        line = StatementLinePayload.model_validate(fields)
    except ValidationError as exc:
        for e in exc.errors(include_url=False):
            loc = [str(p) for p in e["loc"]]
            column = columns.get(loc[0], loc[0]) if loc else "line"
            field = ".".join(loc) or "line"
            kind = e["type"]
            # Amount errors are raised for the whole amount object; name the part at fault.
            if kind == "money_amount":
                field += ".amount"
            elif kind == "money_currency":
                field += ".currency"
            problems.add(f"{field}: {e['msg'].removeprefix('Value error, ')}", line_no, column)
        return None
    # The catalogue refuses a PAN in these fields too; checking the built line as well keeps a
    # value we derived (a cut description, a joined account) from ever reaching it.
    for name in ("reference", "batch_id", "description", "file_name"):
        value = getattr(line, name)
        if isinstance(value, str) and contains_pan(value):
            problems.add(PAN_REASON, line_no, columns.get(name, name))
            return None
    return line
