"""The AML typologies as incremental window checks over one seller's recent events.

Each seller has a small window state (its recent orders, refunds and chargebacks, releases,
and when each typology last alerted), kept by the AML projection and updated event by event:
nothing rescans history. Every alert names its typology, severity and evidence — the event
ids and amounts that triggered it — and the same log always gives the same alerts.

Typologies (thresholds per site in ``config/aml.toml``): structuring (several amounts just
below the reporting threshold), velocity (many orders in a short window), round amounts,
mule fan-in (many distinct buyers paying a new seller), high-risk jurisdiction (a seller from
a listed country), refund and chargeback abuse, pass-through (released funds paid out within
hours), and the reporting threshold itself (single operations at or above it, for reports).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from domain.aml.rules import AmlRules, SiteRules
from domain.ids import derived_id
from ledger.money import format_amount, to_minor_units

HOUR_US: Final = 3_600_000_000
SEVERITY: Final = {
    "structuring": "high", "velocity": "medium", "round_amounts": "medium", "mule_fan_in": "high",
    "high_risk_jurisdiction": "high", "refund_abuse": "medium", "pass_through": "high",
    "reporting_threshold": "info", "travel_rule": "high",
}  # fmt: skip


@dataclass
class Window:
    """One seller's recent activity (what the rules need, nothing older than the longest window)."""

    site: str = ""
    currency: str = ""
    first_seen_us: int = 0
    orders: list[list[Any]] = field(default_factory=list)
    """[occurred_at_us, minor units, event id, buyer id]"""
    returns: list[list[Any]] = field(default_factory=list)
    """[occurred_at_us, minor units, event id] of refunds and chargebacks."""
    releases: list[list[Any]] = field(default_factory=list)
    """[occurred_at_us, minor units, currency, event id]"""
    last: dict[str, int] = field(default_factory=dict)
    """typology → occurred_at_us of its last alert."""

    def to_doc(self) -> dict[str, Any]:
        return {
            "site": self.site, "currency": self.currency, "first_seen_us": self.first_seen_us,
            "orders": self.orders, "returns": self.returns, "releases": self.releases, "last": self.last,
        }  # fmt: skip

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Window:
        return cls(doc["site"], doc["currency"], doc["first_seen_us"], doc["orders"], doc["returns"],
                   doc["releases"], doc["last"])  # fmt: skip


@dataclass(frozen=True, slots=True)
class Alert:
    """A typology that fired, with what made it fire."""

    alert_id: str
    seller_id: str
    site: str
    typology: str
    severity: str
    raised_at_us: int
    evidence: list[dict[str, Any]]
    summary: str


