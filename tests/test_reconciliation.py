"""Reconciliation end to end, on SQLite and PostgreSQL: a generated month, the processors'
reports and the bank statement simulated from it, planted discrepancies, and the run that must
find each one in its own category (and nothing else)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from adapters import reconcile
from adapters.bootstrap import Ledger, open_ledger
from adapters.demo import generate, iter_jsonl
from adapters.demo_recon import reconcile_month, simulate
from domain.service import Outcome

UNTIL = dt.date(2026, 11, 13)


def _post_month(ledger: Ledger, seed: int, events: int) -> None:
    lines = list(iter_jsonl(generate(seed=seed, events=events, settle=False)))
    for i in range(0, len(lines), 1000):
        results = ledger.service.post(lines[i : i + 1000])
        assert {r.outcome for r in results} == {Outcome.APPENDED}


def _quiet() -> Console:
    return Console(file=open("/dev/null", "w"), width=200)


def test_each_planted_discrepancy_is_found_in_its_own_category_and_nothing_else(ledger: Ledger, tmp_path: Path) -> None:
    _post_month(ledger, seed=21, events=2500)
    result = reconcile_month(ledger, _quiet(), tmp_path / "files", UNTIL)
    report: reconcile.RunReport = result["report"]
    planted: dict[str, str] = result["planted"]
    assert set(planted) == {"missing_at_processor", "fee_mismatch", "duplicate", "fx_rounding", "timing"}
    found = Counter((f.category, f.reference) for f in report.findings)
    assert found == Counter({(cat, ref): 1 for cat, ref in planted.items()})
    by_cat = {f.category: f for f in report.findings}
    # Evidence: the ledger's events, and the report lines (file:line) where the processor said it.
    assert by_cat["fee_mismatch"].event_ids and by_cat["fee_mismatch"].lines
    assert all(":" in where for where in by_cat["duplicate"].lines) and len(by_cat["duplicate"].lines) == 2
    assert by_cat["timing"].level == 3 and by_cat["missing_at_processor"].level == 2
    assert by_cat["fee_mismatch"].difference == 100  # one currency unit more than the ledger's processing fee
    # Recorded as events and kept by the projection, with an age.
    rows = reconcile.exception_rows(ledger, UNTIL)
    assert sorted((r["category"], r["reference"]) for r in rows) == sorted(planted.items())
    assert all(r["age_days"] >= 0 and r["evidence"] for r in rows)


def test_running_and_importing_again_records_nothing_new_and_a_rebuild_gives_the_same_results(
    ledger: Ledger, tmp_path: Path
) -> None:
    _post_month(ledger, seed=22, events=1500)
    out_dir = tmp_path / "files"
    first = reconcile_month(ledger, _quiet(), out_dir, UNTIL)["report"]
    assert first.raised == len(first.findings) > 0
    head = ledger.store.head()
    sim = simulate(ledger, out_dir, UNTIL)  # the same files again, the same settlements again
    for path, fmt, source, ccy in sim.files:
        again = reconcile.import_file(ledger, path, fmt, source=source, currency=ccy)
        assert again.appended == 0 and again.duplicates == again.lines + 1
    second = reconcile.run(ledger, UNTIL, check_projections=False)
    assert (second.raised, second.cleared, second.already_known) == (0, 0, len(first.findings))
    assert ledger.store.head() == head
    before = ledger.runner.checksums()["reconciliation"]
    ledger.runner.rebuild()
    assert ledger.runner.checksums()["reconciliation"] == before


def test_accepting_a_late_credit_as_timing_closes_its_exception(ledger: Ledger, tmp_path: Path) -> None:
    _post_month(ledger, seed=23, events=1500)
    result = reconcile_month(ledger, _quiet(), tmp_path / "files", UNTIL)
    late = result["planted"]["timing"]
    exc = next(r for r in reconcile.exception_rows(ledger, UNTIL) if r["reference"] == late)
    assert exc["category"] == "timing"
    rows = reconcile.exception_rows(ledger, UNTIL, status="open")
    timing_id = exc["exception_id"]
    reconcile.resolve(ledger, timing_id, "accepted_timing", "ana", "credited four business days late")
    closed = {r["exception_id"]: r["status"] for r in reconcile.exception_rows(ledger, UNTIL, status=None)}
    assert closed[timing_id] == "accepted_timing"
    assert len(reconcile.exception_rows(ledger, UNTIL, status="open")) == len(rows) - 1


def test_resolutions_are_events_and_refused_when_incomplete(ledger: Ledger, tmp_path: Path) -> None:
    _post_month(ledger, seed=24, events=1500)
    result = reconcile_month(ledger, _quiet(), tmp_path / "files", UNTIL)
    rows = {r["category"]: r for r in reconcile.exception_rows(ledger, UNTIL)}
    fee = rows["fee_mismatch"]
    with pytest.raises(reconcile.ReconError, match="adjustment_id"):
        reconcile.resolve(ledger, fee["exception_id"], "adjusted", "ana", "processor overcharged")
    with pytest.raises(reconcile.ReconError, match="no adjustment"):
        reconcile.resolve(ledger, fee["exception_id"], "adjusted", "ana", "x", adjustment_id="ADJ-NOPE")
    ccy = fee["currency"]
    adjustment = {
        "event_id": "8a5f0c3e-6a0d-4c9e-9a67-1f0d2b3c4d5e", "type": "adjustment.posted", "schema_version": 1,
        "occurred_at": "2026-11-13T15:00:00+00:00", "source": "finance",
        "payload": {"adjustment_id": "ADJ-FEE-1", "reason": "processor overcharged a fee; claim raised",
                    "author": "ana", "corrects": fee["reference"],
                    "lines": [{"account": f"psp:{fee['source']}:receivable:{ccy}", "side": "debit",
                               "amount": {"amount": fee["difference"], "currency": ccy}},
                              {"account": f"platform:main:psp_fees:{ccy}", "side": "credit",
                               "amount": {"amount": fee["difference"], "currency": ccy}}]},
    }  # fmt: skip
    assert ledger.service.post([adjustment])[0].outcome is Outcome.APPENDED
    decided = reconcile.resolve(ledger, fee["exception_id"], "adjusted", "ana", "claimed back", "ADJ-FEE-1")
    head = ledger.store.head()
    # The same decision again (a client retrying after a lost answer) is the recorded one; nothing is written.
    again = reconcile.resolve(ledger, fee["exception_id"], "adjusted", "ana", "claimed back", "ADJ-FEE-1")
    assert (decided.recorded_before, again) == (False, (decided.event_id, True))
    assert ledger.store.head() == head
    with pytest.raises(reconcile.ReconError, match="already closed"):
        reconcile.resolve(ledger, fee["exception_id"], "adjusted", "ana", "claimed back, twice", "ADJ-FEE-1")
    with pytest.raises(reconcile.ReconError, match="already closed"):
        reconcile.resolve(ledger, fee["exception_id"], "accepted_timing", "ana", "again")
    dup = rows["duplicate"]
    with pytest.raises(reconcile.ReconError, match="approved_by"):
        reconcile.resolve(ledger, dup["exception_id"], "written_off", "ana", "x", "ADJ-FEE-1")
    with pytest.raises(reconcile.ReconError, match="another person"):
        reconcile.resolve(ledger, dup["exception_id"], "written_off", "ana", "x", "ADJ-FEE-1", approved_by="ana")
    with pytest.raises(reconcile.ReconError, match="no exception"):
        reconcile.resolve(ledger, "RXNOPE", "accepted_timing", "ana", "x")
    statuses = {r["category"]: r["status"] for r in reconcile.exception_rows(ledger, UNTIL, status=None)}
    assert statuses["fee_mismatch"] == "adjusted" and statuses["duplicate"] == "open"
    assert result["report"].raised == len(rows)


def test_a_dry_run_explains_each_decision_and_records_nothing(ledger: Ledger, tmp_path: Path) -> None:
    _post_month(ledger, seed=25, events=1200)
    sim = simulate(ledger, tmp_path / "files", UNTIL, plant=False)
    for path, fmt, source, ccy in sim.files:
        reconcile.import_file(ledger, path, fmt, source=source, currency=ccy)
    head = ledger.store.head()
    report = reconcile.run(ledger, UNTIL, levels=(2, 3), dry_run=True, keep_decisions=True)
    assert ledger.store.head() == head
    rules = Counter(d.rule for d in report.decisions if d.outcome == "matched")
    assert rules["exact"] > 0 and rules["many-to-one"] == sim.batches and rules["reference"] == sim.batches
    assert all(d.why for d in report.decisions)
    with pytest.raises(reconcile.ReconError, match="--level"):
        reconcile.run(ledger, UNTIL, levels=(4,))


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(min_value=100, max_value=10_000))
def test_a_clean_month_reconciles_fully_at_every_level(tmp_path_factory: pytest.TempPathFactory, seed: int) -> None:
    where = tmp_path_factory.mktemp("clean")
    with open_ledger(f"sqlite:///{where}/ledger.db") as ledger:
        _post_month(ledger, seed=seed, events=800)
        sim = simulate(ledger, where / "files", UNTIL, plant=False)
        for path, fmt, source, ccy in sim.files:
            reconcile.import_file(ledger, path, fmt, source=source, currency=ccy)
        report = reconcile.run(ledger, UNTIL)
        assert report.findings == []
        assert {s.level: s.match_rate for s in report.summaries.values()} == {1: "100.00", 2: "100.00", 3: "100.00"}
        assert all(s.matched > 0 for s in report.summaries.values())


def test_level_1_finds_incomplete_lifecycles_unsettled_items_and_tampered_views(ledger: Ledger) -> None:
    from tests.test_settlement import PIX, sale

    when = "2026-10-01T12:00:00-03:00"
    unpaid = sale("P1", "BR", "100.00", "BRL", PIX, when=when)[:2]  # authorised, never captured nor failed
    paid = sale("P2", "BR", "50.00", "BRL", {**PIX, "end_to_end_id": "E2"}, when=when)
    assert {r.outcome for r in ledger.service.post([*unpaid, *paid])} == {Outcome.APPENDED}
    report = reconcile.run(ledger, dt.date(2026, 10, 30), levels=(1,), dry_run=True)
    assert sorted((f.category, f.reference) for f in report.findings) == [
        ("clearing_overdue", "P2"),  # captured, in no processor settlement after 5 business days
        ("incomplete_lifecycle", "P1"),
    ]
    assert reconcile.run(ledger, dt.date(2026, 10, 2), levels=(1,), dry_run=True).findings == []  # within windows
    # A view changed behind the ledger's back: the sub-ledger check and the rebuild check both see it.
    views: Any = ledger.views
    views.conn.execute(
        "UPDATE account_balances SET credits_minor = credits_minor + 1 WHERE account = 'seller:S1:pending:BRL'"
    )
    views.conn.commit()
    tampered = reconcile.run(ledger, dt.date(2026, 10, 2), levels=(1,), dry_run=True)
    assert sorted((f.category, f.reference) for f in tampered.findings) == [
        ("projection_drift", "projection:balances"),
        ("subledger_mismatch", "seller:S1:pending:BRL"),
    ]
    views.conn.execute("UPDATE journal_postings SET debit_minor = debit_minor + 1 WHERE debit_minor > 0")
    views.conn.execute("UPDATE trial_balance SET debits_minor = debits_minor + 1")
    views.conn.commit()
    broken = {f.category for f in reconcile.run(ledger, dt.date(2026, 10, 2), levels=(1,), dry_run=True).findings}
    assert {"unbalanced_entry", "trial_balance", "projection_drift"} <= broken


def test_an_exception_that_a_later_run_no_longer_finds_is_cleared(ledger: Ledger, tmp_path: Path) -> None:
    _post_month(ledger, seed=26, events=1200)
    sim = simulate(ledger, tmp_path / "files", UNTIL)
    bank = next(f for f in sim.files if f[1] == "camt053")
    processors = [f for f in sim.files if f[1] != "camt053"]
    for path, fmt, source, ccy in processors:
        reconcile.import_file(ledger, path, fmt, source=source, currency=ccy)
    # No bank statement yet: every payout is missing at the bank once its lag has passed.
    first = reconcile.run(ledger, UNTIL, levels=(3,))
    assert first.raised > 0 and {f.category for f in first.findings} == {"missing_at_bank"}
    # An earlier day's run clears nothing that a later day found.
    assert reconcile.run(ledger, dt.date(2026, 10, 5), levels=(3,)).cleared == 0
    reconcile.import_file(ledger, bank[0], bank[1], source=bank[2], currency=bank[3])
    second = reconcile.run(ledger, UNTIL, levels=(3,))
    assert {f.category for f in second.findings} == {"timing"}  # only the planted late credit is left
    assert second.cleared == first.raised
    statuses = Counter(r["status"] for r in reconcile.exception_rows(ledger, UNTIL, status=None))
    assert statuses["cleared"] == first.raised and statuses["open"] == 1


def test_a_statement_import_stopped_part_way_is_refused_by_the_run_until_imported_again(
    ledger: Ledger, tmp_path: Path
) -> None:
    from adapters.recon_import import read_statement, statement_events

    _post_month(ledger, seed=25, events=1200)
    sim = simulate(ledger, tmp_path / "files", UNTIL)
    path, fmt, source, ccy = sim.files[0]
    docs = statement_events(read_statement(path, fmt, source=source, currency=ccy))
    assert len(docs) > 3
    # What a process killed after its first batches leaves: the file and some of its lines.
    half = len(docs) // 2
    assert {r.outcome for r in ledger.service.post(docs[:half])} == {Outcome.APPENDED}
    head = ledger.store.head()
    with pytest.raises(reconcile.ReconError, match=rf"{path.name}: {half - 1:,} of {len(docs) - 1:,} lines recorded"):
        reconcile.run(ledger, UNTIL, check_projections=False)
    assert ledger.store.head() == head  # refused before anything was recorded
    # Level 1 alone does not read statements, so it still runs.
    assert reconcile.run(ledger, UNTIL, levels=[1], dry_run=True, check_projections=False).levels == (1,)
    again = reconcile.import_file(ledger, path, fmt, source=source, currency=ccy)
    assert (again.appended, again.duplicates) == (len(docs) - half, half)
    for other in sim.files[1:]:
        reconcile.import_file(ledger, other[0], other[1], source=other[2], currency=other[3])
    assert reconcile.run(ledger, UNTIL, check_projections=False).raised > 0
