"""Region configuration: the 18 sites in the platform brief's ``region_config`` shape, extended."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from typing import Annotated

from babel import Locale, UnknownLocaleError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from domain.envelope import Site
from ledger.errors import MoneyError
from ledger.money import exponent

_FROZEN = ConfigDict(frozen=True, extra="forbid")
ALL_SITES = ("AR", "BO", "BR", "CL", "CO", "CR", "DO", "EC", "SV", "GT", "HN", "MX", "NI", "PA", "PY", "PE", "UY", "VE")


class Settlement(BaseModel):
    """When a site's captures settle: T + ``days`` business days, T moved on after ``cutoff``."""

    model_config = _FROZEN
    days: Annotated[int, Field(ge=0, le=30)] = 2
    cutoff: Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")] = "17:00"


class Region(BaseModel):
    """One country site."""

    model_config = _FROZEN
    currency: str
    locale: str
    time_zone: str
    tax_rule: Annotated[str, Field(pattern=r"^[A-Z]+_[0-9]+(\.[0-9]+)?%$")]
    payment_methods: Annotated[tuple[Annotated[str, Field(min_length=1, max_length=32)], ...], Field(min_length=1)]
    settlement: Settlement = Settlement()

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        try:
            exponent(value)
        except MoneyError as exc:
            raise ValueError(exc.reason) from None
        return value

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        try:
            Locale.parse(value)
        except (UnknownLocaleError, ValueError):
            raise ValueError(f"unknown locale {value!r}") from None
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class RegionConfig(BaseModel):
    """The whole file: a version, the date it takes effect, and every site."""

    model_config = _FROZEN
    version: Annotated[str, Field(min_length=1)]
    effective_from: dt.date
    notes: str = ""
    region_config: dict[Site, Region]

    @model_validator(mode="after")
    def _every_site(self) -> RegionConfig:
        missing = [s for s in ALL_SITES if s not in self.region_config]
        if missing:
            raise ValueError(f"region_config is missing sites {', '.join(missing)}")
        return self


def headline_rate(tax_rule: str) -> str:
    """``"IVA_16%"`` → ``"16"``."""
    match = re.search(r"_([0-9.]+)%$", tax_rule)
    return match.group(1) if match else ""
