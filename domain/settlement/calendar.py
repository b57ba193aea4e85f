"""Bank business-day calendars: weekends, the ``holidays`` package and dated overrides."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Literal

import holidays
from dateutil.easter import easter
from pydantic import BaseModel, ConfigDict, Field

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class EasterDay(BaseModel):
    """A closure a number of days from Easter Sunday (Carnival is −48 and −47)."""

    model_config = _FROZEN
    days: int
    name: Annotated[str, Field(min_length=1)]


class FixedDay(BaseModel):
    """A closure on the same date every year, not moved off weekends."""

    model_config = _FROZEN
    month: Annotated[int, Field(ge=1, le=12)]
    day: Annotated[int, Field(ge=1, le=31)]
    name: Annotated[str, Field(min_length=1)]


class SiteCalendarRule(BaseModel):
    """How a site's bank calendar is made."""

    model_config = _FROZEN
    source: Literal["country", "financial"] = "country"
    code: Annotated[str, Field(min_length=2, max_length=8)]
    categories: tuple[str, ...] = ("PUBLIC",)
    easter: tuple[EasterDay, ...] = ()
    fixed: tuple[FixedDay, ...] = ()


class Override(BaseModel):
    """A decreed closure (``closed``) or a day the package closes that banks open."""

    model_config = _FROZEN
    site: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    date: dt.date
    closed: bool
    name: Annotated[str, Field(min_length=1)]


class CurrencyCalendar(BaseModel):
    """The calendar a payout currency moves on when no country site owns it (USD, EUR)."""

    model_config = _FROZEN
    site: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    time_zone: Annotated[str, Field(min_length=3)]


class CalendarTable(BaseModel):
    """The whole ``config/calendars.toml``."""

    model_config = _FROZEN
    site: dict[str, SiteCalendarRule] = Field(default_factory=dict)
    override: tuple[Override, ...] = ()
    currency_calendar: dict[str, CurrencyCalendar] = Field(default_factory=dict)


@dataclass(frozen=True)
class BankCalendar:
    """The closed days of one site's banks (weekends are always closed)."""

    site: str
    closed: dict[dt.date, tuple[str, str]] = field(default_factory=dict)
    """date → (name, source)."""

    def is_business_day(self, day: dt.date) -> bool:
        return day.weekday() < 5 and day not in self.closed

    def next_business_day(self, day: dt.date) -> dt.date:
        """The first business day strictly after ``day``."""
        day += dt.timedelta(days=1)
        while not self.is_business_day(day):
            day += dt.timedelta(days=1)
        return day

    def on_or_after(self, day: dt.date) -> dt.date:
        """``day`` if banks open, else the next business day."""
        return day if self.is_business_day(day) else self.next_business_day(day)

    def add_business_days(self, day: dt.date, n: int) -> dt.date:
        for _ in range(n):
            day = self.next_business_day(day)
        return day


def build_calendar(table: CalendarTable, site: str, years: Iterable[int]) -> BankCalendar:
    """The site's bank calendar for the given years."""
    years = tuple(sorted(set(years)))
    rule = table.site.get(site, SiteCalendarRule(code=site))
    closed: dict[dt.date, tuple[str, str]] = {}
    if rule.source == "financial":
        package = holidays.financial_holidays(rule.code, years=years)
        label = f"holidays package: {rule.code} market calendar"
    else:
        package = holidays.country_holidays(
            rule.code, years=years, categories=tuple(c.lower() for c in rule.categories)
        )
        label = f"holidays package: {rule.code} {'+'.join(rule.categories)}"
    for day, name in package.items():
        closed[day] = (name, label)
    for year in years:
        sunday = easter(year)
        for e in rule.easter:
            closed[sunday + dt.timedelta(days=e.days)] = (e.name, "override: Easter-based bank closure")
        for f in rule.fixed:
            closed[dt.date(year, f.month, f.day)] = (f.name, "override: fixed-date bank closure")
    for o in table.override:
        if o.site == site and o.date.year in years:
            if o.closed:
                closed[o.date] = (o.name, "override: decreed")
            else:
                closed.pop(o.date, None)
    return BankCalendar(site, closed)
