"""Report files: every format gives back the exact figures, defuses formulas and writes atomically."""

from __future__ import annotations

import csv
import json
import re
import zipfile
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from babel.numbers import format_currency
from openpyxl import load_workbook

from adapters.exports import (
    Chart,
    Column,
    ExportError,
    Section,
    csv_paths,
    export_report,
    infer_columns,
)
from adapters.exports._html import LocaleNumbers
from adapters.exports._xlsx import sheet_names
from adapters.reports import Format
from ledger.errors import QuipuError
from ledger.money import format_money, quantize

ROWS = [
    {"account": "seller:1:payable", "currency": "BRL", "amount": "1234.50", "lines": 3, "day": "2025-03-01"},
    {"account": "seller:2:payable", "currency": "CLP", "amount": "-12000", "lines": 1, "day": "2025-03-02"},
    {"account": "seller:3:payable", "currency": "KWD", "amount": "0.125", "lines": 12, "day": "2025-03-31"},
]
COLUMNS = [
    Column("account"),
    Column("currency"),
    Column("amount", "money"),
    Column("lines", "int"),
    Column("day", "date"),
]
INJECTIONS = ["=SUM(A1)", "+1", "-2+3", "@x", "\tcmd", "\rcmd"]


def section(rows: list[dict[str, object]] | None = None, **kwargs: object) -> Section:
    return Section("Exceptions", rows if rows is not None else ROWS, COLUMNS, **kwargs)  # type: ignore[arg-type]


def chart() -> Chart:
    return Chart(
        "Open amount by currency",
        "bar",
        ["BRL", "CLP"],
        {"open": [Decimal("1234.50"), -12000], "cleared": [Decimal("10.05"), 500]},
        unit="amount",
    )


# --- XLSX -----------------------------------------------------------------------------------


def test_xlsx_money_cells_are_exact_numbers_with_the_currency_decimals(tmp_path: Path) -> None:
    out = export_report("Reconciliation", [section()], "xlsx", tmp_path / "r.xlsx", subtitle="March")
    wb = load_workbook(out)
    ws = wb["Exceptions"]
    assert [c.value for c in ws[1]] == ["account", "currency", "amount", "lines", "day"]
    amounts = [ws.cell(row=r, column=3) for r in (2, 3, 4)]
    assert all(c.data_type == "n" for c in amounts)
    assert [Decimal(str(c.value)) for c in amounts] == [Decimal("1234.50"), Decimal(-12000), Decimal("0.125")]
    assert amounts[0].number_format.startswith('#,##0.00 "BRL"')
    assert amounts[1].number_format.startswith('#,##0 "CLP"')
    assert amounts[2].number_format.startswith('#,##0.000 "KWD"')
    # The file holds the decimal text itself, not a float's rendering of it.
    with zipfile.ZipFile(out) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    assert "<v>1234.50</v>" in sheet and "<v>-12000</v>" in sheet and "<v>0.125</v>" in sheet


def test_xlsx_ints_dates_header_and_properties(tmp_path: Path) -> None:
    out = export_report("Reconciliation", [section()], "xlsx", tmp_path / "r.xlsx", generated_for="Finance")
    wb = load_workbook(out)
    ws = wb.active
    assert ws is not None
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == "A1:E4"
    assert all(c.font.bold for c in ws[1])
    assert [ws.cell(row=r, column=4).value for r in (2, 3, 4)] == [3, 1, 12]
    days = [ws.cell(row=r, column=5).value for r in (2, 3, 4)]
    assert all(isinstance(d, datetime) for d in days)
    assert [d.date() for d in days if isinstance(d, datetime)] == [
        date(2025, 3, 1),
        date(2025, 3, 2),
        date(2025, 3, 31),
    ]
    assert ws.cell(row=2, column=5).number_format == "yyyy-mm-dd"
    assert ws.column_dimensions["A"].width >= len("seller:1:payable")
    assert wb.properties.title == "Reconciliation"
    assert wb.properties.creator == "Quipu"


def test_xlsx_one_sheet_per_section_with_valid_unique_names(tmp_path: Path) -> None:
    titles = ["Exceptions", "exceptions", "Settlements: [PSP] */? a very long title indeed", "History", ""]
    sections = [Section(t, ROWS, COLUMNS) for t in titles]
    wb = load_workbook(export_report("R", sections, "xlsx", tmp_path / "r.xlsx"))
    names = wb.sheetnames
    assert len(names) == 5
    assert len({n.lower() for n in names}) == 5
    for name in names:
        assert 0 < len(name) <= 31
        assert not set(name) & set("[]:*?/\\")
    assert "history" not in {n.lower() for n in names}
    assert sheet_names(["x" * 40, "x" * 40]) == ["x" * 31, "x" * 27 + " (2)"]


