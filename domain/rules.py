"""Write-side rules: the consistency boundaries and what each refuses.

Every event belongs to exactly one *stream*, the consistency boundary whose state its rules
need. The store guards each stream with optimistic concurrency (the event's version in
its stream is unique), so two writers can never both pass a rule against the same state:

========================  ==========================  ===================================
stream                    events                      rules
========================  ==========================  ===================================
``order:<order_id>``      order.placed / cancelled,   placed once; cancelled once, after;
                          delivery.delayed/confirmed, delays and delivery of placed
                          compensation.granted,       orders only; delivered once; one
                          tax.assessed / reversed     compensation, ≤ total, its currency;
                                                      each tax kind once, taxes ≤ total
``payment:<payment_id>``  payment.*, refund.issued,   captures ≤ authorisation; refunds +
                          chargeback.*                chargebacks ≤ captures; same seller,
                                                      psp and currency; ids never reused
``fee:<fee_id>``          fee.charged                 once
``wallet:<seller>``       funds.released, payout.*,   payouts (+ fee), conversions, holds
                          fx.converted, funds.held,   and recoveries ≤ available in that
                          hold.released,              currency; holds released whole and
                          deficit.recovered,          once; payout lifecycle order; no
                          seller.frozen / unfrozen,   payout while a freeze is active
                          fx.quote_locked
``adjustment:<id>``       adjustment.posted           once
``config:<name>:<ver>``   config.published            each version once
``amlcase:<case_id>``     aml.case_opened / action    opened once; actions on open cases;
                                                      clear or confirm closes it
``fxreval:`` / ``fxsettle:``  fx.revalued, fx.position_ once per id
                          settled
========================  ==========================  ===================================

``evolve(state, event)`` is both the rule check (it raises :class:`RuleViolation`) and the
fold that rebuilds a stream's state from its stored events.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

from immutables import Map

from domain.adjustments import AdjustmentPosted
from domain.aml.events import AmlCaseAction, AmlCaseOpened, SellerFrozen, SellerUnfrozen
from domain.config_events import ConfigPublished
from domain.deliveries import DeliveryConfirmed
from domain.envelope import Amount, Envelope
from domain.fees import FeeCharged, FundsReleased
from domain.fx import figures
from domain.fx_events import FxConverted, FxPositionSettled, FxQuoteLocked, FxRatePublished, FxRevalued
from domain.holds import DeficitRecovered, FundsHeld, HoldReleased
from domain.logistics import CompensationGranted, DeliveryDelayed
from domain.orders import OrderCancelled, OrderPlaced
from domain.payments import (
    ChargebackOpened,
    ChargebackResolved,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentFailed,
    RefundIssued,
)
from domain.payouts import PayoutFailed, PayoutRequested, PayoutSent, PayoutSettled
from domain.recon.events import (
    ExceptionCleared,
    ExceptionRaised,
    ExceptionResolved,
    FileImported,
    LineImported,
    SettlementReceived,
)
from domain.taxes.events import TaxAssessed, TaxReversed
from ledger.errors import QuipuError
from ledger.money import format_amount

#: Namespace of the UUIDs that name streams in the event store.
STREAM_NAMESPACE: Final = uuid.UUID("5b0f8a4e-5d0c-4a53-9a3e-71a1c0a1f001")


class RuleViolation(QuipuError, ValueError):
    """An event the current state of its stream does not allow; names the field and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


_ORDER_EVENTS: Final = (
    OrderPlaced, OrderCancelled, DeliveryDelayed, DeliveryConfirmed, CompensationGranted, TaxAssessed, TaxReversed,
)  # fmt: skip
_WALLET_EVENTS: Final = (
    SellerFrozen, SellerUnfrozen, FxQuoteLocked, FundsReleased, PayoutRequested, PayoutSent, PayoutSettled,
    PayoutFailed, FxConverted, FundsHeld, HoldReleased, DeficitRecovered,
)  # fmt: skip


