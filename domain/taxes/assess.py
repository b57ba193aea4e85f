"""What an order owes in tax: consumption tax inside its total, platform withholdings, and
import duties for cross-border orders, each line rounded half-even on its own.

Order totals are what the buyer paid, tax included. Each consumption-tax component inside a
total is total × rate ÷ (100 + Σ rates), rounded half-even on its own; net is what remains,
so net + taxes = total exactly. Withholdings are net × rate, each rounded on its own. Cross-border orders on a site
with an import regime pay the regime's duties and taxes (computed in USD on the total's USD
value at the recorded rate, each line converted back at the same rate and rounded) instead
of the domestic consumption tax; the total includes them, so the customs value is the largest
value whose duties fit in it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field

from domain.envelope import Site
from domain.taxes.quotes import TaxRuleError, consumption_rule, import_quote, import_regime
from domain.taxes.rules import Component, ConsumptionTable, Dated, ImportRegime, ImportTable
from ledger.money import format_amount, quantize, to_minor_units

NAMESPACE: Final = uuid.UUID("6b2c3a1d-9e4f-4b7a-8c5d-1f0e2d3c4b5a")
_HUNDRED = Decimal(100)


class WithholdingRule(Dated):
    """A site's withholding components, with and without a registered tax id."""

    site: Site
    with_tax_id: Annotated[tuple[Component, ...], Field(min_length=1)]
    without_tax_id: Annotated[tuple[Component, ...], Field(min_length=1)]


class Registered(BaseModel):
    """A seller whose tax id is registered with the platform."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    seller: Annotated[str, Field(min_length=1, max_length=64)]
    tax_id: Annotated[str, Field(min_length=1, max_length=40)]


class WithholdingTable(BaseModel):
    """``config/withholding.toml``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    version: str
    rule: tuple[WithholdingRule, ...] = ()
    registered: tuple[Registered, ...] = ()


@dataclass(frozen=True, slots=True)
class Order:
    """What the tax process manager knows of an order."""

    order_id: str
    site: str
    seller_id: str
    currency: str
    total_minor: int
    seller_country: str
    placed_at: dt.datetime
    local_date: dt.date


@dataclass(frozen=True, slots=True)
class UsdRate:
    """A recorded rate: USD per unit of the order's currency."""

    rate: Decimal
    source: str
    as_of: dt.datetime


def _amount(value: Decimal, ccy: str) -> dict[str, str]:
    return {"amount": format_amount(to_minor_units(value, ccy), ccy), "currency": ccy}


def _event(order: Order, kind: str, lines: list[dict[str, Any]], rule: str, **extra: Any) -> dict[str, Any]:
    aid = f"TAX-{kind[:4].upper()}-{order.order_id}"[:64]
    return {
        "event_id": str(uuid.uuid5(NAMESPACE, f"{kind}:{order.order_id}")),
        "type": "tax.assessed",
        "schema_version": 1,
        "occurred_at": order.placed_at.isoformat(),
        "source": "tax-assessment",
        "payload": {
            "assessment_id": aid,
            "order_id": order.order_id,
            "seller_id": order.seller_id,
            "site": order.site,
            "kind": kind,
            "lines": lines,
            "rule": rule,
            **extra,
        },
    }


def inclusive_split(total: Decimal, components: tuple[Component, ...], ccy: str) -> tuple[Decimal, list[Decimal]]:
    """(net, taxes) inside a tax-inclusive total: each tax is total × rate ÷ (100 + Σ rates),
    rounded half-even on its own; net is the rest, so net + Σ taxes = total exactly."""
    rates = sum((c.rate_pct for c in components), Decimal(0))
    taxes = [quantize(total * c.rate_pct / (_HUNDRED + rates), ccy) for c in components]
    return total - sum(taxes, Decimal(0)), taxes


def consumption(order: Order, table: ConsumptionTable) -> dict[str, Any] | None:
    """The consumption tax inside a domestic order's total (None when the total is zero)."""
    rule = consumption_rule(table, order.site, None, order.local_date)
    total = Decimal(format_amount(order.total_minor, order.currency))
    net, taxes = inclusive_split(total, rule.components, order.currency)
    ccy = order.currency
    lines = [{"name": c.name, "base": _amount(net, ccy), "rate_pct": str(c.rate_pct), "amount": _amount(t, ccy)}
             for c, t in zip(rule.components, taxes, strict=True) if t > 0]  # fmt: skip
    if not lines:
        return None
    text = (f"consumption_taxes.toml {table.version}: {order.site} rule valid from {rule.valid_from}"
            f"{' to ' + str(rule.valid_to) if rule.valid_to else ''}, tax included in the total")  # fmt: skip
    return _event(order, "consumption", lines, text)