class Detector:
    """Applies the rules to one event of a seller, given (and updating) its window."""

    def __init__(self, rules: AmlRules) -> None:
        self.rules = rules
        self._minor: dict[tuple[str, str, str], int] = {}

    def _threshold(self, rules: SiteRules, name: str, ccy: str) -> int:
        key = (rules.site, name, ccy)
        if key not in self._minor:
            self._minor[key] = to_minor_units(Decimal(getattr(rules, name)), ccy)
        return self._minor[key]

    def _site_rules(self, w: Window, ts_us: int) -> SiteRules | None:
        day = (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ts_us)).date()
        return self.rules.for_site(w.site, day) if w.site else None

    def _alert(self, seller: str, w: Window, typology: str, ts_us: int, trigger: str, evidence: list[dict[str, Any]],
               summary: str, window_hours: int) -> list[Alert]:  # fmt: skip
        last = w.last.get(typology)
        if last is not None and ts_us - last < window_hours * HOUR_US:
            return []  # one alert per window: the case covers what follows
        w.last[typology] = ts_us
        aid = derived_id("AML-", f"{seller}:{typology}:{trigger}")
        return [Alert(aid, seller, w.site, typology, SEVERITY[typology], ts_us, evidence, summary)]

    def observe(self, seller: str, w: Window, doc: Mapping[str, Any], ts_us: int, event_id: str) -> list[Alert]:
        """The alerts this event raises; ``w`` is updated in place."""
        kind, p = doc["type"], doc["payload"]
        if kind == "order.placed":
            return self._order(seller, w, p, ts_us, event_id)
        if kind in ("refund.issued", "chargeback.opened"):
            return self._returned(seller, w, p, ts_us, event_id)
        if kind == "funds.released":
            amount = p["amount"]
            w.releases.append([ts_us, int(amount["amount"].replace(".", "")), amount["currency"], event_id])
            return []
        if kind == "payout.requested":
            return self._payout(seller, w, p, ts_us, event_id)
        return []

    def _order(self, seller: str, w: Window, p: dict[str, Any], ts_us: int, eid: str) -> list[Alert]:
        total = p["total"]
        minor = int(total["amount"].replace(".", ""))
        if not w.site:
            w.site, w.currency, w.first_seen_us = p["site"], total["currency"], ts_us
        rules = self._site_rules(w, ts_us)
        alerts: list[Alert] = []
        if p.get("seller_country") in self.rules.high_risk_countries:
            why = f"seller registered in {p['seller_country']}, on the high-risk list"
            alerts += self._alert(seller, w, "high_risk_jurisdiction", ts_us, eid,
                                  [{"event_id": eid, "amount": total}], why, 24 * 30)  # fmt: skip
        if rules is None or total["currency"] != w.currency:
            return alerts
        longest = max(rules.structuring_window_hours, rules.velocity_window_hours, rules.round_window_hours,
                      rules.mule_window_hours) * HOUR_US  # fmt: skip
        w.orders = [o for o in w.orders if ts_us - o[0] < longest]
        w.orders.append([ts_us, minor, eid, p["buyer_id"]])
        ccy = w.currency
        threshold = self._threshold(rules, "report_threshold", ccy)
        if minor >= threshold:
            alerts += self._alert(seller, w, "reporting_threshold", ts_us, eid, [{"event_id": eid, "amount": total}],
                                  f"{total['amount']} {ccy} is at or above the reporting threshold "
                                  f"{rules.report_threshold}", 0)  # fmt: skip
        floor = threshold * Decimal(rules.structuring_floor_pct) / 100
        alerts += self._count(seller, w, "structuring", ts_us, eid, rules.structuring_window_hours,
                              rules.structuring_count, lambda o: floor <= o[1] < threshold,
                              f"amounts just below the {rules.report_threshold} {ccy} reporting threshold")  # fmt: skip
        alerts += self._count(seller, w, "velocity", ts_us, eid, rules.velocity_window_hours, rules.velocity_count,
                              lambda o: True, "orders in a short window")  # fmt: skip
        unit = self._threshold(rules, "round_unit", ccy)
        alerts += self._count(seller, w, "round_amounts", ts_us, eid, rules.round_window_hours, rules.round_count,
                              lambda o: o[1] > 0 and o[1] % unit == 0,
                              f"round amounts (multiples of {rules.round_unit} {ccy})")  # fmt: skip
        if ts_us - w.first_seen_us < rules.mule_new_seller_days * 24 * HOUR_US:
            recent = [o for o in w.orders if ts_us - o[0] < rules.mule_window_hours * HOUR_US]
            buyers = {o[3] for o in recent}
            if len(buyers) >= rules.mule_buyers:
                age = (ts_us - w.first_seen_us) // HOUR_US
                why = f"{len(buyers)} distinct buyers paid a seller first seen {age} hours ago"
                alerts += self._alert(seller, w, "mule_fan_in", ts_us, eid, _evidence(recent, ccy), why,
                                      rules.mule_window_hours)  # fmt: skip
        return alerts

    def _count(self, seller: str, w: Window, typology: str, ts_us: int, eid: str, hours: int, count: int,
               match: Any, what: str) -> list[Alert]:  # fmt: skip
        hits = [o for o in w.orders if ts_us - o[0] < hours * HOUR_US and match(o)]
        if len(hits) < count:
            return []
        return self._alert(seller, w, typology, ts_us, eid, _evidence(hits, w.currency),
                           f"{len(hits)} {what} within {hours} hours", hours)  # fmt: skip

    def _returned(self, seller: str, w: Window, p: dict[str, Any], ts_us: int, eid: str) -> list[Alert]:
        rules = self._site_rules(w, ts_us)
        if rules is None:
            return []
        w.returns = [r for r in w.returns if ts_us - r[0] < rules.refund_window_hours * HOUR_US]
        w.returns.append([ts_us, int(p["amount"]["amount"].replace(".", "")), eid])
        if len(w.returns) < rules.refund_count:
            return []
        evidence = [{"event_id": r[2], "amount": {"amount": _fmt(r[1], p["amount"]["currency"]),
                                                  "currency": p["amount"]["currency"]}} for r in w.returns]  # fmt: skip
        return self._alert(seller, w, "refund_abuse", ts_us, eid, evidence,
                           f"{len(w.returns)} refunds and chargebacks within {rules.refund_window_hours} hours",
                           rules.refund_window_hours)  # fmt: skip

    def _payout(self, seller: str, w: Window, p: dict[str, Any], ts_us: int, eid: str) -> list[Alert]:
        rules = self._site_rules(w, ts_us)
        if rules is None:
            return []
        return self._travel_rule(seller, w, p, ts_us, eid, rules) + self._pass_through(seller, w, p, ts_us, eid, rules)

    def _travel_rule(self, seller: str, w: Window, p: dict[str, Any], ts_us: int, eid: str,
                     rules: SiteRules) -> list[Alert]:  # fmt: skip
        route = p.get("route") or {}
        cross_border = p.get("rail") == "swift" or route.get("reference_rate") is not None
        ccy = p["amount"]["currency"]
        if not cross_border or p.get("travel_rule") or ccy != w.currency:
            return []
        if int(p["amount"]["amount"].replace(".", "")) < self._threshold(rules, "travel_rule_threshold", ccy):
            return []
        why = (f"cross-border payout of {p['amount']['amount']} {ccy} (at or above {rules.travel_rule_threshold}) "
               "without FATF R.16 originator and beneficiary data")  # fmt: skip
        return self._alert(seller, w, "travel_rule", ts_us, eid, [{"event_id": eid, "amount": p["amount"]}], why, 0)

    def _pass_through(self, seller: str, w: Window, p: dict[str, Any], ts_us: int, eid: str,
                      rules: SiteRules) -> list[Alert]:  # fmt: skip
        ccy = p["amount"]["currency"]
        hours = rules.pass_through_hours * HOUR_US
        w.releases = [r for r in w.releases if ts_us - r[0] < hours]
        released = [r for r in w.releases if r[2] == ccy]
        total = sum(r[1] for r in released)
        paid = int(p["amount"]["amount"].replace(".", ""))
        if ccy != w.currency or total < self._threshold(rules, "pass_through_min", ccy):
            return []
        if paid * 100 < total * Decimal(rules.pass_through_ratio_pct):
            return []
        evidence = [{"event_id": r[3], "amount": {"amount": _fmt(r[1], ccy), "currency": ccy}} for r in released]
        evidence.append({"event_id": eid, "amount": p["amount"]})
        return self._alert(seller, w, "pass_through", ts_us, eid, evidence,
                           f"{p['amount']['amount']} {ccy} paid out within {rules.pass_through_hours} hours of "
                           f"{_fmt(total, ccy)} released", rules.pass_through_hours)  # fmt: skip


def _fmt(minor: int, ccy: str) -> str:
    return format_amount(minor, ccy)


def _evidence(orders: list[list[Any]], ccy: str) -> list[dict[str, Any]]:
    return [{"event_id": o[2], "amount": {"amount": _fmt(o[1], ccy), "currency": ccy}} for o in orders]
