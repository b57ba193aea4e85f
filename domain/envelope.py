"""The event envelope and the wire types every event payload shares."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator
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

_POSITIVE: Final = re.compile(r"(0|[1-9][0-9]{0,17})(\.[0-9]{1,18})?")
_FROZEN: Final = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


class Amount(BaseModel):
    """An amount of money on the wire: ``{"amount": "12.34", "currency": "BRL"}``.

    The amount is a decimal string, never a JSON number; it may have fewer decimals than
    the currency's ISO 4217 exponent but never more, and it is stored normalised to that
    exponent (``"12.3"`` BRL is kept as ``"12.30"``). Amounts are strictly positive: the
    event type says which way money moves.
    """

    model_config = _FROZEN

    amount: str
    """Decimal string, e.g. ``"1234.50"`` (BRL) or ``"1234"`` (CLP)."""
    currency: str
    """ISO 4217 alphabetic code, upper case."""

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        # The hot path of every event: plain string work, no Decimal. Anything unusual is
        # passed through to the field validators below, which name the field at fault.
        if not isinstance(data, dict):
            return data
        amount, code = data.get("amount"), data.get("currency")
        if type(amount) is not str or type(code) is not str or not _POSITIVE.fullmatch(amount):
            return data
        try:
            exp = exponent(code)
        except MoneyError:
            return data
        whole, _, frac = amount.partition(".")
        if len(frac) > exp:
            places = "no decimals" if exp == 0 else f"at most {exp} decimals"
            raise PydanticCustomError(
                "money",
                "amount {value} has too many decimals for {code}, which takes {places}",
                {"value": amount, "code": code, "places": places},
            )
        minor = int(whole + frac.ljust(exp, "0"))
        if minor <= 0:
            raise PydanticCustomError("money", "amount must be greater than zero", {})
        if minor > MAX_MINOR:
            raise PydanticCustomError("money", "amount is beyond the largest accepted amount", {})
        normal = str(minor) if exp == 0 else f"{minor // 10**exp}.{minor % 10**exp:0{exp}d}"
        return {**data, "amount": normal}

    @field_validator("amount", mode="before")
    @classmethod
    def _amount_is_a_string(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, str):
            kind = "JSON number" if isinstance(value, (int, float, Decimal)) else type(value).__name__
            raise PydanticCustomError(
                "money_string", 'must be a decimal string such as "12.34", not a {kind}', {"kind": kind}
            )
        if not _POSITIVE.fullmatch(value):
            raise PydanticCustomError(
                "money_string",
                '{value} is not a positive decimal string such as "12.34"',
                {"value": repr(value)},
            )
        return value

    @field_validator("currency", mode="before")
    @classmethod
    def _known_currency(cls, value: Any) -> Any:
        try:
            exponent(value)
        except MoneyError as exc:
            raise PydanticCustomError("currency", "{reason}", {"reason": exc.reason}) from None
        return value

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
