"""Invariants over random event sequences, on SQLite and PostgreSQL.

Hypothesis draws a sequence of marketplace commands; some are valid, some are refused by the
write side. After every prefix the trial balance is zero per currency, every entry balances,
balances equal the sum of postings, and a rebuild from 0 equals the incremental views.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.bootstrap import open_ledger
from tests.conftest import drop_schema, pg_url_for_new_schema
from tests.factories import authorized, captured, chargeback, ev, fee, payout, refunded, released

CCYS = ["BRL", "CLP", "MXN"]


def _money(minor: int, ccy: str) -> str:
    return str(minor) if ccy == "CLP" else f"{minor // 100}.{minor % 100:02d}"


@st.composite
def commands(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(min_value=1, max_value=25))
    out: list[dict[str, Any]] = []
    for i in range(n):
        pid = f"p{draw(st.integers(0, 4))}"
        ccy = draw(st.sampled_from(CCYS))
        seller = draw(st.sampled_from(["S1", "S2"]))
        v = _money(draw(st.integers(min_value=1, max_value=50_000)), ccy)
        kind = draw(st.sampled_from(["auth", "cap", "refund", "cb", "fee", "release", "payout", "resolve"]))
        if kind == "auth":
            out.append(authorized(pid, v, ccy, seller))
        elif kind == "cap":
            out.append(captured(pid, v, ccy, seller))
        elif kind == "refund":
            out.append(refunded(pid, f"r{i}", v, ccy, seller))
        elif kind == "cb":
            out.append(chargeback(pid, f"c{draw(st.integers(0, 2))}", v, ccy, seller))
        elif kind == "fee":
            out.append(fee(f"f{i}", v, ccy, seller))
        elif kind == "release":
            out.append(released(f"L{i}", v, ccy, seller))
        elif kind == "payout":
            out.append(payout(f"W{i}", v, ccy, seller))
        else:
            cid = f"c{draw(st.integers(0, 2))}"
            out.append(ev("chargeback.resolved", {
                "chargeback_id": cid, "payment_id": pid, "seller_id": seller, "psp": "cielo",
                "amount": {"amount": v, "currency": ccy}, "outcome": draw(st.sampled_from(["won", "lost"])),
            }))  # fmt: skip
        if draw(st.booleans()) and out:
            out.append(draw(st.sampled_from(out)))  # re-post something: must be a duplicate
    return out


def _check_prefixes(url: str, events: list[dict[str, Any]], chunk: int) -> None:
    with open_ledger(url) as ledger:
        for start in range(0, len(events), chunk):
            results = ledger.service.post(events[start : start + chunk])
            assert all(r.outcome.value != "conflict" for r in results)
            ledger.runner.run()
            trial = ledger.views.query("SELECT currency, debits_minor, credits_minor FROM trial_balance")
            assert all(d == c for _, d, c in trial), trial
            per_entry = ledger.views.query(
                "SELECT position, currency, SUM(debit_minor) - SUM(credit_minor) FROM journal_postings "
                "GROUP BY position, currency"
            )
            assert all(net == 0 for _, _, net in per_entry)
            sums = dict(
                (a, (int(d), int(c)))
                for a, d, c in ledger.views.query(
                    "SELECT account, SUM(debit_minor), SUM(credit_minor) FROM journal_postings GROUP BY account"
                )
            )
            balances = {a: (d, c) for a, d, c in ledger.views.query(
                "SELECT account, debits_minor, credits_minor FROM account_balances")}  # fmt: skip
            assert balances == sums
        live = ledger.runner.checksums()
        ledger.runner.rebuild()
        assert ledger.runner.checksums() == live


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=commands(), chunk=st.integers(min_value=1, max_value=7))
def test_trial_balance_is_zero_after_every_prefix_on_sqlite(
    tmp_path_factory: Any, events: list[Any], chunk: int
) -> None:
    path = tmp_path_factory.mktemp("prop") / "l.db"
    _check_prefixes(f"sqlite:///{path}", events, chunk)


@pytest.mark.postgres
@settings(max_examples=15, deadline=None)
@given(events=commands(), chunk=st.integers(min_value=1, max_value=7))
def test_trial_balance_is_zero_after_every_prefix_on_postgresql(events: list[Any], chunk: int) -> None:
    url, schema = pg_url_for_new_schema()
    try:
        _check_prefixes(url, events, chunk)
    finally:
        drop_schema(schema)
