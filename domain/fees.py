"""Fees the platform charges sellers, and the release of sellers' funds."""

from __future__ import annotations

from typing import Literal

from domain.envelope import Amount, Envelope, Ident, Payload


class FeeChargedPayload(Payload):
    """The platform charged a seller a fee."""

    fee_id: Ident
    seller_id: Ident
    kind: Literal["commission", "processing", "shipping"]
    """What the fee is for; each kind has its own revenue account."""
    amount: Amount
    payment_id: Ident | None = None
    """The payment the fee relates to, when there is one."""


class FeeCharged(Envelope):
    """``fee.charged``: Dr ``seller:<id>:pending``, Cr ``platform:main:fee_revenue.<kind>``."""

    type: Literal["fee.charged"]
    schema_version: Literal[1]
    payload: FeeChargedPayload


class FundsReleasedPayload(Payload):
    """Pending funds of a seller became available (its settlement date arrived)."""

    release_id: Ident
    seller_id: Ident
    amount: Amount


class FundsReleased(Envelope):
    """``funds.released``: Dr ``seller:<id>:pending``, Cr ``seller:<id>:available``."""

    type: Literal["funds.released"]
    schema_version: Literal[1]
    payload: FundsReleasedPayload
