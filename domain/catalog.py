"""Every event type Quipu knows, and the one way raw input becomes a typed event.

``parse_event`` validates a raw JSON document (bytes or an already-decoded object) and
returns the typed envelope or an :class:`InvalidEvent` whose message names every field at
fault. ``canonical_bytes`` is the single serialisation the store keeps and the hash chain
covers (compact UTF-8 JSON in the schema's field order; ADR 0004).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final, get_args

import orjson
from pydantic import BaseModel, ValidationError

from domain.adjustments import AdjustmentPosted
from domain.aml.events import AmlCaseAction, AmlCaseOpened, SellerFrozen, SellerUnfrozen
from domain.config_events import ConfigPublished
from domain.deliveries import DeliveryConfirmed
from domain.envelope import Envelope
from domain.fees import FeeCharged, FundsReleased
from domain.fx_events import FxConverted, FxPositionSettled, FxQuoteLocked, FxRatePublished, FxRevalued
from domain.holds import DeficitRecovered, FundsHeld, HoldReleased
from domain.logistics import CompensationGranted, DeliveryDelayed
from domain.orders import OrderCancelled, OrderPlaced
from domain.payments import (
    ChargebackOpened,
    ChargebackResolved,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentCapturedV1,
    PaymentFailed,
    RefundIssued,
)
from domain.payouts import PayoutFailed, PayoutRequested, PayoutRequestedV1, PayoutSent, PayoutSettled
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
from ledger.pan import contains_pan, masked

EVENT_CLASSES: Final[tuple[type[Envelope], ...]] = (
    OrderPlaced,
    OrderCancelled,
    DeliveryDelayed,
    DeliveryConfirmed,
    CompensationGranted,
    TaxAssessed,
    TaxReversed,
    PaymentAuthorized,
    PaymentCapturedV1,
    PaymentCaptured,
    PaymentFailed,
    RefundIssued,
    ChargebackOpened,
    ChargebackResolved,
    FeeCharged,
    FundsReleased,
    PayoutRequestedV1,
    PayoutRequested,
    PayoutSent,
    PayoutSettled,
    PayoutFailed,
    FundsHeld,
    HoldReleased,
    DeficitRecovered,
    AdjustmentPosted,
    FxRatePublished,
    FxQuoteLocked,
    FxConverted,
    FxRevalued,
    FxPositionSettled,
    ConfigPublished,
    SellerFrozen,
    SellerUnfrozen,
    AmlCaseOpened,
    AmlCaseAction,
    FileImported,
    LineImported,
    SettlementReceived,
    ExceptionRaised,
    ExceptionCleared,
    ExceptionResolved,
)


def _tag(cls: type[Envelope], field: str) -> Any:
    return get_args(cls.model_fields[field].annotation)[0]


#: Every (type, schema version) Quipu accepts, and the class that validates it.
VERSIONS: Final[dict[tuple[str, int], type[Envelope]]] = {
    (_tag(cls, "type"), _tag(cls, "schema_version")): cls for cls in EVENT_CLASSES
}
#: The current (highest) version of each type.
CURRENT_VERSION: Final[dict[str, int]] = {}
for _kind, _version in VERSIONS:
    CURRENT_VERSION[_kind] = max(_version, CURRENT_VERSION.get(_kind, 0))
#: Each type's current class.
EVENT_TYPES: Final[dict[str, type[Envelope]]] = {k: VERSIONS[(k, v)] for k, v in sorted(CURRENT_VERSION.items())}


def _captured_v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "payload": {**doc["payload"], "acquirer_reference": None}}


def _payout_v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "payload": {**doc["payload"], "fee": None, "route": None, "travel_rule": None}}


#: Upcasters by (type, from_version): each turns a body of that version into the next
#: version's shape. Stored bytes are never rewritten; upcasting happens on read.
UPCASTERS: Final[dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]]] = {
    ("payment.captured", 1): _captured_v1_to_v2,
    ("payout.requested", 1): _payout_v1_to_v2,
}

_METHOD_KINDS: Final = frozenset({"card", "pix", "boleto", "oxxo", "account_money"})

#: Largest accepted event document, in bytes (a limit on everything).
MAX_EVENT_BYTES: Final = 64 * 1024


class InvalidEvent(QuipuError, ValueError):
    """Raw input that is not a valid event; ``problems`` name each field and reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _shown(value: object, most: int = 40) -> str:
    """A value as a refusal quotes it: its repr, cut short (a 5,000-digit amount is not repeated back whole)."""
    text = repr(value)
    return text if len(text) <= most else f"{text[:most]}… ({len(str(value))} characters)"