def _stream_name_by_kind(event: Envelope) -> str:
    p: Any = event.payload
    if isinstance(event, _ORDER_EVENTS):
        return f"order:{p.order_id}"
    if isinstance(event, _WALLET_EVENTS):
        return f"wallet:{p.seller_id}"
    if isinstance(event, FxRatePublished):
        return f"fxrate:{p.base}{p.quote}:{p.source}:{p.as_of.isoformat()}"
    if isinstance(event, (AmlCaseOpened, AmlCaseAction)):
        return f"amlcase:{p.case_id}"
    if isinstance(event, FxRevalued):
        return f"fxreval:{p.revaluation_id}"
    if isinstance(event, FxPositionSettled):
        return f"fxsettle:{p.settlement_id}"
    if isinstance(event, ConfigPublished):
        return f"config:{p.name}:{p.version}"
    if isinstance(event, FeeCharged):
        return f"fee:{p.fee_id}"
    if isinstance(event, AdjustmentPosted):
        return f"adjustment:{p.adjustment_id}"
    if isinstance(event, LineImported):
        return f"reconline:{p.file_sha256}:{p.line_no}"
    if isinstance(event, FileImported):
        return f"reconfile:{p.file_sha256}"
    if isinstance(event, SettlementReceived):
        return f"pspsettle:{p.psp}:{p.settlement_id}"
    if isinstance(event, (ExceptionRaised, ExceptionCleared, ExceptionResolved)):
        return f"reconexc:{p.exception_id}"
    return f"payment:{p.payment_id}"


def _field_stream(prefix: str, field: str) -> Callable[[Envelope], str]:
    def name(event: Envelope) -> str:
        value: str = getattr(event.payload, field)
        return prefix + value

    return name


#: The common kinds by exact class: one dict lookup instead of a chain of isinstance tests.
_STREAM_OF: Final[dict[type[Envelope], Callable[[Envelope], str]]] = {
    **{cls: _field_stream("order:", "order_id") for cls in _ORDER_EVENTS},
    **{cls: _field_stream("wallet:", "seller_id") for cls in _WALLET_EVENTS},
    FeeCharged: _field_stream("fee:", "fee_id"),
    PaymentAuthorized: _field_stream("payment:", "payment_id"),
    PaymentCaptured: _field_stream("payment:", "payment_id"),
    PaymentFailed: _field_stream("payment:", "payment_id"),
    RefundIssued: _field_stream("payment:", "payment_id"),
    ChargebackOpened: _field_stream("payment:", "payment_id"),
    ChargebackResolved: _field_stream("payment:", "payment_id"),
}


def stream_name(event: Envelope) -> str:
    """The consistency boundary an event belongs to."""
    by_class = _STREAM_OF.get(type(event))
    return by_class(event) if by_class is not None else _stream_name_by_kind(event)


_NAMESPACE_BYTES: Final = STREAM_NAMESPACE.bytes
# RFC 4122 version 5 and variant bits, applied to the first 16 bytes of the SHA-1 as an integer.
_CLEAR_VERSION_VARIANT: Final = ~((0xF000 << 64) | (0xC000 << 48))
_SET_VERSION_VARIANT: Final = (0x5000 << 64) | (0x8000 << 48)


@lru_cache(maxsize=65_536)
def stream_id(name: str) -> uuid.UUID:
    """The UUID the event store files a stream under: ``uuid.uuid5(STREAM_NAMESPACE, name)``.

    Computed here with integer arithmetic on the SHA-1 rather than by ``uuid.uuid5``, which
    costs ~3× as much; most events of a batch open a new stream, so the cache rarely helps.
    """
    digest = hashlib.sha1(_NAMESPACE_BYTES + name.encode(), usedforsecurity=False).digest()
    value = int.from_bytes(digest[:16], "big")
    return uuid.UUID(int=(value & _CLEAR_VERSION_VARIANT) | _SET_VERSION_VARIANT)


@dataclass(frozen=True, slots=True)
class OrderState:
    """What an order's rules need."""

    placed: bool = False
    cancelled: bool = False
    currency: str = ""
    total_minor: int = 0
    days_late: int = 0
    compensated: bool = False
    delivered: bool = False
    seller_id: str = ""
    taxes: tuple[tuple[str, int, bool], ...] = ()
    """(kind, total assessed in minor units, reversed)."""


@dataclass(frozen=True, slots=True)
class PaymentState:
    """What a payment's rules need; amounts in minor units of ``currency``."""

    authorized: bool = False
    failed: bool = False
    seller_id: str = ""
    psp: str = ""
    currency: str = ""
    authorized_minor: int = 0
    captured_minor: int = 0
    returned_minor: int = 0
    """Refunded plus charged back (open or lost): what can no longer be refunded."""
    refund_ids: frozenset[str] = frozenset()
    chargebacks: tuple[tuple[str, int, str], ...] = ()
    """(chargeback id, amount in minor units, ``open``/``won``/``lost``)."""


