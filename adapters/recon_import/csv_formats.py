"""The CSV formats: Mercado Pago's release report, Stripe's balance transactions, a bank CSV.

Each reads the file as a stream of lines (one line in memory at a time), checks the header
against the configured columns, then turns every record row into a statement line, collecting
every problem rather than stopping at the first.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import IO, Final

from adapters.recon_import.model import (
    PAN_REASON,
    Context,
    Problems,
    amount_text,
    build_line,
    check_currency,
    cut_description,
    minor_units_text,
    parse_date,
    parse_decimal,
    quoted,
)
from adapters.recon_import.settings import CsvFormat, MercadoPagoFormat
from domain.recon.events import StatementLinePayload
from ledger.pan import contains_pan

#: The longest physical line read; a longer one is refused (a file with no newlines at all
#: must not be read into memory whole).
MAX_LINE_BYTES: Final = 1024 * 1024


def _text_lines(stream: IO[bytes], problems: Problems) -> Iterator[str]:
    """The file's physical lines as text, decoded one by one so a bad byte is named by its line."""
    line_no = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        line_no += 1
        if len(raw) > MAX_LINE_BYTES:
            problems.fatal(f"longer than {MAX_LINE_BYTES} bytes", line_no)
        if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.fatal(f"not UTF-8 text (byte {exc.start + 1} of the line)", line_no)
        if "\x00" in text:
            problems.fatal("holds a NUL character (is the file UTF-16?)", line_no)
        yield text


class Row:
    """One record row, with helpers that record a problem under the row's line and column."""

    def __init__(self, line_no: int, cells: dict[str, str], layout: CsvFormat, problems: Problems) -> None:
        self.line_no = line_no
        self.cells = cells
        self.layout = layout
        self.problems = problems
        self.ok = True

    def header(self, role: str) -> str:
        """The header name of a role (the role itself when unmapped, for messages)."""
        return self.layout.header(role) or role

    def text(self, role: str) -> str:
        """The cell of a role, stripped; empty when unmapped or absent."""
        name = self.layout.header(role)
        return self.cells.get(name, "") if name else ""

    def fail(self, column: str, reason: str) -> None:
        """Record a problem with this row."""
        self.ok = False
        self.problems.add(reason, self.line_no, column)

    def decimal(self, role: str, signed: bool = True) -> Decimal | None:
        """The number in a role's cell (``None`` when empty or bad; bad is recorded)."""
        text = self.text(role)
        if not text:
            return None
        try:
            return parse_decimal(text, self.layout.decimal_separator, self.layout.thousands_separator, signed)
        except ValueError as exc:
            self.fail(self.header(role), str(exc))
            return None

    def amount(self, value: Decimal | None, role: str, currency: str | None) -> dict[str, str] | None:
        """``|value|`` as a wire amount; ``None`` when zero, absent or bad (bad is recorded)."""
        if value is None or value == 0 or currency is None:
            return None
        try:
            return {
                "amount": amount_text(value, currency, self.layout.allow_trailing_zero_decimals),
                "currency": currency,
            }
        except ValueError as exc:
            self.fail(self.header(role), str(exc))
            return None

    def date(self, role: str, required: bool = True) -> dt.date | None:
        """The date in a role's cell (``None`` when empty or bad; bad or missing-but-required is recorded)."""
        text = self.text(role)
        if not text:
            if required:
                self.fail(self.header(role), "a date is required")
            return None
        try:
            return parse_date(text, self.layout.date_formats)
        except ValueError as exc:
            self.fail(self.header(role), str(exc))
            return None

    def currency(self, fixed: str | None) -> str | None:
        """The row's currency: its currency column if mapped and filled, else ``fixed``."""
        text = self.text("currency").upper()
        if not text:
            if fixed is None:
                self.fail(self.header("currency"), "a currency is required")
            return fixed
        try:
            check_currency(text)
        except ValueError as exc:
            self.fail(self.header("currency"), str(exc))
            return None
        if fixed is not None and text != fixed:
            self.fail(self.header("currency"), f"{text} differs from the currency asked, {fixed}")
            return None
        return text

    def reference(self, record_type: str) -> tuple[str, str | None]:
        """(column, our id): the first non-empty of the configured columns for this record type."""
        names = self.layout.references(record_type)
        for name in names:
            if self.cells.get(name, ""):
                return name, self.cells[name]
        column = names[0] if names else "reference"
        self.fail(column, f"no reference: {' and '.join(names) or 'no reference column'} empty")
        return column, None


