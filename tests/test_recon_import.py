"""Importers of processor reports and bank statements: each format read into the lines it holds,
every malformed file refused whole with its line and column named, and the events derived from
a file's bytes alone."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.config_files import ConfigError
from adapters.recon_import import FORMATS, ImportedFile, ImportRefused, read_statement, statement_events
from adapters.recon_import.events import NAMESPACE
from adapters.recon_import.settings import DEFAULT_PATH
from domain.catalog import canonical_bytes, parse_event
from domain.recon.events import FileImported, LineImported

FIXTURES = Path(__file__).parent / "fixtures" / "recon"
CONFIG = DEFAULT_PATH.read_text(encoding="utf-8")
PAN = "4111 1111 1111 1111"  # a test card number (passes the Luhn check)

#: fixture, format, read_statement's keyword arguments
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("mercadopago_release.csv", "mercadopago-release", {"currency": "ARS"}),
    ("stripe_balance.csv", "stripe-balance", {}),
    ("camt053.xml", "camt053", {"source": "bank-itau"}),
    ("camt053_v02.xml", "camt053", {}),
    ("bank_itau.csv", "bank-csv", {"source": "bank-itau"}),
]


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def write(directory: Path, name: str, content: str | bytes) -> Path:
    path = directory / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def mutate(name: str, old: str, new: str) -> bytes:
    """The fixture with its first ``old`` replaced by ``new`` (which must be there)."""
    text = fixture_bytes(name).decode("utf-8-sig")
    assert old in text, f"{old!r} not in {name}"
    bom = b"\xef\xbb\xbf" if fixture_bytes(name).startswith(b"\xef\xbb\xbf") else b""
    return bom + text.replace(old, new, 1).encode()


def config_file(directory: Path, *changes: str) -> Path:
    """The shipped formats file with changes (old, new, old, new ...), each made once."""
    text = CONFIG
    for old, new in zip(changes[::2], changes[1::2], strict=True):
        assert old in text, f"{old!r} not in recon_formats.toml"
        text = text.replace(old, new, 1)
    return write(directory, "recon_formats.toml", text)


def refused(path: Path, fmt: str, **kwargs: Any) -> ImportRefused:
    with pytest.raises(ImportRefused) as info:
        read_statement(path, fmt, **kwargs)
    return info.value


def amount(line: Any, field: str) -> tuple[str, str] | None:
    value = getattr(line, field)
    return None if value is None else (value.amount, value.currency)


# --- each format read into its lines -------------------------------------------------------------------------


def test_a_mercadopago_release_report_becomes_its_release_rows_and_nothing_of_its_structure() -> None:
    imported = read_statement(FIXTURES / "mercadopago_release.csv", "mercadopago-release", currency="ARS")

    assert (imported.source, imported.source_kind, imported.format) == (
        "mercadopago",
        "processor",
        "mercadopago-release",
    )
    assert imported.sha256 == hashlib.sha256(fixture_bytes("mercadopago_release.csv")).hexdigest()
    assert imported.name == "mercadopago_release.csv"
    # Line 3's last field holds a quoted line break, so the refund starts on physical line 5.
    summary = [(line.line_no, line.record_type, line.direction, line.reference) for line in imported.lines]
    assert summary == [
        (3, "payment", "credit", "PAY-AR-0001"),
        (5, "refund", "debit", "RFD-AR-0001"),
        (6, "chargeback", "debit", "CB-AR-0001"),
        (7, "payout", "debit", "9988776655"),  # a withdrawal without EXTERNAL_REFERENCE: its SOURCE_ID
        (8, "other", "debit", "PAY-AR-0002"),
    ]
    payment = imported.lines[0]
    assert amount(payment, "net") == ("9350.50", "ARS")
    assert amount(payment, "gross") == ("10000.00", "ARS")
    assert amount(payment, "fee") == ("649.50", "ARS")  # MP_FEE_AMOUNT + FINANCING_FEE_AMOUNT, absolute
    assert Decimal(payment.gross.amount) - Decimal(payment.fee.amount) == Decimal(payment.net.amount)  # type: ignore[union-attr]
    # Approved at 23:30 on 2 October in Buenos Aires (already the 3rd in UTC): the local date counts.
    assert payment.booked_on == dt.date(2026, 10, 2)
    assert payment.value_date == dt.date(2026, 10, 3)
    assert payment.batch_id == "WD-778"
    refund, chargeback = imported.lines[1], imported.lines[2]
    assert amount(refund, "gross") == ("2500.00", "ARS") and refund.fee is None
    assert chargeback.fee is None  # MP_FEE_AMOUNT 0.00 is no fee
    assert chargeback.booked_on == dt.date(2026, 9, 20) and chargeback.value_date == dt.date(2026, 10, 4)
    assert imported.lines[4].description == "tax_withholding"


def test_stripe_balance_transactions_keep_minor_units_per_currency_and_map_disputes_and_payouts() -> None:
    imported = read_statement(FIXTURES / "stripe_balance.csv", "stripe-balance")

    assert (imported.source, imported.source_kind) == ("stripe", "processor")
    by_line = {line.line_no: line for line in imported.lines}
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7]
    clp_charge, brl_charge = by_line[2], by_line[3]
    # CLP has no decimals: Stripe's integer is whole pesos.
    assert (amount(clp_charge, "gross"), amount(clp_charge, "fee"), amount(clp_charge, "net")) == (
        ("1500000", "CLP"),
        ("45900", "CLP"),
        ("1454100", "CLP"),
    )
    # BRL has two: the integer is centavos.
    assert (amount(brl_charge, "gross"), amount(brl_charge, "fee"), amount(brl_charge, "net")) == (
        ("123.45", "BRL"),
        ("4.10", "BRL"),
        ("119.35", "BRL"),
    )
    assert (clp_charge.record_type, clp_charge.direction, clp_charge.reference, clp_charge.batch_id) == (
        "payment",
        "credit",
        "PAY-CL-0001",
        "po_9",
    )
    assert clp_charge.booked_on == dt.date(2026, 9, 21)  # created 1790000000 (Unix seconds, UTC)
    assert clp_charge.value_date == dt.date(2026, 9, 25)
    assert brl_charge.booked_on == dt.date(2026, 9, 21)
    assert brl_charge.value_date == dt.date(2026, 9, 28)  # available_on 1790553600
    assert (by_line[4].record_type, by_line[4].direction, by_line[4].reference) == ("refund", "debit", "RFD-CL-0001")
    assert (by_line[5].record_type, by_line[5].reference) == ("chargeback", "CB-CL-0001")  # adjustment/dispute
    assert (by_line[6].record_type, by_line[6].reference, amount(by_line[6], "net")) == (
        "fee",
        "txn_5BR",
        ("9.90", "BRL"),
    )
    assert (by_line[7].record_type, by_line[7].direction, by_line[7].reference) == ("payout", "debit", "po_9")


def test_a_camt053_statement_gives_one_line_per_entry_at_the_entrys_own_line() -> None:
    imported = read_statement(FIXTURES / "camt053.xml", "camt053", source="bank-itau")

    assert (imported.source, imported.source_kind, imported.format) == ("bank-itau", "bank", "camt053")
    summary = [
        (line.line_no, line.record_type, line.direction, line.reference, amount(line, "net")) for line in imported.lines
    ]
    assert summary == [
        (8, "bank_credit", "credit", "po_9", ("1454.10", "BRL")),  # RmtInf/Ustrd first
        (21, "bank_debit", "debit", "E18236120202610062330s0000002", ("250.00", "BRL")),  # then EndToEndId
        (33, "bank_credit", "credit", "ITAU-000003", ("10.50", "BRL")),  # NOTPROVIDED skipped: AcctSvcrRef
    ]
    first, second, third = imported.lines
    assert (first.booked_on, first.value_date, first.description) == (
        dt.date(2026, 10, 6),
        dt.date(2026, 10, 6),
        "TED RECEBIDA STRIPE PAYMENTS",
    )
    assert (second.booked_on, second.value_date) == (dt.date(2026, 10, 6), dt.date(2026, 10, 7))  # DtTm, local date
    assert (third.value_date, third.description) == (None, None)
    assert all(line.gross is None and line.fee is None for line in imported.lines)


def test_an_older_camt053_version_reads_the_same_way_with_the_configured_default_source() -> None:
    imported = read_statement(FIXTURES / "camt053_v02.xml", "camt053")

    assert imported.source == "bank"
    [line] = imported.lines
    assert (line.line_no, line.reference, amount(line, "net"), line.booked_on) == (
        5,
        "SANT-77",
        ("1429100", "CLP"),
        dt.date(2026, 9, 28),
    )


def test_the_statements_account_can_lead_each_description(tmp_path: Path) -> None:
    formats = config_file(tmp_path, "account_in_description = false", "account_in_description = true")

    imported = read_statement(FIXTURES / "camt053_v02.xml", "camt053", formats_file=formats)

    assert imported.lines[0].description == "account CL-SANT-0012345: TRANSFERENCIA STRIPE"


def test_a_brazilian_bank_csv_reads_thousands_separators_decimal_commas_and_signs() -> None:
    imported = read_statement(FIXTURES / "bank_itau.csv", "bank-csv", source="bank-itau")

    summary = [
        (line.line_no, line.record_type, line.direction, line.reference, amount(line, "net")) for line in imported.lines
    ]
    assert summary == [
        (2, "bank_credit", "credit", "po_9", ("1454.10", "BRL")),
        (4, "bank_debit", "debit", "E18236120202610062330s0000002", ("250.00", "BRL")),  # line 3 is blank
        (5, "bank_credit", "credit", "DEP-1", ("1234567.89", "BRL")),
    ]
    assert imported.lines[1].value_date == dt.date(2026, 10, 7)
    assert imported.lines[2].value_date is None
    assert imported.lines[2].description == "DEPOSITO; AGENCIA 0001"


def test_a_bank_csv_reads_the_same_with_or_without_a_byte_order_mark(tmp_path: Path) -> None:
    raw = fixture_bytes("bank_itau.csv")
    assert raw.startswith(b"\xef\xbb\xbf")
    plain = write(tmp_path, "bank_itau.csv", raw[3:])

    with_bom = read_statement(FIXTURES / "bank_itau.csv", "bank-csv", source="bank-itau")
    without = read_statement(plain, "bank-csv", source="bank-itau")

    strip = [line.model_dump(exclude={"file_sha256"}) for line in without.lines]
    assert strip == [line.model_dump(exclude={"file_sha256"}) for line in with_bom.lines]
    assert without.sha256 != with_bom.sha256


def test_a_bank_csv_with_credit_and_debit_columns_and_decimal_points(tmp_path: Path) -> None:
    formats = config_file(
        tmp_path,
        'delimiter = ";"\ndecimal_separator = ","\nthousands_separator = "."\ndate_formats = ["%d/%m/%Y", "%Y-%m-%d"]',
        'delimiter = ","\ndecimal_separator = "."\nthousands_separator = ","\ndate_formats = ["%Y-%m-%d"]',
        'amount = "Valor"',
        'credit = "Credit"\ndebit = "Debit"',
    )
    statement = write(
        tmp_path,
        "bank.csv",
        'Data,Credit,Debit,Referência\n2026-10-06,"1,454.10",,po_9\n2026-10-06,,250,PIX-1\n',
    )

    imported = read_statement(statement, "bank-csv", currency="USD", formats_file=formats)

    assert [(line.direction, line.reference, amount(line, "net")) for line in imported.lines] == [
        ("credit", "po_9", ("1454.10", "USD")),
        ("debit", "PIX-1", ("250.00", "USD")),
    ]


def test_a_header_only_file_is_a_valid_empty_file(tmp_path: Path) -> None:
    header = fixture_bytes("stripe_balance.csv").split(b"\n")[0] + b"\n"
    path = write(tmp_path, "empty_day.csv", header)

    imported = read_statement(path, "stripe-balance")
    events = statement_events(imported)

    assert imported.lines == ()
    assert len(events) == 1
    assert events[0]["payload"]["lines"] == 0
    assert events[0]["occurred_at"] == "1970-01-01T00:00:00+00:00"


# --- refusals: the whole file, with line and column named ----------------------------------------------------

#: id: (fixture, format, kwargs, old text, new text, "where" expected in a problem, reason expected in it)
REFUSALS: dict[str, tuple[str, str, dict[str, Any], str, str, str, str]] = {
    "missing required column": (
        "mercadopago_release.csv", "mercadopago-release", {"currency": "ARS"}, "GROSS_AMOUNT", "GROSS",
        "line 1, column GROSS_AMOUNT", "required column is missing",
    ),
    "column named twice": (
        "stripe_balance.csv", "stripe-balance", {}, ",description,", ",fee,",
        "line 1, column fee", "names this column twice",
    ),
    "unknown column where the layout refuses them": (
        "bank_itau.csv", "bank-csv", {}, "Descrição\n", "Descrição;Saldo\n",
        "line 1, column Saldo", "unknown column",
    ),
    "bad date": (
        "mercadopago_release.csv", "mercadopago-release", {"currency": "ARS"}, "2026-10-02T23:30", "2026-13-02T23:30",
        "line 3, column TRANSACTION_APPROVAL_DATE", "is not a date",
    ),
    "bad date in a bank file": (
        "bank_itau.csv", "bank-csv", {}, "07/10/2026;;", "31/02/2026;;",
        "line 5, column Data", "is not a date",
    ),
    "amount that is not a number": (
        "bank_itau.csv", "bank-csv", {}, "1.454,10", "1.454,1O",
        "line 2, column Valor", "is not an amount",
    ),
    "amount with an exponent": (
        "mercadopago_release.csv", "mercadopago-release", {"currency": "ARS"}, "9350.50", "9.35050e3",
        "line 3, column NET_CREDIT_AMOUNT", "is not an amount",
    ),
    "amount with decimals CLP does not have": (
        "mercadopago_release.csv", "mercadopago-release", {"currency": "CLP"}, "9350.50", "9350.50",
        "line 3, column NET_CREDIT_AMOUNT", "too many decimals for CLP",
    ),
    "amount with more decimals than BRL has": (
        "bank_itau.csv", "bank-csv", {}, "1.454,10", "1.454,105",
        "line 2, column Valor", "too many decimals for BRL",
    ),
    "negative amount in a debit column": (
        "mercadopago_release.csv", "mercadopago-release", {"currency": "ARS"}, ",0.00,2500.00,", ",0.00,-2500.00,",
        "line 5, column NET_DEBIT_AMOUNT", "is negative",
    ),
    "both credit and debit": (
        "mercadopago_release.csv", "mercadopago-release", {"currency": "ARS"}, "9350.50,0.00", "9350.50,1.00",
        "line 3, column NET_CREDIT_AMOUNT/NET_DEBIT_AMOUNT", "both credit and debit",
    ),
    "unknown currency": (
        "stripe_balance.csv", "stripe-balance", {}, ",brl,", ",zzz,",
        "line 3, column currency", "unknown currency",
    ),
    "currency other than the one asked": (
        "stripe_balance.csv", "stripe-balance", {"currency": "CLP"}, ",clp,", ",clp,",
        "line 3, column currency", "differs from the currency asked",
    ),
    "minor units that are not whole": (
        "stripe_balance.csv", "stripe-balance", {}, ",12345,", ",123.45,",
        "line 3, column amount", "not a whole number",
    ),
    "zero net": (
        "stripe_balance.csv", "stripe-balance", {}, ",-990,0,-990,", ",-990,0,0,",
        "line 6, column net", "net is zero",
    ),
    "reference longer than the event allows": (
        "stripe_balance.csv", "stripe-balance", {}, "PAY-BR-0007", "X" * 200,
        "line 3, column metadata[reference]", "reference: String should have at most 128 characters",
    ),
    "no reference at all": (
        "mercadopago_release.csv", "mercadopago-release", {"currency": "ARS"}, "RFD-AR-0001", "",
        "line 5, column EXTERNAL_REFERENCE", "no reference",
    ),
    "unknown record type": (
        "mercadopago_release.csv", "mercadopago-release", {"currency": "ARS"}, ",block,", ",blocks,",
        "line 9, column RECORD_TYPE", "unknown record type 'blocks'",
    ),
    "subtotals that do not add up to the total": (
        "mercadopago_release.csv", "mercadopago-release", {"currency": "ARS"}, ",total,,538.16,", ",total,,538.17,",
        "line 12, column NET_CREDIT_AMOUNT/NET_DEBIT_AMOUNT", "add up to 538.16 but the total is 538.17",
    ),
    "row with a missing field": (
        "bank_itau.csv", "bank-csv", {}, "1.454,10;BRL;", "1.454,10;",
        "line 2:", "has 5 fields, the header has 6",
    ),
    "unterminated quote": (
        "bank_itau.csv", "bank-csv", {}, '"DEPOSITO; AGENCIA 0001"', '"DEPOSITO; AGENCIA "0001',
        "line 5:", "not valid CSV",
    ),
    "malformed XML": (
        "camt053.xml", "camt053", {}, "</CdtDbtInd>", "</CdtDbtIndX>",
        "line 10:", "malformed XML: mismatched tag",
    ),
    "entry without an amount": (
        "camt053.xml", "camt053", {}, '<Amt Ccy="BRL">250.00</Amt>', "",
        "line 21, column Document/BkToCstmrStmt/Stmt/Ntry/Amt", "an amount is required",
    ),
    "negative XML amount": (
        "camt053.xml", "camt053", {}, ">250.00<", ">-250.00<",
        "line 22, column Document/BkToCstmrStmt/Stmt/Ntry/Amt", "is not an amount",
    ),
    "XML amount in an unknown currency": (
        "camt053.xml", "camt053", {}, 'Ccy="BRL">250.00', 'Ccy="QQQ">250.00',
        "line 22, column Document/BkToCstmrStmt/Stmt/Ntry/Amt", "unknown currency",
    ),
    "bad credit/debit indicator": (
        "camt053.xml", "camt053", {}, "<CdtDbtInd>DBIT", "<CdtDbtInd>DEBIT",
        "line 23, column Document/BkToCstmrStmt/Stmt/Ntry/CdtDbtInd", "neither CRDT nor DBIT",
    ),
    "bad XML booking date": (
        "camt053.xml", "camt053", {}, "<Dt>2026-10-07</Dt></BookgDt>", "<Dt>07/10/2026</Dt></BookgDt>",
        "line 37, column Document/BkToCstmrStmt/Stmt/Ntry/BookgDt/Dt", "is not a date",
    ),
    "another message than camt.053": (
        "camt053.xml", "camt053", {}, "camt.053.001.08", "camt.052.001.08",
        "line 2, column Document", "not a camt.053 statement",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(REFUSALS), ids=list(REFUSALS))
def test_a_malformed_file_is_refused_whole_naming_the_line_and_column(tmp_path: Path, case: str) -> None:
    fixture, fmt, kwargs, old, new, where, reason = REFUSALS[case]
    path = write(tmp_path, "statement" + Path(fixture).suffix, mutate(fixture, old, new))

    problems = refused(path, fmt, **kwargs).problems

    located = [p for p in problems if p.startswith(f"{path.name} {where}")]
    assert located, problems
    assert any(reason in p for p in located), problems


def test_the_unchanged_fixtures_are_accepted_so_each_refusal_is_the_mutations_doing() -> None:
    for fixture, fmt, kwargs, old, new, *_ in REFUSALS.values():
        if old == new:  # refused for the currency asked, not for the file
            continue
        assert isinstance(read_statement(FIXTURES / fixture, fmt, **kwargs), ImportedFile)


def test_a_zero_byte_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "nothing.csv", b"")
    for fmt in FORMATS:
        assert refused(path, fmt, currency="BRL").problems == ["nothing.csv: the file is empty (0 bytes)"]


def test_a_release_report_without_a_currency_is_refused_until_one_is_given(tmp_path: Path) -> None:
    problems = refused(FIXTURES / "mercadopago_release.csv", "mercadopago-release").problems
    assert len(problems) == 1 and "no currency" in problems[0]

    formats = config_file(tmp_path, 'source = "mercadopago"\n', 'source = "mercadopago"\ncurrency = "ARS"\n')
    imported = read_statement(FIXTURES / "mercadopago_release.csv", "mercadopago-release", formats_file=formats)
    assert {line.net.currency for line in imported.lines} == {"ARS"}
    # The caller's currency wins over the configured one.
    clp = refused(FIXTURES / "mercadopago_release.csv", "mercadopago-release", currency="CLP", formats_file=formats)
    assert any("too many decimals for CLP" in p for p in clp.problems)


def test_every_bad_line_is_listed_not_only_the_first(tmp_path: Path) -> None:
    raw = mutate("stripe_balance.csv", ",brl,", ",zzz,").decode().replace("1790553600", "soon")
    path = write(tmp_path, "stripe.csv", raw.replace("PAY-CL-0001", "X" * 129))

    problems = refused(path, "stripe-balance").problems

    assert {p.split(":")[0] for p in problems} == {
        "stripe.csv line 2, column metadata[reference]",
        "stripe.csv line 3, column currency",
        "stripe.csv line 3, column available_on",
    }


def test_the_message_shows_twenty_problems_and_counts_the_rest(tmp_path: Path) -> None:
    header, row = "id,type,net,currency,created,metadata[reference],source", "txn_{i},charge,100,zzz,1790000000,P{i},"
    path = write(tmp_path, "many.csv", "\n".join([header, *(row.format(i=i) for i in range(25))]) + "\n")

    exc = refused(path, "stripe-balance")

    assert len(exc.problems) == 25 and not exc.stopped_early
    assert str(exc).count("unknown currency") == 20
    assert str(exc).endswith("(and 5 more)")


def test_reading_stops_at_the_configured_number_of_problems(tmp_path: Path) -> None:
    formats = config_file(tmp_path, "max_problems = 1000", "max_problems = 3")
    header, row = "id,type,net,currency,created,metadata[reference],source", "txn_{i},charge,100,zzz,1790000000,P{i},"
    path = write(tmp_path, "many.csv", "\n".join([header, *(row.format(i=i) for i in range(25))]) + "\n")

    exc = refused(path, "stripe-balance", formats_file=formats)

    assert len(exc.problems) == 3 and exc.stopped_early
    assert "reading stopped after 3 problems" in str(exc)


def test_a_card_number_anywhere_is_refused_without_being_repeated(tmp_path: Path) -> None:
    cases = [
        ("bank.csv", mutate("bank_itau.csv", "PIX ENVIADO", f"COMPRA CARTAO {PAN}"), "bank-csv",
         "line 4, column Descrição"),
        ("mp.csv", mutate("mercadopago_release.csv", "PAY-AR-0002", PAN.replace(" ", "")), "mercadopago-release",
         "line 8, column EXTERNAL_REFERENCE"),
        ("camt.xml", mutate("camt053.xml", "PIX ENVIADO", f"PIX {PAN.replace(' ', '-')}"), "camt053",
         "line 31, column Document/BkToCstmrStmt/Stmt/Ntry/AddtlNtryInf"),
        ("head.csv", mutate("stripe_balance.csv", "exchange_rate", PAN), "stripe-balance", "line 1, column #8"),
    ]  # fmt: skip
    for name, raw, fmt, where in cases:
        exc = refused(write(tmp_path, name, raw), fmt, currency="ARS" if fmt == "mercadopago-release" else None)
        assert any(p.startswith(f"{name} {where}: looks like a card number") for p in exc.problems), exc.problems
        digits = PAN.replace(" ", "")
        for text in (str(exc), *exc.problems):
            assert "4111" not in text and digits not in text.replace(" ", "").replace("-", "")


def test_a_file_bigger_than_the_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    formats = config_file(tmp_path, "max_file_bytes = 1073741824", "max_file_bytes = 100")

    exc = refused(FIXTURES / "stripe_balance.csv", "stripe-balance", formats_file=formats)

    assert exc.problems == [
        f"stripe_balance.csv: {len(fixture_bytes('stripe_balance.csv'))} bytes is larger than the limit of 100"
    ]


def test_a_file_with_more_lines_than_the_limit_is_refused(tmp_path: Path) -> None:
    formats = config_file(tmp_path, "max_lines = 10000000", "max_lines = 2")

    csv_problems = refused(FIXTURES / "stripe_balance.csv", "stripe-balance", formats_file=formats).problems
    xml_problems = refused(FIXTURES / "camt053.xml", "camt053", formats_file=formats).problems

    assert csv_problems == ["stripe_balance.csv line 4: more than 2 lines"]
    assert xml_problems == ["camt053.xml line 33, column Document/BkToCstmrStmt/Stmt/Ntry: more than 2 entries"]


def test_bytes_that_are_not_utf8_are_refused_naming_their_line(tmp_path: Path) -> None:
    raw = fixture_bytes("bank_itau.csv").replace(b"PIX ENVIADO", b"PIX ENVIADO \xff")

    problems = refused(write(tmp_path, "latin.csv", raw), "bank-csv").problems

    byte = raw.split(b"\n")[3].index(b"\xff") + 1
    assert problems == [f"latin.csv line 4: not UTF-8 text (byte {byte} of the line)"]


def test_an_external_entity_is_never_read(tmp_path: Path) -> None:
    secret = write(tmp_path, "secret.txt", "TOP-SECRET-VALUE")
    xml = (
        '<?xml version="1.0"?>\n'
        f'<!DOCTYPE Document [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt><Stmt><Ntry>'
        '<Amt Ccy="BRL">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2026-10-06</Dt></BookgDt>'
        "<AddtlNtryInf>&xxe;</AddtlNtryInf><AcctSvcrRef>R1</AcctSvcrRef></Ntry></Stmt></BkToCstmrStmt></Document>\n"
    )

    exc = refused(write(tmp_path, "xxe.xml", xml), "camt053")

    assert exc.problems == [
        "xxe.xml line 2: a DOCTYPE is not accepted (entity declarations can read files or expand without end)"
    ]
    assert "TOP-SECRET" not in str(exc)


def test_an_entity_bomb_is_refused_without_being_expanded(tmp_path: Path) -> None:
    entities = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    xml = (
        f'<?xml version="1.0"?>\n<!DOCTYPE Document [\n{chr(10).join(entities)}\n]>\n'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">&lol9;</Document>\n'
    )
    started = time.perf_counter()

    exc = refused(write(tmp_path, "bomb.xml", xml), "camt053")

    assert time.perf_counter() - started < 1.0  # 10⁹ "lol"s would take far longer, and gigabytes
    assert len(exc.problems) == 1 and "a DOCTYPE is not accepted" in exc.problems[0]


def test_a_file_that_is_not_there_or_a_format_that_is_not_known_is_refused(tmp_path: Path) -> None:
    assert "cannot read" in refused(tmp_path / "missing.csv", "bank-csv").problems[0]
    assert "not a regular file" in refused(tmp_path, "bank-csv").problems[0]
    assert "unknown format 'ofx'" in refused(FIXTURES / "bank_itau.csv", "ofx").problems[0]
    assert (
        "is not a name such as bank-itau"
        in refused(FIXTURES / "bank_itau.csv", "bank-csv", source="itaú bank").problems[0]
    )
    assert "unknown currency" in refused(FIXTURES / "bank_itau.csv", "bank-csv", currency="QQQ").problems[0]


# --- the configuration ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("max_lines = 10000000", "max_lines = [", "not valid TOML"),
        ('chargeback = "chargeback"', 'chargeback = "contracargo"', "mercadopago-release.record_types.chargeback"),
        ('row_type = "RECORD_TYPE"', 'row_typ = "RECORD_TYPE"', "unknown role row_typ"),
        ('amount = "Valor"', 'valor = "Valor"', "unknown role valor"),
        ('date_formats = ["unix"', 'date_formats = ["epoch"', "'epoch' is not iso8601"),
        ('payout = ["source", "id"]', 'payout = ["source", "payout_id"]', "reference.payout: payout_id is not one"),
    ],
)
def test_a_bad_formats_file_is_refused_naming_the_section_and_field(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    formats = config_file(tmp_path, old, new)

    with pytest.raises(ConfigError) as info:
        read_statement(FIXTURES / "stripe_balance.csv", "stripe-balance", formats_file=formats)

    assert "recon_formats.toml" in str(info.value) and message in str(info.value)


def test_the_shipped_formats_file_is_dated_and_covers_every_format() -> None:
    from adapters.recon_import.settings import load_formats

    formats = load_formats()
    assert formats.version and formats.effective_from <= dt.date.today()
    assert all(formats.section(fmt) is not None for fmt in FORMATS)


# --- events ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fixture", "fmt", "kwargs"), CASES, ids=[c[0] for c in CASES])
def test_every_event_document_passes_the_catalogue(fixture: str, fmt: str, kwargs: dict[str, Any]) -> None:
    imported = read_statement(FIXTURES / fixture, fmt, **kwargs)

    events = [parse_event(doc) for doc in statement_events(imported)]

    assert isinstance(events[0], FileImported)
    assert events[0].payload.lines == len(imported.lines) > 0
    assert all(isinstance(event, LineImported) for event in events[1:])
    assert [event.payload for event in events[1:]] == list(imported.lines)
    assert {event.source for event in events} == {"recon-import"}
    # Dated by the file, not by the import: each line at its booking date, the file at its latest.
    for event in events[1:]:
        assert isinstance(event, LineImported)
        assert event.occurred_at == dt.datetime.combine(event.payload.booked_on, dt.time(), tzinfo=dt.UTC)
    latest = max(line.booked_on for line in imported.lines)
    assert events[0].occurred_at == dt.datetime.combine(latest, dt.time(), tzinfo=dt.UTC)


@pytest.mark.parametrize(("fixture", "fmt", "kwargs"), CASES, ids=[c[0] for c in CASES])
def test_reading_the_same_file_twice_gives_the_same_events_byte_for_byte(
    tmp_path: Path, fixture: str, fmt: str, kwargs: dict[str, Any]
) -> None:
    copy = write(tmp_path, fixture, fixture_bytes(fixture))

    first = statement_events(read_statement(FIXTURES / fixture, fmt, **kwargs))
    second = statement_events(read_statement(copy, fmt, **kwargs))

    assert orjson.dumps(first) == orjson.dumps(second)
    assert [canonical_bytes(parse_event(d)) for d in first] == [canonical_bytes(parse_event(d)) for d in second]
    sha = hashlib.sha256(fixture_bytes(fixture)).hexdigest()
    assert first[0]["event_id"] == str(uuid.uuid5(NAMESPACE, f"recon-file:{sha}"))
    assert [d["event_id"] for d in first[1:]] == [
        str(uuid.uuid5(NAMESPACE, f"recon-line:{sha}:{d['payload']['line_no']}")) for d in first[1:]
    ]
    assert len({d["event_id"] for d in first}) == len(first)


def test_a_file_changed_by_one_byte_is_another_file_with_other_ids(tmp_path: Path) -> None:
    changed = write(tmp_path, "stripe_balance.csv", mutate("stripe_balance.csv", "Order CL-1", "Order CL-2"))

    original = statement_events(read_statement(FIXTURES / "stripe_balance.csv", "stripe-balance"))
    other = statement_events(read_statement(changed, "stripe-balance"))

    assert not {d["event_id"] for d in original} & {d["event_id"] for d in other}


# --- fuzzing: only ImportRefused, whatever the bytes -------------------------------------------------------------

FUZZ = [(fixture, fmt, kwargs) for fixture, fmt, kwargs in CASES if fixture != "camt053_v02.xml"]
_SPICE = [b",", b";", b'"', b"\n", b"\r\n", b"-", b"<", b">", b"</Ntry>", b"&", b"e5", b"\x00", b"\xff", b".", b"0",
          PAN.encode(), b"<!DOCTYPE x>", b"]]>", b"\xef\xbb\xbf", b"99999999999999999999", b"2026-02-30"]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
        if op == "replace" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(_SPICE) | st.binary(max_size=6))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 40))]
        else:
            del data[pos:]
    return bytes(data)


def _read_or_refuse(path: Path, fmt: str, kwargs: dict[str, Any]) -> None:
    try:
        imported = read_statement(path, fmt, **kwargs)
    except ImportRefused as exc:
        assert exc.problems and all(p.startswith(path.name) for p in exc.problems)
        return
    # Whatever is accepted must be postable.
    for doc in statement_events(imported):
        parse_event(doc)


@pytest.mark.parametrize(("fixture", "fmt", "kwargs"), FUZZ, ids=[c[1] for c in FUZZ])
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=3000))
def test_random_bytes_are_refused_and_nothing_else_is_raised(
    tmp_path_factory: pytest.TempPathFactory, fixture: str, fmt: str, kwargs: dict[str, Any], raw: bytes
) -> None:
    path = tmp_path_factory.getbasetemp() / f"fuzz-{fmt}.bin"
    path.write_bytes(raw)
    _read_or_refuse(path, fmt, kwargs)


@pytest.mark.parametrize(("fixture", "fmt", "kwargs"), FUZZ, ids=[c[1] for c in FUZZ])
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_valid_files_are_read_or_refused_and_nothing_else_is_raised(
    tmp_path_factory: pytest.TempPathFactory, fixture: str, fmt: str, kwargs: dict[str, Any], data: st.DataObject
) -> None:
    path = tmp_path_factory.getbasetemp() / f"mutant-{fixture}"
    path.write_bytes(data.draw(mutated(fixture_bytes(fixture))))
    _read_or_refuse(path, fmt, kwargs)
