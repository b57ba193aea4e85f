"""``quipu erp export``: the general ledger of a period mapped to an external chart of accounts, on
SQLite and PostgreSQL; written only when it ties to the trial balance, refused (no file) otherwise."""

from __future__ import annotations

import csv
import datetime as dt
import importlib
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import load_workbook
from typer.testing import CliRunner

from adapters.bootstrap import Ledger
from adapters.cli import COMMAND_MODULES, app
from adapters.demo import generate, iter_jsonl
from adapters.erp_export import COLUMNS, ErpExportError, _formatter, export_gl, load_mapping
from adapters.reports import trial_balance_rows
from domain.service import Outcome
from ledger.money import format_amount

for _module in COMMAND_MODULES:
    importlib.import_module(_module)

MAPPING = Path(__file__).resolve().parents[1] / "config" / "erp_mapping.toml"
OCTOBER = (dt.date(2026, 10, 1), dt.date(2026, 10, 31))


def _post_month(ledger: Ledger, seed: int = 41) -> None:
    lines = list(iter_jsonl(generate(seed=seed, events=1500, settle=True)))
    for i in range(0, len(lines), 1000):
        results = ledger.service.post(lines[i : i + 1000])
        assert {r.outcome for r in results} == {Outcome.APPENDED}
    ledger.runner.run()


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _mapping_with(tmp_path: Path, old: str, new: str) -> Path:
    text = MAPPING.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "mapping.toml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_the_export_ties_to_the_trial_balance_and_every_entry_balances(ledger: Ledger, tmp_path: Path) -> None:
    _post_month(ledger)
    mapping = load_mapping(MAPPING)
    october = export_gl(ledger, *OCTOBER, mapping, "csv", tmp_path / "oct.csv")
    export_gl(ledger, dt.date(2026, 11, 1), dt.date(2027, 12, 31), mapping, "csv", tmp_path / "rest.csv")
    rows = _read(tmp_path / "oct.csv")
    later = _read(tmp_path / "rest.csv")
    assert len(rows) == october.postings > 1000 and later, "the demo month spills into November"
    assert list(rows[0]) == list(COLUMNS)
    # The two periods together are the whole journal: their sums are the trial balance, currency by currency.
    sums: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for r in rows + later:
        sums[r["currency"]][0] += Decimal(r["debit"])
        sums[r["currency"]][1] += Decimal(r["credit"])
    assert {c: (str(d), str(k)) for c, (d, k) in sums.items()} == {
        t["currency"]: (t["debits"], t["credits"]) for t in trial_balance_rows(ledger)
    }
    assert all(t.ties for t in october.totals)
    # Every entry balances per currency; every row is in the period, mapped and quantised to its currency.
    per_entry: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    codes = {r.code: r.name for r in mapping.rules}
    for r in rows:
        per_entry[(r["position"], r["currency"])] += Decimal(r["debit"]) - Decimal(r["credit"])
        assert OCTOBER[0] <= dt.date.fromisoformat(r["date"]) <= OCTOBER[1]
        assert codes[r["gl_code"]] == r["gl_name"]
        minor = int(Decimal(r["debit"] or "0").scaleb(len(r["debit"].partition(".")[2])))
        assert format_amount(minor, r["currency"]) == r["debit"]
        party, party_id, purpose, _ = r["account"].split(":")
        assert r["seller"] == (party_id if party == "seller" else "")
        if party == "seller" and purpose == "pending":
            assert r["gl_code"] == "2100"
    assert set(per_entry.values()) == {Decimal(0)}
    assert len({r["position"] for r in rows}) == october.entries
    # The site where the settlement schedule says it: every capture's seller sells on one site here.
    captures = [r for r in rows if r["event_type"] == "payment.captured"]
    assert captures and all(r["site"] for r in captures)


