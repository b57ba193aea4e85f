"""Looking up a recorded FX rate as of a moment, refusing a missing or stale one."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from adapters import config_files
from domain.fx import FxError
from projections.views import ViewStore


@dataclass(frozen=True, slots=True)
class RecordedRate:
    """A published rate as recorded: value, source and the moment it is as of."""

    rate: Decimal
    source: str
    as_of: dt.datetime


def latest_rate(views: ViewStore, base: str, quote: str, at: dt.datetime) -> RecordedRate | None:
    """The latest recorded rate for a pair at or before ``at``, however old; None when there is none."""
    at_us = int(at.timestamp()) * 1_000_000 + at.microsecond
    rows = views.query(
        "SELECT rate, source, as_of_us FROM fx_rates WHERE base = ? AND quote = ? AND as_of_us <= ? "
        "ORDER BY as_of_us DESC, source LIMIT 1",
        (base, quote, at_us),
    )
    if not rows:
        return None
    rate, source, as_of_us = rows[0]
    return RecordedRate(Decimal(rate), str(source), dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
        microseconds=int(as_of_us)))  # fmt: skip


def age_minutes(rate: RecordedRate, at: dt.datetime) -> float:
    """How old ``rate`` is at ``at``, in minutes."""
    return (at - rate.as_of) / dt.timedelta(minutes=1)


def stored_rate(
    views: ViewStore, base: str, quote: str, at: dt.datetime, limit_minutes: int | None = None
) -> RecordedRate:
    """The latest recorded rate for a pair at or before ``at``; an explicit error when there is
    none or it is older than the pair's staleness limit (``config/fx.toml``)."""
    settings = config_files.fx_settings()
    found = latest_rate(views, base, quote, at)
    if found is None:
        raise FxError(
            f"--rate: no {base}/{quote} rate recorded at or before {at.isoformat()}; import one or pass --rate"
        )
    age = age_minutes(found, at)
    limit = limit_minutes if limit_minutes is not None else settings.staleness_limit_minutes(base, quote)
    if age > limit:
        raise FxError(
            f"--rate: the latest {base}/{quote} rate ({found.source}, as of {found.as_of.isoformat()}) is {age:.0f} "
            f"minutes old, beyond the {limit}-minute limit for the pair"
        )
    return found
