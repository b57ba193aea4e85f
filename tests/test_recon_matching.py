"""The matchers alone: each exception category comes from its own planted case and only from it,
and each matching rule (exact, tolerance, one-to-many, many-to-one, reference, amount+date)
matches what it should."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace
from typing import Any

import pytest

from domain.recon.matching import (
    Decision,
    ExternalLine,
    LedgerItem,
    Level2Totals,
    Settlement,
    Windows,
    match_bank,
    match_batches,
    match_items,
)
from domain.recon.rules import ReconRules

DAY = dt.date(2026, 10, 1)  # a Thursday
RUN = dt.date(2026, 10, 30)
RULES = ReconRules(
    effective_from=dt.date(2026, 1, 1), order_unpaid_days=3, payment_unsettled_days=7, payout_unsent_days=2,
    payout_in_transit_days=5, psp_clearing_business_days=5, report_lag_business_days=3,
    date_tolerance_business_days=2, amount_tolerance_minor=0, amount_tolerance_pct="0", fx_rounding_max_minor=2,
    bank_lag_business_days=3, value_date_tolerance_business_days=1,
)  # fmt: skip


class Weekdays:
    def add_business_days(self, day: dt.date, n: int) -> dt.date:
        while n:
            day += dt.timedelta(days=1)
            n -= day.weekday() < 5
        return day


def item(ref: str = "P1", gross: int = 10_000, fee: int = 300, kind: str = "capture", **kw: Any) -> LedgerItem:
    return LedgerItem(ref, kind, "cielo", "BRL", gross, fee, kw.pop("day", DAY), '["ev-1"]', kw.pop("batch", "B1"))


def line(ref: str = "P1", gross: int | None = 10_000, fee: int | None = 300, n: int = 2, **kw: Any) -> ExternalLine:
    record_type = kw.pop("record_type", "payment")
    net = kw.pop("net", (gross or 0) - (fee or 0))
    return ExternalLine("cielo.csv", n, "cielo", "processor", record_type, ref, kw.pop("batch", "B1"),
                        kw.pop("direction", "credit"), "BRL", gross, fee, net, kw.pop("day", DAY),
                        kw.pop("value_date", None), kw.pop("rate", None), f"ev-line-{n}")  # fmt: skip


def level2(items: list[LedgerItem], lines: list[ExternalLine], rules: ReconRules = RULES,
           known: bool = False) -> tuple[list[Decision], Level2Totals]:  # fmt: skip
    totals = Level2Totals()
    decisions = list(match_items(sorted(items, key=lambda i: (i.reference, i.kind)),
                                 sorted(lines, key=lambda ln: (ln.reference, ln.line_no)), rules,
                                 Windows(lambda _s: Weekdays()), RUN, lambda _r: known, totals))  # fmt: skip
    return decisions, totals


def categories(decisions: list[Decision]) -> list[str]:
    return sorted(d.finding.category for d in decisions if d.finding is not None)


def test_an_exact_match_raises_nothing() -> None:
    decisions, totals = level2([item()], [line()])
    assert categories(decisions) == [] and [d.rule for d in decisions] == ["exact"]
    assert totals.batch_lines_net["B1"] == 9_700


@pytest.mark.parametrize(
    ("items", "lines", "known", "expected"),
    [
        ([], [line()], True, "missing_in_ledger"),
        ([], [line()], False, "unknown_reference"),
        ([item()], [], False, "missing_at_processor"),
        ([item()], [line(gross=6_000, fee=300)], False, "amount_mismatch"),
        ([item()], [line(gross=10_001, rate="0.0548")], False, "fx_rounding"),
        ([item()], [line(gross=10_003, rate="0.0548")], False, "amount_mismatch"),  # beyond the FX bound
        ([item()], [line(fee=400)], False, "fee_mismatch"),
        ([item()], [line(day=DAY + dt.timedelta(days=6))], False, "timing"),  # 4 business days later
        ([item()], [line(n=2), line(n=3)], False, "duplicate"),
    ],
)
def test_each_category_comes_from_its_own_case_only(
    items: list[LedgerItem], lines: list[ExternalLine], known: bool, expected: str
) -> None:
    decisions, _ = level2(items, lines, known=known)
    assert categories(decisions) == [expected]
    finding = next(d.finding for d in decisions if d.finding is not None)
    assert finding.lines == tuple(x.where for x in lines) or expected == "missing_at_processor"


def test_an_item_inside_its_report_window_is_pending_not_missing() -> None:
    decisions, _ = level2([item(day=RUN - dt.timedelta(days=1))], [])
    assert [d.outcome for d in decisions] == ["pending"]


def test_tolerance_and_one_to_many_match() -> None:
    loose = RULES.model_copy(update={"amount_tolerance_minor": 5})
    decisions, _ = level2([item()], [line(gross=10_004, fee=300)], rules=loose)
    assert [(d.outcome, d.rule) for d in decisions] == [("matched", "tolerance")]
    pct = RULES.model_copy(update={"amount_tolerance_pct": "0.1"})
    assert categories(level2([item()], [line(gross=10_010)], rules=pct)[0]) == []
    assert categories(level2([item()], [line(gross=10_011)], rules=pct)[0]) == ["amount_mismatch"]
    # One capture paid out in two parts (two installments) with different dates.
    parts = [line(gross=6_000, fee=180, n=2), line(gross=4_000, fee=120, n=3, day=DAY + dt.timedelta(days=1))]
    decisions, _ = level2([item()], parts)
    assert [(d.outcome, d.rule) for d in decisions] == [("matched", "one-to-many (2 lines)")]


def test_a_separate_fee_line_adds_to_its_payment_fee() -> None:
    lines = [line(fee=None), line(record_type="fee", gross=None, fee=None, net=300, direction="debit", n=3)]
    decisions, _ = level2([item()], lines)
    assert categories(decisions) == []


def _settlement(net: int, sid: str = "B1") -> Settlement:
    return Settlement(sid, "cielo", "BRL", net, 300, DAY + dt.timedelta(days=1), "ev-set")


def test_many_to_one_a_payout_against_its_settlement_and_its_lines() -> None:
    payout = line("B1", gross=None, fee=None, net=9_700, record_type="payout", direction="debit", batch=None, n=9)
    decisions, totals = level2([item()], [line(), payout])
    assert categories(decisions) == []
    batch = list(match_batches([_settlement(9_700)], totals, RULES, Windows(lambda _s: Weekdays()), RUN))
    assert [(d.outcome, d.rule) for d in batch] == [("matched", "many-to-one")]
    # The ledger booked another amount than the processor paid.
    _, totals = level2([item()], [line(), payout])
    wrong = list(match_batches([_settlement(9_000)], totals, RULES, Windows(lambda _s: Weekdays()), RUN))
    assert categories(wrong) == ["amount_mismatch"]
    # The lines do not add to the payout (a line nobody explains).
    _, totals = level2([item()], [line(fee=200), payout])
    short = list(match_batches([_settlement(9_700)], totals, RULES, Windows(lambda _s: Weekdays()), RUN))
    assert "amount_mismatch" in categories(short)
    # A payout line without a booked settlement, and a settlement the processor never reported.
    _, totals = level2([], [payout])
    assert categories(list(match_batches([], totals, RULES, Windows(lambda _s: Weekdays()), RUN))) == [
        "missing_in_ledger"
    ]
    _, totals = level2([], [])
    unreported = list(match_batches([_settlement(9_700)], totals, RULES, Windows(lambda _s: Weekdays()), RUN))
    assert categories(unreported) == ["missing_at_processor"]


def _payout(ref: str = "B1", net: int = 9_700, day: dt.date = DAY) -> ExternalLine:
    return line(ref, None, None, net=net, record_type="payout", direction="debit", batch=None, day=day, value_date=day)


def _credit(ref: str = "B1", net: int = 9_700, day: dt.date = DAY, n: int = 7) -> ExternalLine:
    bank = line(ref, None, None, net=net, record_type="bank_credit", batch=None, day=day, value_date=day, n=n)
    return replace(bank, file_name="bank.xml", source="bank-main", source_kind="bank")


@pytest.mark.parametrize(
    ("payouts", "credits", "expected", "rule"),
    [
        ([_payout()], [_credit()], [], "reference"),
        ([_payout()], [_credit("BANKREF-77")], [], "amount+date"),
        ([_payout()], [], ["missing_at_bank"], "none"),
        ([_payout()], [_credit(net=9_600)], ["amount_mismatch"], "reference"),
        ([_payout()], [_credit(day=DAY + dt.timedelta(days=6))], ["timing"], "reference"),
        ([], [_credit()], ["unknown_reference"], "none"),
    ],
)
def test_level_3_payouts_against_bank_credits(
    payouts: list[ExternalLine], credits: list[ExternalLine], expected: list[str], rule: str
) -> None:
    decisions = list(match_bank(payouts, credits, RULES, Windows(lambda _s: Weekdays()), RUN))
    assert categories(decisions) == expected
    assert decisions[0].rule == rule


def test_ambiguous_credits_are_not_matched_by_amount() -> None:
    twins = [_credit("X-1", n=7), _credit("X-2", n=8)]
    decisions = list(match_bank([_payout()], twins, RULES, Windows(lambda _s: Weekdays()), RUN))
    assert categories(decisions) == ["missing_at_bank", "unknown_reference", "unknown_reference"]


def test_the_same_finding_has_the_same_exception_id() -> None:
    a = next(d.finding for d in level2([item()], [line(fee=400)])[0] if d.finding)
    b = next(d.finding for d in level2([item()], [line(fee=400)])[0] if d.finding)
    c = next(d.finding for d in level2([item()], [line(fee=500)])[0] if d.finding)
    assert a.exception_id == b.exception_id
    assert c.exception_id == a.exception_id  # same reference, category and lines: the same exception


def test_the_matching_benchmark_short_version_finds_exactly_what_it_planted(tmp_path: Any) -> None:
    """`python -m benchmarks.recon` at 1M × 1M is its own command; this is its short version."""
    from benchmarks.recon import main

    assert main(["--items", "30000", "--results-dir", str(tmp_path)]) == 0
    assert (tmp_path / "recon.json").exists()


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('version = "x"\nrules = []\n', "rules"),  # no rule set at all
        ('version = "x"\n[[rules]]\neffective_from = "2026-01-01"\n', "order_unpaid_days"),  # fields missing
        ('version = "x"\n[[processor]]\nname = "bad name"\nsite = "BR"\nformat = "x"\n', "processor[0].name"),
        ("version = [", "not valid TOML"),
    ],
)
def test_a_bad_reconciliation_rule_file_is_refused_naming_the_field(tmp_path: Any, text: str, named: str) -> None:
    from adapters.config_files import ConfigError, reconciliation

    path = tmp_path / "reconciliation.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(named)):
        reconciliation(path)


def test_a_negative_window_or_tolerance_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="report_lag_business_days"):
        RULES.model_validate({**RULES.model_dump(), "report_lag_business_days": -1})
    with pytest.raises(ValidationError, match="amount_tolerance_pct"):
        RULES.model_validate({**RULES.model_dump(), "amount_tolerance_pct": "-1"})
