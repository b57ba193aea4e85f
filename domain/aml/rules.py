"""AML rules as data (``config/aml.toml``): per site and effective date, the thresholds of each
typology. A site without rules is not screened (said by ``quipu aml rules``)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

_FROZEN = ConfigDict(frozen=True, extra="forbid")
Money = Annotated[str, Field(pattern=r"^(0|[1-9][0-9]{0,15})(\.[0-9]{1,3})?$")]
Pct = Annotated[str, Field(pattern=r"^(100|[0-9]{1,2})(\.[0-9]{1,2})?$")]
Hours = Annotated[int, Field(ge=1, le=24 * 90)]
Count = Annotated[int, Field(ge=1, le=10_000)]


class SiteRules(BaseModel):
    """One site's thresholds from a date."""

    model_config = _FROZEN
    site: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    effective_from: dt.date
    report_threshold: Money
    structuring_floor_pct: Pct
    structuring_count: Count
    structuring_window_hours: Hours
    velocity_count: Count
    velocity_window_hours: Hours
    round_unit: Money
    round_count: Count
    round_window_hours: Hours
    mule_buyers: Count
    mule_window_hours: Hours
    mule_new_seller_days: Annotated[int, Field(ge=1, le=365)]
    refund_count: Count
    refund_window_hours: Hours
    pass_through_hours: Hours
    pass_through_ratio_pct: Pct
    pass_through_min: Money
    travel_rule_threshold: Money
    """Cross-border payouts at or above it must carry FATF R.16 originator and beneficiary data."""


class AmlRules(BaseModel):
    """The whole ``config/aml.toml``."""

    model_config = _FROZEN
    version: str
    high_risk_countries: tuple[Annotated[str, Field(pattern=r"^[A-Z]{2}$")], ...] = ()
    site: tuple[SiteRules, ...] = ()

    def for_site(self, site: str, on: dt.date) -> SiteRules | None:
        """The rules in force on a site on a day."""
        found = [r for r in self.site if r.site == site and r.effective_from <= on]
        return max(found, key=lambda r: r.effective_from) if found else None
