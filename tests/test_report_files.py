"""``quipu report``: every catalogue report as CSV, XLSX, HTML and JSON, on SQLite and PostgreSQL,
with the figures of the console command that prints the same report."""

from __future__ import annotations

import csv
import datetime as dt
import importlib
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from adapters import reconcile, taxes
from adapters.bootstrap import Ledger
from adapters.cli import COMMAND_MODULES, app
from adapters.demo import generate, iter_jsonl
from adapters.exports import Section, csv_paths
from adapters.report_catalog import REPORTS, CatalogError, build_report
from domain.service import Outcome
from tests.factories import amt, ev

for _module in COMMAND_MODULES:
    importlib.import_module(_module)

RUN_DATE = "2026-11-13"
#: Each report's options, and the console command printing the same rows as JSON (None: the
#: reconciliation summary is read from that command's own JSON file instead).
CASES: dict[str, tuple[dict[str, str], list[str] | None]] = {
    "trial-balance": ({}, ["trial-balance"]),
    "balances": ({"account": "seller:*"}, ["balances", "--account", "seller:*"]),
    "settlement-schedule": ({"date": "2026-10-21"}, ["settlement", "schedule", "--date", "2026-10-21"]),
    "settlement-batches": (
        {"from": "2026-10-01", "to": "2026-11-30"},
        ["settlement", "batches", "--from", "2026-10-01", "--to", "2026-11-30"],
    ),
    "reconciliation": ({"date": RUN_DATE}, None),
    "reconciliation-exceptions": (
        {"as-of": RUN_DATE, "status": "all"},
        ["reconcile", "exceptions", "--as-of", RUN_DATE, "--status", "all"],
    ),
    "aml-threshold": ({"site": "BR", "month": "2026-10"}, ["aml", "report", "--site", "BR", "--month", "2026-10"]),
    "fx-exposure": ({}, ["fx", "exposure"]),
    "tax-summary": ({}, ["tax", "summary"]),
}
_NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


def _post_month(ledger: Ledger, seed: int = 31) -> None:
    lines = list(iter_jsonl(generate(seed=seed, events=1500, settle=True)))
    # Two BR orders at and above the R$50,000 reporting threshold, so the AML report has rows.
    lines += [
        orjson.dumps(
            ev(
                "order.placed",
                {"order_id": f"RP-O{n}", "site": "BR", "buyer_id": "B1", "seller_id": f"RP-{n}", "total": amt(value)},
                when="2026-10-05T12:00:00+00:00",
            )
        )
        for n, value in ((1, "50000.00"), (2, "61234.56"))
    ]
    for i in range(0, len(lines), 1000):
        results = ledger.service.post(lines[i : i + 1000])
        assert {r.outcome for r in results} == {Outcome.APPENDED}
    ledger.runner.run()
    taxes.assess(ledger)  # the tax summary's rows
    # Recorded exceptions (no processor files were imported: every capture is missing at the processor).
    reconcile.run(ledger, dt.date.fromisoformat(RUN_DATE), check_projections=False)


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.stdout


def _money_columns(ws: Any) -> dict[str, int]:
    """Column name → index of the columns whose cells carry a currency number format."""
    header = [c.value for c in ws[1]]
    out = {}
    for index, name in enumerate(header, start=1):
        formats = {ws.cell(row=r, column=index).number_format for r in range(2, min(ws.max_row, 30) + 1)}
        if any('"' in f for f in formats):  # e.g. #,##0.00 "BRL"
            out[str(name)] = index
    return out


def _check_xlsx(path: Path, expected: list[dict[str, Any]], sheet: int = 0) -> int:
    """XLSX: a frozen bold header, every money cell a number equal to the console's figure; the cells checked."""
    wb = load_workbook(path)
    ws = wb.worksheets[sheet]
    assert ws.freeze_panes == "A2"
    header = [c.value for c in ws[1]]
    assert all(c.font.bold for c in ws[1])
    assert ws.max_row - 1 == len(expected)
    checked = 0
    money = _money_columns(ws)
    for r, row in enumerate(expected, start=2):
        for name, column in money.items():
            cell = ws.cell(row=r, column=column)
            if row.get(name) in (None, ""):
                assert cell.value is None
                continue
            assert cell.data_type == "n", (name, cell.value)
            assert Decimal(str(cell.value)) == Decimal(row[name]), (path.name, r, name)
            checked += 1
    assert set(money) <= set(header)
    return checked


