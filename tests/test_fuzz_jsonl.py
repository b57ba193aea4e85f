"""Hostile JSONL files through ``quipu post`` (issue 10, item 4), the command line's own code path.

Each file mixes new events, duplicates, conflicting re-posts, blank lines, CRLF endings and hostile lines
(bytes that are not UTF-8, JSON ten thousand deep, a number past any double, lines over the event limit, NUL,
events with a bad field). Whatever the mix and the batch size: the command never crashes; it exits 0 only when
nothing was refused; it names every refused line by its number with ``field: reason``; it counts every outcome;
and the log holds exactly the accepted events (ADR 0009: a refused event writes nothing, the accepted ones of a
batch are written together) with its chain intact.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from adapters.bootstrap import open_ledger
from adapters.cli import app
from domain.catalog import MAX_EVENT_BYTES
from domain.integrity import verify_chain
from ledger.pan import contains_pan
from tests.factories import authorized
from tests.test_fuzz_events import HOSTILE_TEXT, RAW

EXAMPLES: Final = 40
REFUSED_LINE: Final = re.compile(r"^line (\d+): (rejected|conflict): (\S[^:]*): \S")


def _event(value: str = "10.00", **changes: Any) -> dict[str, Any]:
    doc = authorized(f"p-{uuid.uuid4().hex[:12]}", value)
    doc.update(changes)
    return doc


@st.composite
def jsonl_files(draw: st.DrawFn) -> tuple[bytes, dict[str, Any]]:
    """A file's bytes and what ``quipu post`` must make of it."""
    lines: list[bytes] = []
    expect: dict[str, Any] = {"appended": set(), "duplicates": 0, "refused": {}, "refused_ids": set()}
    good: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["good", "good", "dup", "conflict", "blank", "bad", "raw", "binary", "huge"]))
        number = len(lines) + 1
        if kind == "good" or (kind in ("dup", "conflict") and not good):
            doc = _event()
            good.append(doc)
            expect["appended"].add(doc["event_id"])
            lines.append(orjson.dumps(doc))
        elif kind == "dup":
            lines.append(orjson.dumps(draw(st.sampled_from(good))))
            expect["duplicates"] += 1
        elif kind == "conflict":
            doc = {**draw(st.sampled_from(good)), "source": "elsewhere"}
            lines.append(orjson.dumps(doc))
            expect["refused"][number] = "conflict"
        elif kind == "blank":
            lines.append(draw(st.sampled_from([b"", b"   ", b"\t"])))
        elif kind == "bad":
            where = draw(st.sampled_from(["source", "amount", "currency", "occurred_at", "type"]))
            text = draw(st.sampled_from(HOSTILE_TEXT) | st.text(max_size=30))
            doc = _event()
            if where == "amount":
                doc["payload"]["amount"]["amount"] = text if not re.fullmatch(r"[0-9]+(\.[0-9]{1,2})?", text) else "-1"
            elif where == "currency":
                doc["payload"]["amount"]["currency"] = text if not re.fullmatch(r"[A-Z]{3}", text) else "ZZZ"
            elif where == "type":
                doc["type"] = "payment.authorized " + text
            elif where == "occurred_at":
                doc["occurred_at"] = "2026-10-01T10:00:00" + text  # no offset, or a bad one
            else:
                doc["source"] = text if (text == "" or len(text) > 100 or "\x00" in text) else "x" * 101
            lines.append(orjson.dumps(doc))
            expect["refused"][number] = "rejected"
            expect["refused_ids"].add(doc["event_id"])
        elif kind == "raw":
            name = draw(st.sampled_from(sorted(k for k in RAW if b"\n" not in RAW[k] and RAW[k].strip())))
            lines.append(RAW[name])
            expect["refused"][number] = "rejected"
        elif kind == "binary":
            lines.append(draw(st.binary(min_size=1, max_size=200).filter(lambda b: b"\n" not in b and b.strip())))
            expect["refused"][number] = "rejected"
        else:
            doc = _event(source="x" * (MAX_EVENT_BYTES + 10))
            lines.append(orjson.dumps(doc))
            expect["refused"][number] = "rejected"
            expect["refused_ids"].add(doc["event_id"])
    ending = draw(st.sampled_from([b"\n", b"\r\n"]))
    body = ending.join(lines) + draw(st.sampled_from([b"", ending]))
    return body, expect


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("fuzz-jsonl")
    url = f"sqlite:///{tmp}/ledger.db"
    with open_ledger(url):
        pass
    yield url, tmp


