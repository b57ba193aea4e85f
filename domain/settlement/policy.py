"""The settlement policy: what a capture's schedule is, from the site, method and dated rules.

The settlement projection asks it for each capture. It is a pure function of the capture
(site, method, installments, moment, amount) and of the rule files it was built from; bank
calendars are built per site and year once and kept.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from domain.regions import RegionConfig
from domain.settlement.calendar import BankCalendar, CalendarTable, build_calendar
from domain.settlement.dates import MethodRules, SettlementError, settlement_dates
from ledger.money import format_amount, to_minor_units

#: Payment methods that settle like another: a buyer's wallet balance moves at once, like Pix.
_SETTLES_AS = {"account_money": "pix"}


@dataclass(frozen=True, slots=True)
class Installment:
    """One settlement of a capture: its number, date, amount and the rule that gave them."""

    number: int
    of: int
    settles_on: dt.date
    amount_minor: int
    rule: str


class SettlementPolicy:
    """Schedules captures under the region, calendar and method rules it was built from."""

    def __init__(self, regions: RegionConfig, calendars: CalendarTable, methods: MethodRules) -> None:
        self.regions = regions
        self.calendars = calendars
        self.methods = methods
        self._built: dict[tuple[str, int], BankCalendar] = {}

    @property
    def version(self) -> str:
        """The rule versions a schedule was computed under (recorded on each row)."""
        return f"regions {self.regions.version}, settlement {self.methods.version}"

    def calendar(self, site: str, year: int) -> BankCalendar:
        """The site's bank calendar covering ``year`` and the two after (24 monthly installments)."""
        key = (site, year)
        if key not in self._built:
            self._built[key] = build_calendar(self.calendars, site, range(year - 1, year + 3))
        return self._built[key]

    def zone(self, site: str) -> ZoneInfo:
        """The site's time zone."""
        return ZoneInfo(self.regions.region_config[site].time_zone)  # type: ignore[index]

    def currency_calendar(self, currency: str) -> tuple[str, str]:
        """(calendar site, time zone) a currency's payouts move on: its own entry in
        ``calendars.toml`` (USD, EUR), else the first site whose local currency it is."""
        own = self.calendars.currency_calendar.get(currency)
        if own is not None:
            return own.site, own.time_zone
        for site, region in sorted(self.regions.region_config.items()):
            if region.currency == currency:
                return site, region.time_zone
        raise SettlementError(f"--to: no bank calendar for {currency}")

    def payout_arrival(self, source: str, target: str, at: dt.datetime, cutoff: dt.time, days: int) -> dt.date:
        """When a payout requested at ``at`` arrives: it leaves on the source side's local date if
        both calendars are open and it is before the route's cut-off, else on the next day both
        are open, and arrives ``days`` days later counting only days both calendars are open."""
        src_site, zone = self.currency_calendar(source)
        tgt_site, _ = self.currency_calendar(target)
        local = at.astimezone(ZoneInfo(zone))
        cals = [self.calendar(src_site, local.year), self.calendar(tgt_site, local.year)]

        def open_(day: dt.date) -> bool:
            return all(c.is_business_day(day) for c in cals)

        day = local.date()
        if not open_(day) or local.time() >= cutoff:
            day += dt.timedelta(days=1)
            while not open_(day):
                day += dt.timedelta(days=1)
        for _ in range(days):
            day += dt.timedelta(days=1)
            while not open_(day):
                day += dt.timedelta(days=1)
        return day

    def schedule(
        self, site: str, method: str, installments: int, captured_at: dt.datetime, amount_minor: int, currency: str
    ) -> list[Installment]:
        """The installments of a capture (one unless a card capture is in installments)."""
        region = self.regions.region_config[site]  # type: ignore[index]
        local_year = captured_at.astimezone(dt.UTC).year
        kind = _SETTLES_AS.get(method, method)
        rows = settlement_dates(
            captured_at,
            region.time_zone,
            dt.time.fromisoformat(region.settlement.cutoff),
            region.settlement.days,
            self.calendar(site, local_year),
            self.methods,
            kind,
            installments if kind == "card" else 1,
            format_amount(amount_minor, currency),
            currency,
        )
        return [
            Installment(r.installment, r.of, r.date, to_minor_units(r.amount or Decimal(0), currency), r.rule)
            for r in rows
        ]
