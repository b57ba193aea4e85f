"""The settlement policy: what a capture's schedule is, from the site, method and dated rules.

The settlement projection asks it for each capture. It is a pure function of the capture
(site, method, installments, moment, amount) and of the rule files it was built from; bank
calendars are built per site and year once and kept.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from domain.regions import RegionConfig
from domain.settlement.calendar import BankCalendar, CalendarTable, build_calendar
from domain.settlement.dates import MethodRules, SettlementError, settlement_dates
from ledger.money import allocate

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
        self._zones: dict[str, ZoneInfo] = {}
        self._cutoffs: dict[str, dt.time] = {}
        self._dates: dict[tuple[str, str, int, dt.date, bool], list[tuple[int, int, dt.date, str]]] = {}

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
        found = self._zones.get(site)
        if found is None:
            found = self._zones.setdefault(site, ZoneInfo(self.regions.region_config[site].time_zone))  # type: ignore[index]
        return found

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
        """The installments of a capture (one unless a card capture is in installments).

        The dates depend only on the site, method, installments, local capture date and which
        side of the cut-off the capture fell: they are computed once per such key (a rebuild
        schedules millions of captures over a few hundred distinct days)."""
        region = self.regions.region_config[site]  # type: ignore[index]
        kind = _SETTLES_AS.get(method, method)
        n = installments if kind == "card" else 1
        cutoff = self._cutoffs.get(site)
        if cutoff is None:
            cutoff = self._cutoffs.setdefault(site, dt.time.fromisoformat(region.settlement.cutoff))
        local = captured_at.astimezone(self.zone(site))
        key = (site, kind, n, local.date(), local.time() < cutoff)
        dates = self._dates.get(key)
        if dates is None:
            rows = settlement_dates(captured_at, region.time_zone, cutoff, region.settlement.days,
                                    self.calendar(site, local.year), self.methods, kind, n)  # fmt: skip
            dates = [(r.installment, r.of, r.date, r.rule) for r in rows]
            if len(self._dates) > 200_000:
                self._dates.clear()
            self._dates[key] = dates
        parts = allocate(amount_minor, len(dates)) if len(dates) > 1 else [amount_minor]
        return [Installment(k, of, day, part, rule) for (k, of, day, rule), part in zip(dates, parts, strict=True)]