def _post(url: str, path: Path, batch: int) -> Any:
    return CliRunner().invoke(app, ["post", str(path), "--database", url, "--batch-size", str(batch)])


def _check(url: str, path: Path, body: bytes, expect: dict[str, Any], batch: int) -> None:
    path.write_bytes(body)
    with open_ledger(url) as ledger:
        head = ledger.store.head()

    run = _post(url, path, batch)

    assert run.exception is None or isinstance(run.exception, SystemExit), run.exception
    output = run.stdout + run.stderr
    assert "Traceback" not in output
    refused = expect["refused"]
    assert run.exit_code == (1 if refused else 0), output
    rejected = sum(1 for v in refused.values() if v == "rejected")
    conflicts = len(refused) - rejected
    counts = f"appended {len(expect['appended'])}, duplicates {expect['duplicates']}, rejected {rejected}, " \
             f"conflicts {conflicts}"  # fmt: skip
    assert counts in run.stdout, (counts, run.stdout)
    named = {}
    for line in run.stderr.splitlines():
        if line.startswith("line "):
            match = REFUSED_LINE.match(line)
            assert match, f"not 'line N: outcome: field: reason': {line[:200]!r}"
            named[int(match[1])] = match[2]
    assert named == refused, "every refused line is named by its number, and no other"
    with open_ledger(url) as ledger:
        assert ledger.store.head() == head + len(expect["appended"]), "the log holds exactly the accepted events"
        known = ledger.store.known_events([uuid.UUID(i) for i in expect["appended"] | expect["refused_ids"]])
        assert {str(k) for k in known} == expect["appended"], "a refused event is never recorded"
        assert verify_chain(ledger.store).broken is None, "and the chain still verifies"


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(file=jsonl_files(), batch=st.integers(1, 5))
def test_any_mix_of_lines_is_accounted_for_line_by_line(
    db: tuple[str, Path], file: tuple[bytes, dict[str, Any]], batch: int
) -> None:
    url, tmp = db
    body, expect = file
    _check(url, tmp / "fuzz.jsonl", body, expect, batch)


def test_a_hostile_file_on_both_databases(ledger_url: str, tmp_path: Path) -> None:
    """Every hostile line at once, on SQLite and PostgreSQL (NUL, SQL- and formula-looking text among them)."""
    good = [_event(source=text) for text in HOSTILE_TEXT if text and len(text) <= 100 and "\x00" not in text
            and not contains_pan(text)]  # fmt: skip
    bad = [_event(source=text) for text in ("\x00", "a\x00b", "", "x" * 101, "4111 1111 1111 1111")]
    raw = [v for v in RAW.values() if b"\n" not in v and v.strip()]
    lines = [orjson.dumps(d) for d in good] + [orjson.dumps(d) for d in bad] + raw
    expect = {
        "appended": {d["event_id"] for d in good},
        "duplicates": 0,
        "refused": {n: "rejected" for n in range(len(good) + 1, len(lines) + 1)},
        "refused_ids": {d["event_id"] for d in bad},
    }
    _check(ledger_url, tmp_path / "hostile.jsonl", b"\n".join(lines) + b"\n", expect, 7)
    with open_ledger(ledger_url) as ledger:
        ledger.runner.run()  # what was recorded projects
