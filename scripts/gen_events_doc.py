"""Write docs/events.md from the event catalogue, or check that it is up to date.

For every event type in ``domain.catalog.EVENT_TYPES`` (sorted by name) the page shows what
the event means (the payload's docstring), its payload fields (from the JSON Schema), the
journal entry it books (from the event class's docstring), one example event and the
postings the posting rules book for that example.

The examples are one small story (an order paid by card, a fee, a refund, a chargeback, a
release and a payout that bounces, ...). Before anything is written, each example is parsed
with ``domain.catalog.parse_event``, decided against its stream with ``domain.rules.evolve``
in story order, and booked with ``domain.posting_rules.entry_for``, so every example on the
page is an event ``quipu post`` accepts.

Usage::

    python scripts/gen_events_doc.py            # (re)write docs/events.md
    python scripts/gen_events_doc.py --check    # exit 1 if docs/events.md is stale

Either way it exits 2, writing nothing, if an example is invalid or an event type has none.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import inspect
import itertools
import re
import sys
import textwrap
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # running the file directly, without the editable install
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from pydantic import BaseModel, TypeAdapter  # noqa: E402

from domain.catalog import CURRENT_VERSION, EVENT_TYPES, InvalidEvent, json_schemas, parse_event  # noqa: E402
from domain.envelope import CountryCode, Envelope, Ident, Site, Text  # noqa: E402
from domain.posting_rules import entry_for  # noqa: E402
from domain.rules import RuleViolation, State, evolve, initial_state, stream_name  # noqa: E402
from ledger.accounts import Side  # noqa: E402
from ledger.money import format_amount  # noqa: E402

OUTPUT: Final = ROOT / "docs" / "events.md"

# --------------------------------------------------------------------------------------------
# The example story. Each event is decided in this order against the state its stream has
# reached; the first example of each type is the one the page shows.
# --------------------------------------------------------------------------------------------

_SELLER: Final = "S-1001"
_PSP: Final = "cielo"


def _brl(value: str) -> dict[str, str]:
    return {"amount": value, "currency": "BRL"}


#: An imported file's digest (the example's).
_SHA: Final = "9f2c" + "0" * 56 + "7a1e"

#: A rule file's text, as `quipu config publish` records it (shortened for the page).
_CONFIG_TEXT: Final = (
    'version = "2026-11-26"\n\n[[compensation]]\nsite = "BR"\neffective_from = "2026-01-01"\n'
    'threshold_days = 5\npercent = "10"\ncap = "50.00"\nfunded_by = "carrier"\n'
)

#: ICMS inside O-1002's 89.90 BRL: 89.90 × 18 / 118 = 13.713… → 13.71; net 76.19.
_ICMS_LINE: Final = {
    "name": "ICMS", "base": {"amount": "76.19", "currency": "BRL"}, "rate_pct": "18",
    "amount": {"amount": "13.71", "currency": "BRL"},
}  # fmt: skip


def _event(n: int, kind: str, when: str, source: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": str(uuid.UUID(int=n, version=4)),
        "type": kind,
        "schema_version": CURRENT_VERSION.get(kind, 1),
        "occurred_at": when,
        "source": source,
        "payload": payload,
    }


def story() -> list[dict[str, Any]]:
    """The example events, in the order they happen."""
    pay = {"payment_id": "P-1001", "seller_id": _SELLER, "psp": _PSP}
    wallet = {"seller_id": _SELLER}
    return [
        _event(1, "order.placed", "2026-10-01T10:00:00-03:00", "checkout-api", {
            "order_id": "O-1001", "site": "BR", "buyer_id": "B-2001", "seller_id": _SELLER,
            "total": _brl("150.00"), "seller_country": "CN",
        }),
        _event(2, "payment.authorized", "2026-10-01T10:00:05-03:00", "payments-gateway", {
            "payment_id": "P-1001", "order_id": "O-1001", "seller_id": _SELLER, "psp": _PSP,
            "amount": _brl("150.00"),
            "method": {"kind": "card", "brand": "visa", "installments": 3, "token": "tok_4f9a2c", "last4": "4242"},
        }),
        _event(3, "payment.captured", "2026-10-01T10:00:07-03:00", "payments-gateway", {
            **pay, "amount": _brl("150.00"), "acquirer_reference": "ARN-74958103",
        }),
        _event(4, "fee.charged", "2026-10-01T10:00:08-03:00", "fees-service", {
            "fee_id": "F-1001", "seller_id": _SELLER, "kind": "commission", "amount": _brl("18.00"),
            "payment_id": "P-1001",
        }),
        _event(5, "refund.issued", "2026-10-02T15:30:00-03:00", "payments-gateway", {
            "refund_id": "R-1001", **pay, "amount": _brl("20.00"),
        }),
        _event(6, "chargeback.opened", "2026-10-03T09:00:00-03:00", "payments-gateway", {
            "chargeback_id": "CB-1001", **pay, "amount": _brl("30.00"), "reason_code": "10.4",
        }),
        _event(7, "chargeback.resolved", "2026-10-20T11:00:00-03:00", "payments-gateway", {
            "chargeback_id": "CB-1001", **pay, "amount": _brl("30.00"), "outcome": "won",
        }),
        _event(8, "funds.released", "2026-10-21T00:00:00-03:00", "settlement", {
            "release_id": "L-1001", **wallet, "amount": _brl("112.00"),
        }),
        _event(9, "payout.requested", "2026-10-26T10:00:00-03:00", "payouts-service", {
            "payout_id": "PO-1001", **wallet, "amount": _brl("112.00"), "rail": "pix",
            "destination": "bank-account-S-1001-1", "fee": None, "route": None,
        }),
        _event(10, "payout.sent", "2026-10-26T10:05:00-03:00", "payouts-service", {
            "payout_id": "PO-1001", **wallet, "amount": _brl("112.00"), "bank_reference": "E60701190202610261305",
        }),
        _event(11, "payout.failed", "2026-10-26T16:40:00-03:00", "payouts-service", {
            "payout_id": "PO-1001", **wallet, "amount": _brl("112.00"), "reason": "destination account closed",
        }),
        _event(17, "fx.rate_published", "2026-10-27T13:00:00-03:00", "fx-import:ptax.csv", {
            "base": "BRL", "quote": "USD", "rate": "0.1834", "source": "BCB PTAX",
            "as_of": "2026-10-27T13:00:00-03:00",
        }),
        _event(30, "fx.quote_locked", "2026-10-27T13:00:30-03:00", "fx-service", {
            "quote_id": "Q-1001", **wallet, "source": _brl("100.00"),
            "target": {"amount": "17.97", "currency": "USD"}, "reference_rate": "0.1834", "markup": "0.02",
            "final_rate": "0.179732", "rate_source": "BCB PTAX", "rate_as_of": "2026-10-27T13:00:00-03:00",
            "expires_at": "2026-10-27T13:05:00-03:00",
        }),
        _event(18, "fx.converted", "2026-10-27T13:02:00-03:00", "fx-service", {
            "conversion_id": "FX-1001", **wallet, "source": _brl("100.00"),
            "target": {"amount": "17.97", "currency": "USD"}, "reference_rate": "0.1834", "markup": "0.02",
            "final_rate": "0.179732", "rate_source": "BCB PTAX", "rate_as_of": "2026-10-27T13:00:00-03:00",
            "quote_id": "Q-1001", "quote_expires_at": "2026-10-27T13:05:00-03:00",
        }),
        _event(25, "delivery.delayed", "2026-10-12T09:00:00-03:00", "carrier:correios", {
            "order_id": "O-1001", "shipment_id": "SH-1001", "carrier": "correios", "promised_on": "2026-10-05",
            "days_late": 7,
        }),
        _event(27, "delivery.confirmed", "2026-10-12T15:20:00-03:00", "carrier:correios", {
            "order_id": "O-1001", "shipment_id": "SH-1001", "carrier": "correios",
            "delivered_at": "2026-10-12T15:20:00-03:00",
        }),
        _event(26, "compensation.granted", "2026-10-13T00:00:00+00:00", "logistics-compensation", {
            "compensation_id": "LC-O-1001", "order_id": "O-1001", "buyer_id": "B-2001", "amount": _brl("15.00"),
            "funded_by": "carrier", "carrier": "correios",
            "rule": "logistics.toml 2026-11-26: BR more than 5 days late → 10% of the order total, at most 50.00 BRL, "
                    "funded by carrier",
        }),
        _event(31, "config.published", "2026-09-30T12:00:00-03:00", "config:ana", {
            "name": "logistics", "version": "2026-11-26", "effective_from": "2026-01-01",
            "sha256": hashlib.sha256(_CONFIG_TEXT.encode()).hexdigest(), "content": _CONFIG_TEXT,
            "published_by": "ana (finance)",
        }),
        _event(19, "funds.held", "2026-10-28T00:00:00-03:00", "settlement-run", {
            "hold_id": "H-1001", **wallet, "amount": _brl("2.00"), "reason": "reserve",
            "reference": "run-2026-10-28", "release_on": "2026-11-27",
        }),
        _event(20, "hold.released", "2026-11-27T00:00:00-03:00", "settlement-run", {
            "hold_id": "H-1001", **wallet, "amount": _brl("2.00"), "decided_by": "settlement-run (reserve due)",
        }),
        _event(21, "deficit.recovered", "2026-11-27T00:00:01-03:00", "settlement-run", {
            "recovery_id": "R-1001", **wallet, "amount": _brl("1.00"),
        }),
        _event(22, "payout.requested", "2026-11-27T10:00:00-03:00", "payouts-service", {
            "payout_id": "PO-1002", **wallet, "amount": _brl("10.00"), "rail": "pix",
            "destination": "bank-account-S-1001-2", "fee": _brl("0.50"),
            "route": {"chosen": "pix-brl", "table_version": "2026-11-26", "compared": [
                {"name": "pix-brl", "rail": "pix", "fee": "0.50", "total_cost": "0.50", "delivered": "10.00",
                 "days_to_arrive": 0, "eligible": True},
                {"name": "ted-brl", "rail": "bank_transfer", "fee": "8.50", "total_cost": "8.50",
                 "delivered": "10.00", "days_to_arrive": 1, "eligible": True},
            ]},
        }),
        _event(23, "payout.sent", "2026-11-27T10:00:02-03:00", "payouts-service", {
            "payout_id": "PO-1002", **wallet, "amount": _brl("10.00"), "bank_reference": "E60701190202611271300",
        }),
        _event(24, "payout.settled", "2026-11-27T10:00:09-03:00", "payouts-service", {
            "payout_id": "PO-1002", **wallet, "amount": _brl("10.00"), "settled_on": "2026-11-27",
        }),
        _event(32, "fx.revalued", "2026-10-31T23:59:59+00:00", "fx-accounting", {
            "revaluation_id": "RV-BRL-20261031", "currency": "BRL", "position": "100.00", "closing_rate": "0.19",
            "rate_source": "BCB PTAX", "rate_as_of": "2026-10-31T13:00:00-03:00", "carrying": "18.34",
            "revalued": "19.00", "difference": "0.66",
        }),
        _event(33, "fx.position_settled", "2026-11-02T15:00:00+00:00", "fx-accounting", {
            "settlement_id": "FXS-BRL-1", "sold": _brl("100.00"), "received": {"amount": "18.60", "currency": "USD"},
            "carrying": "18.34", "realised": "0.26", "counterparty": "LP-1",
        }),
        _event(34, "aml.case_opened", "2026-11-03T12:00:01+00:00", "aml-interception", {
            "case_id": "CASE-1001", **wallet, "site": "BR", "alert_ids": ["AML-STRUCT-1001"],
            "typologies": ["structuring"], "opened_by": "aml-interception",
        }),
        _event(35, "seller.frozen", "2026-11-03T12:00:01+00:00", "aml-interception", {
            "freeze_id": "FRZ-1001", **wallet, "case_id": "CASE-1001",
            "reason": "high-severity AML alert AML-STRUCT-1001 (structuring)",
        }),
        _event(36, "aml.case_action", "2026-11-04T15:00:00+00:00", "aml:ana", {
            "case_id": "CASE-1001", **wallet, "action": "clear", "by": "ana",
            "text": "legitimate B2B sales; documents verified", "assignee": None, "report": None,
        }),
        _event(37, "seller.unfrozen", "2026-11-04T15:00:00+00:00", "aml:ana", {
            "freeze_id": "FRZ-1001", **wallet, "case_id": "CASE-1001", "decided_by": "ana",
        }),
        _event(38, "recon.file_imported", "2026-10-23T00:00:00+00:00", "recon-import", {
            "file_sha256": _SHA, "file_name": "cielo-202610.csv", "source": _PSP, "source_kind": "processor",
            "format": "stripe-balance", "lines": 412,
        }),
        _event(39, "recon.line_imported", "2026-10-01T00:00:00+00:00", "recon-import", {
            "file_sha256": _SHA, "file_name": "cielo-202610.csv", "line_no": 2, "source": _PSP,
            "source_kind": "processor", "record_type": "payment", "reference": "P-1001",
            "batch_id": "cielo-PO-20261023-BRL-1", "direction": "credit", "gross": _brl("150.00"),
            "fee": _brl("4.60"), "net": _brl("145.40"), "booked_on": "2026-10-01", "value_date": "2026-10-23",
            "description": None, "exchange_rate": None,
        }),
        _event(40, "psp.settlement_received", "2026-10-23T12:00:00+00:00", "treasury", {
            "settlement_id": "cielo-PO-20261023-BRL-1", "psp": _PSP, "net": _brl("125.40"), "fee": _brl("4.60"),
            "value_date": "2026-10-23", "bank_account": "main-BRL",
            "items": [{"kind": "capture", "reference": "P-1001"}, {"kind": "refund", "reference": "R-1001"},
                      {"kind": "chargeback", "reference": "CB-1001"},
                      {"kind": "chargeback_reversal", "reference": "CB-1001"}],
        }),
        _event(41, "recon.exception_raised", "2026-10-31T23:59:59+00:00", "reconciliation", {
            "exception_id": "RXFEE1001", "level": 2, "category": "fee_mismatch", "reference": "P-1001",
            "source": _PSP, "ledger_amount": _brl("4.50"), "external_amount": _brl("4.60"),
            "difference": _brl("0.10"), "item_date": "2026-10-01", "found_on": "2026-10-31",
            "detail": "capture P-1001: processor fee 460 vs ledger 450 minor units of BRL",
            "evidence": {"event_ids": [str(uuid.UUID(int=3, version=4))], "lines": ["cielo-202610.csv:2"]},
        }),
        _event(42, "recon.exception_resolved", "2026-11-02T10:00:00-03:00", "reconciliation", {
            "exception_id": "RXFEE1001", "resolution": "adjusted", "decided_by": "ana",
            "note": "booked Cielo's extra fee; claim opened with Cielo", "adjustment_id": "ADJ-1001",
            "approved_by": None,
        }),
        _event(43, "recon.exception_raised", "2026-10-28T23:59:59+00:00", "reconciliation", {
            "exception_id": "RXBANK1001", "level": 3, "category": "missing_at_bank",
            "reference": "cielo-PO-20261023-BRL-1", "source": _PSP, "ledger_amount": _brl("125.40"),
            "external_amount": None, "difference": None, "item_date": "2026-10-23", "found_on": "2026-10-28",
            "detail": "cielo payout cielo-PO-20261023-BRL-1 of 12540 minor units of BRL has no bank credit",
            "evidence": {"event_ids": [str(uuid.UUID(int=40, version=4))], "lines": ["cielo-202610.csv:413"]},
        }),
        _event(44, "recon.exception_cleared", "2026-10-29T23:59:59+00:00", "reconciliation", {
            "exception_id": "RXBANK1001", "cleared_on": "2026-10-29", "detail": "matched by the run of 2026-10-29",
        }),
        _event(12, "adjustment.posted", "2026-10-31T18:00:00-03:00", "ops:maria", {
            "adjustment_id": "ADJ-1001",
            "reason": "Cielo's settlement report paid 0.01 less than captured for P-1001 (rounding)",
            "author": "ops:maria",
            "lines": [
                {"account": "platform:main:rounding:BRL", "side": "debit", "amount": _brl("0.01")},
                {"account": "psp:cielo:receivable:BRL", "side": "credit", "amount": _brl("0.01")},
            ],
        }),
        _event(13, "order.placed", "2026-10-04T12:00:00-03:00", "checkout-api", {
            "order_id": "O-1002", "site": "BR", "buyer_id": "B-2002", "seller_id": _SELLER,
            "total": _brl("89.90"),
        }),
        _event(28, "tax.assessed", "2026-10-04T12:00:00-03:00", "tax-assessment", {
            "assessment_id": "TAX-CONS-O-1002", "order_id": "O-1002", "seller_id": _SELLER, "site": "BR",
            "kind": "consumption", "lines": [_ICMS_LINE],
            "rule": "consumption_taxes.toml 2026-11-25: BR rule valid from 2000-01-01, tax included in the total",
        }),
        _event(14, "payment.authorized", "2026-10-04T12:00:04-03:00", "payments-gateway", {
            "payment_id": "P-1002", "order_id": "O-1002", "seller_id": _SELLER, "psp": _PSP,
            "amount": _brl("89.90"), "method": {"kind": "boleto", "barcode": "2" * 47},
        }),
        _event(15, "payment.failed", "2026-10-07T23:59:59-03:00", "payments-gateway", {
            "payment_id": "P-1002", "reason": "boleto expired unpaid",
        }),
        _event(16, "order.cancelled", "2026-10-08T00:05:00-03:00", "checkout-api", {
            "order_id": "O-1002", "reason": "payment failed: boleto expired unpaid",
        }),
        _event(29, "tax.reversed", "2026-10-08T00:05:00-03:00", "tax-assessment", {
            "assessment_id": "TAX-CONS-O-1002", "order_id": "O-1002", "seller_id": _SELLER, "site": "BR",
            "kind": "consumption", "lines": [_ICMS_LINE], "reason": "the order was cancelled",
        }),
    ]  # fmt: skip


class ExampleError(Exception):
    """An example that the ledger would not accept, or an event type without an example."""


def checked_examples() -> dict[str, tuple[dict[str, Any], Envelope]]:
    """Per event type: the example shown (raw) and its parsed form, after checking the story."""
    states: dict[str, State] = {}
    shown: dict[str, tuple[dict[str, Any], Envelope]] = {}
    for raw in story():
        try:
            event = parse_event(orjson.dumps(raw))
        except InvalidEvent as exc:
            raise ExampleError(f"example {raw['type']} is not a valid event: {exc}") from None
        if event.schema_version != CURRENT_VERSION[event.type]:
            raise ExampleError(f"example {event.type} is not of the current schema version")
        name = stream_name(event)
        try:
            states[name] = evolve(states.get(name, initial_state(name)), event)
        except RuleViolation as exc:
            raise ExampleError(f"example {event.type} breaks a rule of stream {name}: {exc}") from None
        entry_for(event)  # raises if it would not balance
        shown.setdefault(event.type, (raw, event))
    missing = sorted(set(EVENT_TYPES) - set(shown))
    if missing:
        raise ExampleError(f"no example for {', '.join(missing)}: add one to story() in {Path(__file__).name}")
    return shown


# --------------------------------------------------------------------------------------------
# Field descriptions: the JSON Schema's, or else the attribute docstring in the source.
# --------------------------------------------------------------------------------------------


def _attribute_docstrings(cls: type) -> dict[str, str]:
    """``field: "docstring"`` pairs written directly under the fields of ``cls``."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    tree = ast.parse(source)
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = inspect.cleandoc(following.value.value)
    return docs


