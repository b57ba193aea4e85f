"""Posting rules: each event's journal entry, balanced per currency, or none.

A rule reads the event's *stored* JSON document — the exact canonical bytes the log holds,
decoded — not a re-validated model: the write side books the entry from the same bytes the
projections will read, so the two can never disagree, and a replay needs no pydantic.

Rules are keyed by (event type, schema version) of the stored document. A new version of an
event gets a new rule and the old rule stays, so replaying old events books exactly what was
booked when they were appended (ADR 0005). A rule is a pure function of the document.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final

import orjson

from domain.envelope import Envelope
from domain.fx import figures
from ledger.accounts import Side
from ledger.journal import JournalEntry, Posting, credit, debit
from ledger.money import exponent

#: The platform's own party id in account names.
PLATFORM: Final = "platform:main"

#: A decoded stored body (or its payload): trusted, it was validated when it was appended.
Doc = Mapping[str, Any]


def minor_units(amount: Doc) -> int:
    """Minor units of a stored amount; stored amounts carry exactly their currency's decimals."""
    return int(amount["amount"].replace(".", ""))


def _seller(seller_id: str, purpose: str, ccy: str) -> str:
    return f"seller:{seller_id}:{purpose}:{ccy}"


def _psp(psp: str, ccy: str) -> str:
    return f"psp:{psp}:receivable:{ccy}"


def _transfer(dr: str, cr: str, amount: Doc, memo: str) -> JournalEntry:
    ccy, minor = amount["currency"], minor_units(amount)
    return JournalEntry((debit(dr, ccy, minor), credit(cr, ccy, minor)), memo)


def _captured(p: Doc) -> JournalEntry:
    ccy = p["amount"]["currency"]
    return _transfer(
        _psp(p["psp"], ccy), _seller(p["seller_id"], "pending", ccy), p["amount"], f"capture {p['payment_id']}"
    )


def _refund(p: Doc) -> JournalEntry:
    ccy = p["amount"]["currency"]
    memo = f"refund {p['refund_id']} of {p['payment_id']}"
    return _transfer(_seller(p["seller_id"], "pending", ccy), _psp(p["psp"], ccy), p["amount"], memo)


def _chargeback_opened(p: Doc) -> JournalEntry:
    ccy = p["amount"]["currency"]
    memo = f"chargeback {p['chargeback_id']} of {p['payment_id']}"
    return _transfer(_seller(p["seller_id"], "pending", ccy), _psp(p["psp"], ccy), p["amount"], memo)


def _chargeback_resolved(p: Doc) -> JournalEntry | None:
    if p["outcome"] == "lost":
        return None  # the seller already bore it when the chargeback opened
    ccy = p["amount"]["currency"]
    memo = f"chargeback {p['chargeback_id']} won"
    return _transfer(_psp(p["psp"], ccy), _seller(p["seller_id"], "pending", ccy), p["amount"], memo)


def _fee(p: Doc) -> JournalEntry:
    ccy = p["amount"]["currency"]
    revenue = f"{PLATFORM}:fee_revenue.{p['kind']}:{ccy}"
    memo = f"{p['kind']} fee {p['fee_id']}"
    return _transfer(_seller(p["seller_id"], "pending", ccy), revenue, p["amount"], memo)


def _released(p: Doc) -> JournalEntry:
    ccy = p["amount"]["currency"]
    s = p["seller_id"]
    return _transfer(
        _seller(s, "pending", ccy), _seller(s, "available", ccy), p["amount"], f"release {p['release_id']}"
    )


def _payout_requested(p: Doc) -> JournalEntry:
    ccy = p["amount"]["currency"]
    s = p["seller_id"]
    memo = f"payout {p['payout_id']} requested"
    return _transfer(_seller(s, "available", ccy), _seller(s, "payout_reserved", ccy), p["amount"], memo)


def _payout_requested_v2(p: Doc) -> JournalEntry:
    fee = p["fee"]
    if fee is None:
        return _payout_requested(p)
    ccy = p["amount"]["currency"]
    s = p["seller_id"]
    amount, fee_minor = minor_units(p["amount"]), minor_units(fee)
    lines = (
        debit(_seller(s, "available", ccy), ccy, amount + fee_minor),
        credit(_seller(s, "payout_reserved", ccy), ccy, amount),
        credit(f"{PLATFORM}:fee_revenue.payout:{ccy}", ccy, fee_minor),
    )
    return JournalEntry(lines, f"payout {p['payout_id']} requested, fee {fee['amount']} {ccy}")


def _payout_settled(p: Doc) -> JournalEntry:
    ccy = p["amount"]["currency"]
    memo = f"payout {p['payout_id']} settled on {p['settled_on']}"
    return _transfer(f"{PLATFORM}:payouts_clearing:{ccy}", f"{PLATFORM}:cash:{ccy}", p["amount"], memo)


