"""FX quotes: a locked rate with its components, and what a conversion would give.

The convention (like Stripe's FX quotes): final rate = reference rate × (1 − markup);
target amount = source amount × final rate, rounded half-even to the target currency's
exponent; FX revenue = source amount × reference rate rounded the same way, minus the
target amount. Rates are kept exactly as given: only money is rounded.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal

from ledger.errors import QuipuError
from ledger.money import currency, parse_amount, quantize

_RATE = re.compile(r"(0|[1-9][0-9]{0,11})(\.[0-9]{1,12})?")


class FxError(QuipuError, ValueError):
    """A quote that cannot be made: names the option and why."""


@dataclass(frozen=True, slots=True)
class FxQuote:
    """A locked rate and the conversion it prices."""

    source_currency: str
    target_currency: str
    source_amount: Decimal
    reference_rate: Decimal
    rate_source: str
    markup: Decimal
    final_rate: Decimal
    target_amount: Decimal
    revenue: Decimal
    markup_revenue: Decimal
    rounding: Decimal
    quoted_at: dt.datetime
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Figures:
    """The amounts of one conversion, each in the target currency's minor unit."""

    final_rate: Decimal
    target_amount: Decimal
    at_reference: Decimal
    """source × reference rate, rounded: what the FX liquidity gives up."""
    markup_revenue: Decimal
    """source × reference rate × markup, rounded: the FX revenue booked."""
    rounding: Decimal
    """What is left, at most a minor unit either way: booked to the rounding account."""

    @property
    def revenue(self) -> Decimal:
        """The quote's FX revenue: value at the reference rate minus the target amount."""
        return self.at_reference - self.target_amount


def figures(source_amount: Decimal, target: str, reference_rate: Decimal, markup: Decimal) -> Figures:
    """The conversion's amounts under the quote convention, each rounded half-even on its own."""
    final_rate = reference_rate * (1 - markup)
    target_amount = quantize(source_amount * final_rate, target)
    at_reference = quantize(source_amount * reference_rate, target)
    markup_revenue = quantize(source_amount * reference_rate * markup, target)
    rounding = at_reference - target_amount - markup_revenue
    return Figures(final_rate, target_amount, at_reference, markup_revenue, rounding)


def parse_rate(value: str, option: str) -> Decimal:
    """A positive decimal string (no exponent, no sign)."""
    if not _RATE.fullmatch(value) or Decimal(value) == 0:
        raise FxError(f'{option}: {value!r} is not a positive decimal such as "0.1834"')
    return Decimal(value)


def quote(
    source: str,
    target: str,
    amount: str,
    reference_rate: Decimal,
    rate_source: str,
    markup: Decimal,
    quoted_at: dt.datetime,
    lock: dt.timedelta,
) -> FxQuote:
    """Price converting ``amount`` of ``source`` into ``target`` at a reference rate and markup."""
    for option, code in (("--from", source), ("--to", target)):
        try:
            currency(code)
        except QuipuError as exc:
            raise FxError(f"{option}: {exc}") from None
    if source == target:
        raise FxError(f"--to: converting {source} into itself needs no quote")
    if not Decimal(0) <= markup < Decimal(1):
        raise FxError(f"--markup: {markup} must be at least 0 and below 1 (0.02 is 2%)")
    if quoted_at.tzinfo is None:
        raise FxError("--at: the quote time needs a UTC offset")
    try:
        source_amount = parse_amount(amount, source, "--amount")
    except QuipuError as exc:
        raise FxError(str(exc)) from None
    if source_amount <= 0:
        raise FxError("--amount: must be greater than zero")
    f = figures(source_amount, target, reference_rate, markup)
    return FxQuote(
        source_currency=source,
        target_currency=target,
        source_amount=source_amount,
        reference_rate=reference_rate,
        rate_source=rate_source,
        markup=markup,
        final_rate=f.final_rate,
        target_amount=f.target_amount,
        revenue=f.revenue,
        markup_revenue=f.markup_revenue,
        rounding=f.rounding,
        quoted_at=quoted_at,
        expires_at=quoted_at + lock,
    )
