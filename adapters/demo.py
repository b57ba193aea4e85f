"""A deterministic month of marketplace activity, as events ``quipu post`` accepts.

Five sites (MX, BR, AR, CO, CL), local sellers and cross-border sellers from China, cards
with installments, Pix, Boleto, OXXO and account money, fees, refunds, chargebacks (some
after release), releases and weekly payouts, some of which bounce. The same seed gives the
same events, byte for byte; ids carry the seed so two seeds never collide.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

from domain.fx import figures
from ledger.money import exponent, format_amount


@dataclass(frozen=True, slots=True)
class SiteProfile:
    """What the simulation needs of a site (the real rules are dated configuration)."""

    currency: str
    zone: str
    methods: tuple[str, ...]
    price_min: int
    price_max: int
    """Order totals, in whole currency units."""
    psp: str


SITES: Final[dict[str, SiteProfile]] = {
    "MX": SiteProfile("MXN", "America/Mexico_City", ("card", "card", "oxxo", "account_money"), 150, 9_000, "adyen"),
    "BR": SiteProfile("BRL", "America/Sao_Paulo", ("card", "card", "pix", "pix", "boleto"), 25, 3_000, "cielo"),
    "AR": SiteProfile(
        "ARS", "America/Argentina/Buenos_Aires", ("card", "account_money"), 5_000, 900_000, "mercadopago"
    ),
    "CO": SiteProfile("COP", "America/Bogota", ("card", "account_money"), 30_000, 3_000_000, "payu"),
    "CL": SiteProfile("CLP", "America/Santiago", ("card", "account_money"), 5_000, 700_000, "transbank"),
}  # fmt: skip

#: Locale used to show each currency's amounts.
LOCALES: Final = {"MXN": "es_MX", "BRL": "pt_BR", "ARS": "es_AR", "COP": "es_CO", "CLP": "es_CL", "USD": "en_US"}

MONTH_START: Final = datetime(2026, 10, 1)
EVENTS_PER_ORDER: Final = 6.4  # measured average of the lifecycle below


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.out: list[tuple[datetime, int, dict[str, Any]]] = []
        self.seq = 0

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def emit(self, when: datetime, kind: str, payload: dict[str, Any], source: str, version: int = 1) -> None:
        self.seq += 1
        event = {
            "event_id": self.uid(),
            "type": kind,
            "schema_version": version,
            "occurred_at": when.isoformat(),
            "source": source,
            "payload": payload,
        }
        self.out.append((when, self.seq, event))

    def amount(self, minor: int, ccy: str) -> dict[str, str]:
        return {"amount": format_amount(minor, ccy), "currency": ccy}


def generate(seed: int = 7, events: int = 30_000, settle: bool = True) -> list[dict[str, Any]]:
    """About ``events`` events for October 2026, in the order they happened.

    With ``settle`` (the load the benchmarks replay) the month includes its releases, FX
    conversions and payouts, made up here; without it only the business happens and
    ``quipu demo`` lets the settlement run and the payout router produce the rest.
    """
    g = _Gen(seed)
    rng = g.rng
    orders = max(1, int(events / EVENTS_PER_ORDER))
    sellers: dict[str, list[tuple[str, str | None]]] = {}
    for site in SITES:
        local: list[tuple[str, str | None]] = [(f"{site}-S{seed}-{i:03d}", None) for i in range(1, 13)]
        cross: list[tuple[str, str | None]] = [(f"CN-S{seed}-{i:03d}", "CN") for i in range(1, 5)]
        sellers[site] = local + cross
    # Releases per seller and currency, (when, minor) — payouts are planned from these.
    releases: dict[tuple[str, str], list[tuple[datetime, int]]] = defaultdict(list)
    for n in range(1, orders + 1):
        site = rng.choice(list(SITES))
        prof = SITES[site]
        zone = ZoneInfo(prof.zone)
        ccy = prof.currency
        seller_id, seller_country = rng.choice(sellers[site])
        t = (MONTH_START + timedelta(seconds=rng.randrange(31 * 86400))).replace(tzinfo=zone)
        scale = 10 ** exponent(ccy)
        total = rng.randint(prof.price_min, prof.price_max) * scale + (rng.randrange(scale) if scale > 1 else 0)
        order_id = f"{site}-O{seed}-{n:07d}"
        payment_id = f"{site}-P{seed}-{n:07d}"
        order: dict[str, Any] = {
            "order_id": order_id, "site": site, "buyer_id": f"{site}-B{rng.randrange(1, 5000):05d}",
            "seller_id": seller_id, "total": g.amount(total, ccy),
        }  # fmt: skip
        if seller_country:
            order["seller_country"] = seller_country
        g.emit(t, "order.placed", order, "checkout-api")
        method = _method(g, rng.choice(prof.methods), n)
        t += timedelta(seconds=rng.randrange(5, 120))
        base = {"payment_id": payment_id, "seller_id": seller_id, "psp": prof.psp}
        g.emit(
            t,
            "payment.authorized",
            {**base, "order_id": order_id, "amount": g.amount(total, ccy), "method": method},
            prof.psp,
        )
        kind = method["kind"]
        fails = rng.random() < (0.15 if kind in ("boleto", "oxxo") else 0.04)
        delay = {"boleto": timedelta(days=rng.randint(1, 3)), "oxxo": timedelta(days=1)}.get(
            kind, timedelta(seconds=30)
        )
        t += delay
        if fails:
            g.emit(
                t,
                "payment.failed",
                {"payment_id": payment_id, "reason": "expired" if kind in ("boleto", "oxxo") else "declined"},
                prof.psp,
            )
            g.emit(
                t + timedelta(minutes=5),
                "order.cancelled",
                {"order_id": order_id, "reason": "payment failed"},
                "checkout-api",
            )
            continue
        capture = {**base, "amount": g.amount(total, ccy), "acquirer_reference": f"ARN{seed}{n:09d}"}
        g.emit(t, "payment.captured", capture, prof.psp, version=2)
        commission = total * rng.choice((11, 13, 16)) // 100
        processing = max(1, total * 3 // 100)
        g.emit(
            t,
            "fee.charged",
            {
                "fee_id": f"{payment_id}-F1",
                "seller_id": seller_id,
                "kind": "commission",
                "amount": g.amount(commission, ccy),
                "payment_id": payment_id,
            },
            "billing",
        )
        g.emit(
            t,
            "fee.charged",
            {
                "fee_id": f"{payment_id}-F2",
                "seller_id": seller_id,
                "kind": "processing",
                "amount": g.amount(processing, ccy),
                "payment_id": payment_id,
            },
            "billing",
        )
        net = total - commission - processing
        returned = 0
        roll = rng.random()
        if roll < 0.06:
            refund = total if rng.random() < 0.5 else max(1, total // rng.randint(2, 5))
            returned = refund
            g.emit(
                t + timedelta(hours=rng.randint(2, 60)),
                "refund.issued",
                {**base, "refund_id": f"{payment_id}-R1", "amount": g.amount(refund, ccy)},
                prof.psp,
            )
        elif roll < 0.075 and kind == "card":
            opened = t + timedelta(days=rng.randint(3, 20))
            cb = {**base, "chargeback_id": f"{payment_id}-C1", "amount": g.amount(total, ccy)}
            g.emit(
                opened,
                "chargeback.opened",
                {**cb, "reason_code": rng.choice(("10.4", "13.1", "4837", "4853"))},
                prof.psp,
            )
            g.emit(
                opened + timedelta(days=rng.randint(5, 25)),
                "chargeback.resolved",
                {**cb, "outcome": rng.choice(("won", "lost", "lost"))},
                prof.psp,
            )
        release_at = t + timedelta(days=2)
        if settle and returned < total and net - returned > 0:
            release = net - returned if returned else net
            if release > 0:
                g.emit(
                    release_at,
                    "funds.released",
                    {"release_id": f"{payment_id}-L1", "seller_id": seller_id, "amount": g.amount(release, ccy)},
                    "settlement",
                )
                releases[(seller_id, ccy)].append((release_at, release))
    rates = _publish_rates(g, days=34 if settle else 62)
    if settle:
        _plan_payouts(g, releases, rates)
    g.out.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, event in g.out]


def _method(g: _Gen, kind: str, n: int) -> dict[str, Any]:
    rng = g.rng
    if kind == "card":
        return {
            "kind": "card", "brand": rng.choice(("visa", "mastercard", "amex", "elo")),
            "installments": rng.choice((1, 1, 1, 3, 6, 12)), "token": f"tok_{g.seed}_{n:08d}",
            "last4": f"{rng.randrange(10000):04d}",
        }  # fmt: skip
    if kind == "pix":
        return {"kind": "pix", "end_to_end_id": f"E{g.seed}{n:012d}"}
    if kind == "boleto":
        return {"kind": "boleto", "barcode": "".join(str(rng.randrange(10)) for _ in range(47))}
    if kind == "oxxo":
        return {"kind": "oxxo", "voucher": f"{rng.randrange(10**13, 10**14)}"}
    return {"kind": "account_money"}


#: Where each currency's daily fix against USD comes from, and its level on 30 Sep 2026 (USD per unit).
FIXES: Final = {
    "BRL": ("BCB PTAX", Decimal("0.1834")),
    "MXN": ("Banxico FIX", Decimal("0.0548")),
    "ARS": ("BCRA Com. A 3500", Decimal("0.00074")),
    "COP": ("BanRep TRM", Decimal("0.000252")),
    "CLP": ("BCCh dólar observado", Decimal("0.001061")),
}
CROSS_BORDER_MARKUP: Final = Decimal("0.015")


def _publish_rates(g: _Gen, days: int) -> dict[str, list[tuple[datetime, Decimal]]]:
    """A daily 13:00 fix per currency against USD (and BRL against EUR) for ``days`` days from
    30 Sep, as a seeded random walk."""
    zone = ZoneInfo("America/Sao_Paulo")
    out: dict[str, list[tuple[datetime, Decimal]]] = {}
    fixes = (
        FIXES
        if days <= 34
        else {
            **FIXES,
            "BRL>EUR": ("ECB", Decimal("0.1581")),
            "USD>EUR": ("LSEG feed", Decimal("0.862")),
            "EUR>USD": ("ECB", Decimal("1.1601")),
        }
    )
    for key, (source, level) in fixes.items():
        ccy, _, quote = key.partition(">")
        rate = level
        series = []
        for day in range(days):
            when = datetime(2026, 9, 30, 13, tzinfo=zone) + timedelta(days=day)
            rate = (rate * (1 + Decimal(g.rng.randint(-60, 60)) / 10_000)).quantize(Decimal("1e-10"))
            text = format(rate.normalize(), "f")
            payload = {"base": ccy, "quote": quote or "USD", "rate": text, "source": source, "as_of": when.isoformat()}
            g.emit(when, "fx.rate_published", payload, "fx-feed")
            series.append((when, Decimal(text)))
        out[key] = series
    return out


def _plan_payouts(
    g: _Gen,
    releases: dict[tuple[str, str], list[tuple[datetime, int]]],
    rates: dict[str, list[tuple[datetime, Decimal]]],
) -> None:
    """Every Monday 10:00 (UTC-3), each seller pays out what was released before then.

    Cross-border (Chinese) sellers are paid in USD: at 09:00 their local funds are converted
    at the latest fix with a 1.5% markup, then the USD goes out by SWIFT.
    """
    rng = g.rng
    zone = ZoneInfo("America/Sao_Paulo")
    mondays = [datetime(2026, 10, d, 10, tzinfo=zone) for d in (5, 12, 19, 26)] + [
        datetime(2026, 11, 2, 10, tzinfo=zone)
    ]
    for (seller_id, ccy), items in sorted(releases.items()):
        items.sort()
        available, i = 0, 0
        for k, monday in enumerate(mondays):
            # Funds released before 09:00 count: cross-border sellers convert at 09:00.
            while i < len(items) and items[i][0] < monday - timedelta(hours=1):
                available += items[i][1]
                i += 1
            if available <= 0:
                continue
            payout_id = f"{seller_id}-{ccy}-W{k + 1}"
            amount = g.amount(available, ccy)
            rail = {"BRL": "pix", "MXN": "spei"}.get(ccy, "bank_transfer")
            if seller_id.startswith("CN-"):
                converted = _convert(g, seller_id, ccy, available, monday, rates[ccy], k)
                if converted is None:
                    continue
                base = {"payout_id": payout_id, "seller_id": seller_id, "amount": converted}
                g.emit(monday, "payout.requested", {**base, "rail": "swift", "destination": f"acct-{seller_id}-usd"},
                       "payouts")  # fmt: skip
                g.emit(monday + timedelta(hours=3), "payout.sent", {**base, "bank_reference": f"SW{g.uid()[:12]}"},
                       "payouts")  # fmt: skip
                available = 0
                continue
            base = {"payout_id": payout_id, "seller_id": seller_id, "amount": amount}
            g.emit(monday, "payout.requested", {**base, "rail": rail, "destination": f"acct-{seller_id}"}, "payouts")
            g.emit(
                monday + timedelta(hours=3), "payout.sent", {**base, "bank_reference": f"BR{g.uid()[:12]}"}, "payouts"
            )
            if rng.random() < 0.04:
                # A bounced payout: the funds return and go out with next week's payout.
                g.emit(
                    monday + timedelta(days=2),
                    "payout.failed",
                    {**base, "reason": "beneficiary account closed"},
                    "payouts",
                )
            else:
                available = 0


def _convert(
    g: _Gen, seller_id: str, ccy: str, minor: int, monday: datetime, series: list[tuple[datetime, Decimal]], week: int
) -> dict[str, str] | None:
    """Emit an fx.converted of ``minor`` units of ``ccy`` into USD an hour before ``monday``; the USD amount."""
    at = monday - timedelta(hours=1)
    as_of, reference = max((item for item in series if item[0] <= at), key=lambda item: item[0])
    source_amount = format_amount(minor, ccy)
    f = figures(Decimal(source_amount), "USD", reference, CROSS_BORDER_MARKUP)
    if f.target_amount <= 0:
        return None
    target = {"amount": str(f.target_amount), "currency": "USD"}
    payload = {
        "conversion_id": f"{seller_id}-{ccy}-FX{week + 1}",
        "seller_id": seller_id,
        "source": {"amount": source_amount, "currency": ccy},
        "target": target,
        "reference_rate": format(reference, "f"),
        "markup": str(CROSS_BORDER_MARKUP),
        "final_rate": format(f.final_rate, "f"),
        "rate_source": FIXES[ccy][0],
        "rate_as_of": as_of.isoformat(),
        "quote_id": f"Q-{seller_id}-{ccy}-{week + 1}",
        "quote_expires_at": (at + timedelta(minutes=5)).isoformat(),
    }
    g.emit(at, "fx.converted", payload, "fx-service")
    return target


def iter_jsonl(events: list[dict[str, Any]]) -> Iterator[bytes]:
    """The events as JSONL lines."""
    import orjson

    for e in events:
        yield orjson.dumps(e) + b"\n"
