"""The projection runner: resumes, stops at a position, and never applies a batch twice."""

from __future__ import annotations

import threading

import pytest

from adapters.bootstrap import Ledger, open_ledger
from tests.factories import authorized, captured, fee, released


def _fill(ledger: Ledger, payments: int = 300) -> None:
    events = []
    for i in range(payments):
        events += [authorized(f"p{i}", "100.00"), captured(f"p{i}", "100.00"), fee(f"f{i}", "3.00")]
        events.append(released(f"L{i}", "97.00"))
    for start in range(0, len(events), 500):
        ledger.service.post(events[start : start + 500])


# Each runner test once reading page by page and once reading the next page ahead on a second thread (the
# default on PostgreSQL, ADR 0032): the answers must not depend on it.
read_ahead = pytest.mark.parametrize("read_ahead", [False, True], ids=["in-turn", "read-ahead"])


@read_ahead
def test_two_runners_racing_apply_each_batch_once(ledger_url: str, read_ahead: bool) -> None:
    with open_ledger(ledger_url) as a, open_ledger(ledger_url) as b:
        a.runner.batch_size = b.runner.batch_size = 100
        a.runner.read_ahead = b.runner.read_ahead = read_ahead
        _fill(a)
        interleaved: list[int] = []

        def b_runs_in_the_middle(position: int, head: int) -> None:
            if not interleaved:
                interleaved.append(position)
                b.runner.run()  # B catches up while A holds a stale view of the positions

        a.runner.run(progress=b_runs_in_the_middle)
        assert interleaved, "the race was not staged"
        live = a.runner.checksums()
        assert b.runner.checksums() == live
        a.runner.rebuild()
        assert a.runner.checksums() == live


@read_ahead
def test_two_runners_in_threads_agree_with_a_rebuild(ledger_url: str, read_ahead: bool) -> None:
    with open_ledger(ledger_url) as a, open_ledger(ledger_url) as b:
        a.runner.batch_size = b.runner.batch_size = 50
        a.runner.read_ahead = b.runner.read_ahead = read_ahead
        _fill(a, 200)
        threads = [threading.Thread(target=led.runner.run) for led in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        trial = a.views.query("SELECT currency, debits_minor, credits_minor FROM trial_balance")
        assert trial == [("BRL", 200 * 20_000, 200 * 20_000)]
        live = a.runner.checksums()
        a.runner.rebuild()
        assert a.runner.checksums() == live


@read_ahead
def test_stop_at_a_position_then_resume(ledger: Ledger, read_ahead: bool) -> None:
    ledger.runner.read_ahead = read_ahead
    ledger.runner.batch_size = 7  # pages that end before, at and after the stop
    _fill(ledger, 10)
    report = ledger.runner.run(to_position=17)
    assert (report.start, report.end) == (0, 17)
    assert set(ledger.runner.positions().values()) == {17}
    assert ledger.runner.run().end == 40
    live = ledger.runner.checksums()
    ledger.runner.rebuild()
    assert ledger.runner.checksums() == live


def test_reading_ahead_is_the_default_where_the_log_is_in_a_server(ledger: Ledger) -> None:
    assert ledger.runner.read_ahead is (ledger.dialect == "postgresql")