@dataclass(frozen=True, slots=True)
class CaseState:
    """An AML case: opened, and closed by a clear or a confirm."""

    opened: bool = False
    seller_id: str = ""
    closed: str = ""


@dataclass(frozen=True, slots=True)
class OnceState:
    """Streams that hold a single event (fees, adjustments)."""

    done: bool = False


#: Ids a wallet has booked (the value is unused). A wallet's collections grow with the seller's whole history, so
#: they are persistent maps (a hash array mapped trie): adding to one or looking one up is O(log n), and the new
#: state shares the rest with the old. With a frozenset or tuple copied on every event, deciding on a wallet of
#: 50,000 releases took 2.8 ms an event instead of 14 µs (``benchmarks/wallet.py``, ADR 0039).
Booked = Map[str, bool]
_EMPTY: Final[Map[str, Any]] = Map()  # one shared empty map: it is immutable


@dataclass(frozen=True, slots=True)
class WalletState:
    """A seller's wallet: available funds per currency, its payouts and conversions."""

    available: tuple[tuple[str, int], ...] = ()
    """(currency, minor units) pairs, sorted by currency."""
    release_ids: Booked = _EMPTY
    payouts: Map[str, tuple[str, int, str]] = _EMPTY
    """payout id → (currency, amount in minor units, ``requested``/``sent``/``settled``/``failed``)."""
    conversion_ids: Booked = _EMPTY
    holds: Map[str, tuple[str, int, bool]] = _EMPTY
    """hold id → (currency, amount in minor units, still held)."""
    freezes: tuple[tuple[str, str], ...] = ()
    """Active freezes: (freeze id, case id)."""
    quotes: Map[str, tuple[str, str, str, str, int]] = _EMPTY
    """quote id → (source currency, target currency, reference rate, markup, source minor units)."""
    recovery_ids: Booked = _EMPTY

    def balance(self, currency: str) -> int:
        """Available minor units in a currency."""
        return dict(self.available).get(currency, 0)

    def moved(self, *deltas: tuple[str, int]) -> tuple[tuple[str, int], ...]:
        """The available pairs after adding ``deltas``."""
        funds = dict(self.available)
        for ccy, delta in deltas:
            funds[ccy] = funds.get(ccy, 0) + delta
        return tuple(sorted(funds.items()))

    def hold(self, hold_id: str) -> tuple[str, int, bool] | None:
        return self.holds.get(hold_id)

    def payout(self, payout_id: str) -> tuple[str, int, str] | None:
        return self.payouts.get(payout_id)


@dataclass(frozen=True, slots=True)
class ReconExceptionState:
    """A reconciliation exception: raised, then closed once (cleared by a run or resolved by a person)."""

    raised: bool = False
    closed: str = ""


State = OrderState | PaymentState | OnceState | WalletState | CaseState | ReconExceptionState


#: The empty state of each kind of stream, made once and shared: states are frozen, and evolve makes new ones.
_INITIAL: Final[dict[str, State]] = {
    "order": OrderState(),
    "payment": PaymentState(),
    "wallet": WalletState(),
    "amlcase": CaseState(),
    "reconexc": ReconExceptionState(),
}
_ONCE: Final = OnceState()


def initial_state(name: str) -> State:
    """The empty state of a stream, chosen by the stream's kind (one event only, for the kinds not named)."""
    return _INITIAL.get(name.partition(":")[0], _ONCE)


def _money(amount: Amount) -> str:
    return f"{amount.amount} {amount.currency}"


def _minor(minor: int, ccy: str) -> str:
    return f"{format_amount(minor, ccy)} {ccy}"


def _same_parties(state: PaymentState, seller_id: str, psp: str, amount: Amount) -> None:
    if seller_id != state.seller_id:
        raise RuleViolation("payload.seller_id", f"{seller_id} is not the payment's seller {state.seller_id}")
    if psp != state.psp:
        raise RuleViolation("payload.psp", f"{psp} is not the payment's processor {state.psp}")
    if amount.currency != state.currency:
        raise RuleViolation(
            "payload.amount.currency", f"{amount.currency} is not the payment's currency {state.currency}"
        )


