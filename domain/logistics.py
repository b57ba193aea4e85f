"""Logistics compensation: a buyer whose delivery is late beyond the site's threshold gets
store credit, funded by the platform or claimed back from the carrier, as the dated rules in
``config/logistics.toml`` say. The carrier reports ``delivery.delayed``; the compensation
process manager decides ``compensation.granted`` (once per order, idempotently).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.envelope import Amount, Envelope, Ident, Payload, Site, Text
from ledger.money import format_amount, to_minor_units

FundedBy = Literal["platform", "carrier"]


class DeliveryDelayedPayload(Payload):
    """A carrier reports a shipment of an order late (or still late) against its promised date."""

    order_id: Ident
    shipment_id: Ident
    carrier: Ident
    promised_on: dt.date
    days_late: Annotated[int, Field(ge=1, le=365)]
    """Calendar days past the promised date, as of this report."""


class DeliveryDelayed(Envelope):
    """``delivery.delayed``: books nothing; the compensation process manager reads it."""

    type: Literal["delivery.delayed"]
    schema_version: Literal[1]
    payload: DeliveryDelayedPayload


class CompensationGrantedPayload(Payload):
    """A buyer is compensated for a late delivery."""

    compensation_id: Ident
    order_id: Ident
    buyer_id: Ident
    amount: Amount
    """In the order's currency; at most the order total."""
    funded_by: FundedBy
    carrier: Ident | None = None
    """The carrier the claim is against, when it funds the compensation."""
    rule: Text
    """The rule applied, with its file version: the figure is traceable to the data."""


class CompensationGranted(Envelope):
    """``compensation.granted``: Cr ``buyer:<id>:store_credit``; Dr ``platform:main:logistics_compensation``
    (platform-funded) or ``platform:main:carrier_claims`` (claimed from the carrier)."""

    type: Literal["compensation.granted"]
    schema_version: Literal[1]
    payload: CompensationGrantedPayload


class CompensationRule(BaseModel):
    """One site's compensation rule from a date."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    site: Site
    effective_from: dt.date
    threshold_days: Annotated[int, Field(ge=0, le=90)]
    """Compensate when a delivery is more than this many days late."""
    percent: Annotated[str, Field(pattern=r"^(100|[0-9]{1,2})(\.[0-9]{1,4})?$")]
    """Of the order total."""
    cap: Annotated[str, Field(pattern=r"^(0|[1-9][0-9]{0,15})(\.[0-9]{1,3})?$")]
    """At most this, in the site's currency."""
    funded_by: FundedBy


class LogisticsRules(BaseModel):
    """``config/logistics.toml``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    version: str
    compensation: tuple[CompensationRule, ...] = ()

    def rule_for(self, site: str, on: dt.date) -> CompensationRule | None:
        """The rule in force for a site on a day (the latest effective date wins)."""
        rules = [r for r in self.compensation if r.site == site and r.effective_from <= on]
        return max(rules, key=lambda r: r.effective_from) if rules else None


@dataclass(frozen=True, slots=True)
class LateOrder:
    """What the process manager knows of a late, uncompensated order."""

    order_id: str
    site: str
    buyer_id: str
    currency: str
    total_minor: int
    days_late: int
    carrier: str
    reported_at: dt.datetime
    """When the latest delay report happened: the rules in force then apply."""


#: Namespace of compensation event ids: one per order, so a rerun is a duplicate.
NAMESPACE: Final = uuid.UUID("3d6f1c52-7a0e-4c43-8d59-6b1f2e9a4c10")


def decide(order: LateOrder, rules: LogisticsRules) -> dict[str, Any] | None:
    """The ``compensation.granted`` event an order's delay calls for, or None."""
    rule = rules.rule_for(order.site, order.reported_at.astimezone(dt.UTC).date())
    if rule is None or order.days_late <= rule.threshold_days:
        return None
    share = (Decimal(order.total_minor) * Decimal(rule.percent) / 100).to_integral_value(rounding=ROUND_HALF_EVEN)
    cap = to_minor_units(Decimal(rule.cap), order.currency) if rule.cap else 0
    minor = min(int(share), cap, order.total_minor)
    if minor <= 0:
        return None
    text = (
        f"logistics.toml {rules.version}: {order.site} more than {rule.threshold_days} days late → {rule.percent}% "
        f"of the order total, at most {rule.cap} {order.currency}, funded by {rule.funded_by}"
    )
    payload: dict[str, Any] = {
        "compensation_id": f"LC-{order.order_id}"[:64],
        "order_id": order.order_id,
        "buyer_id": order.buyer_id,
        "amount": {"amount": format_amount(minor, order.currency), "currency": order.currency},
        "funded_by": rule.funded_by,
        "carrier": order.carrier if rule.funded_by == "carrier" else None,
        "rule": text,
    }
    return {
        "event_id": str(uuid.uuid5(NAMESPACE, order.order_id)),
        "type": "compensation.granted",
        "schema_version": 1,
        "occurred_at": order.reported_at.isoformat(),
        "source": "logistics-compensation",
        "payload": payload,
    }
