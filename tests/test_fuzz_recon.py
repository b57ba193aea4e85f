"""Hostile reports and statements through ``quipu reconcile import`` (issue 10, item 4), the whole way to the log.

``tests/test_recon_import.py`` fuzzes the readers (random bytes, mutated fixtures: only ``ImportRefused``) and
names each malformed cell. Here the same kind of files go through the command and the ledger: a refused file is
refused whole, naming file, line and column, in a message of bounded length, with nothing written (the log's
head does not move); an accepted file records every line once, and importing it again records nothing; the
values no reader should take (numbers past a double, 5,000 digits, Unicode digits, exponents, NaN, unknown
currencies, impossible dates, XML nested 10,000 deep) are refused; and text a bank or processor wrote, however
SQL- or formula-like, is kept verbatim as data.
"""

from __future__ import annotations

import csv
import importlib
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from adapters.bootstrap import open_ledger
from adapters.cli import COMMAND_MODULES, app
from tests.test_fuzz_events import FORMULAS, SQL
from tests.test_recon_import import CASES, FIXTURES, mutate, mutated

for _module in COMMAND_MODULES:
    importlib.import_module(_module)

EXAMPLES: Final = 40
#: (fixture, format, options, the cell's text in the fixture, the line and column it is at)
CELLS: Final = [
    ("bank_itau.csv", "bank-csv", ["--source", "bank-itau"], "1.454,10", "line 2, column Valor"),
    ("stripe_balance.csv", "stripe-balance", [], ",12345,", "line 3, column amount"),
    ("mercadopago_release.csv", "mercadopago-release", ["--currency", "ARS"], "9350.50", "line 3, column NET_CREDIT"),
    ("camt053.xml", "camt053", [], ">250.00<", "line 22, column Document/BkToCstmrStmt/Stmt/Ntry/Amt"),
]
AMOUNTS: Final = ["1e309", "9" * 5000, "NaN", "Infinity", "-Infinity", "1E+400", "0x10", "１２", "١٢٣", "1_000",
                  "12\u200b", "=1+1", "@SUM(A1)", "'; DROP TABLE recon_lines;--"]  # fmt: skip
OTHER_CELLS: Final = {
    "an unknown currency": ("stripe_balance.csv", "stripe-balance", [], ",brl,", ",zzz,", "line 3, column currency"),
    "a currency with no minor unit": ("stripe_balance.csv", "stripe-balance", [], ",brl,", ",xau,",
                                      "line 3, column currency"),
    "an impossible date": ("bank_itau.csv", "bank-csv", ["--source", "bank-itau"], "07/10/2026;;", "31/02/2026;;",
                           "line 5, column Data"),
    "a date in year 99999": ("camt053.xml", "camt053", [], "<Dt>2026-10-07</Dt></BookgDt>",
                             "<Dt>99999-10-07</Dt></BookgDt>", "line 37, column Document/BkToCstmrStmt/Stmt"),
    "XML nested 10,000 deep": ("camt053.xml", "camt053", [], "<Ntry>", "<Ntry>" + "<X>" * 10_000 + "</X>" * 10_000,
                               "line 8, column Document/BkToCstmrStmt/Stmt/Ntry/X"),
}  # fmt: skip
PROBLEM_LINE: Final = re.compile(r"(\S+) line (\d+)(, column [^:]+)?: \S")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("fuzz-recon")
    url = f"sqlite:///{tmp}/ledger.db"
    with open_ledger(url):
        pass
    yield url, tmp


def _head(url: str) -> int:
    with open_ledger(url) as ledger:
        return int(ledger.store.head())


def _import(url: str, path: Path, fmt: str, options: list[str]) -> Any:
    return CliRunner().invoke(app, ["reconcile", "import", str(path), "--format", fmt, *options, "--database", url])


def _assert_refused_whole(run: Any, path: Path, where: str, url: str, head: int) -> None:
    output = run.stdout + run.stderr
    assert run.exit_code == 2, output[-2000:]
    assert "Traceback" not in output
    assert f"{path.name} {where}" in run.stderr, run.stderr[-2000:]
    longest = max(len(line) for line in run.stderr.splitlines())
    assert longest < 800, f"a problem repeats its input back at length ({longest} characters)"
    assert _head(url) == head, "a refused file writes nothing"