def _order_placed(s: OrderState, e: OrderPlaced) -> OrderState:
    if s.placed:
        raise RuleViolation("payload.order_id", f"order {e.payload.order_id} was already placed")
    p = e.payload
    return OrderState(placed=True, currency=p.total.currency, total_minor=p.total.minor, seller_id=p.seller_id)


def _order_cancelled(s: OrderState, e: OrderCancelled) -> OrderState:
    if not s.placed:
        raise RuleViolation("payload.order_id", f"order {e.payload.order_id} was never placed")
    if s.cancelled:
        raise RuleViolation("payload.order_id", f"order {e.payload.order_id} is already cancelled")
    return replace(s, cancelled=True)


def _delivery_delayed(s: OrderState, e: DeliveryDelayed) -> OrderState:
    if not s.placed:
        raise RuleViolation("payload.order_id", f"order {e.payload.order_id} was never placed")
    return replace(s, days_late=max(s.days_late, e.payload.days_late))


def _delivery_confirmed(s: OrderState, e: DeliveryConfirmed) -> OrderState:
    if not s.placed:
        raise RuleViolation("payload.order_id", f"order {e.payload.order_id} was never placed")
    if s.delivered:
        raise RuleViolation("payload.order_id", f"order {e.payload.order_id} was already delivered")
    return replace(s, delivered=True)


def _tax_lines(s: OrderState, lines: Any) -> int:
    for i, line in enumerate(lines):
        if line.amount.currency != s.currency:
            raise RuleViolation(
                f"payload.lines.{i}.amount.currency", f"{line.amount.currency} is not the order's currency {s.currency}"
            )
    return sum(line.amount.minor for line in lines)


def _tax_assessed(s: OrderState, e: TaxAssessed) -> OrderState:
    p = e.payload
    if not s.placed:
        raise RuleViolation("payload.order_id", f"order {p.order_id} was never placed")
    if p.seller_id != s.seller_id:
        raise RuleViolation("payload.seller_id", f"{p.seller_id} is not the order's seller {s.seller_id}")
    if any(kind == p.kind for kind, _, _ in s.taxes):
        raise RuleViolation("payload.kind", f"{p.kind} tax of order {p.order_id} was already assessed")
    total = _tax_lines(s, p.lines)
    assessed = sum(amount for _, amount, undone in s.taxes if not undone)
    if assessed + total > s.total_minor:
        raise RuleViolation(
            "payload.lines", f"taxes of {_minor(assessed + total, s.currency)} exceed the order total "
            f"{_minor(s.total_minor, s.currency)}",
        )  # fmt: skip
    return replace(s, taxes=(*s.taxes, (p.kind, total, False)))


def _tax_reversed(s: OrderState, e: TaxReversed) -> OrderState:
    p = e.payload
    for i, (kind, amount, undone) in enumerate(s.taxes):
        if kind == p.kind:
            if undone:
                raise RuleViolation("payload.kind", f"{kind} tax of order {p.order_id} was already reversed")
            if _tax_lines(s, p.lines) != amount:
                raise RuleViolation("payload.lines", f"do not add up to the assessed {_minor(amount, s.currency)}")
            return replace(s, taxes=(*s.taxes[:i], (kind, amount, True), *s.taxes[i + 1 :]))
    raise RuleViolation("payload.kind", f"no {p.kind} tax was assessed on order {p.order_id}")


def _compensated(s: OrderState, e: CompensationGranted) -> OrderState:
    p = e.payload
    if not s.placed:
        raise RuleViolation("payload.order_id", f"order {p.order_id} was never placed")
    if s.days_late == 0:
        raise RuleViolation("payload.order_id", f"order {p.order_id} has no delivery delay reported")
    if s.compensated:
        raise RuleViolation("payload.order_id", f"order {p.order_id} was already compensated")
    if p.amount.currency != s.currency:
        raise RuleViolation("payload.amount.currency", f"{p.amount.currency} is not the order's currency {s.currency}")
    if p.amount.minor > s.total_minor:
        raise RuleViolation(
            "payload.amount", f"{_money(p.amount)} exceeds the order total {_minor(s.total_minor, s.currency)}"
        )
    if p.funded_by == "carrier" and p.carrier is None:
        raise RuleViolation("payload.carrier", "required when the carrier funds the compensation")
    return replace(s, compensated=True)