def test_every_report_exports_and_its_figures_equal_the_console_commands(
    ledger: Ledger, ledger_url: str, tmp_path: Path
) -> None:
    _post_month(ledger)
    head, open_exceptions = ledger.store.head(), ledger.views.query("SELECT COUNT(*) FROM recon_exceptions")
    money_cells = 0
    for name, (params, command) in CASES.items():
        options = [x for k, v in params.items() for x in (f"--{k}", v)]
        written = {}
        for fmt in ("csv", "xlsx", "html", "json"):
            path = tmp_path / name / f"report.{fmt}"
            _cli("report", name, "--format", fmt, "--out", str(path), "--database", ledger_url, *options)
            written[fmt] = path
        document = orjson.loads(written["json"].read_bytes())
        if command is None:
            # The console's own file of the same dry run (its JSON export keeps every section).
            own = tmp_path / name / "console.json"
            _cli(
                "reconcile",
                "run",
                "--date",
                RUN_DATE,
                "--dry-run",
                "--format",
                "json",
                "--out",
                str(own),
                "--database",
                ledger_url,
            )
            console = orjson.loads(own.read_bytes())["sections"]
            expected = [s["rows"] for s in console[:2]]
        else:
            expected = [orjson.loads(_cli(*command, "--format", "json", "--database", ledger_url))]
        for index, rows in enumerate(expected):
            mine = document["sections"][index]["rows"]
            # Same rows, same decimal strings (fx-exposure adds the valuation's currency column).
            assert [{k: r[k] for k in c} for r, c in zip(mine, rows, strict=True)] == rows, name
            money_cells += _check_xlsx(written["xlsx"], rows, index)
        page = written["html"].read_text(encoding="utf-8")
        assert page.count("<html") == 1
        assert set(re.findall(r"https?://[^\s\"'<>)]+", page)) <= _NAMESPACES, name
        assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
        if name != "trial-balance":  # the one report without a chart (currencies share no axis)
            assert "<svg" in page, name
        sections = document["sections"]
        csv_files = csv_paths(written["csv"], [Section(t["title"], []) for t in sections])
        for file, section in zip(csv_files, sections, strict=True):
            with file.open(newline="", encoding="utf-8") as f:
                table = list(csv.DictReader(f))
            assert len(table) == len(section["rows"])
        assert expected[0], f"{name}: the seeded month should give this report rows"
    assert money_cells > 500
    # Reports read; they never record (the reconciliation report is a dry run).
    assert ledger.store.head() == head
    assert ledger.views.query("SELECT COUNT(*) FROM recon_exceptions") == open_exceptions


def test_options_a_report_needs_or_does_not_take_are_refused_by_name(ledger: Ledger, tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"^--site: the report aml-threshold needs it"):
        build_report(ledger, "aml-threshold", {"month": "2026-10"})
    with pytest.raises(CatalogError, match=r"^--month: the report aml-threshold needs it"):
        build_report(ledger, "aml-threshold", {"site": "BR"})
    with pytest.raises(CatalogError, match=r"^--date: the report settlement-schedule needs it"):
        build_report(ledger, "settlement-schedule", {"date": None})
    with pytest.raises(CatalogError, match=r"^--site: the report trial-balance does not take it"):
        build_report(ledger, "trial-balance", {"site": "BR"})
    with pytest.raises(CatalogError, match=r"no report 'nope'"):
        build_report(ledger, "nope")
    with pytest.raises(Exception, match=r"^--date: '2026-13-01' is not a date"):
        build_report(ledger, "settlement-schedule", {"date": "2026-13-01"})
    with pytest.raises(Exception, match=r"^--to: 2026-09-01 is before --from"):
        build_report(ledger, "settlement-batches", {"from": "2026-10-01", "to": "2026-09-01"})
    # Through the command line: exit 2, the option named, no file.
    out = tmp_path / "aml.xlsx"
    result = CliRunner().invoke(app, ["report", "aml-threshold", "--out", str(out), "--database", ledger.url])
    assert result.exit_code == 2
    assert "--site: the report aml-threshold needs it" in result.stderr
    assert not out.exists()


def test_the_format_follows_the_file_suffix_and_the_list_names_every_report(ledger: Ledger, tmp_path: Path) -> None:
    out = tmp_path / "tb.xlsx"
    _cli("report", "trial-balance", "--out", str(out), "--database", ledger.url)
    assert load_workbook(out).worksheets[0].freeze_panes == "A2"
    listing = orjson.loads(_cli("report", "list", "--format", "json"))
    assert [r["report"] for r in listing] == list(REPORTS)
    assert {r["report"]: r["needs"] for r in listing}["aml-threshold"] == "--site --month"
    bad = CliRunner().invoke(
        app, ["report", "trial-balance", "--out", str(tmp_path / "tb.txt"), "--database", ledger.url]
    )
    assert bad.exit_code == 2 and "--format" in bad.stderr


def test_fx_exposure_report_takes_its_valuation_currency(ledger: Ledger) -> None:
    built = build_report(ledger, "fx-exposure", {"valuation": "usd"})
    assert built.title == "FX exposure valued in USD" and built.sections[0].rows == []