def _held(p: Doc) -> JournalEntry:
    ccy = p["amount"]["currency"]
    s = p["seller_id"]
    memo = f"hold {p['hold_id']} ({p['reason']})"
    return _transfer(_seller(s, "available", ccy), _seller(s, "held", ccy), p["amount"], memo)


def _hold_released(p: Doc) -> JournalEntry:
    ccy = p["amount"]["currency"]
    s = p["seller_id"]
    memo = f"hold {p['hold_id']} released by {p['decided_by']}"
    return _transfer(_seller(s, "held", ccy), _seller(s, "available", ccy), p["amount"], memo)


def _recovered(p: Doc) -> JournalEntry:
    ccy = p["amount"]["currency"]
    s = p["seller_id"]
    memo = f"deficit recovery {p['recovery_id']}"
    return _transfer(_seller(s, "available", ccy), _seller(s, "pending", ccy), p["amount"], memo)


def _compensation(p: Doc) -> JournalEntry:
    ccy = p["amount"]["currency"]
    funding = "carrier_claims" if p["funded_by"] == "carrier" else "logistics_compensation"
    memo = f"delivery-delay compensation {p['compensation_id']} for order {p['order_id']}"
    return _transfer(f"{PLATFORM}:{funding}:{ccy}", f"buyer:{p['buyer_id']}:store_credit:{ccy}", p["amount"], memo)


def _tax_payable(name: str, ccy: str) -> str:
    slug = "".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_")
    while "__" in slug:
        slug = slug.replace("__", "_")
    return f"{PLATFORM}:tax_payable.{slug[:40] or 'tax'}:{ccy}"


def _tax(p: Doc, reverse: bool) -> JournalEntry:
    seller = p["seller_id"]
    postings = []
    for line in p["lines"]:
        ccy, minor = line["amount"]["currency"], minor_units(line["amount"])
        pending, payable = _seller(seller, "pending", ccy), _tax_payable(line["name"], ccy)
        dr, cr = (payable, pending) if reverse else (pending, payable)
        postings += [debit(dr, ccy, minor), credit(cr, ccy, minor)]
    verb = "reversed" if reverse else "assessed"
    return JournalEntry(tuple(postings), f"{p['kind']} tax {p['assessment_id']} {verb} on order {p['order_id']}")


def _usd_minor(value: str) -> int:
    """A signed USD decimal string in cents."""
    return int(Decimal(value).scaleb(2))


def _revalued(p: Doc) -> JournalEntry | None:
    diff = _usd_minor(p["difference"])
    if p.get("reverses"):
        diff = -diff  # the reversal carries the figures of what it undoes
    if diff == 0:
        return None
    adj, pnl = f"{PLATFORM}:fx_revaluation:USD", f"{PLATFORM}:fx_unrealised:USD"
    dr, cr = (adj, pnl) if diff > 0 else (pnl, adj)
    verb = "reversal of revaluation" if p.get("reverses") else "revaluation"
    memo = f"IAS 21 {verb} {p['revaluation_id']} of {p['currency']} at {p['closing_rate']}"
    return JournalEntry((debit(dr, "USD", abs(diff)), credit(cr, "USD", abs(diff))), memo)


def _position_settled(p: Doc) -> JournalEntry:
    sold, received = p["sold"], p["received"]
    s_ccy, r_ccy = sold["currency"], received["currency"]
    lines = [
        debit(f"{PLATFORM}:fx_liquidity:{s_ccy}", s_ccy, minor_units(sold)),
        credit(f"{PLATFORM}:cash:{s_ccy}", s_ccy, minor_units(sold)),
        debit(f"{PLATFORM}:cash:{r_ccy}", r_ccy, minor_units(received)),
        credit(f"{PLATFORM}:fx_liquidity:{r_ccy}", r_ccy, minor_units(received)),
    ]
    realised = _usd_minor(p["realised"])
    liquidity, pnl = f"{PLATFORM}:fx_liquidity:USD", f"{PLATFORM}:fx_realised:USD"
    if realised > 0:
        lines += [debit(liquidity, "USD", realised), credit(pnl, "USD", realised)]
    elif realised < 0:
        lines += [debit(pnl, "USD", -realised), credit(liquidity, "USD", -realised)]
    return JournalEntry(tuple(lines), f"FX position {p['settlement_id']} settled with {p['counterparty']}")


def _payout_sent(p: Doc) -> JournalEntry:
    ccy = p["amount"]["currency"]
    clearing = f"{PLATFORM}:payouts_clearing:{ccy}"
    memo = f"payout {p['payout_id']} sent"
    return _transfer(_seller(p["seller_id"], "payout_reserved", ccy), clearing, p["amount"], memo)


def _payout_failed(p: Doc) -> JournalEntry:
    ccy = p["amount"]["currency"]
    clearing = f"{PLATFORM}:payouts_clearing:{ccy}"
    memo = f"payout {p['payout_id']} failed"
    return _transfer(clearing, _seller(p["seller_id"], "available", ccy), p["amount"], memo)


