"""Automatic conversion rules: which of a seller's currencies are converted, to what, from
what amount. Data in ``config/conversion_rules.toml``; the daily run applies them by posting
an ``fx.quote_locked`` and the ``fx.converted`` that uses it, so they replay."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.fx import figures
from domain.ids import derived_id

NAMESPACE: Final = uuid.UUID("a4e0c9b2-3f1d-4e6a-9b8c-7d5e4f3a2b1c")
_FROZEN = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ConversionRule(BaseModel):
    """Convert a seller's (or a site's sellers') available ``from`` funds into ``to``."""

    model_config = _FROZEN
    seller: Annotated[str, Field(min_length=1, max_length=64)]
    site: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None
    source: Annotated[str, Field(alias="from", pattern=r"^[A-Z]{3}$")]
    target: Annotated[str, Field(alias="to", pattern=r"^[A-Z]{3}$")]
    min_amount: Annotated[str, Field(pattern=r"^(0|[1-9][0-9]{0,17})(\.[0-9]{1,3})?$")]
    effective_from: dt.date

    @model_validator(mode="after")
    def _site_default_names_its_site(self) -> ConversionRule:
        if self.seller == "*" and self.site is None:
            raise ValueError("site: a rule for every seller (*) must name its site")
        return self


class ConversionRules(BaseModel):
    """``config/conversion_rules.toml``."""

    model_config = _FROZEN
    version: str
    rule: tuple[ConversionRule, ...] = ()

    def for_seller(self, seller: str, site: str | None, currency: str, on: dt.date) -> ConversionRule | None:
        """The rule in force for a seller's funds in ``currency`` (own rule first, then the site's)."""
        live = [r for r in self.rule if r.source == currency and r.effective_from <= on]
        own = [r for r in live if r.seller == seller]
        pick = own or [r for r in live if r.seller == "*" and r.site == site]
        return max(pick, key=lambda r: r.effective_from) if pick else None


def conversion_events(
    seller: str, source: str, target: str, amount: Decimal, reference_rate: Decimal, markup: Decimal,
    rate_source: str, rate_as_of: dt.datetime, at: dt.datetime, lock: dt.timedelta, key: str,
) -> list[dict[str, Any]]:  # fmt: skip
    """A locked quote and the conversion that uses it, with ids derived from ``key``."""
    f = figures(amount, target, reference_rate, markup)
    quote_id = derived_id("AQ-", key)
    common = {
        "seller_id": seller, "source": {"amount": str(amount), "currency": source},
        "target": {"amount": str(f.target_amount), "currency": target},
        "reference_rate": format(reference_rate, "f"), "markup": format(markup, "f"),
        "final_rate": format(f.final_rate, "f"), "rate_source": rate_source, "rate_as_of": rate_as_of.isoformat(),
    }  # fmt: skip
    expires = at + lock

    def event(kind: str, payload: dict[str, Any], when: dt.datetime) -> dict[str, Any]:
        return {"event_id": str(uuid.uuid5(NAMESPACE, f"{kind}:{key}")), "type": kind, "schema_version": 1,
                "occurred_at": when.isoformat(), "source": "conversion-rules", "payload": payload}  # fmt: skip

    converted = {"conversion_id": f"AC-{quote_id[3:]}", **common, "quote_id": quote_id,
                 "quote_expires_at": expires.isoformat()}  # fmt: skip
    return [
        event("fx.quote_locked", {"quote_id": quote_id, **common, "expires_at": expires.isoformat()}, at),
        event("fx.converted", converted, at + dt.timedelta(seconds=1)),
    ]
