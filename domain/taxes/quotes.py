"""Tax and duty quotes: every component on its own, rounded half-even to the minor unit."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from domain.taxes.rules import ConsumptionRule, ConsumptionTable, ImportRegime, ImportTable
from ledger.errors import QuipuError
from ledger.money import quantize

_HUNDRED = Decimal(100)


class TaxRuleError(QuipuError, ValueError):
    """No rule applies (unknown site or state, a date before any rule, a value above every band)."""


@dataclass(frozen=True, slots=True)
class TaxLine:
    """One component of a quote."""

    name: str
    base: Decimal
    rate_pct: Decimal
    amount: Decimal
    currency: str
    rule: str
    valid_from: dt.date
    valid_to: dt.date | None


@dataclass(frozen=True, slots=True)
class TaxQuote:
    """The components and the totals they add up to."""

    lines: tuple[TaxLine, ...]
    net: Decimal
    tax: Decimal
    total: Decimal
    currency: str


def consumption_rule(table: ConsumptionTable, site: str, state: str | None, on: dt.date) -> ConsumptionRule:
    """The rule in force on a date for a site (and state, falling back to the site default)."""
    candidates = [r for r in table.rule if r.site == site]
    if not candidates:
        raise TaxRuleError(f"--site: no consumption-tax rule for site {site!r}")
    if state is not None and not any(r.state == state for r in candidates):
        states = sorted({r.state for r in candidates if r.state})
        known = f"; states with their own rate: {', '.join(states)}" if states else ""
        raise TaxRuleError(f"--state: site {site} has no rule for state {state!r}{known}")
    for r in candidates:
        if r.state == state and r.in_force(on):
            return r
    raise TaxRuleError(f"--date: no consumption-tax rule for {site}{'/' + state if state else ''} on {on}")


def consumption_quote(rule: ConsumptionRule, net: Decimal, currency: str) -> TaxQuote:
    """Each component is net × rate, rounded half-even to the currency's minor unit on its own."""
    label = f"{rule.site}{'/' + rule.state if rule.state else ''} consumption tax"
    lines = tuple(
        TaxLine(
            c.name,
            net,
            c.rate_pct,
            quantize(net * c.rate_pct / _HUNDRED, currency),
            currency,
            label,
            rule.valid_from,
            rule.valid_to,
        )
        for c in rule.components
    )
    tax = sum((line.amount for line in lines), Decimal(0))
    return TaxQuote(lines, net, tax, net + tax, currency)


def import_regime(table: ImportTable, site: str, origin: str, on: dt.date) -> ImportRegime:
    """The regime in force on a date for a destination site and an origin country."""
    at_site = [r for r in table.regime if r.site == site]
    if not at_site:
        raise TaxRuleError(f"--site: no import regime for site {site!r}")
    specific = [r for r in at_site if origin in r.origins and r.in_force(on)]
    general = [r for r in at_site if "*" in r.origins and r.in_force(on)]
    chosen = specific or general
    if not chosen:
        first = min(r.valid_from for r in at_site)
        raise TaxRuleError(f"--date: no import regime for {site} from {origin} on {on} (the first starts {first})")
    return chosen[0]


def import_quote(regime: ImportRegime, value_usd: Decimal) -> TaxQuote:
    """Each duty and tax of the band the value falls in, in order, rounded on its own."""
    band = next((b for b in regime.band if b.matches(value_usd)), None)
    if band is None:
        limit = max((b.up_to_usd for b in regime.band if b.up_to_usd is not None), default=None)
        raise TaxRuleError(f"--value-usd: {value_usd} USD is above the {limit} USD limit of {regime.name}")
    lines: list[TaxLine] = []
    previous = Decimal(0)
    for c in band.components:
        rate = c.rate_pct / _HUNDRED
        if c.kind == "gross_up":
            base = value_usd + previous
            amount = quantize(base * rate / (1 - rate), "USD")
            shown_base = quantize(base / (1 - rate), "USD")
        else:
            if c.base == "excess":
                assert c.excess_over_usd is not None
                shown_base = max(value_usd - c.excess_over_usd, Decimal(0))
            elif c.base == "value_plus_previous":
                shown_base = value_usd + previous
            else:
                shown_base = value_usd
            amount = max(quantize(shown_base * rate, "USD") - c.deduction_usd, Decimal(0))
        lines.append(TaxLine(c.name, shown_base, c.rate_pct, amount, "USD", regime.name, regime.valid_from,
                             regime.valid_to))  # fmt: skip
        previous += amount
    return TaxQuote(tuple(lines), value_usd, previous, value_usd + previous, "USD")
