"""The HTTP API end to end: a real `quipu serve` process over a real database, spoken to over HTTP."""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.factories import authorized, captured


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def api(ledger_url: str) -> Iterator[httpx.Client]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "adapters.cli", "serve", "--database", ledger_url, "--port", str(port)],
        cwd=tempfile.gettempdir(), env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        for _ in range(600):  # up to a minute on a loaded CI machine
            try:
                if client.get("/openapi.json").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError(f"server did not start: {server.stderr.read() if server.stderr else ''!r}")
        yield client
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=15)


def test_post_read_and_refuse_over_http(api: httpx.Client) -> None:
    auth = authorized("p1", "100.00")
    first = api.post("/v1/events", json=auth)
    assert first.status_code == 201 and first.json()["position"] == 1
    again = api.post("/v1/events", json=auth)
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    changed = copy.deepcopy(auth)
    changed["source"] = "elsewhere"
    conflict = api.post("/v1/events", json=changed)
    assert conflict.status_code == 409 and conflict.headers["content-type"] == "application/problem+json"
    assert conflict.json()["detail"] == f"event_id: {auth['event_id']} was already recorded with a different body"
    bad = captured("p1", "10.00")
    bad["payload"]["amount"]["amount"] = 10.0
    refused = api.post("/v1/events", json=bad)
    assert refused.status_code == 422
    assert refused.json()["errors"] == [
        'payload.amount.amount: must be a decimal string such as "12.34", not a JSON number'
    ]
    over = api.post("/v1/events", json=captured("p1", "100.01"))
    assert over.status_code == 422 and "exceeds the 100.00 BRL still authorized" in over.json()["detail"]
    batch = api.post("/v1/events/batch", json=[captured("p1", "60.00"), auth, {"type": "nope"}])
    assert [r["outcome"] for r in batch.json()["results"]] == ["appended", "duplicate", "rejected"]
    assert api.post("/v1/events/batch", json={"not": "a list"}).status_code == 400
    assert api.post("/v1/events/batch", content=b"[").status_code == 400
    feed = api.get("/v1/events", params={"after": 0, "limit": 1}).json()
    assert [e["position"] for e in feed["events"]] == [1] and feed["next"] == "/v1/events?after=1&limit=1"
    assert api.get(feed["next"]).json()["events"][0]["event"]["type"] == "payment.captured"
    balances = api.get("/v1/balances", params={"account": "seller:*"}).json()
    assert balances == [{"account": "seller:S1:pending:BRL", "currency": "BRL", "debits": "0.00", "credits": "60.00",
                         "balance": "60.00", "normal_side": "credit"}]  # fmt: skip
    assert api.get("/v1/trial-balance").json() == [
        {"currency": "BRL", "debits": "60.00", "credits": "60.00", "net": "0.00"}
    ]
    assert api.get("/v1/balances", params={"as_of": "yesterday"}).status_code == 422
