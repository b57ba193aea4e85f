"""The HTTP API end to end: a real `quipu serve` process over a real database, spoken to over HTTP."""

from __future__ import annotations

import copy
import datetime as dt
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator

import httpx
import jwt
import pytest

from tests.factories import authorized, captured
from tests.servers import free_port, wait_until_serving

SECRET = "test-signing-secret-0123456789-abcdefghijklmnop"
ROUTES = [("POST", "/v1/events", "events:write"), ("POST", "/v1/events/batch", "events:write"),
          ("GET", "/v1/events", "ledger:read"), ("GET", "/v1/balances", "ledger:read"),
          ("GET", "/v1/trial-balance", "ledger:read")]  # fmt: skip


def _quipu(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUIPU_API_SECRET": SECRET}
    return subprocess.run([sys.executable, "-m", "adapters.cli", *args], capture_output=True, text=True, timeout=120,
                          check=False, cwd=tempfile.gettempdir(), env=env)  # fmt: skip


def _secret_of(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode == 0, run.stderr
    return next(line.split("=", 1)[1] for line in run.stdout.splitlines() if line.startswith("client_secret="))


@pytest.fixture
def serve(ledger_url: str) -> Iterator[Callable[..., httpx.Client]]:
    servers: list[subprocess.Popen[bytes]] = []
    clients: list[httpx.Client] = []

    def start(**env: str) -> httpx.Client:
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "adapters.cli", "serve", "--database", ledger_url, "--port", str(port)],
            cwd=tempfile.gettempdir(), env={**os.environ, "QUIPU_API_SECRET": SECRET, **env},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        servers.append(server)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        clients.append(client)
        wait_until_serving(client, server)
        return client

    yield start
    for client in clients:
        client.close()
    for server in servers:
        server.terminate()
        server.wait(timeout=15)


def _token(api: httpx.Client, client_id: str, secret: str, scope: str | None = None) -> str:
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    if scope:
        form["scope"] = scope
    response = api.post("/oauth/token", data=form)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_post_read_and_refuse_over_http(serve: Callable[..., httpx.Client], ledger_url: str) -> None:
    secret = _secret_of(_quipu("clients", "add", "checkout", "--scope", "events:write", "--scope", "ledger:read",
                               "--database", ledger_url))  # fmt: skip
    api = serve()
    api.headers["Authorization"] = f"Bearer {_token(api, 'checkout', secret)}"
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
    metrics = httpx.get(str(api.base_url.join("/metrics"))).text  # scraped without a token, like any target
    assert 'quipu_events_total{outcome="appended"} 2.0' in metrics
    assert 'quipu_events_total{outcome="duplicate"} 2.0' in metrics
    assert 'quipu_event_rejections_total{field="payload.amount.amount"} 1.0' in metrics
    assert 'quipu_http_request_seconds_count{method="POST",route="/v1/events",status="201"} 1.0' in metrics
    assert 'quipu_projection_lag_events{projection="journal"} 0.0' in metrics


def test_every_route_refuses_every_token_without_its_scope(serve: Callable[..., httpx.Client], ledger_url: str) -> None:
    writer = _secret_of(_quipu("clients", "add", "writer", "--scope", "events:write", "--database", ledger_url))
    reader = _secret_of(_quipu("clients", "add", "reader", "--scope", "ledger:read", "--database", ledger_url))
    api = serve()
    tokens = {"events:write": _token(api, "writer", writer), "ledger:read": _token(api, "reader", reader)}
    now = dt.datetime.now(dt.UTC)
    expired = jwt.encode({"iss": "quipu", "sub": "writer", "scope": "events:write ledger:read",
                          "exp": now - dt.timedelta(minutes=1)}, SECRET, algorithm="HS256")  # fmt: skip
    forged = jwt.encode({"iss": "quipu", "sub": "writer", "scope": "admin", "exp": now + dt.timedelta(minutes=5)},
                        "another-secret-of-sufficient-length-123456", algorithm="HS256")  # fmt: skip
    for method, path, scope in ROUTES:
        body = [] if path.endswith("batch") else authorized("p9", "1.00")
        kwargs = {"json": body} if method == "POST" else {}
        missing = api.request(method, path, **kwargs)  # type: ignore[arg-type]
        assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith('Bearer realm="quipu"')
        for bad_token, reason in ((expired, "expired"), (forged, "not valid")):
            bad = api.request(method, path, headers={"Authorization": f"Bearer {bad_token}"}, **kwargs)  # type: ignore[arg-type]
            assert bad.status_code == 401 and reason in bad.json()["detail"]
        other = next(t for s, t in tokens.items() if s != scope)
        wrong = api.request(method, path, headers={"Authorization": f"Bearer {other}"}, **kwargs)  # type: ignore[arg-type]
        assert wrong.status_code == 403 and f'scope="{scope}"' in wrong.headers["WWW-Authenticate"]
        right = api.request(method, path, headers={"Authorization": f"Bearer {tokens[scope]}"}, **kwargs)  # type: ignore[arg-type]
        assert right.status_code < 400, (path, right.text)
    # Secrets: a wrong one, a scope not granted, a revoked client.
    assert api.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "writer",
                                          "client_secret": "nope"}).status_code == 401  # fmt: skip
    assert api.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "writer",
                                          "client_secret": writer, "scope": "admin"}).status_code == 400  # fmt: skip
    assert _quipu("clients", "revoke", "writer", "--database", ledger_url).returncode == 0
    assert api.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "writer",
                                          "client_secret": writer}).status_code == 401  # fmt: skip
    bad_scope = _quipu("clients", "add", "x", "--scope", "everything", "--database", ledger_url)
    assert (
        bad_scope.returncode == 2
        and "--scope: everything not among events:write, ledger:read, payouts:write" in bad_scope.stderr
    )
    twice = _quipu("clients", "add", "reader", "--scope", "ledger:read", "--database", ledger_url)
    assert twice.returncode == 2 and "client 'reader' already exists" in twice.stderr
    unknown = _quipu("clients", "revoke", "ghost", "--database", ledger_url)
    assert unknown.returncode == 2 and "no active client 'ghost'" in unknown.stderr
    listed = _quipu("clients", "list", "--database", ledger_url, "--format", "csv").stdout
    assert writer not in listed and "reader,ledger:read" in listed


def test_rate_limits_answer_429_with_retry_after(serve: Callable[..., httpx.Client], ledger_url: str) -> None:
    secret = _secret_of(_quipu("clients", "add", "busy", "--scope", "ledger:read", "--database", ledger_url))
    api = serve(QUIPU_RATE_BURST="3", QUIPU_RATE_PER_SECOND="0.2")
    api.headers["Authorization"] = f"Bearer {_token(api, 'busy', secret)}"
    codes = [api.get("/v1/trial-balance").status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3] == 429
    limited = api.get("/v1/trial-balance")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
