"""Event validation: every bad input is refused with an error naming the field and why."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from domain.catalog import EVENT_TYPES, MAX_EVENT_BYTES, InvalidEvent, canonical_bytes, json_schemas, parse_event
from tests.factories import adjustment, authorized, captured, fee

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = doc
        for p in parents:
            node = node[p]
        node[leaf] = value

    return mutate


def _drop(path: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = doc
        for p in parents:
            node = node[p]
        del node[leaf]

    return mutate


BAD: list[tuple[str, Mutation, str]] = [
    ("json number", _set("payload.amount.amount", 10.5), "payload.amount.amount: must be a decimal string"),
    ("json integer", _set("payload.amount.amount", 10), "payload.amount.amount: must be a decimal string"),
    ("too many decimals", _set("payload.amount.amount", "1.234"), "payload.amount.amount: 1.234 has too many decimals"),
    ("negative", _set("payload.amount.amount", "-5.00"), "payload.amount.amount: '-5.00' is not a positive"),
    ("zero", _set("payload.amount.amount", "0.00"), "payload.amount.amount: must be greater than zero"),
    ("exponent notation", _set("payload.amount.amount", "1e3"), "payload.amount.amount: '1e3'"),
    ("unknown currency", _set("payload.amount.currency", "XYZ"), "payload.amount.currency: unknown currency 'XYZ'"),
    ("lower-case currency", _set("payload.amount.currency", "brl"), "payload.amount.currency: 'brl' is not"),
    ("naive time", _set("occurred_at", "2026-10-01T10:00:00"), "occurred_at: Input should have timezone info"),
    ("not a time", _set("occurred_at", "yesterday"), "occurred_at:"),
    ("bad event id", _set("event_id", "42"), "event_id:"),
    ("missing field", _drop("payload.psp"), "payload.psp: Field required"),
    ("unknown field", _set("payload.colour", "red"), "payload.colour: Extra inputs are not permitted"),
    ("unknown type", _set("type", "payment.teleported"), "type: unknown event type 'payment.teleported'"),
    ("missing type", _drop("type"), "type: required; one of adjustment.posted"),
    ("missing version", _drop("schema_version"), "schema_version: Field required"),
    ("future version", _set("schema_version", 9), "schema_version: payment.captured has no version 9"),
    ("empty source", _set("source", ""), "source:"),
    ("bad id characters", _set("payload.payment_id", "p 1;DROP"), "payload.payment_id:"),
]
#: Only an authorisation carries a payment method.
BAD_AUTHORIZATION: list[tuple[str, Mutation, str]] = [
    ("unknown method", _set("payload.method.kind", "cash"), "payload.method.kind: 'cash' is not one of 'card', 'pix'"),
    ("huge method", _set("payload.method.kind", "1" + "0" * 5000), "payload.method.kind: '1000000000000000"),
]
CASES = [(name, "captured", mutate, message) for name, mutate, message in BAD] + [
    (name, "authorized", mutate, message) for name, mutate, message in BAD_AUTHORIZATION
]


@pytest.mark.parametrize(("name", "base", "mutate", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_names_the_field_and_the_reason(name: str, base: str, mutate: Mutation, message: str) -> None:
    doc = captured("p1", "10.00") if base == "captured" else authorized("p1", "10.00")
    mutate(doc)
    for raw in (doc, orjson.dumps(doc)):
        with pytest.raises(InvalidEvent) as info:
            parse_event(raw)
        assert message in str(info.value), str(info.value)
        assert len(str(info.value)) < 2000, "a refusal never repeats a long input back whole"


def test_zero_exponent_currency_takes_no_decimals() -> None:
    with pytest.raises(InvalidEvent, match=r"payload\.amount\.amount: 100\.5 has too many decimals for CLP"):
        parse_event(captured("p1", "100.5", "CLP"))
    assert parse_event(captured("p1", "100", "CLP")).payload.amount.minor == 100  # type: ignore[attr-defined]


def test_not_json_and_not_an_object_and_too_large_are_refused() -> None:
    with pytest.raises(InvalidEvent, match="event: not valid JSON"):
        parse_event(b"{nope")
    with pytest.raises(InvalidEvent, match="event: must be a JSON object"):
        parse_event(b"[1, 2]")
    huge = b'{"x":"' + b"a" * MAX_EVENT_BYTES + b'"}'
    with pytest.raises(InvalidEvent, match="larger than the limit"):
        parse_event(huge)


def test_card_number_cannot_be_smuggled_in_as_a_token() -> None:
    doc = authorized("p1", "10.00")
    doc["payload"]["method"] = {"kind": "card", "brand": "visa", "token": "4111111111111111", "last4": "1111"}
    with pytest.raises(InvalidEvent, match=r"payload\.method\.token"):
        parse_event(doc)


def test_adjustment_needs_a_reason_an_author_and_known_accounts() -> None:
    good = adjustment("a1", [("seller:S1:available:BRL", "debit", "1.00", "BRL"),
                             ("platform:main:adjustments:BRL", "credit", "1.00", "BRL")])  # fmt: skip
    parse_event(good)
    for path, message in [("payload.reason", "payload.reason:"), ("payload.author", "payload.author:")]:
        doc = copy.deepcopy(good)
        _set(path, "")(doc)
        with pytest.raises(InvalidEvent, match=message):
            parse_event(doc)
    doc = copy.deepcopy(good)
    doc["payload"]["lines"][0]["account"] = "seller:S1:piggybank:BRL"
    with pytest.raises(InvalidEvent, match=r"payload\.lines\.0\.account: purpose 'piggybank' is not in the chart"):
        parse_event(doc)


def test_canonical_bytes_normalise_amounts_and_are_stable() -> None:
    a = captured("p1", "10.5")
    b = copy.deepcopy(a)
    b["payload"]["amount"]["amount"] = "10.50"
    assert canonical_bytes(parse_event(a)) == canonical_bytes(parse_event(b))
    assert b'"amount":"10.50"' in canonical_bytes(parse_event(a))
    # Re-parsing the canonical bytes gives the same bytes.
    once = canonical_bytes(parse_event(a))
    assert canonical_bytes(parse_event(once)) == once


def test_every_event_type_has_a_json_schema() -> None:
    schemas = json_schemas()
    assert set(schemas) == set(EVENT_TYPES)
    for name, schema in schemas.items():
        assert schema["properties"]["type"]["const"] == name
        assert "payload" in schema["required"]


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("source", "pos 4111111111111111"),
        ("payload.reason", "customer card 4111 1111 1111 1111 declined"),
        ("payload.reason", "5500-0000-0000-0004 expired"),
    ],
)
def test_a_card_number_anywhere_is_refused_without_echoing_it(path: str, text: str) -> None:
    from domain.catalog import parse_event as parse
    from tests.factories import ev

    doc = ev("payment.failed", {"payment_id": "p1", "reason": "declined"})
    if path == "source":
        doc["source"] = text
    else:
        doc["payload"]["reason"] = text
    with pytest.raises(InvalidEvent) as info:
        parse(orjson.dumps(doc))
    message = str(info.value)
    assert message.startswith(f"{path}: looks like a card number (PAN)")
    digits = "".join(ch for ch in text if ch.isdigit())
    assert digits not in message.replace(" ", "").replace("-", "")


def test_long_numbers_that_are_not_card_numbers_pass() -> None:
    # Fails the Luhn check; and a 47-digit boleto barcode is not a 13-19 digit run.
    from tests.factories import ev

    ok = ev("payment.failed", {"payment_id": "p1", "reason": "ticket 4111111111111112"})
    parse_event(orjson.dumps(ok))
    boleto = authorized("p2", "10.00")
    boleto["payload"]["method"] = {"kind": "boleto", "barcode": "4" * 47}
    parse_event(boleto)
    voucher = authorized("p3", "10.00")
    voucher["payload"]["method"] = {"kind": "oxxo", "voucher": "4111111111111111"}  # a voucher, by its field
    parse_event(voucher)


def test_a_pan_in_a_bad_event_is_not_echoed_in_the_validation_error() -> None:
    doc = captured("p1", "10.00")
    doc["payload"]["seller_id"] = "4111111111111111 x"  # invalid id characters: the error must not echo it
    with pytest.raises(InvalidEvent) as info:
        parse_event(doc)
    assert "4111111111111111" not in str(info.value)


def test_every_event_of_the_default_demo_month_is_valid() -> None:
    """The demo's identifiers (Pix end-to-end ids, vouchers, references) must never look like card numbers."""
    from adapters.demo import generate

    problems = []
    for event in generate():
        try:
            parse_event(orjson.dumps(event))
        except InvalidEvent as exc:
            problems.append(str(exc))
    assert problems == []


