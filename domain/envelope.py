"""The event envelope and the wire types every event payload shares."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Final, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from ledger.errors import MoneyError
from ledger.money import MAX_MINOR, exponent

#: The 18 country sites. Their currencies, tax and settlement rules are dated configuration
#: (the multi-currency issue); the envelope only checks that a site exists.
Site = Literal[
    "AR", "BO", "BR", "CL", "CO", "CR", "DO", "EC", "SV", "GT", "HN", "MX", "NI", "PA", "PY",
    "PE", "UY", "VE",
]  # fmt: skip

#: An identifier chosen by the posting service (order, payment, seller ids ...).
Ident = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")]

#: An ISO 3166-1 alpha-2 country code.
CountryCode = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]

#: Free text a person wrote (reasons, descriptions).
Text = Annotated[str, Field(min_length=1, max_length=500)]

#: A non-negative decimal string: no sign, no exponent, no leading zeros, no spaces.
AMOUNT_PATTERN: Final = r"^(0|[1-9][0-9]{0,17})(\.[0-9]{1,18})?$"
_EXPONENTS: dict[str, int] = {}
_FROZEN: Final = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


class Amount(BaseModel):
    """An amount of money on the wire: ``{"amount": "12.34", "currency": "BRL"}``.

    The amount is a decimal string, never a JSON number; it may have fewer decimals than
    the currency's ISO 4217 exponent but never more, and it is stored normalised to that
    exponent (``"12.3"`` BRL is kept as ``"12.30"``). Amounts are strictly positive: the
    event type says which way money moves.
    """

    model_config = _FROZEN

    amount: Annotated[str, Field(pattern=AMOUNT_PATTERN)]
    """Decimal string, e.g. ``"1234.50"`` (BRL) or ``"1234"`` (CLP)."""
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    """ISO 4217 alphabetic code, upper case."""

    @model_validator(mode="after")
    def _fits_the_currency(self) -> Amount:
        # The hot path of every event: pydantic-core already checked both patterns; this is
        # the one Python step, plain string work with no Decimal.
        exp = _EXPONENTS.get(self.currency)
        if exp is None:
            try:
                exp = _EXPONENTS.setdefault(self.currency, exponent(self.currency))
            except MoneyError as exc:
                raise PydanticCustomError("money_currency", "{reason}", {"reason": exc.reason}) from None
        whole, _, frac = self.amount.partition(".")
        if len(frac) > exp:
            places = "no decimals" if exp == 0 else f"at most {exp} decimals"
            raise PydanticCustomError(
                "money_amount",
                "{value} has too many decimals for {code}, which takes {places}",
                {"value": self.amount, "code": self.currency, "places": places},
            )
        minor = int(whole + frac.ljust(exp, "0"))
        if minor <= 0:
            raise PydanticCustomError("money_amount", "must be greater than zero", {})
        if minor > MAX_MINOR:
            raise PydanticCustomError("money_amount", "is beyond the largest accepted amount", {})
        if len(frac) != exp:
            # Normalise "12.3" BRL to "12.30" so one amount has one canonical form. The model
            # is frozen to callers; this is its own validator finishing construction.
            normal = str(minor) if exp == 0 else f"{minor // 10**exp}.{minor % 10**exp:0{exp}d}"
            object.__setattr__(self, "amount", normal)
        return self

    @property
    def minor(self) -> int:
        """The amount in integer minor units of its currency."""
        return int(self.amount.replace(".", ""))

    @property
    def decimal(self) -> Decimal:
        """The amount as a Decimal at the currency's exponent."""
        return Decimal(self.amount)


class Payload(BaseModel):
    """Base of every event payload: frozen, no unknown fields."""

    model_config = _FROZEN


class Envelope(BaseModel):
    """What every event carries besides its payload.

    Subclasses fix ``type`` and ``schema_version`` with literals and give ``payload`` its
    type, so the pair (type, schema_version) selects the payload schema.
    """

    model_config = _FROZEN

    event_id: UUID
    """The idempotency key: the same id is recorded once; with another body it is a conflict."""
    type: str
    """Dotted event name in the past tense, e.g. ``payment.captured``."""
    schema_version: int
    """Version of this type's payload schema; old versions are upcast on read."""
    occurred_at: AwareDatetime
    """When it happened in the business, with its UTC offset; a naive time is refused."""
    source: Annotated[str, Field(min_length=1, max_length=100)]
    """The service or person that reported it (``checkout-api``, ``ops:maria``)."""
    payload: Payload
    """The event's own data."""
