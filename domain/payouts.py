"""Payouts: a seller's available funds leaving for their bank account.

Lifecycle: requested → sent → settled, or sent → failed (which returns the funds). A
request never exceeds the seller's available balance in that currency, which already
excludes held funds and payouts requested before; the seller's wallet is the consistency
boundary, so two concurrent requests can never both spend the same funds.

Version 2 of ``payout.requested`` adds the payout fee (per payout route, charged on top of
the amount) and the route comparison the engine made, so both replay as recorded.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, model_validator

from domain.envelope import Amount, Envelope, Ident, Payload, Text


class PayoutRequestedPayload(Payload):
    """A seller asked for available funds to be paid out."""

    payout_id: Ident
    seller_id: Ident
    amount: Amount
    rail: Literal["bank_transfer", "pix", "spei", "swift", "sepa", "ach"]
    """The payment rail that will carry the payout."""
    destination: Annotated[str, Field(min_length=1, max_length=64)]
    """A reference to the seller's registered bank account (never the account number)."""


class PayoutRequestedV1(Envelope):
    """``payout.requested`` version 1 (still accepted; upcast to version 2 with no fee on read)."""

    type: Literal["payout.requested"]
    schema_version: Literal[1]
    payload: PayoutRequestedPayload


DecimalString = Annotated[str, Field(pattern=r"^-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,24})?$")]


class RouteOption(Payload):
    """One payout route the engine priced for this payout."""

    name: Annotated[str, Field(min_length=1, max_length=64)]
    rail: Annotated[str, Field(min_length=1, max_length=32)]
    fee: DecimalString
    """In the payout's currency."""
    total_cost: DecimalString
    """Fee plus FX spread, in the payout's currency."""
    delivered: DecimalString
    """What reaches the seller, in the route's target currency."""
    days_to_arrive: Annotated[int, Field(ge=0, le=60)]
    arrives_on: dt.date | None = None
    """Counting only days both the source and the target calendars are open."""
    eligible: bool
    reason: Annotated[str, Field(max_length=200)] = ""


class RouteChoice(Payload):
    """The route chosen and every route compared, as the engine saw them."""

    chosen: Annotated[str, Field(min_length=1, max_length=64)]
    table_version: Annotated[str, Field(min_length=1, max_length=32)]
    compared: Annotated[tuple[RouteOption, ...], Field(min_length=1, max_length=32)]
    reference_rate: DecimalString | None = None
    """For a cross-currency payout: the recorded rate the routes were priced at (target per source)."""
    rate_source: Annotated[str, Field(min_length=1, max_length=60)] | None = None
    rate_as_of: AwareDatetime | None = None

    @model_validator(mode="after")
    def _chosen_was_compared(self) -> RouteChoice:
        if not any(o.name == self.chosen and o.eligible for o in self.compared):
            raise ValueError(f"chosen: {self.chosen!r} is not an eligible route among those compared")
        return self


class TravelRule(Payload):
    """FATF Recommendation 16 data a cross-border payout carries (originator and beneficiary)."""

    originator_name: Annotated[str, Field(min_length=1, max_length=140)]
    originator_account: Annotated[str, Field(min_length=1, max_length=64)]
    originator_id: Annotated[str, Field(min_length=1, max_length=64)]
    """An address, a national or legal-entity id, or a date and place of birth."""
    beneficiary_name: Annotated[str, Field(min_length=1, max_length=140)]
    beneficiary_account: Annotated[str, Field(min_length=1, max_length=64)]


class PayoutRequestedV2Payload(PayoutRequestedPayload):
    """Version 2: the payout fee and the route comparison (and travel-rule data when cross-border)."""

    fee: Amount | None
    """Charged on top of the amount, in its currency; null when the route is free."""
    route: RouteChoice | None
    """The priced routes and the one chosen; null when the rail was imposed."""
    travel_rule: TravelRule | None = None
    """Required from the AML rules' threshold on cross-border payouts; its absence raises an alert."""

    @model_validator(mode="after")
    def _fee_in_the_payout_currency(self) -> PayoutRequestedV2Payload:
        if self.fee is not None and self.fee.currency != self.amount.currency:
            raise ValueError(f"fee: {self.fee.currency} is not the payout's currency {self.amount.currency}")
        return self


class PayoutRequested(Envelope):
    """``payout.requested``: Dr ``seller available`` (amount + fee), Cr ``payout_reserved`` (amount),
    Cr ``platform fee_revenue.payout`` (fee)."""

    type: Literal["payout.requested"]
    schema_version: Literal[2]
    payload: PayoutRequestedV2Payload


class PayoutSentPayload(Payload):
    """The bank accepted the payout instruction."""

    payout_id: Ident
    seller_id: Ident
    amount: Amount
    """Must equal the requested amount."""
    bank_reference: Annotated[str, Field(min_length=1, max_length=64)]


class PayoutSent(Envelope):
    """``payout.sent``: Dr ``seller:<id>:payout_reserved``, Cr ``platform:main:payouts_clearing``."""

    type: Literal["payout.sent"]
    schema_version: Literal[1]
    payload: PayoutSentPayload


class PayoutFailedPayload(Payload):
    """A sent payout bounced; the funds return to the seller's available balance."""

    payout_id: Ident
    seller_id: Ident
    amount: Amount
    """Must equal the requested amount."""
    reason: Text


class PayoutFailed(Envelope):
    """``payout.failed``: Dr ``platform:main:payouts_clearing``, Cr ``seller:<id>:available``."""

    type: Literal["payout.failed"]
    schema_version: Literal[1]
    payload: PayoutFailedPayload


class PayoutSettledPayload(Payload):
    """The seller's bank credited the payout: it left the platform's cash."""

    payout_id: Ident
    seller_id: Ident
    amount: Amount
    """Must equal the requested amount."""
    settled_on: dt.date


class PayoutSettled(Envelope):
    """``payout.settled``: Dr ``platform:main:payouts_clearing``, Cr ``platform:main:cash``."""

    type: Literal["payout.settled"]
    schema_version: Literal[1]
    payload: PayoutSettledPayload
