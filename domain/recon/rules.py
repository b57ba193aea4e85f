"""Reconciliation rules as data (``config/reconciliation.toml``): windows, tolerances, and which
processor is on which site's calendar, effective-dated like every other rule file."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

_FROZEN = ConfigDict(frozen=True, extra="forbid")
Days = Annotated[int, Field(ge=0, le=365)]
Minor = Annotated[int, Field(ge=0, le=10**12)]


class ReconRules(BaseModel):
    """One rule set, in force from ``effective_from``."""

    model_config = _FROZEN
    effective_from: dt.date
    order_unpaid_days: Days
    payment_unsettled_days: Days
    payout_unsent_days: Days
    payout_in_transit_days: Days
    psp_clearing_business_days: Days
    report_lag_business_days: Days
    date_tolerance_business_days: Days
    amount_tolerance_minor: Minor
    amount_tolerance_pct: Annotated[str, Field(pattern=r"^(100|[0-9]{1,2})(\.[0-9]{1,4})?$")]
    fx_rounding_max_minor: Minor
    bank_lag_business_days: Days
    value_date_tolerance_business_days: Days

    def within_tolerance(self, ledger_minor: int, difference: int) -> bool:
        """Whether a gross difference is small enough to count as matched."""
        if abs(difference) <= self.amount_tolerance_minor:
            return True
        pct = Decimal(self.amount_tolerance_pct)
        return pct > 0 and Decimal(abs(difference)) * 100 <= pct * abs(ledger_minor)


class Processor(BaseModel):
    """A processor: the site whose bank calendar its dates follow, and its report's importer."""

    model_config = _FROZEN
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")]
    site: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    format: Annotated[str, Field(min_length=1, max_length=40)]


class ReconConfig(BaseModel):
    """The whole ``config/reconciliation.toml``."""

    model_config = _FROZEN
    version: str
    rules: Annotated[tuple[ReconRules, ...], Field(min_length=1)]
    processor: tuple[Processor, ...] = ()

    def rules_on(self, day: dt.date) -> ReconRules:
        """The rule set in force on ``day`` (the earliest one before any is in force)."""
        found = [r for r in self.rules if r.effective_from <= day]
        return max(found, key=lambda r: r.effective_from) if found else min(self.rules, key=lambda r: r.effective_from)

    def site_of(self, processor: str) -> str | None:
        """The site whose calendar a processor's dates follow (None: weekdays only)."""
        for p in self.processor:
            if p.name == processor:
                return p.site
        return None
