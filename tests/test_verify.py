"""`verify` walks the hash chain and names the first broken link, on both databases."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.bootstrap import Ledger, sqlite_path
from adapters.store.pg_url import parse_pg_url
from domain.integrity import verify_chain
from tests.factories import authorized, captured, fee


@contextmanager
def raw_sql(ledger: Ledger) -> Iterator[Any]:
    """A plain DB-API connection to the ledger's tables, as an attacker would have."""
    if ledger.dialect == "sqlite":
        conn = sqlite3.connect(sqlite_path(ledger.url), isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()
    else:
        target = parse_pg_url(ledger.url)
        with psycopg.connect(target.conninfo, autocommit=True, options=f"-c search_path={target.schema}") as pg_conn:
            yield pg_conn


def _fill(ledger: Ledger, n: int = 12) -> None:
    events = [authorized(f"p{i}", "100.00") for i in range(n // 2)]
    events += [captured(f"p{i}", "50.00") for i in range(n // 2)]
    ledger.service.post(events)


def _q(ledger: Ledger, sql: str) -> str:
    return sql if ledger.dialect == "sqlite" else sql.replace("?", "%s")


def test_an_untouched_log_verifies(ledger: Ledger) -> None:
    _fill(ledger)
    report = verify_chain(ledger.store, page=5)
    assert report.broken is None and report.events == 12


def test_an_altered_body_is_named(ledger: Ledger) -> None:
    _fill(ledger)
    victim = ledger.store.read(6, 1)[0]
    forged = victim.body.replace(b'"50.00"', b'"5.00"')
    assert forged != victim.body
    with raw_sql(ledger) as conn:
        conn.execute(
            _q(ledger, "UPDATE quipu_events SET state = ? WHERE originator_version = ? AND topic = ? AND state = ?"),
            (forged, victim.version, victim.topic, victim.body),
        )
    broken = verify_chain(ledger.store).broken
    assert broken is not None
    assert (broken.position, broken.event_id) == (7, str(victim.event_id))
    assert "body altered" in broken.reason


def test_a_removed_event_is_named(ledger: Ledger) -> None:
    _fill(ledger)
    victim = ledger.store.read(4, 1)[0]
    with raw_sql(ledger) as conn:
        conn.execute(_q(ledger, "DELETE FROM quipu_events WHERE state = ?"), (victim.body,))
    broken = verify_chain(ledger.store).broken
    assert broken is not None and broken.position == 5 and "missing" in broken.reason


def test_swapped_bodies_are_named(ledger: Ledger) -> None:
    _fill(ledger)
    a, b = ledger.store.read(2, 2)
    with raw_sql(ledger) as conn:
        for src, dst in ((a, b"tmp"), (b, a.body), (None, b.body)):
            old = src.body if src is not None else b"tmp"
            conn.execute(_q(ledger, "UPDATE quipu_events SET state = ? WHERE state = ?"), (dst, old))
    broken = verify_chain(ledger.store).broken
    assert broken is not None and broken.position == 3


def test_a_rewritten_chain_row_is_named(ledger: Ledger) -> None:
    _fill(ledger)
    with raw_sql(ledger) as conn:
        conn.execute(
            _q(ledger, "UPDATE quipu_event_chain SET recorded_at_us = recorded_at_us + 1 WHERE position = ?"), (9,)
        )
    broken = verify_chain(ledger.store).broken
    assert broken is not None and broken.position == 9


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    position=st.integers(min_value=1, max_value=12),
    offset=st.integers(min_value=0, max_value=10_000),
    bit=st.integers(0, 7),
)
def test_any_flipped_bit_in_any_body_is_caught(tmp_path_factory: Any, position: int, offset: int, bit: int) -> None:
    from adapters.bootstrap import open_ledger

    path = tmp_path_factory.mktemp("flip") / "l.db"
    with open_ledger(f"sqlite:///{path}") as ledger:
        _fill(ledger)
        ledger.service.post([fee("f1", "1.00")])
        victim = ledger.store.read(position - 1, 1)[0]
        body = bytearray(victim.body)
        body[offset % len(body)] ^= 1 << bit
        with raw_sql(ledger) as conn:
            conn.execute("UPDATE quipu_events SET state = ? WHERE state = ?", (bytes(body), victim.body))
        broken = verify_chain(ledger.store).broken
        assert broken is not None and broken.position == position


@pytest.mark.parametrize("page", [1, 3, 1000])
def test_verification_does_not_depend_on_page_size(ledger: Ledger, page: int) -> None:
    _fill(ledger, 10)
    assert verify_chain(ledger.store, page=page).events == 10


def test_an_inserted_event_is_named(ledger: Ledger) -> None:
    """A forged event slipped in at position 4 with a valid link of its own; later rows moved up one.

    The forged link verifies (the attacker knows the algorithm), so the first link that does
    not hold is the next one, whose stored hash was made for a different predecessor.
    """
    import hashlib
    import uuid

    from ledger.chain import link_hash

    _fill(ledger)
    third, fourth = ledger.store.read(2, 2)
    forged_id = uuid.uuid4()
    body = fourth.body.replace(str(fourth.event_id).encode(), str(forged_id).encode())
    digest = hashlib.sha256(body).digest()
    link = link_hash(third.chain_sha256, 4, forged_id, fourth.recorded_at_us, digest)
    stream = uuid.uuid4()
    with raw_sql(ledger) as conn:
        shift = "UPDATE quipu_event_chain SET position = -position WHERE position >= 4"
        back = "UPDATE quipu_event_chain SET position = 1 - position WHERE position < 0"
        conn.execute(shift)
        conn.execute(back)
        if ledger.dialect == "sqlite":
            conn.execute("INSERT INTO quipu_events VALUES (?, 1, ?, ?)", (stream.hex, fourth.topic, body))
            conn.execute(
                "INSERT INTO quipu_event_chain VALUES (4, ?, 1, ?, ?, ?, ?)",
                (stream.hex, forged_id.bytes, fourth.recorded_at_us, digest, link),
            )
        else:
            nid = conn.execute(
                "INSERT INTO quipu_events (originator_id, originator_version, topic, state) "
                "VALUES (%s, 1, %s, %s) RETURNING notification_id",
                (stream, fourth.topic, body),
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO quipu_event_chain VALUES (4, %s, %s, %s, %s, %s)",
                (nid, forged_id, fourth.recorded_at_us, digest, link),
            )
    assert ledger.store.read(3, 1)[0].event_id == forged_id
    broken = verify_chain(ledger.store).broken
    assert broken is not None and broken.position == 5
    assert broken.reason == "chain hash does not follow from the previous link"