def _authorized(s: PaymentState, e: PaymentAuthorized) -> PaymentState:
    p = e.payload
    if s.authorized or s.failed:
        raise RuleViolation("payload.payment_id", f"payment {p.payment_id} was already authorized or failed")
    return PaymentState(
        authorized=True,
        seller_id=p.seller_id,
        psp=p.psp,
        currency=p.amount.currency,
        authorized_minor=p.amount.minor,
    )


def _require_authorized(s: PaymentState, payment_id: str) -> None:
    if not s.authorized:
        raise RuleViolation("payload.payment_id", f"payment {payment_id} was never authorized")


def _captured(s: PaymentState, e: PaymentCaptured) -> PaymentState:
    p = e.payload
    _require_authorized(s, p.payment_id)
    if s.failed:
        raise RuleViolation("payload.payment_id", f"payment {p.payment_id} failed and cannot be captured")
    _same_parties(s, p.seller_id, p.psp, p.amount)
    left = s.authorized_minor - s.captured_minor
    if p.amount.minor > left:
        raise RuleViolation(
            "payload.amount",
            f"capture of {_money(p.amount)} exceeds the {_minor(left, s.currency)} still authorized",
        )
    return PaymentState(
        True, False, s.seller_id, s.psp, s.currency, s.authorized_minor,
        s.captured_minor + p.amount.minor, s.returned_minor, s.refund_ids, s.chargebacks,
    )  # fmt: skip


def _failed(s: PaymentState, e: PaymentFailed) -> PaymentState:
    if s.failed:
        raise RuleViolation("payload.payment_id", f"payment {e.payload.payment_id} already failed")
    if s.captured_minor > 0:
        raise RuleViolation("payload.payment_id", f"payment {e.payload.payment_id} was already captured")
    return replace(s, failed=True)


def _refundable(s: PaymentState) -> int:
    return s.captured_minor - s.returned_minor


def _refund(s: PaymentState, e: RefundIssued) -> PaymentState:
    p = e.payload
    _require_authorized(s, p.payment_id)
    _same_parties(s, p.seller_id, p.psp, p.amount)
    if p.refund_id in s.refund_ids:
        raise RuleViolation("payload.refund_id", f"refund {p.refund_id} was already issued")
    if p.amount.minor > _refundable(s):
        raise RuleViolation(
            "payload.amount",
            f"refund of {_money(p.amount)} exceeds the {_minor(_refundable(s), s.currency)} "
            "captured and not yet returned",
        )
    return replace(s, returned_minor=s.returned_minor + p.amount.minor, refund_ids=s.refund_ids | {p.refund_id})


def _chargeback_opened(s: PaymentState, e: ChargebackOpened) -> PaymentState:
    p = e.payload
    _require_authorized(s, p.payment_id)
    _same_parties(s, p.seller_id, p.psp, p.amount)
    if any(cid == p.chargeback_id for cid, _, _ in s.chargebacks):
        raise RuleViolation("payload.chargeback_id", f"chargeback {p.chargeback_id} was already opened")
    if p.amount.minor > _refundable(s):
        raise RuleViolation(
            "payload.amount",
            f"chargeback of {_money(p.amount)} exceeds the {_minor(_refundable(s), s.currency)} "
            "captured and not yet returned",
        )
    return replace(
        s,
        returned_minor=s.returned_minor + p.amount.minor,
        chargebacks=(*s.chargebacks, (p.chargeback_id, p.amount.minor, "open")),
    )


def _chargeback_resolved(s: PaymentState, e: ChargebackResolved) -> PaymentState:
    p = e.payload
    if s.authorized:
        _same_parties(s, p.seller_id, p.psp, p.amount)
    for i, (cid, amount, status) in enumerate(s.chargebacks):
        if cid == p.chargeback_id:
            if status != "open":
                raise RuleViolation("payload.chargeback_id", f"chargeback {cid} is already {status}")
            if amount != p.amount.minor:
                raise RuleViolation("payload.amount", f"{_money(p.amount)} is not the disputed amount")
            returned = s.returned_minor - amount if p.outcome == "won" else s.returned_minor
            cbs = (*s.chargebacks[:i], (cid, amount, p.outcome), *s.chargebacks[i + 1 :])
            return replace(s, chargebacks=cbs, returned_minor=returned)
    raise RuleViolation("payload.chargeback_id", f"chargeback {p.chargeback_id} was never opened")


def _once(field_name: str) -> Callable[[OnceState, Any], OnceState]:
    def rule(s: OnceState, e: Any) -> OnceState:
        if s.done:
            value = getattr(e.payload, field_name.rsplit(".", 1)[-1])
            raise RuleViolation(field_name, f"{value} was already booked")
        return OnceState(done=True)

    return rule


