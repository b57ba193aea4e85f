"""FX events: rate publications and conversions of a seller's funds between currencies."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, model_validator

from domain.envelope import Amount, Envelope, Ident, Payload

#: A rate: a positive decimal string, at most 12 decimals (never a JSON number).
RateString = Annotated[str, Field(pattern=r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,12})?$")]
#: A markup fraction: 0.02 is 2%.
MarkupString = Annotated[str, Field(pattern=r"^0(\.[0-9]{1,8})?$")]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class FxRatePublishedPayload(Payload):
    """A source published a rate: one ``base`` buys ``rate`` units of ``quote``."""

    base: Currency
    quote: Currency
    rate: RateString
    """Units of ``quote`` per unit of ``base``, e.g. ``"0.1834"`` for BRL→USD."""
    source: Annotated[str, Field(min_length=1, max_length=60)]
    """Who published it: ``BCB PTAX``, ``Banxico FIX``, ``ECB``, a market feed."""
    as_of: AwareDatetime
    """The moment the rate is for."""

    @model_validator(mode="after")
    def _a_real_pair(self) -> FxRatePublishedPayload:
        if self.base == self.quote:
            raise ValueError(f"quote: a rate from {self.base} to itself is not a rate")
        if Decimal(self.rate) == 0:
            raise ValueError("rate: must be greater than zero")
        return self


class FxRatePublished(Envelope):
    """``fx.rate_published``: books nothing; conversions and quotes look rates up as of a time."""

    type: Literal["fx.rate_published"]
    schema_version: Literal[1]
    payload: FxRatePublishedPayload


class FxConvertedPayload(Payload):
    """A seller's available funds converted from one currency to another at a locked rate.

    Amounts follow the quote convention: ``final_rate = reference_rate × (1 − markup)``,
    ``target = source × final_rate`` rounded half-even; the write side recomputes and refuses
    any figure that does not follow. Booking: the seller's source funds go to the platform's
    FX liquidity in that currency; the target liquidity pays the seller and the markup; the
    sub-rounding residue goes to the rounding account.
    """

    conversion_id: Ident
    seller_id: Ident
    source: Amount
    target: Amount
    reference_rate: RateString
    markup: MarkupString
    final_rate: Annotated[str, Field(pattern=r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,24})?$")]
    """reference_rate × (1 − markup), exactly (up to 24 decimals: a product is never rounded)."""
    rate_source: Annotated[str, Field(min_length=1, max_length=60)]
    rate_as_of: AwareDatetime
    quote_id: Ident | None = None
    quote_expires_at: AwareDatetime | None = None
    """When the locked rate expired; a conversion after it is refused."""


class FxConverted(Envelope):
    """``fx.converted``: seller SRC → FX liquidity SRC; FX liquidity TGT → seller TGT + FX revenue ± rounding."""

    type: Literal["fx.converted"]
    schema_version: Literal[1]
    payload: FxConvertedPayload


class FxQuoteLockedPayload(Payload):
    """A rate locked for a seller's conversion: reference, markup, final rate, amounts, expiry.

    A conversion that names this quote must use its figures and happen before it expires.
    """

    quote_id: Ident
    seller_id: Ident
    source: Amount
    target: Amount
    reference_rate: RateString
    markup: MarkupString
    final_rate: Annotated[str, Field(pattern=r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,24})?$")]
    rate_source: Annotated[str, Field(min_length=1, max_length=60)]
    rate_as_of: AwareDatetime
    expires_at: AwareDatetime


class FxQuoteLocked(Envelope):
    """``fx.quote_locked``: books nothing; it is what a conversion of the seller's funds refers to."""

    type: Literal["fx.quote_locked"]
    schema_version: Literal[1]
    payload: FxQuoteLockedPayload


SignedDecimal = Annotated[str, Field(pattern=r"^-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,2})?$")]


class FxRevaluedPayload(Payload):
    """IAS 21: an open FX position remeasured at the closing rate, in the functional currency.

    ``difference`` = ``revalued`` − ``carrying`` (USD, signed): a gain when positive. A
    revaluation with ``reverses`` set undoes the one it names (booked on the next period's
    first day), so each period starts from the historical carrying value.
    """

    revaluation_id: Ident
    currency: Currency
    position: SignedDecimal
    """The platform's FX liquidity in ``currency`` (long when positive), at its exponent."""
    closing_rate: RateString
    """USD per unit of ``currency``."""
    rate_source: Annotated[str, Field(min_length=1, max_length=60)]
    rate_as_of: AwareDatetime
    carrying: SignedDecimal
    revalued: SignedDecimal
    difference: SignedDecimal
    reverses: Ident | None = None


class FxRevalued(Envelope):
    """``fx.revalued``: gain: Dr ``platform:main:fx_revaluation:USD``, Cr ``platform:main:fx_unrealised:USD``;
    a loss the other way round; a reversal books the opposite of what it reverses."""

    type: Literal["fx.revalued"]
    schema_version: Literal[1]
    payload: FxRevaluedPayload


class FxPositionSettledPayload(Payload):
    """Part of an FX position closed with a liquidity provider: ``sold`` left, ``received`` (USD) came in.

    ``realised`` = received − the carrying value of what was sold (USD, signed): a gain when positive.
    """

    settlement_id: Ident
    sold: Amount
    received: Amount
    carrying: SignedDecimal
    realised: SignedDecimal
    counterparty: Annotated[str, Field(min_length=1, max_length=60)]

    @model_validator(mode="after")
    def _into_the_functional_currency(self) -> FxPositionSettledPayload:
        if self.received.currency != "USD":
            raise ValueError(f"received: {self.received.currency} is not the functional currency USD")
        if self.sold.currency == "USD":
            raise ValueError("sold: USD is the functional currency; sell a foreign currency position")
        return self


class FxPositionSettled(Envelope):
    """``fx.position_settled``: Dr ``fx_liquidity`` / Cr ``cash`` in the sold currency; Dr ``cash`` / Cr
    ``fx_liquidity`` USD for what was received; the realised gain (loss) Dr (Cr) ``fx_liquidity:USD``,
    Cr (Dr) ``platform:main:fx_realised:USD``."""

    type: Literal["fx.position_settled"]
    schema_version: Literal[1]
    payload: FxPositionSettledPayload