def test_xlsx_refuses_numbers_excel_would_round(tmp_path: Path) -> None:
    rows = [{"currency": "BRL", "amount": "12345678901234.56"}]  # 16 significant digits
    cols = [Column("currency"), Column("amount", "money")]
    with pytest.raises(ExportError, match=r"row 1, column .amount.: .*15 significant digits.*CSV"):
        export_report("R", [Section("S", rows, cols)], "xlsx", tmp_path / "r.xlsx")
    assert not list(tmp_path.iterdir())
    rows = [{"currency": "BRL", "amount": "1234567890123.45"}]  # 15: exact in a double
    ws = load_workbook(export_report("R", [Section("S", rows, cols)], "xlsx", tmp_path / "r.xlsx")).active
    assert ws is not None
    assert Decimal(repr(ws["B2"].value)) == Decimal("1234567890123.45")


def test_xlsx_percent_and_untyped_decimal_columns_are_numbers(tmp_path: Path) -> None:
    rows = [{"rate": "5.1234", "share": "0.125", "id": "00123", "big": "12345678901234567890"}]
    cols = infer_columns(rows, share="percent")
    assert [c.kind for c in cols] == ["decimal", "percent", "text", "text"]
    ws = load_workbook(export_report("R", [Section("S", rows, cols)], "xlsx", tmp_path / "r.xlsx")).active
    assert ws is not None
    rate, share, ident, big = ws[2]
    assert Decimal(str(rate.value)) == Decimal("5.1234") and rate.number_format == "#,##0.0000"
    assert Decimal(str(share.value)) == Decimal("0.125") and share.number_format == "0.0%"
    assert (ident.value, big.value) == ("00123", "12345678901234567890")


# --- CSV and JSON ---------------------------------------------------------------------------


def test_csv_reads_back_as_the_rows(tmp_path: Path) -> None:
    out = export_report("R", [section()], "csv", tmp_path / "r.csv")
    with out.open(newline="", encoding="utf-8") as f:
        back = list(csv.DictReader(f))
    assert back == [{k: str(v) for k, v in row.items()} for row in ROWS]


def test_csv_of_several_sections_writes_one_file_each(tmp_path: Path) -> None:
    sections = [Section("Exceptions", ROWS, COLUMNS), Section("Settlements São Paulo", ROWS[:1])]
    out = export_report("R", sections, "csv", tmp_path / "recon.csv")
    paths = csv_paths(tmp_path / "recon.csv", sections)
    assert [p.name for p in paths] == ["recon-exceptions.csv", "recon-settlements-sao-paulo.csv"]
    assert out == paths[0]
    assert not (tmp_path / "recon.csv").exists()
    with paths[1].open(newline="", encoding="utf-8") as f:
        assert list(csv.DictReader(f)) == [{k: str(v) for k, v in ROWS[0].items()}]


def test_csv_writes_canonical_money(tmp_path: Path) -> None:
    rows = [{"currency": "BRL", "amount": Decimal("12.3")}, {"currency": "CLP", "amount": 5}]
    out = export_report(
        "R", [Section("S", rows, [Column("currency"), Column("amount", "money")])], "csv", tmp_path / "r"
    )
    assert out.read_bytes() == b"currency,amount\r\nBRL,12.30\r\nCLP,5\r\n"


def test_json_equals_the_rows(tmp_path: Path) -> None:
    out = export_report("Reconciliation", [section()], "json", tmp_path / "r.json", generated_for="Finance")
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["title"] == "Reconciliation"
    assert doc["generated_for"] == "Finance"
    assert doc["sections"] == [{"title": "Exceptions", "rows": ROWS}]
    # Amounts stay strings: a JSON number would be a float to most readers.
    assert isinstance(doc["sections"][0]["rows"][0]["amount"], str)


# --- Formula injection ----------------------------------------------------------------------


@pytest.mark.parametrize("payload", INJECTIONS)
def test_csv_defuses_formulas(tmp_path: Path, payload: str) -> None:
    rows = [{"note": payload, "currency": "CLP", "amount": "-12000"}]
    cols = [Column("note"), Column("currency"), Column("amount", "money")]
    out = export_report("R", [Section("S", rows, cols)], "csv", tmp_path / "r.csv")
    with out.open(newline="", encoding="utf-8") as f:
        back = list(csv.DictReader(f))
    assert back == [{"note": "'" + payload, "currency": "CLP", "amount": "-12000"}]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_xlsx_defuses_formulas_and_keeps_negative_numbers_numeric(tmp_path: Path, payload: str) -> None:
    rows = [{"note": payload, "currency": "CLP", "amount": "-12000"}]
    cols = [Column("note"), Column("currency"), Column("amount", "money")]
    out = export_report("R", [Section("S", rows, cols)], "xlsx", tmp_path / "r.xlsx")
    ws = load_workbook(out).active
    assert ws is not None
    note, _, amount = ws[2]
    assert note.data_type == "s"
    assert note.value == "'" + payload
    assert amount.data_type == "n" and amount.value == -12000
    with zipfile.ZipFile(out) as z:
        assert "<f>" not in z.read("xl/worksheets/sheet1.xml").decode()


