"""Text from people and files never runs as a formula in a CSV or XLSX (issue 10, item 4).

``tests/test_exports.py`` checks the report exports against a list of known payloads. Here any text at all goes
through both ways Quipu writes CSV (the report files of ``quipu report`` and the ``--format csv`` of every other
command) and through XLSX: no cell read back starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
from user text — the guard's ``'`` comes first and the text follows unchanged — and no text can start a row of
its own (a carriage return inside a cell once could, in ``--format csv``, with the next "row" unguarded).
Numbers, negative ones included, stay numbers. End to end: notes on an AML case, written by a person through the
command line, come out of ``quipu aml case --format csv`` defused.
"""

from __future__ import annotations

import csv
import importlib
import io
import re
from pathlib import Path
from typing import Any, Final

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from rich.console import Console
from typer.testing import CliRunner

from adapters.bootstrap import open_ledger
from adapters.cli import COMMAND_MODULES, app
from adapters.exports import Column, Section, export_report
from adapters.reports import Format, render
from tests.factories import ev
from tests.test_fuzz_events import FORMULAS, SQL

for _module in COMMAND_MODULES:
    importlib.import_module(_module)

FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
NUMBER: Final = re.compile(r"-?[0-9]+(\.[0-9]+)?")
EXAMPLES: Final = 150
texts = st.sampled_from(
    [*FORMULAS, *SQL, "-12.50", "+55 11 99999-0000", "a\r=cmd|' /C calc'!A0", "x\n@SUM(1)", "\x01=HYPERLINK(1)"]
) | st.text(max_size=40)


def _guarded(written: str, original: str) -> None:
    """A text cell as read back: the original, behind the guard when it would run as a formula."""
    if original.startswith(FORMULA_START):
        assert written == "'" + original, (written, original)
    else:
        assert written == original, (written, original)
    assert not written.startswith(FORMULA_START)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(notes=st.lists(texts, min_size=1, max_size=4), minor=st.integers(-(10**12), 10**12))
def test_report_files_guard_every_text_cell_and_keep_numbers(tmp_path: Path, notes: list[str], minor: int) -> None:
    rows = [{"note": n, "currency": "CLP", "amount": str(minor)} for n in notes]
    columns = [Column("note"), Column("currency"), Column("amount", "money")]
    out = export_report("R", [Section("S", rows, columns)], "csv", tmp_path / "r.csv")
    with out.open(newline="", encoding="utf-8") as f:
        back = list(csv.DictReader(f))
    assert len(back) == len(notes), "a cell never starts a row of its own"
    for row, note in zip(back, notes, strict=True):
        _guarded(row["note"], note)
        assert row["amount"] == str(minor)
    book = export_report("R", [Section("S", rows, columns)], "xlsx", tmp_path / "r.xlsx")
    sheet = load_workbook(book).active
    assert sheet is not None
    for (note_cell, _, amount_cell), note in zip(sheet.iter_rows(min_row=2), notes, strict=True):
        kept = ILLEGAL_CHARACTERS_RE.sub("", note)  # the characters XML cannot hold are dropped first
        if kept:
            assert note_cell.data_type == "s"
            _guarded(str(note_cell.value), kept)
        assert amount_cell.data_type == "n" and amount_cell.value == minor


@settings(max_examples=EXAMPLES, deadline=None)
@given(rows=st.lists(st.fixed_dictionaries({"text": texts, "amount": st.integers(-(10**9), 10**9).map(str)}),
                     min_size=1, max_size=4))  # fmt: skip
def test_the_commands_csv_guards_every_text_cell_and_keeps_numbers(rows: list[dict[str, Any]]) -> None:
    out = io.StringIO()
    render(rows, Format.csv, "t", Console(file=out))
    back = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert len(back) == len(rows), "a cell never starts a row of its own"
    for row, original in zip(back, rows, strict=True):
        if NUMBER.fullmatch(original["text"]):
            assert row["text"] == original["text"]
        else:
            _guarded(row["text"], original["text"])
        assert row["amount"] == original["amount"], "numbers, negative ones too, are not guarded"


def test_notes_on_an_aml_case_come_out_of_the_command_defused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    opened = ev("aml.case_opened", {"case_id": "CASE-X", "seller_id": "S1", "alert_ids": ["AL-1"],
                                    "typologies": ["structuring"], "opened_by": "aml"})  # fmt: skip
    with open_ledger(url) as ledger:
        assert ledger.service.post([opened])[0].outcome.value == "appended"
    notes = [*FORMULAS, *SQL, 'ok\r=HYPERLINK("http://evil.example","x")']
    runner = CliRunner()
    for note in notes:
        run = runner.invoke(app, ["aml", "case", "CASE-X", "--action", "note", "--by", "=ana", "--text", note,
                                  "--database", url])  # fmt: skip
        assert run.exit_code == 0, run.stdout + run.stderr
    run = runner.invoke(app, ["aml", "case", "CASE-X", "--format", "csv", "--database", url])
    assert run.exit_code == 0, run.stderr
    back = list(csv.DictReader(io.StringIO(run.stdout, newline="")))
    assert [r["text"] for r in back[1:]] == [("'" + n if n.startswith(FORMULA_START) else n) for n in notes]
    assert {r["by"] for r in back[1:]} == {"'=ana"}
    for row in back:
        assert not any(str(v).startswith(FORMULA_START) for v in row.values()), row


def test_json_keeps_the_text_exactly() -> None:
    out = io.StringIO()
    render([{"text": t} for t in [*FORMULAS, *SQL]], Format.json, "t", Console(file=out))
    assert [r["text"] for r in orjson.loads(out.getvalue())] == [*FORMULAS, *SQL]
