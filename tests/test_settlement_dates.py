"""Settlement dates: T + N bank business days, worked by hand against the bank calendars."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile

import pytest

from adapters import config_files
from domain.settlement.calendar import build_calendar


def settle(*args: str) -> list[dict[str, str]]:
    run = subprocess.run(
        [sys.executable, "-m", "adapters.cli", "settlement", "date", *args, "--format", "json"],
        capture_output=True, text=True, timeout=60, check=False, cwd=tempfile.gettempdir(),
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows: list[dict[str, str]] = json.loads(run.stdout)
    return rows


@pytest.mark.parametrize(
    ("site", "captured_at", "expected"),
    [
        # Friday after the 17:00 cut-off → T = next business day; Carnival Mon 8 and Tue 9 Feb 2027 are
        # closed, Ash Wednesday is open: T = Wed 10; T+2 = Fri 12.
        ("BR", "2027-02-05T18:30:00-03:00", "2027-02-12"),
        # One second before the cut-off counts today: T = Fri 5 Feb; +2 skips the weekend and Carnival → Thu 11.
        ("BR", "2027-02-05T16:59:59-03:00", "2027-02-11"),
        # Exactly at the cut-off counts from the next business day (Wed 10) → Fri 12.
        ("BR", "2027-02-05T17:00:00-03:00", "2027-02-12"),
        # A UTC moment on another local date: 2026-11-26T01:00Z is 25 Nov 22:00 in São Paulo (after cut-off):
        # T = Thu 26; T+2 = Mon 30.
        ("BR", "2026-11-26T01:00:00Z", "2026-11-30"),
        # Corpus Christi (Thu 4 Jun 2026) is a bank holiday: captured Wed 3 → T = 3; +1 = Fri 5; +2 = Mon 8.
        ("BR", "2026-06-03T10:00:00-03:00", "2026-06-08"),
        # Mexico, Holy Week 2026: Thu 2 and Fri 3 Apr closed. Captured Wed 1 at 10:00 → T = 1; +2 → Mon 6, Tue 7.
        ("MX", "2026-04-01T10:00:00-06:00", "2026-04-07"),
        # Mexico, 2 Nov 2026 (Mon) closed: captured Fri 30 Oct 09:00 → T = 30; +2 → Tue 3, Wed 4.
        ("MX", "2026-10-30T09:00:00-06:00", "2026-11-04"),
        # Mexico, 12 Dec 2025 (Fri) CNBV bank holiday: captured Thu 11 → T = 11; +2 → Mon 15, Tue 16.
        ("MX", "2025-12-11T10:00:00-06:00", "2025-12-16"),
        # Argentina, bankers' day Fri 6 Nov 2026: captured Thu 5 → T = 5; +2 → (6 closed) Mon 9 and Tue 10
        # are closed too (papal visit), Wed 11, Thu 12.
        ("AR", "2026-11-05T10:00:00-03:00", "2026-11-12"),
        # Chile, year end: 30 Dec 2026 20:30Z is 17:30 in Santiago (summer time, UTC−3): after cut-off;
        # 31 Dec is a bank holiday, 1 Jan a holiday → T = Mon 4 Jan 2027; +2 → Wed 6.
        ("CL", "2026-12-30T20:30:00Z", "2027-01-06"),
        # Chile's clock change: 2026-04-04T20:30Z is 17:30 local under summer time (UTC−3) but the change
        # happens the night of 4-5 April, so 4 Apr 2026 is still UTC−3 → after cut-off; Sat → T = Mon 6; +2 → Wed 8.
        ("CL", "2026-04-04T20:30:00Z", "2026-04-08"),
        # Colombia: Emiliani Monday 23 Mar 2026 (St Joseph observed): captured Fri 20 → T = 20; +2 → Tue 24, Wed 25.
        ("CO", "2026-03-20T09:00:00-05:00", "2026-03-25"),
    ],
)
def test_t_plus_two_worked_examples(site: str, captured_at: str, expected: str) -> None:
    (row,) = settle("--site", site, "--captured-at", captured_at)
    assert row["settlement_date"] == expected


def test_card_installments_split_the_amount_and_fall_every_30_days() -> None:
    # 100.00 in 3: 33.34 + 33.33 + 33.33 (remainder on the first); 5 Feb 2027 + 30 = Sun 7 Mar → Mon 8;
    # + 60 = Tue 6 Apr; + 90 = Thu 6 May.
    rows = settle("--site", "BR", "--captured-at", "2027-02-05T18:30:00-03:00", "--method", "card",
                  "--installments", "3", "--amount", "100.00")  # fmt: skip
    assert [(r["settlement_date"], r["amount"]) for r in rows] == [
        ("2027-03-08", "33.34"),
        ("2027-04-06", "33.33"),
        ("2027-05-06", "33.33"),
    ]


def test_pix_boleto_and_oxxo_schedules() -> None:
    # Pix settles on the local capture date, even on a Sunday.
    assert (
        settle("--site", "BR", "--captured-at", "2026-11-29T23:00:00-03:00", "--method", "pix")[0]["settlement_date"]
        == "2026-11-29"
    )
    # Boleto paid Wed 25 Nov 2026 10:00 → T = 25; +3 business days → Mon 30.
    assert (
        settle("--site", "BR", "--captured-at", "2026-11-25T10:00:00-03:00", "--method", "boleto")[0]["settlement_date"]
        == "2026-11-30"
    )
    # OXXO paid Wed 25 Nov → next Monday 30 Nov; paid Fri 27 Nov → next Wednesday 2 Dec.
    assert (
        settle("--site", "MX", "--captured-at", "2026-11-25T12:00:00-06:00", "--method", "oxxo")[0]["settlement_date"]
        == "2026-11-30"
    )
    assert (
        settle("--site", "MX", "--captured-at", "2026-11-27T12:00:00-06:00", "--method", "oxxo")[0]["settlement_date"]
        == "2026-12-02"
    )


def test_bank_calendars_follow_the_official_lists() -> None:
    table = config_files.calendars()
    br = build_calendar(table, "BR", [2026])
    assert not br.is_business_day(dt.date(2026, 2, 16)) and not br.is_business_day(dt.date(2026, 2, 17))
    assert br.is_business_day(dt.date(2026, 2, 18))  # Ash Wednesday: open
    assert br.is_business_day(dt.date(2026, 12, 24)) and br.is_business_day(dt.date(2026, 12, 31))
    mx = build_calendar(table, "MX", [2026])
    assert {d for d in (dt.date(2026, 4, 2), dt.date(2026, 4, 3), dt.date(2026, 11, 2))} <= set(mx.closed)
    assert dt.date(2026, 12, 12) in mx.closed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--site", "XX", "--captured-at", "2026-11-25T10:00:00Z"], "--site: unknown site 'XX'"),
        (["--site", "BR", "--captured-at", "2026-11-25T10:00:00"], "has no UTC offset"),
        (["--site", "BR", "--captured-at", "tomorrow"], "is not an ISO 8601 time"),
        (["--site", "BR", "--captured-at", "2026-11-25T10:00:00Z", "--method", "cheque"], "--method: 'cheque'"),
        (["--site", "BR", "--captured-at", "2026-11-25T10:00:00Z", "--method", "pix", "--installments", "3"],
         "only card payments settle in installments"),
        (["--site", "CL", "--captured-at", "2026-11-25T10:00:00Z", "--amount", "10.5"], "too many decimals for CLP"),
    ],
)  # fmt: skip
def test_bad_settlement_questions_name_the_option(args: list[str], message: str) -> None:
    run = subprocess.run([sys.executable, "-m", "adapters.cli", "settlement", "date", *args], capture_output=True,
                         text=True, timeout=60, check=False, cwd=tempfile.gettempdir())  # fmt: skip
    assert run.returncode == 2
    assert message in run.stderr
