"""Report rows and their renderings: a Rich table, JSON, CSV.

Rows are flat dicts whose amounts are decimal strings next to a ``currency`` field, so a
script can rely on ``--format json`` (one JSON array) and ``--format csv``.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import re
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Final

import orjson
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from adapters.bootstrap import Ledger
from adapters.exports._model import defuse
from ledger.accounts import Side, normal_side_of
from ledger.errors import QuipuError
from ledger.money import format_amount, from_minor_units, quantize

Row = dict[str, Any]


class Format(str, Enum):
    """Output formats every report takes."""

    table = "table"
    json = "json"
    csv = "csv"


class ReportError(QuipuError, ValueError):
    """A report that cannot be produced as asked (e.g. an as-of beyond the projected log)."""


def projection_lag(ledger: Ledger, projection: str) -> str | None:
    """A note for a report read from ``projection`` while it is behind the log, else None.

    Reports read the views as they are (an auditor's read-only role cannot project); a view that has not
    caught up must not pass for the whole ledger, least of all an empty trial balance for a zero one.
    """
    at, head = ledger.runner.positions()[projection], ledger.store.head()
    if at >= head:
        return None
    missing = head - at
    return (
        f"note: the {projection.replace('_', ' ')} view is at position {at:,} of {head:,} "
        f"({missing:,} event{'' if missing == 1 else 's'} not yet projected); "
        "run `quipu project` to bring it up to date"
    )


def trial_balance_rows(ledger: Ledger) -> list[Row]:
    """One row per currency: debits, credits and their net (zero in a sound ledger)."""
    rows = ledger.views.query("SELECT currency, debits_minor, credits_minor FROM trial_balance ORDER BY currency")
    return [
        {
            "currency": ccy,
            "debits": format_amount(d, ccy),
            "credits": format_amount(c, ccy),
            "net": format_amount(d - c, ccy),
        }
        for ccy, d, c in rows
    ]


def parse_as_of(value: str) -> tuple[str, int]:
    """``("position", n)`` for an integer, ``("time", µs)`` for an ISO 8601 time with offset."""
    if value.isascii() and value.isdigit():  # str.isdigit also takes '²', which int() refuses
        return "position", int(value)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(f"--as-of: {value!r} is neither a log position nor an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ReportError(f"--as-of: {value!r} has no UTC offset; write e.g. {value}Z or {value}-03:00")
    return "time", int(moment.timestamp()) * 1_000_000 + moment.microsecond


def balance_rows(ledger: Ledger, pattern: str | None = None, as_of: str | None = None) -> list[Row]:
    """Balances per account, on each account's normal side, live or as of a position or time."""
    if as_of is None:
        raw = ledger.views.query(
            "SELECT account, currency, debits_minor, credits_minor FROM account_balances ORDER BY account"
        )
    else:
        kind, value = parse_as_of(as_of)
        journal_at = ledger.runner.positions()["journal"]
        if kind == "position" and value > journal_at:
            raise ReportError(
                f"--as-of: position {value} is beyond the journal's projected position {journal_at}; "
                "run `quipu project` first"
            )
        column = "position" if kind == "position" else "occurred_at_us"
        raw = ledger.views.query(
            f"SELECT account, currency, SUM(debit_minor), SUM(credit_minor) FROM journal_postings "
            f"WHERE {column} <= ? GROUP BY account, currency ORDER BY account",
            (value,),
        )
    out = []
    for account, ccy, d_raw, c_raw in raw:
        if pattern and not fnmatch.fnmatchcase(account, pattern):
            continue
        d, c = int(d_raw), int(c_raw)
        balance = d - c if normal_side_of(account) is Side.DEBIT else c - d
        out.append(
            {
                "account": account,
                "currency": ccy,
                "debits": format_amount(d, ccy),
                "credits": format_amount(c, ccy),
                "balance": format_amount(balance, ccy),
                "normal_side": normal_side_of(account).value,
            }
        )
    return out


_NUMBER_TEXT: Final = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def _csv_cell(value: Any) -> Any:
    if isinstance(value, str) and not _NUMBER_TEXT.fullmatch(value):
        return defuse(value)
    return "" if value is None else value


def render(rows: Sequence[Row], fmt: Format, title: str, console: Console) -> None:
    """Print rows in the chosen format (tables to the console, JSON and CSV to stdout)."""
    if fmt is Format.json:
        console.file.write(orjson.dumps(list(rows), option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if fmt is Format.csv:
        buf = io.StringIO()
        if rows:
            # Text from people and files (a case note, a bank reference) must not run as a formula when the
            # file is opened in a spreadsheet: defused as the report exports do; numbers are kept as they are.
            # RFC 4180's CRLF, as the exports write: with "\n" a carriage return inside a cell is not quoted, and
            # most readers start a new row there, one whose first cell escaped the defusing.
            names = list(rows[0])
            writer = csv.writer(buf, lineterminator="\r\n")
            writer.writerow([defuse(name) for name in names])
            writer.writerows([[_csv_cell(row.get(name)) for name in names] for row in rows])
        console.file.write(buf.getvalue())
        return
    table = RichTable(title=title)
    columns = list(rows[0]) if rows else ["(no rows)"]
    for col in columns:
        numeric = col in {"debits", "credits", "net", "balance", "amount", "position", "events"}
        table.add_column(col, justify="right" if numeric else "left")
    for row in rows:
        # Cells are text, never Rich markup: a case note holding "[/x]" would otherwise stop the report.
        table.add_row(*(Text(str(row[c])) for c in columns))
    console.print(table)


def fx_exposure_rows(ledger: Ledger, valuation: str = "USD") -> list[Row]:
    """Open FX positions: each currency's liquidity balance, valued at its latest recorded rate.

    A liquidity account is credited with the currency a conversion takes in and debited with
    the currency it pays out: a credit balance is a long position in that currency.
    """
    # The pattern is a parameter: psycopg reads a literal % in the SQL text as a placeholder.
    positions = ledger.views.query(
        "SELECT currency, credits_minor - debits_minor FROM account_balances WHERE account LIKE ? ORDER BY currency",
        ("platform:main:fx_liquidity:%",),
    )
    out: list[Row] = []
    for ccy, net in positions:
        amount = from_minor_units(int(net), ccy)
        if ccy == valuation:
            rate, source, value = Decimal(1), "", amount
        else:
            latest = ledger.views.query(
                "SELECT rate, source FROM fx_rates WHERE base = ? AND quote = ? ORDER BY as_of_us DESC LIMIT 1",
                (ccy, valuation),
            )
            if not latest:
                out.append({"currency": ccy, "position": str(amount), "rate": "", "source": "no rate recorded",
                            f"value_{valuation.lower()}": ""})  # fmt: skip
                continue
            rate, source = Decimal(latest[0][0]), str(latest[0][1])
            value = quantize(amount * rate, valuation)
        out.append(
            {
                "currency": ccy,
                "position": str(amount),
                "rate": format(rate, "f"),
                "source": source,
                f"value_{valuation.lower()}": str(value),
            }
        )
    return out
