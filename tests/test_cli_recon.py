"""`quipu reconcile` end to end through real processes: import (and refuse), run, exceptions
with aging, resolve, and the report files (XLSX and HTML) tie to the JSON figures."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl

from adapters.bootstrap import open_ledger
from adapters.demo_recon import simulate
from tests.test_cli import quipu
from tests.test_reconciliation import UNTIL, _post_month


def test_reconcile_commands_end_to_end(ledger_url: str, tmp_path: Path) -> None:
    with open_ledger(ledger_url) as ledger:
        _post_month(ledger, seed=31, events=1500)
        sim = simulate(ledger, tmp_path / "files", UNTIL)
    db = ("--database", ledger_url)
    # A malformed file is refused whole, naming line and column, and records nothing.
    bad = tmp_path / "bad.csv"
    good_text = sim.files[1][0].read_text()
    header, first, *rest = good_text.splitlines()
    bad.write_text("\n".join([header, first, first.replace(",charge,", ",charge,").replace(",brl,", ",XXX,"), *rest]))
    refused = quipu("reconcile", "import", str(bad), "--format", "stripe-balance", "--source", "cielo", *db)
    assert refused.returncode != 0 and "line 3" in refused.stderr + refused.stdout
    for path, fmt, source, ccy in sim.files:
        args = ["reconcile", "import", str(path), "--format", fmt, "--source", source or "", *db]
        if ccy:
            args += ["--currency", ccy]
        done = quipu(*args)
        assert done.returncode == 0, done.stderr
        assert " new events" in done.stdout
        again = quipu(*args)
        assert ", 0 new events" in again.stdout, again.stdout
    run = quipu("reconcile", "run", "--date", UNTIL.isoformat(), "--format", "json", *db)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout[run.stdout.index("[") : run.stdout.index("]") + 1])
    assert {row["level"] for row in summary} == {1, 2, 3}
    listed = quipu("reconcile", "exceptions", "--as-of", UNTIL.isoformat(), "--format", "json", *db)
    rows = json.loads(listed.stdout)
    assert sorted(r["category"] for r in rows) == sorted(sim.planted)
    aging = quipu("reconcile", "exceptions", "--as-of", UNTIL.isoformat(), "--aging", "--format", "json", *db)
    assert sum(b["exceptions"] for b in json.loads(aging.stdout)) == len(rows)
    # Files: XLSX with typed cells tying to the JSON; one offline HTML page with its charts.
    xlsx = tmp_path / "exceptions.xlsx"
    made = quipu("reconcile", "exceptions", "--as-of", UNTIL.isoformat(), "--format", "xlsx", "--out", str(xlsx), *db)
    assert made.returncode == 0, made.stderr
    sheet = openpyxl.load_workbook(xlsx).worksheets[0]
    assert sheet.freeze_panes == "A2"
    assert sheet.max_row == len(rows) + 1
    html = tmp_path / "run.html"
    page = quipu("reconcile", "run", "--date", UNTIL.isoformat(), "--format", "html", "--out", str(html), *db)
    assert page.returncode == 0, page.stderr
    text = html.read_text()
    assert "<svg" in text and "match rate per level" in text and "https://" not in text.replace("http://www.w3.org", "")
    # A resolution is an event; a second one is refused.
    timing = next(r for r in rows if r["category"] == "timing")
    ok = quipu("reconcile", "resolve", timing["exception_id"], "--resolution", "accepted_timing", "--by", "ana",
               "--note", "bank credited late", *db)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    twice = quipu("reconcile", "resolve", timing["exception_id"], "--resolution", "accepted_timing", "--by", "ana",
                  "--note", "again", *db)  # fmt: skip
    assert twice.returncode != 0 and "already closed" in twice.stderr + twice.stdout
    left = json.loads(quipu("reconcile", "exceptions", "--as-of", UNTIL.isoformat(), "--format", "json", *db).stdout)
    assert len(left) == len(rows) - 1
    assert quipu("reconcile", "run", "--level", "7", *db).returncode != 0
    bogus = quipu("reconcile", "resolve", timing["exception_id"], "--resolution", "ignored", "--by", "ana",
                  "--note", "x", *db)  # fmt: skip
    assert bogus.returncode != 0 and "--resolution: 'ignored' is not one of" in bogus.stderr + bogus.stdout
    bad_date = quipu("reconcile", "run", "--date", "2026-13-40", *db)
    assert bad_date.returncode != 0 and "--date" in bad_date.stderr + bad_date.stdout