def _released(s: WalletState, e: FundsReleased) -> WalletState:
    p = e.payload
    if p.release_id in s.release_ids:
        raise RuleViolation("payload.release_id", f"release {p.release_id} was already booked")
    return replace(
        s, available=s.moved((p.amount.currency, p.amount.minor)), release_ids=s.release_ids.set(p.release_id, True)
    )


def _payout_requested(s: WalletState, e: PayoutRequested) -> WalletState:
    p = e.payload
    if s.freezes:
        cases = ", ".join(case for _, case in s.freezes)
        raise RuleViolation(
            "payload.seller_id", f"seller {p.seller_id} is frozen by AML case {cases}: payouts wait for a case decision"
        )
    if s.payout(p.payout_id) is not None:
        raise RuleViolation("payload.payout_id", f"payout {p.payout_id} was already requested")
    ccy = p.amount.currency
    fee = p.fee.minor if p.fee is not None else 0
    if p.amount.minor + fee > s.balance(ccy):
        with_fee = f" plus its fee of {_money(p.fee)}" if p.fee is not None else ""
        raise RuleViolation(
            "payload.amount",
            f"payout of {_money(p.amount)}{with_fee} exceeds seller {p.seller_id}'s available "
            f"{_minor(s.balance(ccy), ccy)} (held funds and earlier payouts excluded)",
        )
    return replace(
        s,
        available=s.moved((ccy, -p.amount.minor - fee)),
        payouts=s.payouts.set(p.payout_id, (ccy, p.amount.minor, "requested")),
    )


def _payout_step(expected: str, new_status: str) -> Callable[[WalletState, Any], WalletState]:
    def rule(s: WalletState, e: Any) -> WalletState:
        p = e.payload
        found = s.payout(p.payout_id)
        if found is None:
            raise RuleViolation("payload.payout_id", f"payout {p.payout_id} was never requested")
        ccy, amount, status = found
        if status != expected:
            raise RuleViolation("payload.payout_id", f"payout {p.payout_id} is {status}, not {expected}")
        if amount != p.amount.minor or ccy != p.amount.currency:
            raise RuleViolation("payload.amount", f"{_money(p.amount)} is not the requested amount")
        back = amount if new_status == "failed" else 0
        return replace(s, payouts=s.payouts.set(p.payout_id, (ccy, amount, new_status)), available=s.moved((ccy, back)))

    return rule


def _frozen(s: WalletState, e: SellerFrozen) -> WalletState:
    p = e.payload
    if any(fid == p.freeze_id for fid, _ in s.freezes):
        raise RuleViolation("payload.freeze_id", f"freeze {p.freeze_id} is already in place")
    return replace(s, freezes=(*s.freezes, (p.freeze_id, p.case_id)))


def _unfrozen(s: WalletState, e: SellerUnfrozen) -> WalletState:
    p = e.payload
    if not any(fid == p.freeze_id for fid, _ in s.freezes):
        raise RuleViolation("payload.freeze_id", f"seller {p.seller_id} has no freeze {p.freeze_id} in place")
    return replace(s, freezes=tuple(f for f in s.freezes if f[0] != p.freeze_id))


def _exception_raised(s: ReconExceptionState, e: ExceptionRaised) -> ReconExceptionState:
    if s.raised:
        raise RuleViolation("payload.exception_id", f"exception {e.payload.exception_id} was already raised")
    return ReconExceptionState(raised=True)


def _exception_closed(s: ReconExceptionState, e: ExceptionCleared | ExceptionResolved) -> ReconExceptionState:
    p = e.payload
    if not s.raised:
        raise RuleViolation("payload.exception_id", f"exception {p.exception_id} was never raised")
    if s.closed:
        raise RuleViolation("payload.exception_id", f"exception {p.exception_id} is already closed ({s.closed})")
    how = e.payload.resolution if isinstance(e, ExceptionResolved) else "cleared"
    return replace(s, closed=how)


def _case_opened(s: CaseState, e: AmlCaseOpened) -> CaseState:
    if s.opened:
        raise RuleViolation("payload.case_id", f"case {e.payload.case_id} is already open")
    return CaseState(opened=True, seller_id=e.payload.seller_id)


