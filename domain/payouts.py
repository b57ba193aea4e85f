"""Payouts: a seller's available funds leaving for their bank account.

Lifecycle: requested → sent → (failed, which returns the funds). A request never exceeds
the seller's available balance in that currency, counting payouts already requested;
the seller's wallet (one per seller and currency) is the consistency boundary.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

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


class PayoutRequested(Envelope):
    """``payout.requested``: Dr ``seller:<id>:available``, Cr ``seller:<id>:payout_reserved``."""

    type: Literal["payout.requested"]
    schema_version: Literal[1]
    payload: PayoutRequestedPayload


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
