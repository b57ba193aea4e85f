"""FX rates as events, conversions booked through liquidity accounts, and the rate importers."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from adapters.bootstrap import Ledger, open_ledger
from adapters.fx_feeds import read_csv, read_ecb_xml, read_json, read_ticks
from domain.catalog import parse_event
from domain.fx import figures
from domain.posting_rules import entry_for
from domain.service import Outcome
from ledger.money import MAX_MINOR, exponent, format_amount
from tests.factories import ev, payout, released


def converted(
    cid: str, src: str, src_ccy: str, tgt_ccy: str, ref: str, markup: str = "0.02",
    expires: str | None = None, target: str | None = None, when: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    f = figures(Decimal(src), tgt_ccy, Decimal(ref), Decimal(markup))
    payload = {
        "conversion_id": cid, "seller_id": "S1", "source": {"amount": src, "currency": src_ccy},
        "target": {"amount": target or str(f.target_amount), "currency": tgt_ccy},
        "reference_rate": ref, "markup": markup, "final_rate": format(f.final_rate, "f"),
        "rate_source": "BCB PTAX", "rate_as_of": "2026-10-27T13:00:00-03:00",
        "quote_id": "Q-1", "quote_expires_at": expires,
    }  # fmt: skip
    event = ev("fx.converted", payload)
    if when:
        event["occurred_at"] = when
    return event


def test_a_conversion_moves_available_funds_between_currencies(ledger: Ledger) -> None:
    results = ledger.service.post(
        [released("L1", "100.00"), converted("FX1", "60.00", "BRL", "USD", "0.1834"), payout("W1", "10.78", "USD")]
    )
    assert [r.outcome for r in results] == [Outcome.APPENDED] * 3, [r.reason for r in results]
    # 60.00 BRL at 0.1834 × 0.98 = 10.783 → 10.78 USD; 40.00 BRL left.
    over = ledger.service.post([payout("W2", "40.01"), payout("W3", "0.01", "USD")])
    assert all(r.outcome is Outcome.REJECTED for r in over)
    ledger.runner.run()
    balances = dict(ledger.views.query("SELECT account, credits_minor - debits_minor FROM account_balances"))
    assert balances["seller:S1:available:BRL"] == 4000
    assert balances["seller:S1:available:USD"] == 0
    assert balances["platform:main:fx_revenue:USD"] == 22  # 60 × 0.1834 × 0.02 = 0.22008 → 0.22
    trial = ledger.views.query("SELECT currency, debits_minor, credits_minor FROM trial_balance")
    assert all(d == c for _, d, c in trial) and {c for c, _, _ in trial} == {"BRL", "USD"}


def test_bad_conversions_are_refused_and_write_nothing(ledger: Ledger) -> None:
    ledger.service.post([released("L1", "100.00")])
    cases = [
        (converted("FX1", "60.00", "BRL", "USD", "0.1834", expires="2026-10-01T09:59:59-03:00"),
         "payload.quote_expires_at: quote Q-1 expired at 2026-10-01T09:59:59-03:00, before the conversion"),
        (converted("FX2", "60.00", "BRL", "USD", "0.1834", target="10.79"),
         "payload.target.amount: 10.79 is not source × final rate = 10.78"),
        (converted("FX3", "100.01", "BRL", "USD", "0.1834"),
         "payload.source.amount: conversion of 100.01 BRL exceeds seller S1's available 100.00 BRL"),
        (converted("FX4", "10.00", "BRL", "BRL", "1"), "payload.target.currency: a conversion needs two"),
    ]  # fmt: skip
    results = ledger.service.post([c for c, _ in cases])
    for result, (_, message) in zip(results, cases, strict=True):
        assert result.outcome is Outcome.REJECTED
        assert message in (result.reason or ""), result.reason
    assert ledger.store.head() == 1
    bad_rate = ev("fx.rate_published", {"base": "BRL", "quote": "USD", "rate": 0.18, "source": "X",
                                        "as_of": "2026-10-27T13:00:00-03:00"})  # fmt: skip
    assert "payload.rate" in (ledger.service.post([bad_rate])[0].reason or "")


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=1, max_value=10**11),
    st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("9999"), places=4),
    st.sampled_from(["0", "0.005", "0.02", "0.035"]),
    st.sampled_from([("BRL", "USD"), ("USD", "CLP"), ("USD", "PYG"), ("EUR", "BRL"), ("USD", "KWD")]),
)
def test_a_conversion_conserves_value_and_books_the_residue_to_rounding(
    minor: int, rate: Decimal, markup: str, pair: tuple[str, str]
) -> None:
    src_ccy, tgt_ccy = pair
    src = format_amount(minor, src_ccy)
    f = figures(Decimal(src), tgt_ccy, rate, Decimal(markup))
    # Too small to convert into a whole minor unit, or beyond the largest amount Quipu accepts.
    assume(f.target_amount > 0 and f.at_reference.scaleb(exponent(tgt_ccy)) <= MAX_MINOR)
    entry = entry_for(parse_event(converted("FX", src, src_ccy, tgt_ccy, format(rate, "f"), markup)))
    assert entry is not None
    assert all(d == c for d, c in entry.totals().values())
    unit = Decimal(1).scaleb(-exponent(tgt_ccy))
    exact_target = Decimal(src) * rate * (1 - Decimal(markup))
    assert abs(f.target_amount - exact_target) <= unit / 2  # each leg within a minor unit
    assert abs(f.markup_revenue - Decimal(src) * rate * Decimal(markup)) <= unit / 2
    assert abs(f.rounding) <= unit  # what is left goes to the rounding account
    rounding = sum(p.signed_minor for p in entry.postings if ":rounding:" in p.account)
    assert Decimal(-rounding).scaleb(-exponent(tgt_ccy)) == f.rounding
    if exponent(tgt_ccy) == 0:
        assert "." not in str(f.target_amount)


def test_rate_importers_read_each_format_and_name_bad_lines(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("base,quote,rate,as_of\nBRL,USD,0.1834,2026-11-25T13:00:00-03:00\n")
    records, problems = read_csv(tmp_path / "r.csv", "BCB PTAX")
    assert problems == [] and records[0].rate == "0.1834" and records[0].source == "BCB PTAX"
    assert records[0].event()["event_id"] == read_csv(tmp_path / "r.csv", "BCB PTAX")[0][0].event()["event_id"]
    (tmp_path / "bad.csv").write_text("base,quote,rate,as_of\nBRL,USD,-1,2026-11-25T13:00:00\nBRL,BRL,1,x\n")
    _, problems = read_csv(tmp_path / "bad.csv", "S")
    assert "bad.csv:2: rate: '-1' is not a positive decimal" in problems[0]
    assert any("bad.csv:2: as_of: '2026-11-25T13:00:00' has no UTC offset" in p for p in problems)
    assert any(p.startswith("bad.csv:3:") for p in problems)
    (tmp_path / "r.json").write_text(json.dumps([{"base": "USD", "quote": "MXN", "rate": 18.25, "as_of": "x"}]))
    assert "rate: must be a decimal string, not a float" in read_json(tmp_path / "r.json", "S")[1][0]
    (tmp_path / "ecb.xml").write_text(
        '<e:Envelope xmlns:e="http://www.gesmes.org/xml/2002-08-01" '
        'xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref"><Cube><Cube time="2026-11-24">'
        '<Cube currency="USD" rate="1.0832"/><Cube currency="JPY" rate="163.12"/></Cube></Cube></e:Envelope>'
    )
    records, problems = read_ecb_xml(tmp_path / "ecb.xml")
    assert problems == [] and [(r.base, r.quote, r.rate) for r in records] == [("EUR", "USD", "1.0832"),
                                                                               ("EUR", "JPY", "163.12")]  # fmt: skip
    assert records[0].as_of == dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.UTC)
    (tmp_path / "broken.xml").write_text("<Cube><Cube time=")
    assert "not well-formed XML" in read_ecb_xml(tmp_path / "broken.xml")[1][0]
    (tmp_path / "t.jsonl").write_text(
        '{"pair":"USDBRL","bid":"5.4321","ask":"5.4329","ts":"2026-11-25T16:00:00Z","venue":"LSEG"}\n'
        '{"pair":"USDBRL","bid":5.1,"ask":"5.2","ts":"2026-11-25T16:00:01Z"}\n'
    )
    records, problems = read_ticks(tmp_path / "t.jsonl")
    assert [(r.rate, r.source) for r in records] == [("5.4325", "LSEG")]
    assert problems == ["t.jsonl:2: bid and ask must be decimal strings"]


def test_quotes_use_the_latest_recorded_rate_and_refuse_stale_or_missing_ones(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/l.db"

    def quipu(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "adapters.cli", *args], capture_output=True, text=True,
                              timeout=120, check=False, env={**os.environ, "COLUMNS": "200"})  # fmt: skip

    (tmp_path / "r.csv").write_text(
        "base,quote,rate,as_of,source\n"
        "BRL,USD,0.1800,2026-11-24T13:00:00-03:00,BCB PTAX\n"
        "BRL,USD,0.1834,2026-11-25T13:00:00-03:00,BCB PTAX\n"
    )
    assert quipu("fx", "import", str(tmp_path / "r.csv"), "--database", db).returncode == 0
    again = quipu("fx", "import", str(tmp_path / "r.csv"), "--database", db)
    assert "appended 0, duplicates 2" in again.stdout
    run = quipu("fx", "quote", "--from", "BRL", "--to", "USD", "--amount", "1000.00", "--markup", "0.02",
                "--at", "2026-11-25T14:00:00-03:00", "--database", db, "--format", "json")  # fmt: skip
    (row,) = json.loads(run.stdout)
    assert (row["reference_rate"], row["rate_source"], row["target_amount"]) == ("0.1834", "BCB PTAX", "179.73")
    earlier = quipu("fx", "quote", "--from", "BRL", "--to", "USD", "--amount", "1000.00",
                    "--at", "2026-11-25T12:59:59-03:00", "--database", db, "--format", "json")  # fmt: skip
    assert json.loads(earlier.stdout)[0]["reference_rate"] == "0.18"
    stale = quipu("fx", "quote", "--from", "BRL", "--to", "USD", "--amount", "1.00",
                  "--at", "2026-11-27T13:00:00-03:00", "--database", db)  # fmt: skip
    assert stale.returncode == 2 and "beyond the 1440-minute limit" in stale.stderr
    missing = quipu("fx", "quote", "--from", "USD", "--to", "BRL", "--amount", "1.00", "--database", db)
    assert missing.returncode == 2 and "no USD/BRL rate recorded" in missing.stderr


def test_bad_rate_imports_are_refused_and_record_nothing(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/l.db"

    def quipu(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "adapters.cli", *args, "--database", db], capture_output=True,
                              text=True, timeout=120, check=False)  # fmt: skip

    (tmp_path / "r.csv").write_text("base,quote,rate,as_of\nBRL,USD,0.18,2026-11-25T13:00:00Z\n")
    wrong_kind = quipu("fx", "import", str(tmp_path / "r.csv"), "--kind", "xls", "--source", "S")
    assert wrong_kind.returncode == 2 and "--kind: 'xls' is not one of csv, json, ecb-xml, ticks" in wrong_kind.stderr
    missing = quipu("fx", "import", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    no_source = quipu("fx", "import", str(tmp_path / "r.csv"))
    assert no_source.returncode == 1 and "source: missing" in no_source.stderr
    assert "nothing was recorded" in no_source.stderr
    with open_ledger(db) as ledger:
        assert ledger.store.head() == 0
