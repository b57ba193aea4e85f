"""When captured funds settle: T + N bank business days, per site and payment method.

The rule: T is the site's local business day on which a capture is recognised; a capture
at or after the site's cut-off (17:00 local by default) or on a closed day counts from the
next business day. A UTC moment counts on its *local* date. The settlement date is T + N
business days of the site's bank calendar. By method:

* card, one installment: T + N;
* card in n installments: each is the amount ÷ n cut to the minor unit, the remainder on
  the first; installment k falls k × 30 calendar days after the local capture date, moved
  to the next business day when banks are closed;
* Pix: the local capture date (instant, 24/7);
* Boleto: T + the boleto compensation days;
* OXXO (Stripe's schedule): paid Tuesday–Thursday → the next Monday; Friday–Monday → the
  next Wednesday; moved to the next business day when closed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.settlement.calendar import BankCalendar
from ledger.errors import QuipuError
from ledger.money import allocate, from_minor_units, to_minor_units

_WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
Weekday = Literal["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CardRules(_Frozen):
    installment_interval_days: Annotated[int, Field(ge=1, le=90)]


class BoletoRules(_Frozen):
    compensation_days: Annotated[int, Field(ge=0, le=10)]


class OxxoRules(_Frozen):
    schedule: dict[Weekday, Weekday]

    @model_validator(mode="after")
    def _every_day(self) -> OxxoRules:
        missing = [d for d in _WEEKDAYS if d not in self.schedule]
        if missing:
            raise ValueError(f"schedule lacks {', '.join(missing)}")
        return self


class PixRules(_Frozen):
    same_day: bool = True


class ReserveRule(_Frozen):
    """A rolling reserve: ``percent`` of each release held for ``days`` calendar days."""

    seller: Annotated[str, Field(min_length=1, max_length=64)]
    """A seller id, or ``*`` for every seller in that currency."""
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    percent: Annotated[str, Field(pattern=r"^(100|[0-9]{1,2})(\.[0-9]{1,4})?$")]
    days: Annotated[int, Field(ge=1, le=365)]
    effective_from: dt.date


class ReleaseDelay(_Frozen):
    """Captures on a site are released only ``days`` calendar days after the order's delivery."""

    site: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    days: Annotated[int, Field(ge=0, le=60)]
    effective_from: dt.date


class MethodRules(_Frozen):
    """``config/settlement.toml``: how each payment method settles after T, and reserves."""

    version: str
    card: CardRules
    boleto: BoletoRules
    oxxo: OxxoRules
    pix: PixRules
    reserve: tuple[ReserveRule, ...] = ()
    release_delay: tuple[ReleaseDelay, ...] = ()

    def release_delay_for(self, site: str, on: dt.date) -> int | None:
        """Days after delivery a capture on ``site`` on day ``on`` waits for, or None when the
        site releases on the settlement date alone."""
        rules = [r for r in self.release_delay if r.site == site and r.effective_from <= on]
        return max(rules, key=lambda r: r.effective_from).days if rules else None

    def reserve_for(self, seller: str, currency: str, on: dt.date) -> ReserveRule | None:
        """The reserve rule in force for a seller and currency on a day (a seller's own rule
        beats the ``*`` rule; among equals the latest effective date wins)."""
        in_force = [r for r in self.reserve if r.currency == currency and r.effective_from <= on]
        own = [r for r in in_force if r.seller == seller]
        pick = own or [r for r in in_force if r.seller == "*"]
        return max(pick, key=lambda r: r.effective_from) if pick else None


class SettlementError(QuipuError, ValueError):
    """A settlement date that cannot be computed as asked."""


@dataclass(frozen=True, slots=True)
class Settlement:
    """One settlement (one per installment)."""

    installment: int
    of: int
    date: dt.date
    amount: Decimal | None
    currency: str | None
    rule: str


def trade_day(captured_at: dt.datetime, zone: str, cutoff: dt.time, calendar: BankCalendar) -> dt.date:
    """T: the local business day the capture is recognised on."""
    if captured_at.tzinfo is None:
        raise SettlementError("--captured-at: needs a UTC offset, e.g. 2027-02-05T18:30:00-03:00")
    local = captured_at.astimezone(ZoneInfo(zone))
    if calendar.is_business_day(local.date()) and local.time() < cutoff:
        return local.date()
    return calendar.next_business_day(local.date())


def settlement_dates(
    captured_at: dt.datetime,
    zone: str,
    cutoff: dt.time,
    days: int,
    calendar: BankCalendar,
    rules: MethodRules,
    method: str = "card",
    installments: int = 1,
    amount: str | None = None,
    currency: str | None = None,
) -> list[Settlement]:
    """The settlement date(s) of a capture, with the amounts when ``amount`` is given."""
    if installments < 1 or installments > 24:
        raise SettlementError("--installments: must be between 1 and 24")
    if installments > 1 and method != "card":
        raise SettlementError("--installments: only card payments settle in installments")
    local_date = captured_at.astimezone(ZoneInfo(zone)).date() if captured_at.tzinfo else None
    t = trade_day(captured_at, zone, cutoff, calendar)
    assert local_date is not None
    minor = to_minor_units(Decimal(amount), currency) if amount is not None and currency else None
    if method == "card" and installments > 1:
        parts = allocate(minor, installments) if minor is not None else [None] * installments
        out = []
        for k, part in enumerate(parts, start=1):
            interval = rules.card.installment_interval_days
            due = calendar.on_or_after(local_date + dt.timedelta(days=k * interval))
            value = from_minor_units(part, currency) if part is not None and currency else None
            rule = f"installment {k}: capture date + {k * interval} days, next business day if closed"
            out.append(Settlement(k, installments, due, value, currency, rule))
        return out
    value = from_minor_units(minor, currency) if minor is not None and currency else None
    if method == "card":
        return [Settlement(1, 1, calendar.add_business_days(t, days), value, currency, f"T+{days} business days")]
    if method == "pix":
        day = local_date if rules.pix.same_day else t
        return [Settlement(1, 1, day, value, currency, "Pix: instant, on the local capture date")]
    if method == "boleto":
        n = rules.boleto.compensation_days
        return [Settlement(1, 1, calendar.add_business_days(t, n), value, currency,
                           f"Boleto: T+{n} business days (compensation)")]  # fmt: skip
    if method == "oxxo":
        paid = _WEEKDAYS[local_date.weekday()]
        target = _WEEKDAYS.index(rules.oxxo.schedule[paid])  # type: ignore[index]
        ahead = (target - local_date.weekday()) % 7 or 7
        due = calendar.on_or_after(local_date + dt.timedelta(days=ahead))
        return [Settlement(1, 1, due, value, currency, f"OXXO: paid {paid} → next {_WEEKDAYS[target]}")]
    raise SettlementError(f"--method: {method!r} is not one of card, pix, boleto, oxxo")
