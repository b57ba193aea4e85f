"""Dates and moments given on the command line or in a query string, refused with the option's name."""

from __future__ import annotations

import datetime as dt
from typing import Final

from ledger.errors import QuipuError

#: The dates a query may name: wide enough for any ledger, narrow enough that adding a settlement window or a
#: month to one never leaves the calendar (9999-12-31 plus a day is an OverflowError, not an answer).
FIRST_DAY: Final = dt.date(1900, 1, 1)
LAST_DAY: Final = dt.date(9000, 12, 31)


def parse_day(value: str | None, option: str) -> dt.date:
    """A ``YYYY-MM-DD`` date; today (UTC) when not given."""
    if value is None:
        return dt.datetime.now(dt.UTC).date()
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise QuipuError(f"{option}: {value[:40]!r} is not a date such as 2026-11-25") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise QuipuError(f"{option}: {value!r} is not between {FIRST_DAY} and {LAST_DAY}")
    return day


def parse_moment(value: str | None, option: str) -> dt.datetime:
    """An ISO 8601 moment with its UTC offset (``Z`` accepted); now when not given."""
    if value is None:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise QuipuError(f"{option}: {value[:60]!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise QuipuError(f"{option}: {value!r} has no UTC offset")
    if not FIRST_DAY <= when.date() <= LAST_DAY:
        raise QuipuError(f"{option}: {value!r} is not between {FIRST_DAY} and {LAST_DAY}")
    return when
