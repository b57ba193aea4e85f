"""The audit routes over HTTP (scope audit:read), in process on SQLite and PostgreSQL: the chain walk names the
first altered event, checkpoints are signed only with a key that already exists and verify against the log,
and balances as of a position, a record time or a business time equal what ``quipu replay`` folds."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.audit import load_or_create_key, take_checkpoint
from adapters.bootstrap import open_ledger
from adapters.http.audit_routes import BalancesAsOf, ChainStatus
from adapters.replay import replay, snapshot_store
from domain.checkpoints import Checkpoint, check_signature
from ledger.accounts import Side, normal_side_of
from ledger.money import format_amount
from tests.factories import authorized, captured, fee, refunded
from tests.test_http_ledger_routes import PROBLEM, is_problem, post, run, sales
from tests.test_replay import _drop_snapshots
from tests.test_verify import _q, raw_sql

AUDITOR = {"auditor": ["audit:read"]}


def test_the_chain_walk_and_signed_checkpoints(
    ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "keys" / "signing-key.pem"
    monkeypatch.setenv("QUIPU_SIGNING_KEY", str(key_file))
    post(ledger_url, sales(2, 3))  # 20 events

    async def scenario(api: httpx.AsyncClient, h: dict[str, dict[str, str]]) -> None:
        auditor = h["auditor"]
        # Three walks at once, each on its own connection: the same verdict.
        walks = await asyncio.gather(*(api.get("/v1/audit/verify", headers=auditor) for _ in range(3)))
        assert {w.status_code for w in walks} == {200} and len({w.text for w in walks}) == 1
        status = ChainStatus.model_validate(walks[0].json())
        assert (status.ok, status.events, status.head, status.broken) == (True, 20, 20, None)
        # No key yet: refused, and a GET does not create the ledger's identity.
        assert (await api.get("/v1/audit/checkpoint", headers=auditor)).status_code == 404 and not key_file.exists()
        key = load_or_create_key(key_file)
        head = await api.get("/v1/audit/checkpoint", headers=auditor)
        assert head.status_code == 200
        signed = Checkpoint.model_validate(head.json())
        check_signature(signed)
        with open_ledger(ledger_url) as ledger:  # what `quipu checkpoint` signs (Ed25519 is deterministic)
            assert head.json() == take_checkpoint(ledger.store, key).model_dump()
            early = take_checkpoint(ledger.store, key, 5).model_dump()
        assert (await api.get("/v1/audit/checkpoint?position=5", headers=auditor)).json() == early
        assert is_problem(await api.get("/v1/audit/checkpoint?position=21", headers=auditor), 404, "position")
        assert is_problem(await api.get("/v1/audit/checkpoint?position=x", headers=auditor), 422, "position")
        # Verifying against a kept checkpoint, pinned to the published key or not.
        against = await api.post("/v1/audit/verify", json={"checkpoint": head.json()}, headers=auditor)
        assert against.json() | {"head_sha256": ""} == {"ok": True, "events": 20, "head": 20, "head_sha256": "",
                                                         "broken": None, "checkpoint": 20}  # fmt: skip
        pinned = {"checkpoint": early, "public_key": signed.public_key}
        assert (await api.post("/v1/audit/verify", json=pinned, headers=auditor)).json()["ok"] is True
        other_key = {"checkpoint": early, "public_key": "ab" * 32}
        assert is_problem(await api.post("/v1/audit/verify", json=other_key, headers=auditor), 422, "public_key")
        moved = {"checkpoint": {**early, "position": 6}}
        assert is_problem(await api.post("/v1/audit/verify", json=moved, headers=auditor), 422, "checkpoint.signature")
        as_text = {"checkpoint": {**early, "position": "5"}}  # strict: a string is not a position
        assert is_problem(await api.post("/v1/audit/verify", json=as_text, headers=auditor), 422, "checkpoint.position")
        assert is_problem(await api.post("/v1/audit/verify", content=b"{", headers=auditor), 400, "body")
        # Someone edits the seventh event in the database: the walk names it; the early checkpoint still holds.
        with open_ledger(ledger_url) as ledger:
            victim = ledger.store.read(6, 1)[0]
            with raw_sql(ledger) as conn:
                conn.execute(_q(ledger, "UPDATE quipu_events SET state = ? WHERE originator_version = ? AND "
                                        "topic = ? AND state = ?"),
                             (victim.body.replace(b'"100.00"', b'"10.00"'), victim.version, victim.topic,
                              victim.body))  # fmt: skip
        broken = (await api.get("/v1/audit/verify", headers=auditor)).json()
        assert broken["ok"] is False and broken["events"] == 6
        assert broken["broken"] == {"position": 7, "event_id": str(victim.event_id),
                                    "reason": "body altered: its SHA-256 does not match"}  # fmt: skip
        assert (await api.post("/v1/audit/verify", json=pinned, headers=auditor)).json()["ok"] is True
        late = (await api.post("/v1/audit/verify", json={"checkpoint": head.json()}, headers=auditor)).json()
        assert late["ok"] is False and late["broken"]["position"] == 7
        # Every audit route: 401 without a token, 403 with a token lacking audit:read (before any parameter).
        routes = [("GET", "/v1/audit/verify", None), ("POST", "/v1/audit/verify", pinned),
                  ("GET", "/v1/audit/checkpoint", None), ("GET", "/v1/audit/balances?as_of=x", None)]  # fmt: skip
        for method, url, body in routes:
            kwargs: dict[str, Any] = {} if body is None else {"json": body}
            missing = await api.request(method, url, **kwargs)
            assert missing.status_code == 401 and missing.headers["content-type"].startswith(PROBLEM), url
            wrong = await api.request(method, url, headers=h["reader"], **kwargs)
            assert wrong.status_code == 403 and 'scope="audit:read"' in wrong.headers["WWW-Authenticate"], url
            assert (await api.request(method, url, headers=h["admin"], **kwargs)).status_code in (200, 422), url

    run(ledger_url, {"auditor": ["audit:read"], "reader": ["ledger:read"], "admin": ["admin"]}, scenario)


def _at(when: str, event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "occurred_at": when}


def _snapshot_rows(url: str, **rule: Any) -> list[dict[str, str]]:
    """Balances folded by ``quipu replay balances`` into a snapshot, as balance rows (each replay rebuilds the
    one snapshot from position 0)."""
    with open_ledger(url) as ledger:
        chosen = [p for p in ledger.runner.projections if p.name == "balances"]
        replay(ledger, "audit_api", chosen, **rule)
        store = snapshot_store(ledger, "audit_api")
        try:
            raw = store.query("SELECT account, currency, debits_minor, credits_minor FROM account_balances")
        finally:
            store.close()
    rows = []
    for account, ccy, d, c in sorted(raw):
        balance = d - c if normal_side_of(account) is Side.DEBIT else c - d
        rows.append({"account": account, "currency": ccy, "debits": format_amount(d, ccy),
                     "credits": format_amount(c, ccy), "balance": format_amount(balance, ccy),
                     "normal_side": normal_side_of(account).value})  # fmt: skip
    return rows


def test_balances_as_of_equal_what_replay_folds(ledger_url: str) -> None:
    first = [_at("2026-10-01T09:00:00-03:00", authorized(f"p{i}", "100.00", seller=f"S{i % 2}")) for i in range(4)]
    first += [_at("2026-10-02T09:00:00-03:00", captured(f"p{i}", "80.00", seller=f"S{i % 2}")) for i in range(4)]
    first += [_at("2026-10-10T09:00:00-03:00", fee("f1", "4.00", seller="S0"))]
    post(ledger_url, first)  # positions 1-9
    time.sleep(0.01)
    known = dt.datetime.now(dt.UTC)
    time.sleep(0.01)
    # Recorded later, but one of them happened before the fee: a back-dated refund.
    post(ledger_url, [_at("2026-10-05T09:00:00-03:00", refunded("p1", "r1", "30.00", seller="S1")),
                      _at("2026-10-12T09:00:00-03:00", fee("f2", "2.00", seller="S1"))])  # fmt: skip
    oct6 = "2026-10-06T00:00:00-03:00"
    known_us = int(known.timestamp()) * 1_000_000 + known.microsecond

    async def scenario(api: httpx.AsyncClient, h: dict[str, dict[str, str]]) -> None:
        auditor = h["auditor"]

        async def as_of(**query: str) -> dict[str, Any]:
            answer = await api.get("/v1/audit/balances", params=query, headers=auditor)
            assert answer.status_code == 200, answer.text
            return BalancesAsOf.model_validate(answer.json()).model_dump()

        by_position = await as_of(as_of="6")
        assert (by_position["basis"], by_position["position"]) == ("position", 6)
        assert by_position["balances"] == _snapshot_rows(ledger_url, to_position=6)
        recorded = await as_of(as_of=known.isoformat(), basis="recorded")
        assert (recorded["basis"], recorded["position"]) == ("recorded", 9)  # the second post came after
        assert recorded["balances"] == _snapshot_rows(ledger_url, as_of_recorded_us=known_us)
        effective = await as_of(as_of=oct6)
        assert effective["basis"] == "effective"
        assert effective["balances"] == _snapshot_rows(ledger_url, as_of_effective_us=_us(oct6))
        s1 = {r["account"]: r["balance"] for r in effective["balances"]}["seller:S1:pending:BRL"]
        assert s1 == "130.00"  # 2 x 80.00 captured, less the refund of 5 Oct recorded later; not the 12 Oct fee
        only = await as_of(as_of=oct6, account="seller:S0:*")
        assert [r["account"] for r in only["balances"]] == ["seller:S0:pending:BRL"]
        bad = [({"as_of": "12"}, "as_of"), ({}, "as_of"), ({"as_of": "last tuesday"}, "as_of"),
               ({"as_of": "2026-10-06T00:00:00"}, "as_of"), ({"as_of": oct6, "basis": "booked"}, "basis"),
               ({"as_of": "3", "basis": "recorded"}, "basis"),
               ({"as_of": "3", "account": "seller:[S"}, "account")]  # fmt: skip
        for query, field in bad:
            answer = await api.get("/v1/audit/balances", params=query, headers=auditor)
            assert is_problem(answer, 422, field), (query, answer.text)

    try:
        run(ledger_url, AUDITOR, scenario)
    finally:
        with open_ledger(ledger_url) as ledger:
            _drop_snapshots(ledger, "audit_api")


def _us(iso: str) -> int:
    moment = dt.datetime.fromisoformat(iso)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond
