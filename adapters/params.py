"""Dates and moments given on the command line or in a query string, refused with the option's name."""

from __future__ import annotations

import datetime as dt

from ledger.errors import QuipuError


def parse_day(value: str | None, option: str) -> dt.date:
    """A ``YYYY-MM-DD`` date; today (UTC) when not given."""
    if value is None:
        return dt.datetime.now(dt.UTC).date()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise QuipuError(f"{option}: {value!r} is not a date such as 2026-11-25") from None


def parse_moment(value: str | None, option: str) -> dt.datetime:
    """An ISO 8601 moment with its UTC offset (``Z`` accepted); now when not given."""
    if value is None:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise QuipuError(f"{option}: {value!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise QuipuError(f"{option}: {value!r} has no UTC offset")
    return when