def _describe(error: ValidationError) -> list[str]:
    problems = []
    for e in error.errors(include_url=False):
        loc = e["loc"]
        # Drop the discriminator tag pydantic inserts after ``method`` (``payload.method.card.last4``).
        parts = [str(p) for i, p in enumerate(loc) if not (i > 0 and loc[i - 1] == "method" and p in _METHOD_KINDS)]
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
            msg = f'{_shown(e.get("input"))} is not a positive decimal string such as "12.34"'
        elif kind == "union_tag_invalid":  # pydantic's message repeats the tag whole, however long
            ctx = e.get("ctx") or {}
            field += "." + str(ctx.get("discriminator", "")).strip("'")
            msg = f"{_shown(ctx.get('tag'))} is not one of {ctx.get('expected_tags')}"
        elif parts and parts[-1] == "currency" and kind == "string_pattern_mismatch":
            msg = f"{_shown(e.get('input'))} is not a three-letter upper-case ISO 4217 code"
        problems.append(f"{field}: {msg}")
    return problems


def parse_event(raw: bytes | str | dict[str, Any]) -> Envelope:
    """The event as posted, validated against its own version's schema, or :class:`InvalidEvent`.

    An older version is accepted and kept as posted (its canonical bytes are its own); use
    :func:`to_current` for the current shape.
    """
    data: bytes | None = None
    if isinstance(raw, (bytes, str)):
        data = raw.encode() if isinstance(raw, str) else raw
        if len(data) > MAX_EVENT_BYTES:
            raise InvalidEvent([f"event: {len(data)} bytes is larger than the limit of {MAX_EVENT_BYTES}"])
        if (hinted := _validated_as_hinted(data)) is not None:
            return hinted
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent([f"event: not valid JSON ({exc})"]) from None
    else:
        doc = raw
    if not isinstance(doc, dict):
        raise InvalidEvent(["event: must be a JSON object"])
    kind = doc.get("type")
    if "type" not in doc:
        raise InvalidEvent([f"type: required; one of {', '.join(sorted(EVENT_TYPES))}"])
    if not isinstance(kind, str) or kind not in EVENT_TYPES:
        known = ", ".join(sorted(EVENT_TYPES))
        raise InvalidEvent([masked(f"type: unknown event type {_shown(kind)}; known types: {known}")])
    version = doc.get("schema_version")
    if "schema_version" not in doc:
        raise InvalidEvent(["schema_version: Field required"])
    cls = VERSIONS.get((kind, version)) if type(version) is int else None
    if cls is None:
        known_versions = sorted(v for k, v in VERSIONS if k == kind)
        raise InvalidEvent(
            [masked(f"schema_version: {kind} has no version {_shown(version)} (known: {known_versions})")]
        )
    try:
        # From bytes, pydantic parses and validates in one pass (faster than from the dict).
        event: Envelope = cls.model_validate_json(data) if data is not None else cls.model_validate(doc)
    except ValidationError as exc:
        raise InvalidEvent([masked(p) for p in _describe(exc)]) from None
    return _without_card_numbers(event, data if data is not None else orjson.dumps(doc))


#: ``"type":"…","schema_version":N`` as the canonical form and most producers write them: side by side, compact.
_HINT: Final = re.compile(rb'"type":"([a-z_.]{1,64})","schema_version":([0-9]{1,4})[,}]')


def _validated_as_hinted(data: bytes) -> Envelope | None:
    """The event, when the type and version found in the text by :data:`_HINT` name a model that validates it;
    ``None`` sends it down the full path, which names every problem.

    This saves parsing the document once more just to read those two fields (~1 µs an event). The hint can be
    wrong (another ``"type"`` key, in the payload or repeated), but it only picks the model: the model checks
    ``type`` and ``schema_version`` with literals, on the document as a whole (the last of a repeated key, as in
    the full path), so an event is never accepted as another type or version than the full path would give it.
    """
    hint = _HINT.search(data)
    if hint is None:
        return None
    cls = VERSIONS.get((hint[1].decode("ascii"), int(hint[2])))
    if cls is None:
        return None
    try:
        event: Envelope = cls.model_validate_json(data)
    except ValidationError:
        return None
    return _without_card_numbers(event, data)