def _case_action(s: CaseState, e: AmlCaseAction) -> CaseState:
    p = e.payload
    if not s.opened:
        raise RuleViolation("payload.case_id", f"case {p.case_id} was never opened")
    if p.seller_id != s.seller_id:
        raise RuleViolation("payload.seller_id", f"{p.seller_id} is not the case's seller {s.seller_id}")
    if s.closed:
        raise RuleViolation("payload.action", f"case {p.case_id} was already closed ({s.closed})")
    if p.action == "assign" and p.assignee is None:
        raise RuleViolation("payload.assignee", "required to assign a case")
    if p.action == "confirm" and p.report is None:
        raise RuleViolation("payload.report", "required to confirm a case: the report now due (COAF, UIF or STR)")
    return replace(s, closed=p.action if p.action in ("clear", "confirm") else "")


def _held(s: WalletState, e: FundsHeld) -> WalletState:
    p = e.payload
    if s.hold(p.hold_id) is not None:
        raise RuleViolation("payload.hold_id", f"hold {p.hold_id} was already placed")
    ccy = p.amount.currency
    if p.amount.minor > s.balance(ccy):
        raise RuleViolation(
            "payload.amount",
            f"hold of {_money(p.amount)} exceeds seller {p.seller_id}'s available {_minor(s.balance(ccy), ccy)}",
        )
    return replace(
        s, available=s.moved((ccy, -p.amount.minor)), holds=s.holds.set(p.hold_id, (ccy, p.amount.minor, True))
    )


def _hold_released(s: WalletState, e: HoldReleased) -> WalletState:
    p = e.payload
    found = s.hold(p.hold_id)
    if found is None:
        raise RuleViolation("payload.hold_id", f"hold {p.hold_id} was never placed on seller {p.seller_id}")
    ccy, amount, active = found
    if not active:
        raise RuleViolation("payload.hold_id", f"hold {p.hold_id} was already released")
    if amount != p.amount.minor or ccy != p.amount.currency:
        raise RuleViolation("payload.amount", f"{_money(p.amount)} is not the held {_minor(amount, ccy)}")
    return replace(s, available=s.moved((ccy, amount)), holds=s.holds.set(p.hold_id, (ccy, amount, False)))


def _recovered(s: WalletState, e: DeficitRecovered) -> WalletState:
    p = e.payload
    if p.recovery_id in s.recovery_ids:
        raise RuleViolation("payload.recovery_id", f"recovery {p.recovery_id} was already booked")
    ccy = p.amount.currency
    if p.amount.minor > s.balance(ccy):
        raise RuleViolation(
            "payload.amount",
            f"recovery of {_money(p.amount)} exceeds seller {p.seller_id}'s available {_minor(s.balance(ccy), ccy)}",
        )
    return replace(s, available=s.moved((ccy, -p.amount.minor)), recovery_ids=s.recovery_ids.set(p.recovery_id, True))


def _quote_locked(s: WalletState, e: FxQuoteLocked) -> WalletState:
    p = e.payload
    if p.quote_id in s.quotes:
        raise RuleViolation("payload.quote_id", f"quote {p.quote_id} was already locked")
    if p.source.currency == p.target.currency:
        raise RuleViolation("payload.target.currency", "a quote needs two different currencies")
    if p.expires_at <= e.occurred_at:
        raise RuleViolation("payload.expires_at", "must be after the moment the quote is locked")
    f = figures(p.source.decimal, p.target.currency, Decimal(p.reference_rate), Decimal(p.markup))
    if Decimal(p.final_rate) != f.final_rate or p.target.decimal != f.target_amount:
        raise RuleViolation(
            "payload.target.amount", f"{p.target.amount} is not source × final rate = {f.target_amount}"
        )
    quote = (p.source.currency, p.target.currency, p.reference_rate, p.markup, p.source.minor)
    return replace(s, quotes=s.quotes.set(p.quote_id, quote))