def _field_doc(cls: type, name: str) -> str:
    for klass in cls.__mro__:
        doc = _attribute_docstrings(klass).get(name)
        if doc:
            return doc
    return ""


def _models(cls: type[BaseModel]) -> Iterator[type[BaseModel]]:
    """``cls`` and every model reachable from its fields' annotations."""
    seen: set[type[BaseModel]] = set()
    todo: list[Any] = [cls]
    while todo:
        item = todo.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            if item in seen:
                continue
            seen.add(item)
            yield item
            todo.extend(f.annotation for f in item.model_fields.values())
        else:
            todo.extend(getattr(item, "__args__", ()))
            todo.extend(getattr(item, "__metadata__", ()))
            origin = getattr(item, "__origin__", None)
            if origin is not None:
                todo.append(origin)


# --------------------------------------------------------------------------------------------
# Rendering.
# --------------------------------------------------------------------------------------------

_ROLE: Final = re.compile(r":[a-z]+:`~?([^`]+)`")
_NAMED: Final[list[tuple[str, dict[str, Any], str]]] = [
    ("identifier", TypeAdapter(Ident).json_schema(), "1–64 characters: letters, digits, `.`, `_`, `-`; "
     "starts with a letter or digit"),
    ("site", TypeAdapter(Site).json_schema(), "one of the 18 country sites: "
     + ", ".join(f"`{s}`" for s in TypeAdapter(Site).json_schema()["enum"])),
    ("text", TypeAdapter(Text).json_schema(), "free text, 1–500 characters"),
    ("country code", TypeAdapter(CountryCode).json_schema(), "ISO 3166-1 alpha-2, upper case (`CN`)"),
]  # fmt: skip