def csv_rows(stream: IO[bytes], layout: CsvFormat, ctx: Context) -> Iterator[Row]:
    """The record rows of a CSV file after its header is checked; blank rows are skipped."""
    problems = ctx.problems
    reader = csv.reader(_text_lines(stream, problems), delimiter=layout.delimiter, quotechar='"', strict=True)

    def next_row() -> list[str] | None:
        try:
            return next(reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            problems.fatal(f"not valid CSV ({exc})", max(reader.line_num, 1))

    header = next_row()
    if header is None or not any(cell.strip() for cell in header):
        problems.fatal("the first line must be the header", 1)
    names = [cell.strip() for cell in header]
    bad_header = False
    for i, name in enumerate(names):
        column = name or f"#{i + 1}"
        if contains_pan(name):
            problems.add(PAN_REASON, 1, f"#{i + 1}")
            bad_header = True
        elif not name:
            problems.add("a column has no header name", 1, column)
            bad_header = True
        elif names.index(name) != i:
            problems.add("the header names this column twice", 1, name)
            bad_header = True
    for role, name in layout.columns.items():
        if name not in names:
            problems.add(f"required column is missing (read as {role})", 1, name)
            bad_header = True
    if layout.unknown_columns == "refuse":
        known = {*layout.columns.values(), *layout.optional_columns.values()}
        for name in names:
            if name and name not in known and not contains_pan(name):
                problems.add("unknown column (this layout does not have it)", 1, name)
                bad_header = True
    if bad_header:
        problems.fatal("the header does not match the configured columns", 1)
    last_line = reader.line_num
    records = 0
    while True:
        cells = next_row()
        if cells is None:
            return
        line_no, last_line = last_line + 1, reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        records += 1
        if records > ctx.max_lines:
            problems.fatal(f"more than {ctx.max_lines} lines", line_no)
        if len(cells) != len(names):
            problems.add(f"has {len(cells)} fields, the header has {len(names)}", line_no)
            continue
        row = Row(line_no, {n: c.strip() for n, c in zip(names, cells, strict=True)}, layout, problems)
        for name, cell in row.cells.items():
            if contains_pan(cell):
                row.fail(name, PAN_REASON)
        if row.ok:
            yield row


def _columns(row: Row, **roles: str) -> dict[str, str]:
    """Payload field → the header name it was read from, for validation messages."""
    return {field: row.header(role) for field, role in roles.items()}


def read_mercadopago(stream: IO[bytes], layout: MercadoPagoFormat, ctx: Context) -> list[StatementLinePayload]:
    """Lines from a Mercado Pago release report: the ``release`` rows; the subtotals must add to the total."""
    problems = ctx.problems
    currency = ctx.currency
    if currency is None and layout.header("currency") is None:
        problems.fatal(
            "no currency: a release report has no currency column; pass the account's currency "
            "or set currency in recon_formats.toml"
        )
    lines: list[StatementLinePayload] = []
    subtotals: Decimal = Decimal(0)
    seen_subtotal = False
    total: tuple[int, Decimal] | None = None
    for row in csv_rows(stream, layout, ctx):
        row_type = row.text("row_type").lower()
        if row_type in layout.structure_rows:
            if row_type in (layout.subtotal_row, layout.total_row):
                credit, debit = row.decimal("net_credit"), row.decimal("net_debit")
                balance = (credit or Decimal(0)) - (debit or Decimal(0))
                if row_type == layout.subtotal_row:
                    subtotals += balance
                    seen_subtotal = True
                elif total is not None:
                    row.fail(row.header("row_type"), f"a second {layout.total_row} row (the first is line {total[0]})")
                else:
                    total = (row.line_no, balance)
            continue
        if row_type not in layout.record_rows:
            allowed = ", ".join((*layout.record_rows, *layout.structure_rows))
            row.fail(row.header("row_type"), f"unknown record type {quoted(row_type)}; expected one of {allowed}")
            continue
        line = _mercadopago_line(row, layout, ctx, currency)
        if line is not None:
            lines.append(line)
    if total is not None and seen_subtotal and subtotals != total[1]:
        problems.add(
            f"the subtotal rows add up to {subtotals} but the total is {total[1]}",
            total[0],
            f"{layout.header('net_credit')}/{layout.header('net_debit')}",
        )
    return lines


def _mercadopago_line(
    row: Row, layout: MercadoPagoFormat, ctx: Context, fixed: str | None
) -> StatementLinePayload | None:
    kind = row.text("kind")
    record_type = layout.record_types.get(kind.lower(), layout.record_type_default)
    if record_type is None:
        row.fail(row.header("kind"), f"unknown {row.header('kind')} {quoted(kind)}: not in record_types")
        record_type = "other"
    currency = row.currency(fixed)
    credit = row.decimal("net_credit", signed=False)
    debit = row.decimal("net_debit", signed=False)
    net_role = "net_credit"
    if credit and debit:
        row.fail(f"{row.header('net_credit')}/{row.header('net_debit')}", "both credit and debit are set")
    elif not credit and not debit:
        if row.ok:
            row.fail(f"{row.header('net_credit')}/{row.header('net_debit')}", "neither credit nor debit is set")
    elif debit:
        net_role = "net_debit"
    gross = row.decimal("gross")
    fees = [v for v in (row.decimal("fee"), row.decimal("financing_fee")) if v is not None]
    fee = sum(fees, Decimal(0)) if fees else None
    value_date = row.date("value_date")
    booked_on = row.date("booked_on", required=False) or value_date
    ref_column, reference = row.reference(record_type)
    net = row.amount(credit or debit, net_role, currency)
    fields = {
        **ctx.base(),
        "line_no": row.line_no,
        "record_type": record_type,
        "reference": reference,
        "batch_id": row.text("batch_id") or None,
        "direction": "debit" if net_role == "net_debit" else "credit",
        "gross": row.amount(gross, "gross", currency),
        "fee": row.amount(fee, "fee", currency),
        "net": net,
        "booked_on": booked_on,
        "value_date": value_date,
        "description": cut_description(row.text("description") or kind),
    }
    if not row.ok:
        return None
    columns = _columns(row, gross="gross", fee="fee", net=net_role, booked_on="booked_on", value_date="value_date",
                       batch_id="batch_id", description="kind", record_type="kind")  # fmt: skip
    return build_line(fields, row.line_no, {**columns, "reference": ref_column}, ctx.problems)


def read_stripe(stream: IO[bytes], layout: CsvFormat, ctx: Context) -> list[StatementLinePayload]:
    """Lines from a Stripe balance-transactions export (signed integer minor units)."""
    lines: list[StatementLinePayload] = []
    for row in csv_rows(stream, layout, ctx):
        kind = row.text("kind").lower()
        category = row.text("reporting_category").lower()
        record_type = (
            layout.record_types.get(f"{kind}/{category}") or layout.record_types.get(kind) or layout.record_type_default
        )
        if record_type is None:
            row.fail(row.header("kind"), f"unknown type {quoted(kind)}: not in record_types")
            record_type = "other"
        currency = row.currency(ctx.currency)
        signs: dict[str, int] = {}
        amounts: dict[str, dict[str, str] | None] = {}
        for role in ("net", "gross", "fee"):
            text = row.text(role)
            amounts[role] = None
            if not text:
                if role == "net":
                    row.fail(row.header(role), "an amount is required")
                continue
            if currency is None:
                continue
            try:
                signs[role], magnitude = minor_units_text(text, currency)
            except ValueError as exc:
                row.fail(row.header(role), str(exc))
                continue
            if signs[role]:
                amounts[role] = {"amount": magnitude, "currency": currency}
        if row.ok and currency is not None and signs.get("net") == 0:
            row.fail(row.header("net"), "net is zero: a line must move money")
        booked_on = row.date("booked_on")
        value_date = row.date("value_date", required=False)
        ref_column, reference = row.reference(record_type)
        if not row.ok:
            continue
        fields = {
            **ctx.base(),
            "line_no": row.line_no,
            "record_type": record_type,
            "reference": reference,
            "batch_id": row.text("batch_id") or None,
            "direction": "debit" if signs["net"] < 0 else "credit",
            "gross": amounts["gross"],
            "fee": amounts["fee"],
            "net": amounts["net"],
            "booked_on": booked_on,
            "value_date": value_date,
            "description": cut_description(row.text("description")),
            # The processor's conversion rate, when it converted the buyer's amount (FX rounding).
            "exchange_rate": row.text("exchange_rate") or None,
        }
        columns = _columns(row, gross="gross", fee="fee", net="net", booked_on="booked_on", value_date="value_date",
                           batch_id="batch_id", description="description", record_type="kind",
                           exchange_rate="exchange_rate")  # fmt: skip
        line = build_line(fields, row.line_no, {**columns, "reference": ref_column}, ctx.problems)
        if line is not None:
            lines.append(line)
    return lines


def read_bank_csv(stream: IO[bytes], layout: CsvFormat, ctx: Context) -> list[StatementLinePayload]:
    """Lines from a bank statement CSV: one signed amount column, or a credit and a debit column."""
    problems = ctx.problems
    if ctx.currency is None and layout.header("currency") is None:
        problems.fatal("no currency: the layout has no currency column; pass the account's currency")
    lines: list[StatementLinePayload] = []
    signed = layout.header("amount") is not None
    for row in csv_rows(stream, layout, ctx):
        currency = row.currency(ctx.currency)
        if signed:
            net_role = "amount"
            value = row.decimal("amount")
            direction = "debit" if value is not None and value < 0 else "credit"
            if value is None and row.ok:
                row.fail(row.header("amount"), "an amount is required")
        else:
            credit, debit = row.decimal("credit", signed=False), row.decimal("debit", signed=False)
            net_role, direction, value = ("debit", "debit", debit) if debit else ("credit", "credit", credit)
            if credit and debit:
                row.fail(f"{row.header('credit')}/{row.header('debit')}", "both credit and debit are set")
            elif not credit and not debit and row.ok:
                row.fail(f"{row.header('credit')}/{row.header('debit')}", "neither credit nor debit is set")
        if value == 0 and row.ok:
            row.fail(row.header(net_role), "the amount is zero: a line must move money")
        net = row.amount(value, net_role, currency)
        booked_on = row.date("booked_on")
        value_date = row.date("value_date", required=False)
        record_type = f"bank_{direction}"
        ref_column, reference = row.reference(record_type)
        if not row.ok:
            continue
        fields = {
            **ctx.base(),
            "line_no": row.line_no,
            "record_type": record_type,
            "reference": reference,
            "direction": direction,
            "net": net,
            "booked_on": booked_on,
            "value_date": value_date,
            "description": cut_description(row.text("description")),
        }
        columns = _columns(row, net=net_role, booked_on="booked_on", value_date="value_date",
                           description="description", record_type=net_role)  # fmt: skip
        line = build_line(fields, row.line_no, {**columns, "reference": ref_column}, ctx.problems)
        if line is not None:
            lines.append(line)
    return lines