def _converted(s: WalletState, e: FxConverted) -> WalletState:
    p = e.payload
    locked = s.quotes.get(p.quote_id) if p.quote_id else None
    used = (p.source.currency, p.target.currency, p.reference_rate, p.markup, p.source.minor)
    if locked is not None and locked != used:
        raise RuleViolation("payload.quote_id", f"the conversion does not use the figures of quote {p.quote_id}")
    if p.conversion_id in s.conversion_ids:
        raise RuleViolation("payload.conversion_id", f"conversion {p.conversion_id} was already booked")
    if p.source.currency == p.target.currency:
        raise RuleViolation("payload.target.currency", "a conversion needs two different currencies")
    if p.quote_expires_at is not None and e.occurred_at > p.quote_expires_at:
        quote = f"quote {p.quote_id}" if p.quote_id else "the quote"
        raise RuleViolation(
            "payload.quote_expires_at", f"{quote} expired at {p.quote_expires_at.isoformat()}, before the conversion"
        )
    f = figures(p.source.decimal, p.target.currency, Decimal(p.reference_rate), Decimal(p.markup))
    if Decimal(p.final_rate) != f.final_rate:
        raise RuleViolation("payload.final_rate", f"{p.final_rate} is not reference × (1 − markup) = {f.final_rate}")
    if p.target.decimal != f.target_amount:
        raise RuleViolation(
            "payload.target.amount", f"{p.target.amount} is not source × final rate = {f.target_amount}"
        )
    if p.source.minor > s.balance(p.source.currency):
        raise RuleViolation(
            "payload.source.amount",
            f"conversion of {_money(p.source)} exceeds seller {p.seller_id}'s available "
            f"{_minor(s.balance(p.source.currency), p.source.currency)}",
        )
    return replace(
        s,
        available=s.moved((p.source.currency, -p.source.minor), (p.target.currency, p.target.minor)),
        conversion_ids=s.conversion_ids.set(p.conversion_id, True),
    )


_RULES: Final[dict[type[Envelope], Callable[[Any, Any], State]]] = {
    OrderPlaced: _order_placed,
    OrderCancelled: _order_cancelled,
    DeliveryDelayed: _delivery_delayed,
    DeliveryConfirmed: _delivery_confirmed,
    TaxAssessed: _tax_assessed,
    TaxReversed: _tax_reversed,
    CompensationGranted: _compensated,
    PaymentAuthorized: _authorized,
    PaymentCaptured: _captured,
    PaymentFailed: _failed,
    RefundIssued: _refund,
    ChargebackOpened: _chargeback_opened,
    ChargebackResolved: _chargeback_resolved,
    FeeCharged: _once("payload.fee_id"),
    AdjustmentPosted: _once("payload.adjustment_id"),
    FundsReleased: _released,
    PayoutRequested: _payout_requested,
    PayoutSent: _payout_step("requested", "sent"),
    PayoutSettled: _payout_step("sent", "settled"),
    PayoutFailed: _payout_step("sent", "failed"),
    FundsHeld: _held,
    SellerFrozen: _frozen,
    SellerUnfrozen: _unfrozen,
    AmlCaseOpened: _case_opened,
    AmlCaseAction: _case_action,
    HoldReleased: _hold_released,
    DeficitRecovered: _recovered,
    FxConverted: _converted,
    FxQuoteLocked: _quote_locked,
    FxRatePublished: _once("payload.as_of"),
    ConfigPublished: _once("payload.version"),
    FxRevalued: _once("payload.revaluation_id"),
    FxPositionSettled: _once("payload.settlement_id"),
    FileImported: _once("payload.file_sha256"),
    LineImported: _once("payload.line_no"),
    SettlementReceived: _once("payload.settlement_id"),
    ExceptionRaised: _exception_raised,
    ExceptionCleared: _exception_closed,
    ExceptionResolved: _exception_closed,
}


#: Types only an empty stream accepts: their rules refuse them on any state an earlier event of the stream left.
#: A first attempt presumes the stream of such an event new instead of reading it (ADR 0046). A wrong presumption
#: costs a refused append, never a wrong answer: the event is given version 1 of its stream, which the store's
#: key then refuses.
OPENS_STREAM: Final[frozenset[type[Envelope]]] = frozenset({
    OrderPlaced, PaymentAuthorized, FeeCharged, AdjustmentPosted, AmlCaseOpened, FxRatePublished, ConfigPublished,
    FxRevalued, FxPositionSettled, FileImported, LineImported, SettlementReceived, ExceptionRaised,
})  # fmt: skip


def evolve(state: State, event: Envelope) -> State:
    """The stream's state after ``event``, or :class:`RuleViolation` if the state refuses it."""
    return _RULES[type(event)](state, event)


@dataclass(slots=True)
class StreamSnapshot:
    """A stream's state as of its latest stored version (0 for a new stream)."""

    name: str
    version: int = 0
    state: State = field(default_factory=OrderState)