def withholding(order: Order, table: WithholdingTable, consumption_table: ConsumptionTable) -> dict[str, Any] | None:
    """The platform's withholdings on a sale (sites with a withholding rule only)."""
    rules = [r for r in table.rule if r.site == order.site and r.in_force(order.local_date)]
    if not rules:
        return None
    rule = rules[0]
    registered = any(r.seller == order.seller_id for r in table.registered)
    components = rule.with_tax_id if registered else rule.without_tax_id
    total = Decimal(format_amount(order.total_minor, order.currency))
    net, _ = inclusive_split(total, consumption_rule(consumption_table, order.site, None, order.local_date).components,
                             order.currency)  # fmt: skip
    lines = []
    for c in components:
        amount = quantize(net * c.rate_pct / _HUNDRED, order.currency)
        if amount > 0:
            lines.append({"name": f"{c.name} withheld", "base": _amount(net, order.currency),
                          "rate_pct": str(c.rate_pct), "amount": _amount(amount, order.currency)})  # fmt: skip
    if not lines:
        return None
    who = "with a registered tax id" if registered else "without a registered tax id"
    text = f"withholding.toml {table.version}: {order.site} rule valid from {rule.valid_from}, seller {who}"
    return _event(order, "withholding", lines, text)


def customs_value(regime: ImportRegime, paid_usd: Decimal) -> Decimal:
    """The largest customs value v (USD, in cents) with v + duties(v) ≤ what the buyer paid:
    the order total includes the duties collected at checkout. Bisection over cents, because the
    bands make duties piecewise (a deduction, a gross-up, a jump at a band's edge)."""
    low, high = 0, int(paid_usd * 100)
    while low < high:
        mid = (low + high + 1) // 2
        value = Decimal(mid) / 100
        try:
            fits = import_quote(regime, value).total <= paid_usd
        except TaxRuleError:
            fits = False  # above the regime's last band
        if fits:
            low = mid
        else:
            high = mid - 1
    if low == 0:
        raise TaxRuleError(f"--value-usd: {paid_usd} USD cannot pay for goods and duties under {regime.name}")
    return quantize(Decimal(low) / 100, "USD")


def import_duties(order: Order, table: ImportTable, rate: UsdRate) -> dict[str, Any] | None:
    """The duties and taxes of a cross-border order, computed in USD and booked in its currency.

    The total the buyer paid includes the duties: the customs value is what remains once they
    are taken out (:func:`customs_value`)."""
    regime = import_regime(table, order.site, order.seller_country, order.local_date)
    total = Decimal(format_amount(order.total_minor, order.currency))
    paid_usd = quantize(total * rate.rate, "USD")
    value_usd = customs_value(regime, paid_usd)
    quote = import_quote(regime, value_usd)
    lines = []
    for line in quote.lines:
        local = quantize(line.amount / rate.rate, order.currency)
        if local > 0:
            lines.append({"name": line.name, "base": _amount(quantize(line.base, "USD"), "USD"),
                          "rate_pct": str(line.rate_pct), "amount": _amount(local, order.currency)})  # fmt: skip
    if not lines:
        return None
    text = (f"import_duties.toml: {regime.name} ({regime.source}), valid from {regime.valid_from}; paid "
            f"{paid_usd} USD = customs value {value_usd} + duties {quote.tax}")  # fmt: skip
    return _event(order, "import", lines, text, reference_rate=format(rate.rate, "f"), rate_source=rate.source,
                  rate_as_of=rate.as_of.isoformat())  # fmt: skip


def has_import_regime(table: ImportTable, order: Order) -> bool:
    """Whether a cross-border order falls under an import regime on its date."""
    if not order.seller_country or order.seller_country == order.site:
        return False
    try:
        import_regime(table, order.site, order.seller_country, order.local_date)
    except TaxRuleError:
        return False
    return True