def test_xlsx_has_the_same_figures_typed_with_a_totals_sheet(ledger: Ledger, tmp_path: Path) -> None:
    _post_month(ledger, seed=42)
    mapping = load_mapping(MAPPING)
    export_gl(ledger, *OCTOBER, mapping, "csv", tmp_path / "gl.csv")
    result = export_gl(ledger, *OCTOBER, mapping, "xlsx", tmp_path / "gl.xlsx")
    rows = _read(tmp_path / "gl.csv")
    wb = load_workbook(tmp_path / "gl.xlsx")
    ws, totals = wb.worksheets
    assert ws.freeze_panes == "A2" and totals.freeze_panes == "A2"
    assert [c.value for c in ws[1]] == list(COLUMNS)
    assert ws.max_row - 1 == len(rows) == result.postings
    debit, credit = COLUMNS.index("debit") + 1, COLUMNS.index("credit") + 1
    for n, r in enumerate(rows, start=2):
        assert ws.cell(row=n, column=1).value == int(r["position"])
        for column, key in ((debit, "debit"), (credit, "credit")):
            cell = ws.cell(row=n, column=column)
            assert cell.data_type == "n" and Decimal(str(cell.value)) == Decimal(r[key])
    tied = {row[0].value: row[-1].value for row in totals.iter_rows(min_row=2)}
    assert tied and set(tied.values()) == {"yes"}


def test_an_account_no_rule_or_two_rules_map_is_refused_by_name_and_nothing_is_written(
    ledger: Ledger, tmp_path: Path
) -> None:
    _post_month(ledger, seed=43)
    out = tmp_path / "out" / "gl.csv"
    unmapped = _mapping_with(tmp_path, 'account = "seller:*:pending:*"', 'account = "seller:*:pending:XXX"')
    with pytest.raises(ErpExportError, match=r"accounts match no rule: seller:[^ ]+:pending:[A-Z]{3}") as refused:
        export_gl(ledger, *OCTOBER, load_mapping(unmapped), "csv", out)
    assert "several" not in str(refused.value)
    twice = _mapping_with(
        tmp_path,
        "# -- revenue",
        '[[rule]]\nparty = "seller"\npurpose = "pending"\ncode = "2999"\nname = "dup"\n\n# -- revenue',
    )
    with pytest.raises(ErpExportError, match=r"match several rules: seller:\S+:pending:\w+ \(rules 7 2100, \d+ 2999\)"):
        export_gl(ledger, *OCTOBER, load_mapping(twice), "xlsx", out.with_suffix(".xlsx"))
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_a_journal_that_does_not_tie_is_refused_and_leaves_no_file(ledger: Ledger, tmp_path: Path) -> None:
    _post_month(ledger, seed=44)
    mapping = load_mapping(MAPPING)
    out = tmp_path / "out" / "gl.csv"
    out.parent.mkdir()
    # An entry tampered in the view: it no longer balances, and the period no longer ties.
    [(position,)] = ledger.views.query("SELECT MIN(position) FROM journal_postings WHERE debit_minor > 0")
    ledger.views.execute(
        "UPDATE journal_postings SET debit_minor = debit_minor + 1 WHERE position = ? AND debit_minor > 0", (position,)
    )
    for fmt in ("csv", "xlsx"):
        with pytest.raises(ErpExportError, match=rf"1 entries do not balance \(position, off by\): {position} \("):
            export_gl(ledger, *OCTOBER, mapping, fmt, out.with_suffix(f".{fmt}"))
    assert list(out.parent.iterdir()) == []  # neither the file nor a temporary one
    # Balanced entries, but a trial balance that moved by something else: refused naming the currency.
    ledger.views.execute(
        "UPDATE journal_postings SET debit_minor = debit_minor - 1 WHERE position = ? AND debit_minor > 0", (position,)
    )
    ledger.views.execute("UPDATE trial_balance SET credits_minor = credits_minor + 100 WHERE currency = 'BRL'")
    with pytest.raises(ErpExportError, match=r"BRL: exported debits [0-9.]+ / credits [0-9.]+ but the trial balance"):
        export_gl(ledger, *OCTOBER, mapping, "csv", out)
    assert list(out.parent.iterdir()) == []  # neither the file nor a temporary one