def test_text_and_parsed_document_give_the_same_event_for_every_demo_event() -> None:
    # Text usually takes the short way (the model the type and version in it name), a dict the full one.
    from benchmarks.common import demo_lines

    for line in demo_lines(7, 600):
        text = line.encode() if isinstance(line, str) else line
        assert parse_event(text) == parse_event(orjson.loads(text))


def test_the_type_hint_in_the_text_never_decides_the_type() -> None:
    doc = fee("f1", "1.00")
    text = orjson.dumps(doc)
    # Repeated keys: the last one counts, as in every JSON parser here. The hint finds the first.
    repeated = text[:-1] + b',"type":"order.placed"}'
    with pytest.raises(InvalidEvent) as exc:
        parse_event(repeated)
    assert any(p.startswith("payload.order_id: Field required") for p in exc.value.problems), exc.value.problems
    # A hint inside the payload, before the top-level fields: ignored for the real ones.
    doc_first = {"payload": {**doc["payload"], "type": "order.placed", "schema_version": 1}}
    nested = orjson.dumps({**doc_first, **{k: v for k, v in doc.items() if k != "payload"}})
    with pytest.raises(InvalidEvent) as exc:
        parse_event(nested)
    assert exc.value.problems == [
        "payload.type: Extra inputs are not permitted",
        "payload.schema_version: Extra inputs are not permitted",
    ]
    # Fields in another order (no hint) are the same event.
    reordered = orjson.dumps(dict(reversed(list(doc.items()))))
    assert parse_event(reordered) == parse_event(text)
