"""Every event type Quipu knows, and the one way raw input becomes a typed event.

``parse_event`` validates a raw JSON document (bytes or an already-decoded object) and
returns the typed envelope or an :class:`InvalidEvent` whose message names every field at
fault. ``canonical_bytes`` is the single serialisation the store keeps and the hash chain
covers (compact UTF-8 JSON in the schema's field order; ADR 0004).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Final, Union, get_args

import orjson
from pydantic import Field, TypeAdapter, ValidationError

from domain.adjustments import AdjustmentPosted
from domain.envelope import Envelope
from domain.fees import FeeCharged, FundsReleased
from domain.orders import OrderCancelled, OrderPlaced
from domain.payments import (
    ChargebackOpened,
    ChargebackResolved,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentFailed,
    RefundIssued,
)
from domain.payouts import PayoutFailed, PayoutRequested, PayoutSent
from ledger.errors import QuipuError

EVENT_CLASSES: Final[tuple[type[Envelope], ...]] = (
    OrderPlaced,
    OrderCancelled,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentFailed,
    RefundIssued,
    ChargebackOpened,
    ChargebackResolved,
    FeeCharged,
    FundsReleased,
    PayoutRequested,
    PayoutSent,
    PayoutFailed,
    AdjustmentPosted,
)

AnyEvent = Annotated[
    Union[
        OrderPlaced,
        OrderCancelled,
        PaymentAuthorized,
        PaymentCaptured,
        PaymentFailed,
        RefundIssued,
        ChargebackOpened,
        ChargebackResolved,
        FeeCharged,
        FundsReleased,
        PayoutRequested,
        PayoutSent,
        PayoutFailed,
        AdjustmentPosted,
    ],
    Field(discriminator="type"),
]

EVENT_TYPES: Final[dict[str, type[Envelope]]] = {
    get_args(cls.model_fields["type"].annotation)[0]: cls for cls in EVENT_CLASSES
}
CURRENT_VERSION: Final[dict[str, int]] = {
    name: get_args(cls.model_fields["schema_version"].annotation)[0] for name, cls in EVENT_TYPES.items()
}

_ADAPTER: Final = TypeAdapter(AnyEvent)

#: Upcasters by (type, from_version): each turns a stored body of that version into the
#: next version's shape. Stored bytes are never rewritten; upcasting happens on read.
UPCASTERS: Final[dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]]] = {}

_METHOD_KINDS: Final = frozenset({"card", "pix", "boleto", "oxxo", "account_money"})

#: Largest accepted event document, in bytes (a limit on everything).
MAX_EVENT_BYTES: Final = 64 * 1024


class InvalidEvent(QuipuError, ValueError):
    """Raw input that is not a valid event; ``problems`` name each field and reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _describe(error: ValidationError) -> list[str]:
    problems = []
    for e in error.errors(include_url=False):
        loc = e["loc"]
        # Drop the discriminator tags pydantic inserts into locations: the event type at
        # the top (``payment.captured.payload.psp``) and the method kind after ``method``.
        parts = [
            str(p)
            for i, p in enumerate(loc)
            if not (i == 0 and p in EVENT_TYPES) and not (i > 0 and loc[i - 1] == "method" and p in _METHOD_KINDS)
        ]
        field = ".".join(parts) or "event"
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        kind = e["type"]
        # Money errors are raised for the whole amount object; name the part at fault.
        if kind == "money_currency":
            field += ".currency"
        elif kind == "money_amount":
            field += ".amount"
        elif parts and parts[-1] == "amount" and kind == "string_type":
            got = "JSON number" if isinstance(e.get("input"), (int, float)) else type(e.get("input")).__name__
            msg = f'must be a decimal string such as "12.34", not a {got}'
        elif parts and parts[-1] == "amount" and kind == "string_pattern_mismatch":
            msg = f'{e.get("input")!r} is not a positive decimal string such as "12.34"'
        elif parts and parts[-1] == "currency" and kind == "string_pattern_mismatch":
            msg = f"{e.get('input')!r} is not a three-letter upper-case ISO 4217 code"
        problems.append(f"{field}: {msg}")
    return problems


def _upcast(doc: dict[str, Any]) -> dict[str, Any]:
    kind = doc.get("type")
    version = doc.get("schema_version")
    if not isinstance(kind, str) or kind not in CURRENT_VERSION or not isinstance(version, int):
        return doc
    while version < CURRENT_VERSION[kind]:
        step = UPCASTERS.get((kind, version))
        if step is None:
            return doc
        doc = step(doc)
        version += 1
        doc["schema_version"] = version
    return doc


def parse_event(raw: bytes | str | dict[str, Any]) -> Envelope:
    """A typed event from raw JSON, or :class:`InvalidEvent` naming every bad field."""
    if isinstance(raw, (bytes, str)):
        size = len(raw.encode() if isinstance(raw, str) else raw)
        if size > MAX_EVENT_BYTES:
            raise InvalidEvent([f"event: {size} bytes is larger than the limit of {MAX_EVENT_BYTES}"])
        if not UPCASTERS:
            # Fast path: pydantic parses and validates the JSON in one pass. Anything it
            # refuses goes through the slow path below, which words the errors.
            try:
                fast: Envelope = _ADAPTER.validate_json(raw)
            except ValidationError:
                pass
            else:
                return fast
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent([f"event: not valid JSON ({exc})"]) from None
    else:
        doc = raw
    if not isinstance(doc, dict):
        raise InvalidEvent(["event: must be a JSON object"])
    kind = doc.get("type")
    if "type" not in doc:
        raise InvalidEvent([f"type: required; one of {', '.join(sorted(EVENT_TYPES))}"])
    if isinstance(kind, str) and kind not in EVENT_TYPES:
        known = ", ".join(sorted(EVENT_TYPES))
        raise InvalidEvent([f"type: unknown event type {kind!r}; known types: {known}"])
    version = doc.get("schema_version")
    if isinstance(kind, str) and isinstance(version, int) and version > CURRENT_VERSION[kind]:
        raise InvalidEvent([f"schema_version: {kind} has no version {version} (current is {CURRENT_VERSION[kind]})"])
    try:
        event: Envelope = _ADAPTER.validate_python(_upcast(dict(doc)))
    except ValidationError as exc:
        raise InvalidEvent(_describe(exc)) from None
    return event


def canonical_bytes(event: Envelope) -> bytes:
    """The bytes stored for an event and covered by the hash chain.

    Compact JSON, UTF-8, fields in the schema's declared order (pydantic's serialiser,
    deterministic for a given schema version), amounts normalised to their currency's
    exponent. The store keeps these exact bytes; the chain hashes them as stored.
    """
    return event.__pydantic_serializer__.to_json(event)


def decode_stored(state: bytes) -> Envelope:
    """A stored body back into its typed event (trusted input: it was validated at append)."""
    return parse_event(orjson.loads(state))


def json_schemas() -> dict[str, Any]:
    """The JSON Schema of every event type, keyed by type name."""
    return {name: cls.model_json_schema() for name, cls in sorted(EVENT_TYPES.items())}
