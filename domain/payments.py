"""Payment events: authorisation, capture, failure, refunds and chargebacks.

Capture, refund and chargeback events repeat the seller and the processor of their
authorisation: an event is self-contained, so the journal it books never depends on
state outside it. The write side checks that they match the authorisation.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from domain.envelope import Amount, Envelope, Ident, Payload, Text


class Card(Payload):
    """A card payment, possibly in installments (Brazil's *parcelado*)."""

    kind: Literal["card"]
    brand: Literal["visa", "mastercard", "amex", "elo", "hipercard", "diners", "other"]
    """Card network."""
    installments: Annotated[int, Field(ge=1, le=24)] = 1
    """Number of installments, 1 for a single payment."""
    token: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^tok_[A-Za-z0-9_]+$")]
    """The processor's card token; Quipu never receives a card number."""
    last4: Annotated[str, Field(pattern=r"^[0-9]{4}$")]
    """Last four digits, for support staff."""


class Pix(Payload):
    """Brazil's instant payment."""

    kind: Literal["pix"]
    end_to_end_id: Annotated[str, Field(min_length=1, max_length=64)]
    """The Pix E2E identifier."""


class Boleto(Payload):
    """Brazil's bank slip, paid at a bank or app and confirmed days later."""

    kind: Literal["boleto"]
    barcode: Annotated[str, Field(pattern=r"^[0-9]{44,48}$")]
    """The boleto's barcode digits."""


class Oxxo(Payload):
    """Mexico's cash voucher paid at an OXXO store."""

    kind: Literal["oxxo"]
    voucher: Annotated[str, Field(pattern=r"^[0-9]{8,30}$")]
    """The voucher reference."""


class AccountMoney(Payload):
    """The buyer's own wallet balance."""

    kind: Literal["account_money"]


PaymentMethod = Annotated[Union[Card, Pix, Boleto, Oxxo, AccountMoney], Field(discriminator="kind")]


class PaymentAuthorizedPayload(Payload):
    """A processor authorised a payment for an order."""

    payment_id: Ident
    order_id: Ident
    """The order paid; it must have been placed and not cancelled."""
    seller_id: Ident
    psp: Ident
    """The payment processor (``cielo``, ``adyen``, ``mercadopago`` ...)."""
    amount: Amount
    """The authorised amount: the most that may be captured."""
    method: PaymentMethod
    """How the buyer pays."""


class PaymentAuthorized(Envelope):
    """``payment.authorized``: books nothing; it sets the ceiling for captures."""

    type: Literal["payment.authorized"]
    schema_version: Literal[1]
    payload: PaymentAuthorizedPayload


class PaymentCapturedPayload(Payload):
    """Funds of an authorised payment were captured: the processor now owes them to us."""

    payment_id: Ident
    seller_id: Ident
    """Must equal the authorisation's seller."""
    psp: Ident
    """Must equal the authorisation's processor."""
    amount: Amount
    """Captured now; the captures of a payment never exceed its authorisation."""


class PaymentCapturedV1(Envelope):
    """``payment.captured`` version 1 (still accepted; upcast to version 2 on read)."""

    type: Literal["payment.captured"]
    schema_version: Literal[1]
    payload: PaymentCapturedPayload


class PaymentCapturedV2Payload(PaymentCapturedPayload):
    """Version 2 adds the acquirer's reference, which reconciliation matches on."""

    acquirer_reference: Annotated[str, Field(min_length=1, max_length=64)] | None
    """The acquirer's id for the capture (ARN, NSU, TID ...); null when the processor gives none."""


class PaymentCaptured(Envelope):
    """``payment.captured``: Dr ``psp:<psp>:receivable``, Cr ``seller:<id>:pending``."""

    type: Literal["payment.captured"]
    schema_version: Literal[2]
    payload: PaymentCapturedV2Payload


class PaymentFailedPayload(Payload):
    """A payment was declined or expired (a boleto unpaid, an OXXO voucher expired)."""

    payment_id: Ident
    reason: Text
    """The processor's reason code or text."""


class PaymentFailed(Envelope):
    """``payment.failed``: books nothing; no capture may follow."""

    type: Literal["payment.failed"]
    schema_version: Literal[1]
    payload: PaymentFailedPayload


class RefundIssuedPayload(Payload):
    """Part or all of a captured payment was returned to the buyer."""

    refund_id: Ident
    payment_id: Ident
    seller_id: Ident
    psp: Ident
    amount: Amount
    """Refunds never exceed what was captured less earlier refunds and chargebacks."""


class RefundIssued(Envelope):
    """``refund.issued``: Dr ``seller:<id>:pending``, Cr ``psp:<psp>:receivable``."""

    type: Literal["refund.issued"]
    schema_version: Literal[1]
    payload: RefundIssuedPayload


class ChargebackOpenedPayload(Payload):
    """The buyer's bank disputed a captured payment; the processor took the funds back."""

    chargeback_id: Ident
    payment_id: Ident
    seller_id: Ident
    psp: Ident
    amount: Amount
    reason_code: Annotated[str, Field(min_length=1, max_length=16)]
    """Scheme reason code (Visa 10.4, Mastercard 4837 ...)."""


class ChargebackOpened(Envelope):
    """``chargeback.opened``: Dr ``seller:<id>:pending``, Cr ``psp:<psp>:receivable``."""

    type: Literal["chargeback.opened"]
    schema_version: Literal[1]
    payload: ChargebackOpenedPayload


class ChargebackResolvedPayload(Payload):
    """A dispute ended: won (funds come back) or lost (the seller bears it)."""

    chargeback_id: Ident
    payment_id: Ident
    seller_id: Ident
    psp: Ident
    amount: Amount
    """The disputed amount; must equal the opened chargeback's."""
    outcome: Literal["won", "lost"]


class ChargebackResolved(Envelope):
    """``chargeback.resolved``: when won, Dr ``psp receivable``, Cr ``seller pending``."""

    type: Literal["chargeback.resolved"]
    schema_version: Literal[1]
    payload: ChargebackResolvedPayload
