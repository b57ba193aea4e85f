"""The ingest benchmark in short: its writers append everything, the log it leaves verifies, and the figures it
reports to explain the throughput (CPU per event, time in the append) are measured, not left at zero."""

from __future__ import annotations

import pytest

from benchmarks.ingest import run_case


@pytest.mark.parametrize("writers", [1, 2])
def test_a_short_case_appends_everything_and_reports_its_costs(ledger_url: str, writers: int) -> None:
    result = run_case(ledger_url, "test", batch=100, writers=writers, total=600)

    assert result.verified, result.problems
    assert result.events == result.posted == 600
    assert result.head == 600
    assert result.outcomes == {"appended": 600}
    # Every writer spends CPU and time appending; the append is part of the whole, never more.
    assert result.cpu_us_per_event > 0
    assert 0 < result.append_us_per_event * result.events / 1e6 <= result.slowest_writer_s * writers
    assert result.cpu_busy > 0


def test_the_library_yardstick_saves_and_reports_its_costs() -> None:
    from benchmarks.library_floor import run as library_run

    rate, cpu_us, stored = library_run(writers=2, events=2000)
    assert stored == 2000
    assert rate > 0
    assert cpu_us > 0