def test_injection_in_column_names_is_defused_too(tmp_path: Path) -> None:
    rows = [{"=cmd": "x"}]
    out = export_report("R", [Section("S", rows)], "csv", tmp_path / "r.csv")
    assert out.read_text(encoding="utf-8").splitlines()[0] == "'=cmd"


def test_json_keeps_text_as_given(tmp_path: Path) -> None:
    rows = [{"note": "=SUM(A1)"}]
    doc = json.loads(export_report("R", [Section("S", rows)], "json", tmp_path / "r.json").read_text())
    assert doc["sections"][0]["rows"] == rows


# --- HTML -----------------------------------------------------------------------------------

_NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


def test_html_is_self_contained_with_formatted_figures_and_charts(tmp_path: Path) -> None:
    out = export_report(
        "Conciliação",
        [section(charts=[chart()])],
        "html",
        tmp_path / "r.html",
        subtitle="Março 2025",
        generated_for="Equipe financeira",
        locale="pt_BR",
    )
    page = out.read_text(encoding="utf-8")
    assert format_money(Decimal("1234.50"), "BRL", "pt_BR") in page  # R$ 1.234,50
    assert format_money(Decimal("-12000"), "CLP", "pt_BR") in page
    assert '<td class="num neg">' in page
    assert "<svg" in page
    assert "Gerado para Equipe financeira" in page
    assert '<html lang="pt-BR">' in page
    assert set(re.findall(r"https?://[^\s\"'<>)]+", page)) <= _NAMESPACES
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", page)
    assert "Content-Security-Policy" in page


def test_html_escapes_cells_titles_and_chart_text(tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>"
    cols = [Column(evil), Column("currency"), Column("amount", "money")]
    rows = [{evil: evil, "currency": "BRL", "amount": "1.00"}]
    bad_chart = Chart(f"--> {evil}", "pie", [evil], {evil: [1]})
    out = export_report(evil, [Section(evil, rows, cols, [bad_chart])], "html", tmp_path / "r.html", subtitle=evil)
    page = out.read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_html_locale_formats_and_fallback(tmp_path: Path) -> None:
    page = export_report("R", [section()], "html", tmp_path / "en.html", locale="en").read_text()
    assert "R$1,234.50" in page and "-CLP12,000" in page
    page = export_report("R", [section()], "html", tmp_path / "x.html", locale="xx_YY").read_text()
    assert "1234.50 BRL" in page and "-12000 CLP" in page and "0.125 KWD" in page


@pytest.mark.parametrize("locale", ["en", "pt_BR", "es_CL", "es_MX", "es_AR", "fr", "de_CH", "en_IN", "ar"])
@pytest.mark.parametrize(
    ("amount", "currency"),
    [("1234567.50", "BRL"), ("-0.05", "USD"), ("1234567", "CLP"), ("-1234", "PYG"), ("1.234", "KWD"), ("0", "MXN")],
)
def test_locale_numbers_write_what_babel_writes(locale: str, amount: str, currency: str) -> None:
    # Babel 2.19 drops de_CH's apostrophe group separator from its own output (ADR 0033): the pinned
    # babel is the oracle here, and this case tells whoever upgrades it.
    value = quantize(Decimal(amount), currency)  # as every money cell reaches it
    expected = format_currency(value, currency, locale=locale, decimal_quantization=False)
    assert LocaleNumbers(locale).money(value, currency) == expected


def test_html_summary_totals_money_per_currency(tmp_path: Path) -> None:
    rows = [*ROWS, {"account": "x", "currency": "BRL", "amount": "0.50", "lines": 0, "day": "2025-03-01"}]
    page = export_report("R", [section(rows)], "html", tmp_path / "r.html").read_text()
    assert "4 rows" in page
    assert "amount: R$1,235.00, -CLP12,000, KWD0.125" in page


# --- Determinism, atomicity, refusals -------------------------------------------------------


@pytest.mark.parametrize("fmt", ["html", "csv", "json"])
def test_same_input_same_bytes(tmp_path: Path, fmt: str) -> None:
    sections = [section(charts=[chart(), Chart("Share", "pie", ["BRL", "CLP"], {"n": [1, 3]})])]
    one = export_report("R", sections, fmt, tmp_path / "a" / f"r.{fmt}", locale="es_CL").read_bytes()
    two = export_report("R", sections, fmt, tmp_path / "b" / f"r.{fmt}", locale="es_CL").read_bytes()
    assert one == two


def test_unknown_format_is_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="csv, html, json, xlsx") as info:
        export_report("R", [section()], "pdf", tmp_path / "sub" / "r.pdf")
    assert isinstance(info.value, QuipuError)
    assert not (tmp_path / "sub").exists()
    with pytest.raises(ExportError):
        export_report("R", [section()], Format.table, tmp_path / "r.txt")