def test_text_a_spreadsheet_would_run_is_defused(ledger: Ledger, tmp_path: Path) -> None:
    _post_month(ledger, seed=45)
    ledger.views.execute(
        "UPDATE journal_entries SET memo = ? WHERE position = (SELECT MIN(position) FROM journal_entries)",
        ('=HYPERLINK("http://evil.example","x")',),
    )
    mapping = _mapping_with(tmp_path, 'name = "Commission revenue"', 'name = "+Commission revenue"')
    export_gl(ledger, *OCTOBER, load_mapping(mapping), "csv", tmp_path / "gl.csv")
    rows = _read(tmp_path / "gl.csv")
    assert any(r["memo"] == '\'=HYPERLINK("http://evil.example","x")' for r in rows)
    assert {r["gl_name"] for r in rows if r["gl_code"] == "4100"} == {"'+Commission revenue"}
    assert not any(v.startswith(("=", "+", "@")) for r in rows for v in r.values())


def test_a_period_without_entries_gives_a_file_with_headers_only(ledger: Ledger, tmp_path: Path) -> None:
    mapping = load_mapping(MAPPING)
    result = export_gl(ledger, dt.date(2030, 1, 1), dt.date(2030, 1, 31), mapping, "csv", tmp_path / "gl.csv")
    assert (tmp_path / "gl.csv").read_bytes() == (",".join(COLUMNS) + "\r\n").encode()
    assert (result.entries, result.postings, result.totals) == (0, 0, [])
    export_gl(ledger, dt.date(2030, 1, 1), dt.date(2030, 1, 31), mapping, "xlsx", tmp_path / "gl.xlsx")
    ws = load_workbook(tmp_path / "gl.xlsx").worksheets[0]
    assert [c.value for c in ws[1]] == list(COLUMNS) and ws.max_row == 1


def test_the_command_line_writes_and_refuses_with_the_option_named(ledger: Ledger, tmp_path: Path) -> None:
    _post_month(ledger, seed=46)
    out = tmp_path / "gl.csv"
    args = ["erp", "export", "--from", "2026-10-01", "--to", "2026-10-31", "--database", ledger.url]
    done = CliRunner().invoke(app, [*args, "--mapping", str(MAPPING), "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert f"wrote {out}" in done.stdout and "yes" in done.stdout and "NO" not in done.stdout
    assert len(_read(out)) > 1000
    bad = _mapping_with(tmp_path, 'code = "1010"\n', "")
    refused = CliRunner().invoke(app, [*args, "--mapping", str(bad), "--out", str(tmp_path / "x.csv")])
    assert refused.exit_code == 2
    assert "--mapping: mapping.toml: rule[0].code: Field required" in refused.stderr
    assert not (tmp_path / "x.csv").exists()


def test_mapping_rules_say_how_they_match() -> None:
    mapping = load_mapping(MAPPING)
    by_code = {r.code: r for r in mapping.rules}
    assert by_code["2100"].matches("seller:S-1:pending:BRL") and not by_code["2100"].matches("seller:S-1:held:BRL")
    assert by_code["2400"].matches("platform:main:tax_payable.icms:BRL")
    assert not by_code["1210"].matches("platform:main:receivable:BRL")  # party psp only
    assert mapping.effective_from == dt.date(2026, 10, 1) and mapping.version


@given(st.integers(min_value=-(10**15), max_value=10**15), st.sampled_from(["BRL", "CLP", "KWD", "USD", "COP"]))
def test_the_fast_formatter_writes_what_format_amount_writes(minor: int, currency: str) -> None:
    assert _formatter(currency)(minor) == format_amount(minor, currency)