def _without_card_numbers(event: Envelope, text: bytes) -> Envelope:
    # Fast path: only when the raw text holds a PAN-like run is the event walked field by field.
    if contains_pan(text):
        _refuse_card_numbers(event)
    return event


#: Structured fields whose own formats are long digit strings that are not card numbers: amounts and rates,
#: boleto barcodes, OXXO vouchers, Pix end-to-end ids (ISPB + timestamp digits), acquirer and bank references.
_NOT_PAN_FIELDS: Final = frozenset(
    {"amount", "barcode", "voucher", "rate", "reference_rate", "final_rate", "markup", "end_to_end_id",
     "acquirer_reference", "bank_reference", "content", "sha256", "file_sha256", "exchange_rate", "event_ids"}
)  # fmt: skip


def _refuse_card_numbers(event: Envelope) -> None:
    """Refuse an event whose text holds a card number, naming the field and never the number."""
    found: list[str] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, str):
            if contains_pan(value):
                found.append(path)
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                if name not in _NOT_PAN_FIELDS:
                    walk(getattr(value, name), f"{path}.{name}" if path else name)
        elif isinstance(value, (tuple, list)):
            for i, item in enumerate(value):
                walk(item, f"{path}.{i}")

    walk(event, "")
    if found:
        raise InvalidEvent(
            [
                f"{path}: looks like a card number (PAN); send the processor's token, the BIN and the last four "
                "digits only"
                for path in found
            ]
        )


def refuse_nul(event: Envelope) -> None:
    """Refuse an event holding a NUL character (U+0000) in any text, naming each field.

    JSON can carry one (``"\\u0000"``) but PostgreSQL's text columns cannot keep it: an event recorded with
    one would stop every projection that copies the text. Checked on the write path only (the service
    calls it for new events), so a log written before the rule still reads.
    """
    found: list[str] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, str):
            if "\x00" in value:
                found.append(path)
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name), f"{path}.{name}" if path else name)
        elif isinstance(value, (tuple, list)):
            for i, item in enumerate(value):
                walk(item, f"{path}.{i}")
        elif isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in str(key):
                    found.append(f"{path} (a key)")
                else:
                    walk(item, f"{path}.{key}")

    walk(event, "")
    if found:
        raise InvalidEvent([f"{path}: holds a NUL character (U+0000), which no text may contain" for path in found])


def to_current(event: Envelope) -> Envelope:
    """The event in its type's current version (upcast step by step; unchanged if current)."""
    current = CURRENT_VERSION[event.type]
    if event.schema_version == current:
        return event
    doc = event.model_dump(mode="json")
    version = event.schema_version
    while version < current:
        doc = UPCASTERS[(event.type, version)](doc)
        version += 1
        doc["schema_version"] = version
    return VERSIONS[(event.type, current)].model_validate(doc)


def canonical_bytes(event: Envelope) -> bytes:
    """The bytes stored for an event and covered by the hash chain.

    Compact JSON, UTF-8, fields in the schema's declared order (pydantic's serialiser,
    deterministic for a given schema version), amounts normalised to their currency's
    exponent. The store keeps these exact bytes; the chain hashes them as stored.
    """
    return event.__pydantic_serializer__.to_json(event)


def decode_stored(state: bytes) -> Envelope:
    """A stored body as a typed event in its type's current version."""
    return to_current(parse_event(state))


def json_schemas(all_versions: bool = False) -> dict[str, Any]:
    """The JSON Schema of every event type's current version, keyed by type name
    (with ``all_versions``, every accepted version too, keyed ``type@version``)."""
    schemas: dict[str, Any] = {name: cls.model_json_schema() for name, cls in sorted(EVENT_TYPES.items())}
    if all_versions:
        for (name, version), cls in sorted(VERSIONS.items()):
            if version != CURRENT_VERSION[name]:
                schemas[f"{name}@{version}"] = cls.model_json_schema()
    return schemas