@pytest.mark.parametrize("value", AMOUNTS, ids=[v[:12] for v in AMOUNTS])
@pytest.mark.parametrize(("fixture", "fmt", "options", "cell", "where"), CELLS, ids=[c[1] for c in CELLS])
def test_an_amount_no_reader_should_take_refuses_the_file_whole(
    db: tuple[str, Path], fixture: str, fmt: str, options: list[str], cell: str, where: str, value: str
) -> None:
    url, tmp = db
    quoted = '"' + value.replace('"', '""') + '"'  # a CSV cell holding the delimiter stays one cell
    wrapped = f",{quoted}," if cell.startswith(",") else f">{value}<" if cell.startswith(">") else quoted
    path = tmp / f"amount{Path(fixture).suffix}"
    path.write_bytes(mutate(fixture, cell, wrapped))
    head = _head(url)
    _assert_refused_whole(_import(url, path, fmt, options), path, where, url, head)


@pytest.mark.parametrize("case", list(OTHER_CELLS))
def test_a_cell_no_reader_should_take_refuses_the_file_whole(db: tuple[str, Path], case: str) -> None:
    url, tmp = db
    fixture, fmt, options, old, new, where = OTHER_CELLS[case]
    path = tmp / f"other{Path(fixture).suffix}"
    path.write_bytes(mutate(fixture, old, new))
    head = _head(url)
    _assert_refused_whole(_import(url, path, fmt, options), path, where, url, head)


FUZZED: Final = [(f, fmt, kw) for f, fmt, kw in CASES if f != "camt053_v02.xml"]


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_a_mutated_file_is_recorded_whole_once_or_refused_whole(db: tuple[str, Path], data: st.DataObject) -> None:
    url, tmp = db
    fixture, fmt, kwargs = data.draw(st.sampled_from(FUZZED))
    options = [part for key, value in kwargs.items() for part in (f"--{key}", value)]
    path = tmp / f"mutant{Path(fixture).suffix}"
    path.write_bytes(data.draw(mutated((FIXTURES / fixture).read_bytes())))
    head = _head(url)

    run = _import(url, path, fmt, options)

    output = run.stdout + run.stderr
    assert "Traceback" not in output and (run.exception is None or isinstance(run.exception, SystemExit)), output
    if run.exit_code == 0:
        lines, new = map(int, re.search(r": (\d+) lines, (\d+) new events", run.stdout).groups())  # type: ignore[union-attr]
        # Every line an event, and the file's own event: all of them, or none when the same bytes were imported.
        assert new in (0, lines + 1) and _head(url) == head + new, run.stdout
        again = _import(url, path, fmt, options)
        assert again.exit_code == 0 and _head(url) == head + new, "importing the same file again records nothing"
    else:
        assert run.exit_code == 2, output[-2000:]
        problems = [line for line in run.stderr.splitlines() if PROBLEM_LINE.search(line)]
        assert problems or f"{path.name}:" in run.stderr, run.stderr[-2000:]
        assert _head(url) == head, "a refused file writes nothing"


def test_text_a_bank_wrote_is_kept_verbatim_however_it_looks(db: tuple[str, Path]) -> None:
    url, tmp = db
    hostile = [*FORMULAS[:5], *SQL]
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";", lineterminator="\n")
    writer.writerow(["Data", "Data valor", "Valor", "Moeda", "Referência", "Descrição"])
    writer.writerows([f"0{i + 1}/10/2026", "", f"{i + 1},00", "BRL", h[:60], h] for i, h in enumerate(hostile))
    path = tmp / "hostile-bank.csv"
    path.write_text(buf.getvalue(), encoding="utf-8")

    run = _import(url, path, "bank-csv", ["--source", "bank-itau"])

    assert run.exit_code == 0, run.stdout + run.stderr
    with open_ledger(url) as ledger:
        rows = ledger.views.query("SELECT file_sha256 FROM recon_files WHERE file_name = ?", (path.name,))
        assert rows
        descriptions = set()
        for record in ledger.store.read(0, 100_000):
            doc = orjson.loads(record.body)
            if doc["type"] == "recon.line_imported" and doc["payload"]["file_name"] == path.name:
                descriptions.add(doc["payload"]["description"])
    assert descriptions == set(hostile), "kept as given: text is data"