def _converted(p: Doc) -> JournalEntry:
    src, tgt = p["source"], p["target"]
    s_ccy, t_ccy = src["currency"], tgt["currency"]
    f = figures(Decimal(src["amount"]), t_ccy, Decimal(p["reference_rate"]), Decimal(p["markup"]))
    exp = 10 ** exponent(t_ccy)
    at_reference, markup_revenue, rounding = (int(x * exp) for x in (f.at_reference, f.markup_revenue, f.rounding))
    seller = p["seller_id"]
    lines = [
        debit(_seller(seller, "available", s_ccy), s_ccy, minor_units(src)),
        credit(f"{PLATFORM}:fx_liquidity:{s_ccy}", s_ccy, minor_units(src)),
        debit(f"{PLATFORM}:fx_liquidity:{t_ccy}", t_ccy, at_reference),
        credit(_seller(seller, "available", t_ccy), t_ccy, minor_units(tgt)),
    ]
    if markup_revenue:
        lines.append(credit(f"{PLATFORM}:fx_revenue:{t_ccy}", t_ccy, markup_revenue))
    if rounding > 0:
        lines.append(credit(f"{PLATFORM}:rounding:{t_ccy}", t_ccy, rounding))
    elif rounding < 0:
        lines.append(debit(f"{PLATFORM}:rounding:{t_ccy}", t_ccy, -rounding))
    memo = f"conversion {p['conversion_id']} {s_ccy}→{t_ccy} at {p['final_rate']} ({p['rate_source']})"
    return JournalEntry(tuple(lines), memo)


def _settlement_received(p: Doc) -> JournalEntry:
    net, fee = p["net"], p["fee"]
    ccy = net["currency"]
    net_minor, fee_minor = minor_units(net), minor_units(fee) if fee is not None else 0
    lines = [debit(f"{PLATFORM}:cash:{ccy}", ccy, net_minor)]
    if fee_minor:
        lines.append(debit(f"{PLATFORM}:psp_fees:{ccy}", ccy, fee_minor))
    lines.append(credit(_psp(p["psp"], ccy), ccy, net_minor + fee_minor))
    return JournalEntry(tuple(lines), f"{p['psp']} settlement {p['settlement_id']} value {p['value_date']}")


def _adjustment(p: Doc) -> JournalEntry:
    postings = tuple(
        Posting(line["account"], line["amount"]["currency"], Side(line["side"]), minor_units(line["amount"]))
        for line in p["lines"]
    )
    return JournalEntry(postings, f"adjustment {p['adjustment_id']} by {p['author']}: {p['reason']}")


#: (type, schema_version) → rule over the payload. Types absent here book nothing (orders,
#: authorisations, failures): they change what may happen next, not what is owed.
RULES: Final[dict[tuple[str, int], Callable[[Doc], JournalEntry | None]]] = {
    ("payment.captured", 1): _captured,
    ("payment.captured", 2): _captured,  # v2 only adds acquirer_reference: the same booking
    ("refund.issued", 1): _refund,
    ("chargeback.opened", 1): _chargeback_opened,
    ("chargeback.resolved", 1): _chargeback_resolved,
    ("fee.charged", 1): _fee,
    ("funds.released", 1): _released,
    ("payout.requested", 1): _payout_requested,
    ("payout.requested", 2): _payout_requested_v2,
    ("payout.sent", 1): _payout_sent,
    ("payout.settled", 1): _payout_settled,
    ("funds.held", 1): _held,
    ("hold.released", 1): _hold_released,
    ("deficit.recovered", 1): _recovered,
    ("payout.failed", 1): _payout_failed,
    ("adjustment.posted", 1): _adjustment,
    ("compensation.granted", 1): _compensation,
    ("fx.revalued", 1): _revalued,
    ("fx.position_settled", 1): _position_settled,
    ("tax.assessed", 1): lambda p: _tax(p, reverse=False),
    ("tax.reversed", 1): lambda p: _tax(p, reverse=True),
    ("fx.converted", 1): _converted,
    ("psp.settlement_received", 1): _settlement_received,
}

#: Event types that book something in some version (a fast pre-filter for folds).
BOOKING_TYPES: Final = frozenset(kind for kind, _ in RULES)


def books(kind: str, schema_version: int) -> bool:
    """Whether events of this type and version have a posting rule (it may still book nothing for a given event, as
    a chargeback lost does)."""
    return (kind, schema_version) in RULES


def entry_for_doc(doc: Doc) -> JournalEntry | None:
    """The entry a stored event document books (UnbalancedEntryError if it would not balance)."""
    rule = RULES.get((doc["type"], doc["schema_version"]))
    return rule(doc["payload"]) if rule is not None else None


def entry_for_body(body: bytes) -> JournalEntry | None:
    """The entry an event's canonical bytes book."""
    return entry_for_doc(orjson.loads(body))


def entry_for(event: Envelope) -> JournalEntry | None:
    """The entry a typed event books, computed from its canonical bytes like everywhere else."""
    from domain.catalog import canonical_bytes

    return entry_for_body(canonical_bytes(event))
