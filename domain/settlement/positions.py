"""A seller's position in one currency as of a date, from the settlement projection's sums.

Every figure is a sum of the seller's flows (captures, refunds, releases, holds, payouts ...)
up to the date, plus the part of the captures whose settlement date has come. They mirror
the journal's seller accounts exactly (a test holds them to it):

* ``pending`` (account ``pending``) = captured − deductions − released + recovered, where
  deductions = refunds + chargebacks − chargebacks won + fees + taxes assessed − reversed; it is ``not_yet_due``
  (captured − settled) plus ``due``;
* ``due`` = settled − deductions − released + recovered is owed to the seller now
  (the next release), and a negative ``due`` is a **deficit**: refunds or chargebacks after
  the funds were released, recovered from available funds and from the next releases;
* ``available`` (account ``available``) = released − recovered − held + hold releases −
  payouts − payout fees + failed payouts ± conversions;
* ``held`` (account ``held``) = holds − hold releases, of which ``reserved`` by rolling reserves;
* ``in_payout`` = requested − settled − failed, and ``paid_out`` = settled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Position:
    """One seller's money in one currency as of a date, in minor units."""

    seller_id: str
    currency: str
    captured: int
    deductions: int
    settled: int
    """Captures whose settlement date has come."""
    released: int
    recovered: int
    available: int
    held: int
    reserved: int
    in_payout: int
    paid_out: int
    payout_fees: int
    converted_in: int
    converted_out: int

    @property
    def pending(self) -> int:
        return self.captured - self.deductions - self.released + self.recovered

    @property
    def due(self) -> int:
        """Owed now and not yet released; negative when the seller is in deficit."""
        return self.settled - self.deductions - self.released + self.recovered

    @property
    def deficit(self) -> int:
        return max(0, -self.due)

    @property
    def not_yet_due(self) -> int:
        """Captured and not yet at its settlement date (gross: deductions count in ``due``)."""
        return self.captured - self.settled


def position(seller_id: str, currency: str, flows: Mapping[str, int], settled: int) -> Position:
    """The position from flow sums by kind (``held:<reason>`` kinds included) and the settled sum."""
    f = flows.get
    held = sum(v for k, v in flows.items() if k.startswith("held:"))
    unheld = sum(v for k, v in flows.items() if k.startswith("hold_released:"))
    reserved = f("held:reserve", 0) - f("hold_released:reserve", 0)
    deductions = (
        f("refunded", 0) + f("charged_back", 0) - f("chargeback_won", 0) + f("fee", 0) + f("tax", 0)
        - f("tax_reversed", 0)
    )  # fmt: skip
    available = (
        f("released", 0) - f("recovered", 0) - held + unheld - f("payout_requested", 0) - f("payout_fee", 0)
        + f("payout_failed", 0) - f("converted_out", 0) + f("converted_in", 0)
    )  # fmt: skip
    return Position(
        seller_id=seller_id,
        currency=currency,
        captured=f("captured", 0),
        deductions=deductions,
        settled=settled,
        released=f("released", 0),
        recovered=f("recovered", 0),
        available=available,
        held=held - unheld,
        reserved=reserved,
        in_payout=f("payout_requested", 0) - f("payout_settled", 0) - f("payout_failed", 0),
        paid_out=f("payout_settled", 0),
        payout_fees=f("payout_fee", 0),
        converted_in=f("converted_in", 0),
        converted_out=f("converted_out", 0),
    )