def md(text: str) -> str:
    """reStructuredText inline markup as Markdown: ``x`` and :role:`x` become `x`."""
    return _ROLE.sub(r"`\1`", text.replace("``", "`"))


def cell(text: str) -> str:
    """Text fit for one Markdown table cell."""
    return " ".join(md(text).split()).replace("|", "\\|")


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")


def _constraint_free(prop: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in prop.items() if k not in ("title", "description", "default")}


def type_of(prop: dict[str, Any]) -> str:
    """A short human name for a JSON Schema property's type."""
    bare = _constraint_free(prop)
    for name, schema, _ in _NAMED:
        if bare == schema:
            return f"[{name}](#formats)"
    if "$ref" in prop:
        target = prop["$ref"].rsplit("/", 1)[-1]
        return f"[{target}](#{anchor(target)})"
    if "anyOf" in prop:
        return " or ".join(type_of(p) for p in prop["anyOf"])
    if "oneOf" in prop:
        options = ", ".join(type_of(p) for p in prop["oneOf"])
        key = prop.get("discriminator", {}).get("propertyName")
        return f"one of {options}" + (f" (chosen by `{key}`)" if key else "")
    if "const" in prop:
        return f"`{orjson.dumps(prop['const']).decode()}`"
    if "enum" in prop:
        return "one of " + ", ".join(f"`{v}`" for v in prop["enum"])
    kind = prop.get("type")
    if kind == "null":
        return "null"
    if kind == "array":
        items = type_of(prop.get("items", {}))
        low, high = prop.get("minItems"), prop.get("maxItems")
        size = f", {low}–{high} items" if low is not None and high is not None else ""
        return f"list of {items}{size}"
    if kind == "integer":
        low, high = prop.get("minimum"), prop.get("maximum")
        return f"integer {low}–{high}" if low is not None and high is not None else "integer"
    if kind == "string":
        fmt = {"uuid": "UUID", "date-time": "date-time with UTC offset"}.get(prop.get("format", ""), "string")
        parts = [fmt]
        low, high = prop.get("minLength"), prop.get("maxLength")
        if low is not None and high is not None:
            parts.append(f"{low}–{high} chars")
        if "pattern" in prop:
            parts.append(f"matching `{prop['pattern']}`")
        return ", ".join(parts)
    return str(kind)