def test_report_format_enum_is_accepted(tmp_path: Path) -> None:
    out = export_report("R", [section()], Format.csv, tmp_path / "r.csv")
    assert out.read_text().startswith("account,")


def test_parent_directories_are_created_and_no_temp_file_is_left(tmp_path: Path) -> None:
    out = export_report("R", [section()], "xlsx", tmp_path / "a" / "b" / "r.xlsx")
    assert out.exists()
    assert [p.name for p in out.parent.iterdir()] == ["r.xlsx"]


def test_a_failed_export_leaves_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = export_report("R", [section()], "html", tmp_path / "r.html")
    before = out.read_bytes()

    def boom(*args: object, **kwargs: object) -> str:
        raise RuntimeError("disk full")

    monkeypatch.setattr("adapters.exports._charts.chart_svg", boom)
    with pytest.raises(RuntimeError):
        export_report("R", [section(charts=[chart()])], "html", tmp_path / "r.html")
    assert out.read_bytes() == before
    monkeypatch.undo()

    def failing_write(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("adapters.exports._xlsx.write_xlsx", failing_write)
    with pytest.raises(OSError):
        export_report("R", [section()], "xlsx", tmp_path / "r.html")
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


def test_replacing_a_file_keeps_its_mode(tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    out.write_text("old")
    out.chmod(0o644)
    export_report("R", [section()], "csv", out)
    assert out.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"currency": "BRL", "amount": 12.5}, "float"),
        ({"currency": "BRL", "amount": "12.345"}, "more decimals than BRL"),
        ({"currency": "CLP", "amount": "1.5"}, "more decimals than CLP"),
        ({"currency": "BRL", "amount": "NaN"}, "not a decimal"),
        ({"currency": "BRL", "amount": "1e3"}, "not a decimal"),
        ({"currency": "ZZZ", "amount": "1"}, "unknown currency"),
    ],
)
def test_bad_money_is_refused_with_its_place(tmp_path: Path, row: dict[str, object], message: str) -> None:
    cols = [Column("currency"), Column("amount", "money")]
    with pytest.raises(ExportError, match=rf"section 'S', row 1, column 'amount': .*{message}"):
        export_report("R", [Section("S", [row], cols)], "csv", tmp_path / "r.csv")


def test_bad_typed_cells_and_charts_are_refused() -> None:
    with pytest.raises(ExportError, match="float"):
        infer_columns([{"x": 1.5}])
    with pytest.raises(ExportError, match="unknown kind"):
        Column("x", "money_ish")  # type: ignore[arg-type]
    with pytest.raises(ExportError, match="2 values for 1 labels"):
        Chart("c", "bar", ["a"], {"s": [1, 2]})
    with pytest.raises(ExportError, match="not a Decimal"):
        Chart("c", "bar", ["a"], {"s": [1.5]})  # type: ignore[list-item]
    with pytest.raises(ExportError, match="non-negative"):
        Chart("c", "pie", ["a", "b"], {"s": [1, -1]})
    with pytest.raises(ExportError, match="no such column"):
        infer_columns(ROWS, amout="money")


def test_aware_datetimes_are_written_in_utc(tmp_path: Path) -> None:
    rows = [{"at": "2025-03-01T09:30:00-03:00"}]
    cols = [Column("at", "datetime")]
    ws = load_workbook(export_report("R", [Section("S", rows, cols)], "xlsx", tmp_path / "r.xlsx")).active
    assert ws is not None
    assert ws["A2"].value == datetime(2025, 3, 1, 12, 30)
    doc = json.loads(export_report("R", [Section("S", rows, cols)], "json", tmp_path / "r.json").read_text())
    assert doc["sections"][0]["rows"] == [{"at": "2025-03-01T12:30:00+00:00"}]


def test_empty_sections_still_make_valid_files(tmp_path: Path) -> None:
    sections = [Section("Nothing", []), Section("Header only", [], [Column("a")])]
    for fmt in ("csv", "json", "xlsx", "html"):
        assert export_report("R", sections, fmt, tmp_path / f"r.{fmt}").exists()
        assert export_report("R", [], fmt, tmp_path / "none" / f"r.{fmt}").exists()
    wb = load_workbook(tmp_path / "r.xlsx")
    assert wb.sheetnames == ["Nothing", "Header only"]
    assert (tmp_path / "r-header-only.csv").read_bytes() == b"a\r\n"
