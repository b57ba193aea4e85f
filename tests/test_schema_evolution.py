"""Schema evolution: payment.captured gained a field in version 2; version-1 events still replay."""

from __future__ import annotations

import copy

import orjson
import pytest

from adapters.bootstrap import Ledger
from domain.catalog import InvalidEvent, canonical_bytes, decode_stored, parse_event, to_current
from domain.payments import PaymentCaptured, PaymentCapturedV1
from domain.posting_rules import entry_for_body
from domain.service import Outcome
from tests.factories import authorized, captured


def captured_v2(pid: str, value: str, reference: str | None) -> dict[str, object]:
    event = captured(pid, value)
    event["schema_version"] = 2
    event["payload"]["acquirer_reference"] = reference
    return event


def test_a_version_1_event_upcasts_on_read_and_keeps_its_stored_bytes() -> None:
    v1 = parse_event(captured("p1", "10.00"))
    assert isinstance(v1, PaymentCapturedV1)
    body = canonical_bytes(v1)
    assert orjson.loads(body)["schema_version"] == 1
    current = decode_stored(body)
    assert isinstance(current, PaymentCaptured)
    assert current.schema_version == 2 and current.payload.acquirer_reference is None
    assert to_current(current) is current
    # Both versions book the same entry.
    v2_body = canonical_bytes(parse_event(captured_v2("p1", "10.00", "ARN-1")))
    assert entry_for_body(body) == entry_for_body(v2_body)


def test_version_2_requires_the_new_field_and_unknown_versions_are_refused() -> None:
    doc = captured_v2("p1", "10.00", None)
    del doc["payload"]["acquirer_reference"]  # type: ignore[attr-defined]
    with pytest.raises(InvalidEvent, match=r"payload\.acquirer_reference: Field required"):
        parse_event(doc)
    future = copy.deepcopy(doc)
    future["schema_version"] = 3
    with pytest.raises(InvalidEvent, match=r"schema_version: payment\.captured has no version 3 \(known: \[1, 2\]\)"):
        parse_event(future)


def test_old_and_new_versions_live_side_by_side_in_the_log(ledger: Ledger) -> None:
    old = captured("p1", "30.00")
    new = captured_v2("p1", "20.00", "ARN-9")
    results = ledger.service.post([authorized("p1", "100.00"), old, new])
    assert [r.outcome for r in results] == [Outcome.APPENDED] * 3
    stored = {r.topic + str(orjson.loads(r.body)["schema_version"]) for r in ledger.store.read(0, 10)}
    assert stored == {"payment.authorized1", "payment.captured1", "payment.captured2"}
    # A producer retrying the old version-1 event after the upgrade is told it is a duplicate.
    assert ledger.service.post([old])[0].outcome is Outcome.DUPLICATE
    # The rules saw both captures: 50.00 of 100.00 is left.
    over = ledger.service.post([captured_v2("p1", "50.01", None)])[0]
    assert over.outcome is Outcome.REJECTED and "50.00 BRL still authorized" in (over.reason or "")
    ledger.runner.run()
    balance = ledger.views.query("SELECT credits_minor FROM account_balances WHERE account = 'seller:S1:pending:BRL'")
    assert balance == [(5000,)]
    live = ledger.runner.checksums()
    ledger.runner.rebuild()
    assert ledger.runner.checksums() == live


def test_the_mapper_stores_canonical_bytes_and_reads_back_the_current_shape() -> None:
    import uuid

    from adapters.store.mapper import PydanticMapper, StateMismatch
    from domain.ports import NewRecord
    from ledger.chain import body_hash

    mapper = PydanticMapper()
    posted = parse_event(captured("p1", "10.5"))  # version 1, amount normalised to 10.50
    body = canonical_bytes(posted)
    record = NewRecord(uuid.uuid4(), 1, posted.type, body, posted.event_id, body_hash(body), posted)
    stored = mapper.to_stored_event(record)
    assert stored.state == body and b'"10.50"' in stored.state
    back = mapper.to_domain_event(stored)
    assert isinstance(back, PaymentCaptured) and back.payload.acquirer_reference is None
    with pytest.raises(StateMismatch):
        mapper.to_stored_event(
            NewRecord(uuid.uuid4(), 1, posted.type, body + b" ", posted.event_id, body_hash(body), posted)
        )