def _required(name: str, prop: dict[str, Any], required: Sequence[str], tags: frozenset[str]) -> str:
    if name in required or (name in tags and "const" in prop):
        return "yes"  # a tag has a default in the schema, but parse_event refuses an object without it
    if "default" in prop:
        return f"no (default `{orjson.dumps(prop['default']).decode()}`)"
    return "no"


def _tags(node: Any) -> Iterator[str]:
    """Every discriminator property name inside a JSON Schema."""
    if isinstance(node, dict):
        key = node.get("discriminator", {}).get("propertyName") if isinstance(node.get("discriminator"), dict) else None
        if key:
            yield key
        for value in node.values():
            yield from _tags(value)
    elif isinstance(node, list):
        for value in node:
            yield from _tags(value)


def fields_table(
    schema: dict[str, Any],
    cls: type,
    tags: frozenset[str],
    prefix: str = "",
    overrides: dict[str, tuple[str, str]] | None = None,
) -> list[str]:
    """A Markdown table of a JSON Schema object's properties; ``overrides`` give (type, required)."""
    lines = ["| field | type | required | description |", "|---|---|---|---|"]
    required = schema.get("required", [])
    for name, prop in schema["properties"].items():
        kind, needed = (overrides or {}).get(name, (type_of(prop), _required(name, prop, required, tags)))
        doc = prop.get("description") or _field_doc(cls, name)
        lines.append(f"| `{prefix}{name}` | {cell(kind)} | {needed} | {cell(doc)} |")
    return lines


