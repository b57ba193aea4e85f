"""The tax tables' shapes, validated by pydantic with errors that name the rule and field."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from domain.envelope import Site

_FROZEN = ConfigDict(frozen=True, extra="forbid")
Percent = Annotated[Decimal, Field(ge=0, lt=100)]
Usd = Annotated[Decimal, Field(ge=0, decimal_places=2)]


def _decimal_string(value: object) -> object:
    # Rates and amounts are decimal strings in the files, never TOML floats.
    if isinstance(value, float):
        raise ValueError('write rates and amounts as quoted decimal strings, e.g. "16" or "20.5"')
    return value


class Component(BaseModel):
    """One tax in a consumption rule."""

    model_config = _FROZEN
    name: Annotated[str, Field(min_length=1, max_length=40)]
    rate_pct: Percent

    _no_float = field_validator("rate_pct", mode="before")(_decimal_string)


class Dated(BaseModel):
    """Anything in force from ``valid_from`` (inclusive) to ``valid_to`` (exclusive)."""

    model_config = _FROZEN
    valid_from: dt.date
    valid_to: dt.date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Dated:
        if self.valid_to is not None and self.valid_to <= self.valid_from:
            raise ValueError(f"valid_to {self.valid_to} is not after valid_from {self.valid_from}")
        return self

    def in_force(self, on: dt.date) -> bool:
        """Whether the rule applies on a date."""
        return self.valid_from <= on and (self.valid_to is None or on < self.valid_to)


class ConsumptionRule(Dated):
    """A site's (or a state's) consumption tax, as components charged on a net price."""

    site: Site
    state: Annotated[str, Field(pattern=r"^[A-Z]{2,8}$")] | None = None
    components: Annotated[tuple[Component, ...], Field(min_length=1)]


class DutyComponent(BaseModel):
    """One duty or tax of an import band."""

    model_config = _FROZEN
    name: Annotated[str, Field(min_length=1, max_length=40)]
    kind: Literal["rate", "gross_up"]
    rate_pct: Percent
    base: Literal["value", "excess", "value_plus_previous"] = "value"
    deduction_usd: Usd = Decimal(0)
    excess_over_usd: Usd | None = None

    _no_float = field_validator("rate_pct", "deduction_usd", "excess_over_usd", mode="before")(_decimal_string)

    @model_validator(mode="after")
    def _excess_has_a_threshold(self) -> DutyComponent:
        if self.base == "excess" and self.excess_over_usd is None:
            raise ValueError("a component on the excess needs excess_over_usd")
        return self


class Band(BaseModel):
    """Values with ``above_usd < value <= up_to_usd`` and the components they pay."""

    model_config = _FROZEN
    above_usd: Usd | None = None
    up_to_usd: Usd | None = None
    components: Annotated[tuple[DutyComponent, ...], Field(min_length=1)]

    _no_float = field_validator("above_usd", "up_to_usd", mode="before")(_decimal_string)

    def matches(self, value: Decimal) -> bool:
        """Whether a customs value falls in this band."""
        return (self.above_usd is None or value > self.above_usd) and (
            self.up_to_usd is None or value <= self.up_to_usd
        )


class ImportRegime(Dated):
    """A destination site's simplified regime for small parcels, by origin, dated."""

    site: Site
    name: Annotated[str, Field(min_length=1, max_length=100)]
    origins: Annotated[tuple[str, ...], Field(min_length=1)]
    source: Annotated[str, Field(min_length=1, max_length=300)]
    band: Annotated[tuple[Band, ...], Field(min_length=1)]

    @field_validator("origins")
    @classmethod
    def _countries(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if origin != "*" and not (len(origin) == 2 and origin.isalpha() and origin.isupper()):
                raise ValueError(f"origin {origin!r} is not an ISO 3166 country code or '*'")
        return value


class ConsumptionTable(BaseModel):
    """The whole consumption-tax file."""

    model_config = _FROZEN
    version: str = "unversioned"
    rule: tuple[ConsumptionRule, ...]


class ImportTable(BaseModel):
    """The whole import-duty file."""

    model_config = _FROZEN
    regime: tuple[ImportRegime, ...]
