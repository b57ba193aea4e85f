"""Posting rules: each event's journal entry, balanced per currency, or none.

Rules are keyed by (event type, schema version): a new version of an event gets a new rule
and the old rule stays, so replaying old events books exactly what was booked when they
were appended (ADR 0005). A rule is a pure function of the event alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from domain.adjustments import AdjustmentPosted
from domain.envelope import Envelope
from domain.fees import FeeCharged, FundsReleased
from domain.payments import ChargebackOpened, ChargebackResolved, PaymentCaptured, RefundIssued
from domain.payouts import PayoutFailed, PayoutRequested, PayoutSent
from ledger.accounts import Side
from ledger.journal import JournalEntry, Posting, credit, debit

#: The platform's own party id in account names.
PLATFORM: Final = "platform:main"


def _seller(seller_id: str, purpose: str, ccy: str) -> str:
    return f"seller:{seller_id}:{purpose}:{ccy}"


def _psp(psp: str, ccy: str) -> str:
    return f"psp:{psp}:receivable:{ccy}"


def _transfer(dr: str, cr: str, ccy: str, minor: int, memo: str) -> JournalEntry:
    return JournalEntry((debit(dr, ccy, minor), credit(cr, ccy, minor)), memo)


def _captured(e: PaymentCaptured) -> JournalEntry:
    p, a = e.payload, e.payload.amount
    return _transfer(_psp(p.psp, a.currency), _seller(p.seller_id, "pending", a.currency), a.currency, a.minor,
                     f"capture {p.payment_id}")  # fmt: skip


def _refund(e: RefundIssued) -> JournalEntry:
    p, a = e.payload, e.payload.amount
    return _transfer(_seller(p.seller_id, "pending", a.currency), _psp(p.psp, a.currency), a.currency, a.minor,
                     f"refund {p.refund_id} of {p.payment_id}")  # fmt: skip


def _chargeback_opened(e: ChargebackOpened) -> JournalEntry:
    p, a = e.payload, e.payload.amount
    return _transfer(_seller(p.seller_id, "pending", a.currency), _psp(p.psp, a.currency), a.currency, a.minor,
                     f"chargeback {p.chargeback_id} of {p.payment_id}")  # fmt: skip


def _chargeback_resolved(e: ChargebackResolved) -> JournalEntry | None:
    p, a = e.payload, e.payload.amount
    if p.outcome == "lost":
        return None  # the seller already bore it when the chargeback opened
    return _transfer(_psp(p.psp, a.currency), _seller(p.seller_id, "pending", a.currency), a.currency, a.minor,
                     f"chargeback {p.chargeback_id} won")  # fmt: skip


def _fee(e: FeeCharged) -> JournalEntry:
    p, a = e.payload, e.payload.amount
    revenue = f"{PLATFORM}:fee_revenue.{p.kind}:{a.currency}"
    return _transfer(_seller(p.seller_id, "pending", a.currency), revenue, a.currency, a.minor,
                     f"{p.kind} fee {p.fee_id}")  # fmt: skip


def _released(e: FundsReleased) -> JournalEntry:
    p, a = e.payload, e.payload.amount
    return _transfer(_seller(p.seller_id, "pending", a.currency), _seller(p.seller_id, "available", a.currency),
                     a.currency, a.minor, f"release {p.release_id}")  # fmt: skip


def _payout_requested(e: PayoutRequested) -> JournalEntry:
    p, a = e.payload, e.payload.amount
    return _transfer(_seller(p.seller_id, "available", a.currency), _seller(p.seller_id, "payout_reserved", a.currency),
                     a.currency, a.minor, f"payout {p.payout_id} requested")  # fmt: skip


def _payout_sent(e: PayoutSent) -> JournalEntry:
    p, a = e.payload, e.payload.amount
    return _transfer(_seller(p.seller_id, "payout_reserved", a.currency), f"{PLATFORM}:payouts_clearing:{a.currency}",
                     a.currency, a.minor, f"payout {p.payout_id} sent")  # fmt: skip


def _payout_failed(e: PayoutFailed) -> JournalEntry:
    p, a = e.payload, e.payload.amount
    return _transfer(f"{PLATFORM}:payouts_clearing:{a.currency}", _seller(p.seller_id, "available", a.currency),
                     a.currency, a.minor, f"payout {p.payout_id} failed")  # fmt: skip


def _adjustment(e: AdjustmentPosted) -> JournalEntry:
    p = e.payload
    postings = tuple(
        Posting(line.account, line.amount.currency, Side(line.side), line.amount.minor) for line in p.lines
    )
    return JournalEntry(postings, f"adjustment {p.adjustment_id} by {p.author}: {p.reason}")


#: (type, schema_version) → rule. Types absent here book nothing (orders, authorisations,
#: failures): they change what may happen next, not what is owed.
RULES: Final[dict[tuple[str, int], Callable[[Any], JournalEntry | None]]] = {
    ("payment.captured", 1): _captured,
    ("refund.issued", 1): _refund,
    ("chargeback.opened", 1): _chargeback_opened,
    ("chargeback.resolved", 1): _chargeback_resolved,
    ("fee.charged", 1): _fee,
    ("funds.released", 1): _released,
    ("payout.requested", 1): _payout_requested,
    ("payout.sent", 1): _payout_sent,
    ("payout.failed", 1): _payout_failed,
    ("adjustment.posted", 1): _adjustment,
}


def entry_for(event: Envelope) -> JournalEntry | None:
    """The journal entry ``event`` books (raises UnbalancedEntryError if it would not balance)."""
    rule = RULES.get((event.type, event.schema_version))
    return rule(event) if rule is not None else None