def _books(cls: type[Envelope], kind: str) -> str:
    doc = inspect.cleandoc(cls.__doc__ or "")
    head = f"``{kind}``:"
    if not doc.startswith(head):
        raise ExampleError(f"{cls.__name__}'s docstring must start with {head} and then say what it books")
    return " ".join(md(doc[len(head) :]).split())


def _entry_table(event: Envelope) -> list[str]:
    entry = entry_for(event)
    if entry is None:
        return ["It books no journal entry."]
    lines = [f"Memo `{entry.memo}`:", "", "| account | debit | credit |", "|---|--:|--:|"]
    for p in entry.postings:
        amount = f"{format_amount(p.amount_minor, p.currency)} {p.currency}"
        dr, cr = (amount, "") if p.side is Side.DEBIT else ("", amount)
        lines.append(f"| `{p.account}` | {dr} | {cr} |")
    return lines


def render() -> str:
    """The whole of docs/events.md."""
    schemas = json_schemas()
    examples = checked_examples()
    classes: dict[str, type[BaseModel]] = {}
    for cls in EVENT_TYPES.values():
        for model in _models(cls):
            classes.setdefault(model.__name__, model)
    tags = frozenset({"type", *_tags(schemas)})  # ``type`` is the tag of the catalogue's union
    shared: dict[str, dict[str, Any]] = {}
    for kind, schema in schemas.items():
        payload_def = schema["properties"]["payload"]["$ref"].rsplit("/", 1)[-1]
        for name, definition in schema.get("$defs", {}).items():
            if name != payload_def and shared.setdefault(name, definition) != definition:
                raise ExampleError(f"two different schemas are both called {name} (seen in {kind})")

    out = [
        "# Event catalogue",
        "",
        "<!-- Generated by scripts/gen_events_doc.py from domain/catalog.py. Do not edit by hand: change the",
        "     event classes, then run `python scripts/gen_events_doc.py` (CI runs it with --check). -->",
        "",
        "Every event is one JSON object: the envelope below plus a `payload` whose shape the pair",
        "(`type`, `schema_version`) selects. Unknown fields are refused. Amounts are decimal strings, never JSON",
        "numbers, with at most the currency's ISO 4217 decimals ([ADR 0001](adr/0001-money-representation.md)).",
        "`quipu schema` prints the JSON Schema of every type; `quipu post FILE` takes one event per line.",
        "",
        "Each example below is checked when this page is generated: it parses, it passes the write-side",
        "rules of its stream in the order of the story (order `O-1001` paid by card and partly refunded,",
        "disputed and released; payout `PO-1001` bounced; order `O-1002` abandoned), and it books the entry shown.",
        "",
        "## Envelope",
        "",
    ]
    first_type = next(iter(EVENT_TYPES))
    out += fields_table(
        schemas[first_type],
        Envelope,
        tags,
        overrides={
            "type": ("one of the [event types](#event-types)", "yes"),
            "schema_version": ("integer", "no (default: the type's current version)"),
            "payload": ("object, see each event type", "yes"),
        },
    )
    out += [
        "",
        "## Event types",
        "",
        "| type | version | books |",
        "|---|--:|---|",
    ]
    for kind, cls in sorted(EVENT_TYPES.items()):
        out.append(f"| [`{kind}`](#{anchor(kind)}) | {CURRENT_VERSION[kind]} | {cell(_books(cls, kind))} |")
    for kind, cls in sorted(EVENT_TYPES.items()):
        schema = schemas[kind]
        payload_def = schema["properties"]["payload"]["$ref"].rsplit("/", 1)[-1]
        payload_schema = schema["$defs"][payload_def]
        raw, event = examples[kind]
        out += [
            "",
            f"## {kind}",
            "",
            md(inspect.cleandoc(classes[payload_def].__doc__ or "")),
            "",
            f"- **Schema version:** {CURRENT_VERSION[kind]}",
            f"- **Stream:** `{stream_name(event)}` in the example ([ADR 0002](adr/0002-aggregate-boundaries.md))",
            f"- **Books:** {_books(cls, kind)}",
            "",
            "### Payload",
            "",
        ]
        out += fields_table(payload_schema, classes[payload_def], tags, prefix="payload.")
        out += [
            "",
            "### Example",
            "",
            "```json",
            orjson.dumps(raw, option=orjson.OPT_INDENT_2).decode(),
            "```",
            "",
        ]
        out += _entry_table(event)
    out += [
        "",
        "## Shared types",
    ]
    for name in sorted(shared):
        out += ["", f"### {name}", "", md(inspect.cleandoc(shared[name].get("description", ""))), ""]
        out += fields_table(shared[name], classes[name], tags)
    out += ["", "## Formats", "", "| format | meaning |", "|---|---|"]
    out += [f"| {name} | {cell(meaning)} |" for name, _, meaning in _NAMED]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the page (exit 0), or with ``--check`` exit 1 when the page on disk is stale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from what would be written")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"default: {OUTPUT.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    target: Path = args.output
    try:
        text = render()
    except ExampleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        current = target.read_text(encoding="utf-8") if target.is_file() else None
        if current != text:
            print(f"{target} is out of date: run python scripts/gen_events_doc.py", file=sys.stderr)
            return 1
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
